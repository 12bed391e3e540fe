#!/usr/bin/env bash
# Local parallel job runner with run.pl's calling convention (Kaldi/ESPnet's `cmd`):
#
#   run_local.sh [JOB=1:N] LOGFILE COMMAND...
#
# Runs N copies of COMMAND at once, with the string JOB in LOGFILE and COMMAND
# replaced by the job index; each job's output goes to its log. Returns non-zero
# (and names the failed jobs and their logs) if any job fails.
# A cluster replaces this through cmd.sh (e.g. ESPnet's slurm.pl).
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "Usage: $0 [JOB=1:N] LOGFILE COMMAND..." >&2; exit 1
fi
jobvar=""; first=1; last=1
if [[ "$1" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+):([0-9]+)$ ]]; then
  jobvar="${BASH_REMATCH[1]}"; first="${BASH_REMATCH[2]}"; last="${BASH_REMATCH[3]}"; shift
fi
logtemplate="$1"; shift
[ $# -ge 1 ] || { echo "$0: no command given" >&2; exit 1; }

pids=(); logs=()
for ((i = first; i <= last; i++)); do
  if [ -n "${jobvar}" ]; then
    log="${logtemplate//${jobvar}/${i}}"
    cmd=(); for a in "$@"; do cmd+=("${a//${jobvar}/${i}}"); done
  else
    log="${logtemplate}"; cmd=("$@")
  fi
  mkdir -p "$(dirname "${log}")"
  (
    cmdline="$(printf '%q ' "${cmd[@]}")"
    echo "# ${cmdline}"
    echo "# started at $(date)"
    start=$(date +%s)
    bash -c "${cmdline}"
    rc=$?
    echo "# accounting: time=$(( $(date +%s) - start )) s, exit code ${rc}"
    echo "# ended at $(date)"
    exit "${rc}"
  ) > "${log}" 2>&1 &
  pids+=($!); logs+=("${log}")
done

failed=0
for k in "${!pids[@]}"; do
  if ! wait "${pids[$k]}"; then
    echo "$0: job $((first + k)) failed, see ${logs[$k]}" >&2
    tail -n 5 "${logs[$k]}" >&2
    failed=$((failed + 1))
  fi
done
if [ "${failed}" -gt 0 ]; then
  echo "$0: ${failed} of $((last - first + 1)) jobs failed" >&2; exit 1
fi
exit 0
