#!/usr/bin/env bash
# CI's second combination: Python 3.11 with ESPnet 202511, the older supported
# one (test/run.sh tests the default, ESPnet 202611). Installs it beside the
# default as tools/venv-espnet202511 and runs the install checks (the plugin
# leaves ESPnet's files untouched; pinned versions), a tiny training run
# (task), inference and packing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=venv-espnet202511
make -s -C tools ESPNET=202511 VENV="${venv}" all >&2
# shellcheck source=test/workers.sh
. test/workers.sh
export PYTHONNOUSERSITE=1
export PATH="${PWD}/tools/${venv}/bin:${PATH}"
exec python -m pytest -q --timeout=1800 "${xdist[@]}" \
    test/test_install.py test/test_requirements.py \
    test/espnet2/tasks/test_ualm.py \
    test/espnet2/bin/test_ualm_inference.py test/espnet2/bin/test_ualm_pack.py "$@"
