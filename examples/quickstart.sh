#!/usr/bin/env bash
# The whole workflow on real MNIST: one learner, three permuted tasks, test images exported as PNGs,
# inference without task ids, and the archive's size.
#   STEPS=1000 bash examples/quickstart.sh            (about 20 s on 2 CPU cores)
# Environment: STEPS (batches per task), WORK (a folder to work in), SUPSUP (how to run supsup).
set -euo pipefail
STEPS=${STEPS:-1000}
WORK=${WORK:-$(mktemp -d)}
SUPSUP=${SUPSUP:-supsup}
model="$WORK/model.supsup"

$SUPSUP init "$model" --arch lenet300-100 --seed 0 --force
for seed in 1 2 3; do
    $SUPSUP learn-task "$model" --data mnist --permute "$seed" --steps "$STEPS"
    $SUPSUP data export --data mnist --permute "$seed" -n 20 --out "$WORK/images/task$seed"
done
$SUPSUP inspect "$model"
# No task ids: each image's task is found by superposition of the three masks.
$SUPSUP infer "$model" "$WORK"/images/task1 "$WORK"/images/task2 "$WORK"/images/task3
$SUPSUP size "$model"
