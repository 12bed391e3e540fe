# Sourced by test/run.sh and test/run_espnet202511.sh: one pytest-xdist
# worker per core (UALM_TEST_WORKERS; 0: one process, for -x or --pdb), idle
# workers taking pending tests from busy ones (worksteal), and torch on
# OMP_NUM_THREADS = cores / workers threads in each, so that spinning OpenMP
# threads never oversubscribe the cores. Sets the array ${xdist[@]}.
cores=$(nproc)
workers=${UALM_TEST_WORKERS:-${cores}}
if [ "${workers}" -gt 0 ]; then
    per_worker=$(( cores / workers > 0 ? cores / workers : 1 ))
    xdist=(-n "${workers}" --dist worksteal)
else
    per_worker=${cores}
    xdist=(-p no:xdist)
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${per_worker}}"
