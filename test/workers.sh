# Sourced by test/run.sh and test/run_espnet202511.sh: one pytest-xdist
# worker per core (UALM_TEST_WORKERS; 0: one process, for -x or --pdb), and
# torch on OMP_NUM_THREADS = cores / workers threads in each, so that spinning
# OpenMP threads never oversubscribe the cores. Sets the array ${xdist[@]}.
# Scheduling: one test at a time to whichever worker is free, in collection
# order (loadgroup without reordering), and test/conftest.py puts the recipe
# runs first: each worker starts with one of them, the rest fill in. (The
# default and worksteal hand each worker a contiguous block of tests, which
# queued the second recipe run behind half the suite.)
cores=$(nproc)
workers=${UALM_TEST_WORKERS:-${cores}}
if [ "${workers}" -gt 0 ]; then
    per_worker=$(( cores / workers > 0 ? cores / workers : 1 ))
    xdist=(-n "${workers}" --dist loadgroup --no-loadscope-reorder)
else
    per_worker=${cores}
    xdist=(-p no:xdist)
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${per_worker}}"
