#!/usr/bin/env bash
# Train N tasks at once as separate processes, each into an archive of its own, then merge them:
# tasks are independent given the seed, so they can be trained anywhere.
#   N=4 JOBS=2 STEPS=1000 bash examples/parallel-tasks.sh
#
# On a Slurm cluster, one task per array job instead of xargs:
#   #SBATCH --array=0-99
#   supsup init part-$SLURM_ARRAY_TASK_ID.supsup --arch lenet300-100 --seed 0
#   supsup learn-task part-$SLURM_ARRAY_TASK_ID.supsup --permute $SLURM_ARRAY_TASK_ID
# and, once the array is done (sbatch --dependency=afterok:JOBID):
#   supsup merge all.supsup part-*.supsup
set -euo pipefail
N=${N:-4}
JOBS=${JOBS:-2}
STEPS=${STEPS:-1000}
WORK=${WORK:-$(mktemp -d)}
SUPSUP=${SUPSUP:-supsup}
export STEPS WORK SUPSUP

# One thread per process: the processes, not the threads, share the cores.
seq 0 $((N - 1)) | OMP_NUM_THREADS=1 xargs -P "$JOBS" -I{} sh -c '
    $SUPSUP init "$WORK/part-{}.supsup" --arch lenet300-100 --seed 0 --force > /dev/null &&
    $SUPSUP learn-task "$WORK/part-{}.supsup" --data mnist --permute {} --steps "$STEPS" --json'
$SUPSUP merge "$WORK/all.supsup" "$WORK"/part-*.supsup --force
$SUPSUP inspect "$WORK/all.supsup"
