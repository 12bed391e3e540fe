#!/usr/bin/env bash
# The test command: installs what is missing (tools/), then runs the whole suite,
# mini-recipe integration included. Extra arguments go to pytest, e.g.
#   bash test/run.sh -m "not integration"      # skip the recipe run
#   bash test/run.sh test/espnet2/ualm/codec   # one folder
#   UALM_TEST_WORKERS=0 bash test/run.sh -x    # one process (for --pdb, -x)
# One pytest-xdist worker per core (test/workers.sh): the two recipe runs
# (mini, ualm1), most of the suite's time, go side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. tools/activate_python.sh
# The web demo's extra and the browser its test drives; without them the
# demo's browser test skips and says why.
make -s -k -C tools demo browser >&2 \
    || echo "[test] demo extra or Chromium not installed (see above): the demo's browser test will skip" >&2
# shellcheck source=test/workers.sh
. test/workers.sh
exec python -m pytest -q --timeout=1800 "${xdist[@]}" "$@"
