#!/usr/bin/env bash
# Source me: installs whatever is missing (a no-op when up to date), then activates tools/venv.
_ualm_tools="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
make -s -C "${_ualm_tools}" all >&2 || { echo "UALM installation failed (see above)" >&2; return 1 2>/dev/null || exit 1; }
# shellcheck disable=SC1091
. "${_ualm_tools}/venv/bin/activate"
export PYTHONNOUSERSITE=1
unset _ualm_tools
