# Sourced by every stage: the UALM environment (installs what is missing first).
MAIN_ROOT="${UALM_MAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
# shellcheck disable=SC1091
. "${MAIN_ROOT}/tools/activate_python.sh"
export PATH="${MAIN_ROOT}/egs2/ualm/scripts:${PATH}"
export PYTHONIOENCODING=UTF-8
export OMP_NUM_THREADS=1   # jobs run in parallel; one thread each
# OpenMP threads spin at most 10k rounds, then sleep: a training step on 2
# threads beside one busy process takes ~3x instead of ~7x its idle time, for
# ~5 % on idle cores (bench/bench_shared_cores.py).
export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}"
