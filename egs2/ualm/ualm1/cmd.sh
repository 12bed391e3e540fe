# How parallel jobs run (ESPnet's convention). run_local.sh runs JOB=1:N on this
# machine. On a cluster, use ESPnet's slurm.pl / queue.pl with a conf file, e.g.
#   train_cmd="slurm.pl --config conf/slurm.conf"
#   cuda_cmd="slurm.pl --config conf/slurm.conf --gpu 1"
export train_cmd="run_local.sh"
export cuda_cmd="run_local.sh"
export decode_cmd="run_local.sh"
