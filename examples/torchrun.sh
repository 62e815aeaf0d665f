#!/usr/bin/env bash
# One task trained data-parallel with PyTorch's torchrun: every process takes a shard of each batch,
# gradients are averaged (gloo on CPUs, nccl on GPUs), and rank 0 alone commits the mask.
#   NPROC=2 bash examples/torchrun.sh
# Several nodes: run on each node, with its own --node_rank,
#   torchrun --nnodes 2 --node_rank 0 --master_addr node0 --master_port 29500 --nproc_per_node 8 \
#       -m supsup_cli learn-task /shared/model.supsup --permute 1 --device cuda
set -euo pipefail
NPROC=${NPROC:-2}
STEPS=${STEPS:-1000}
WORK=${WORK:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}

$PYTHON -m supsup_cli init "$WORK/model.supsup" --arch fc1024-1024 --force
OMP_NUM_THREADS=1 $PYTHON -m torch.distributed.run --nproc_per_node "$NPROC" --master_addr 127.0.0.1 \
    --master_port "${PORT:-29500}" -m supsup_cli learn-task "$WORK/model.supsup" --permute 1 --steps "$STEPS" --json
