#!/usr/bin/env bash
# Finds a Python interpreter of one of the given minor versions for tools/venv.
#
#   find_python.sh 3.12 3.13     prints the interpreter's path on stdout
#
# Where it looks, in order: $PYTHON if set (it must be one of the versions),
# then pythonX.Y on PATH, then pyenv's installed versions ($(pyenv root) or
# ~/.pyenv), then /usr/local/bin and /usr/bin. An interpreter counts only if
# it runs (a pyenv shim of a version that is installed but not selected does
# not), is one of the versions, and can make a virtual environment (venv and
# ensurepip: Debian's python3.X without python3.X-venv cannot). What it tried
# and why each did not fit goes to stderr; the exit status is 1 when none fits.
set -u

want=("$@")
tried=()
names=$(printf '%s\n' "$@" | paste -sd'|' | sed 's/|/ or /g')   # "3.12 or 3.13"

# path -> "X.Y.Z REAL_PATH" when it runs and can make a venv (REAL_PATH: the
# interpreter itself, not a pyenv shim), else a reason on stdout, rc 1
probe() {
    local py=$1 out
    out=$("$py" -c 'import sys, venv, ensurepip; print("%d.%d.%d" % sys.version_info[:3], sys.executable)' 2>&1) \
        || { echo "does not run or lacks venv/ensurepip: $(printf '%s\n' "$out" | grep -m 1 -E 'Error|pyenv:|not found' || printf '%s\n' "$out" | tail -n 1)"; return 1; }
    printf '%s\n' "$out"
}

# accept path: prints path and exits when it is one of the wanted versions
consider() {
    local py=$1 where=$2 ver real minor v
    ver=$(probe "$py") || { tried+=("$py ($where): $ver"); return 1; }
    real=${ver#* }
    ver=${ver%% *}
    minor=${ver%.*}
    [ "$real" = "$py" ] || where="$where: $py"
    for v in "${want[@]}"; do
        if [ "$minor" = "$v" ]; then
            echo "[tools] Python $ver: $real ($where)" >&2
            printf '%s\n' "$real"
            exit 0
        fi
    done
    tried+=("$real ($where): Python $ver, not $names")
    return 1
}

if [ -n "${PYTHON:-}" ]; then
    py=$(command -v "$PYTHON" 2>/dev/null || true)
    if [ -z "$py" ]; then
        tried+=("$PYTHON (PYTHON=): not found")
    else
        consider "$py" "PYTHON=$PYTHON"
    fi
    echo "[tools] PYTHON=$PYTHON does not fit: ${tried[*]}" >&2
    exit 1
fi

for v in "${want[@]}"; do
    py=$(command -v "python$v" 2>/dev/null) && consider "$py" "PATH"
done

pyenv_root=""
if command -v pyenv >/dev/null 2>&1; then
    pyenv_root=$(pyenv root 2>/dev/null)
elif [ -d "${PYENV_ROOT:-$HOME/.pyenv}/versions" ]; then
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
fi
if [ -n "$pyenv_root" ]; then
    for v in "${want[@]}"; do
        # newest patch release first (3.12.10 before 3.12.9)
        for dir in $(ls -d "$pyenv_root/versions/$v".* 2>/dev/null | sort -t. -k3,3nr); do
            [ -x "$dir/bin/python$v" ] && consider "$dir/bin/python$v" "pyenv"
        done
    done
fi

for v in "${want[@]}"; do
    for py in "/usr/local/bin/python$v" "/usr/bin/python$v"; do
        [ -x "$py" ] && consider "$py" "system"
    done
done

{
    echo "[tools] no Python $names found."
    for t in "${tried[@]}"; do echo "[tools]   tried $t"; done
    [ ${#tried[@]} -eq 0 ] && echo "[tools]   (none on PATH, in pyenv, in /usr/local/bin or /usr/bin)"
} >&2
exit 1
