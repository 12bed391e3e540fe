#!/usr/bin/env bash
# `pip install` that survives a bad download: tools/Makefile's installer.
#
#   pip_install.sh PYTHON ARGS...     runs PYTHON -m pip install ARGS...
#
# pip itself retries a connection that fails (--retries) or stalls
# (--timeout), but not a download that arrives truncated or fails its hash
# check: such a run ends with an error and leaves what it installed so far.
# This reruns the whole command then, up to PIP_TRIES times (default 3;
# already installed packages are not fetched again), the tries after a hash
# mismatch or a broken download with --no-cache-dir so that nothing pip kept
# of the bad file is reused. An error that another try cannot change (no such
# version, conflicting requirements, while the network answered) stops at once.
set -u

py=$1
shift
tries=${PIP_TRIES:-3}
retries=${PIP_RETRIES:-10}
timeout=${PIP_DEFAULT_TIMEOUT:-120}
log=$(mktemp "${TMPDIR:-/tmp}/ualm-pip.XXXXXX")
trap 'rm -f "$log"' EXIT

extra=()
for ((try = 1; try <= tries; try++)); do
    "$py" -m pip install --retries "$retries" --timeout "$timeout" ${extra[@]+"${extra[@]}"} "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] && exit 0
    # "no matching distribution" after connections failed is the network's
    # doing, not the requirements'
    if ! grep -qE 'Retrying \(Retry|NewConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|Temporary failure in name resolution|Connection (reset|refused|aborted)' "$log" \
        && grep -qE 'ResolutionImpossible|No matching distribution|Could not find a version|conflicting dependencies|Invalid requirement|No such file or directory: .*requirements' "$log"; then
        echo "[tools] pip failed on the requirements themselves (see above); not retrying" >&2
        exit "$rc"
    fi
    if grep -qE 'DO NOT MATCH THE HASHES|[Hh]ash mismatch|IncompleteRead|Connection broken:|ContentDecodingError|BadZipFile|is not a valid wheel|is invalid|EOFError|ProtocolError' "$log"; then
        extra=(--no-cache-dir)
        why="a broken download"
    else
        why="an error"
    fi
    if [ "$try" -lt "$tries" ]; then
        echo "[tools] pip install failed with $why (try $try of $tries); trying again in $((try * 10)) s" >&2
        sleep $((try * 10))
    fi
done
echo "[tools] pip install failed $tries times" >&2
exit "$rc"
