# Sourced by every stage: the UALM environment (installs what is missing first).
MAIN_ROOT="${UALM_MAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
# shellcheck disable=SC1091
. "${MAIN_ROOT}/tools/activate_python.sh"
export PATH="${MAIN_ROOT}/egs2/ualm/scripts:${PATH}"
export PYTHONIOENCODING=UTF-8
export OMP_NUM_THREADS=1   # jobs run in parallel; one thread each
