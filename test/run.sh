#!/usr/bin/env bash
# The test command: installs what is missing (tools/), then runs the whole suite,
# mini-recipe integration included. Extra arguments go to pytest, e.g.
#   bash test/run.sh -m "not integration"      # skip the recipe run
#   bash test/run.sh test/espnet2/ualm/codec   # one folder
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. tools/activate_python.sh
# The web demo's extra and the browser its test drives; without them the
# demo's browser test skips and says why.
make -s -k -C tools demo browser >&2 \
    || echo "[test] demo extra or Chromium not installed (see above): the demo's browser test will skip" >&2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec python -m pytest -q --timeout=1800 "$@"
