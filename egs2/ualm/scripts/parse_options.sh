#!/usr/bin/env bash
# Option parser in the style of Kaldi/ESPnet's utils/parse_options.sh, written for UALM.
#
# Source it after declaring defaults:  stage=1; nj=4; . parse_options.sh
# Then `--stage 3 --nj=8 --some_flag true` sets the variables (dashes in an option
# name map to underscores). An option that has no variable of its name is an
# error, so typos never pass silently. `--help`/`-h` prints $help_message and the
# variables the script declares (the lines before sourcing this file), then exits.
# `--config FILE` sources FILE first (bash `name=value` lines).
# Positional arguments stay in "$@".

_ualm_usage() {
  echo -e "${help_message:-Usage: $0 [options]}"
  echo "Options (current values):"
  local _caller="${BASH_SOURCE[2]:-$0}"
  # name=value lines of the calling script before this file was sourced
  sed -n '/parse_options.sh/q;p' "${_caller}" \
    | grep -E '^[A-Za-z_][A-Za-z0-9_]*=' | grep -v '^help_message=' \
    | while IFS='=' read -r _name _rest; do
        printf '  --%-28s %s\n' "${_name}" "${!_name}"
      done
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _ualm_usage; exit 0 ;;
    --config)
      [ $# -ge 2 ] || { echo "$0: --config needs a file" >&2; exit 1; }
      [ -f "$2" ] || { echo "$0: config file '$2' not found" >&2; exit 1; }
      # shellcheck disable=SC1090
      . "$2"; shift 2 ;;
    --*=*)
      _name="${1%%=*}"; _name="${_name#--}"; _name="${_name//-/_}"; _value="${1#*=}"
      if ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: invalid option $1 (no variable '${_name}'; see --help)" >&2; exit 1
      fi
      printf -v "${_name}" '%s' "${_value}"; shift ;;
    --*)
      _name="${1#--}"; _name="${_name//-/_}"
      if ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: invalid option $1 (no variable '${_name}'; see --help)" >&2; exit 1
      fi
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      printf -v "${_name}" '%s' "$2"; shift 2 ;;
    *) break ;;
  esac
done
unset _name _value
true
