#!/usr/bin/env bash
# On a machine with a CUDA GPU: the CUDA tests, then the speed figures, in well under 10 minutes.
#   bash examples/gpu-check.sh        (a log in gpu-check.log, or in $OUT when it is set)
# Uses the machine's own python3 and packages (torch, typer, rich, h5py, filelock, Pillow, scipy).
# Where CIFAR-100's binary release is in the data cache ($SUPSUP_DATA, else ~/.cache/supsup) and
# SPLIT_CIFAR100=1 is set, it then runs the paper's Table 2 experiment (hours: see the README).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-.}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
step() { echo; echo "=== $* ==="; }
{
    step machine
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    step CUDA tests
    $PYTHON -m pytest -q -m cuda tests/test_distributed.py -p no:cacheprovider
    step "training and inference on CUDA: 5 LeNet tasks (speed section: images/s, masked/dense ratio)"
    $PYTHON -m supsup_cli benchmark --quick --device cuda --no-baselines --out "$RESULTS/quick-cuda"
    step "inference images/s on CUDA at k = 10, 100, 1000 (1024 images, each on its own)"
    $PYTHON -m supsup_cli benchmark --suite speed --device cuda --eval-images 1024 --out "$RESULTS/speed-cuda"
    step "the same on this machine's CPU, for the ratio (k = 10, 100; 256 images)"
    $PYTHON -m supsup_cli benchmark --suite speed --device cpu --tasks 100 --eval-images 256 --out "$RESULTS/speed-cpu"
    step "FC 1024-1024: one task on CUDA"
    $PYTHON -m supsup_cli init /tmp/gpu-fc.supsup --arch fc1024-1024 --force > /dev/null
    $PYTHON -m supsup_cli learn-task /tmp/gpu-fc.supsup --permute 1 --device cuda --json
    CACHE=${SUPSUP_DATA:-$HOME/.cache/supsup}
    if [ "${SPLIT_CIFAR100:-0}" = 1 ] && ls "$CACHE"/cifar100/cifar-100-binary* > /dev/null 2>&1; then
        step "SplitCIFAR-100 as the paper's Table 2: 20 tasks, 250 epochs, ER budget s = ${ER_SCALE:-8}, every baseline"
        time $PYTHON -m supsup_cli benchmark --suite split-cifar100 --arch resnet18-narrow --device cuda \
            --er-scale "${ER_SCALE:-8}" --seed "${SEED:-0}" --archive "$RESULTS/split-cifar100.supsup" \
            --out "$RESULTS/split-cifar100"
    else
        step "SplitCIFAR-100 skipped (set SPLIT_CIFAR100=1 with cifar-100-binary in $CACHE/cifar100)"
    fi
} 2>&1 | tee "$RESULTS/gpu-check.log"
