"""`benchmark --suite speed`: inference images/s, memory and GFLOP/s as k grows, on random masks."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from supsup_cli.engine import device as device_, superposition
from supsup_cli.core import registry
from supsup_cli.benchmark import speed
from supsup_cli.benchmark.evaluation import EvalSet
from supsup_cli.benchmark.listener import Listener
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.models import build, real_outputs
from supsup_cli.engine.training import TrainConfig, task_tensors
from supsup_cli.core.weights import base_weights

SPEED_KS = (10, 100, 1000, 2500)
TASKS_PER_STEP = 5  # tasks trained together when the suite times batched training


def speed_ks(tasks: int | None) -> tuple[int, ...]:
    """The k of --suite speed: 10, 100, 1000, 2500, or those below --tasks and --tasks itself."""
    if tasks is None:
        return SPEED_KS
    if tasks < 1:
        raise InvalidArgument("--tasks must be at least 1")
    return tuple(sorted({k for k in SPEED_KS if k < tasks} | {tasks}))


def speed_suite(arch: str, device_name: str, ks: tuple[int, ...] = SPEED_KS, images: int = 256,
                seed: int = 0, listener: Listener | None = None, steps: int = 1000, output_size: int | None = None,
                tasks_per_step: int = TASKS_PER_STEP) -> dict[str, Any]:
    """Training time against its matrix products (weight-masked MLPs), then inference images/s and
    memory as k grows, with random half-density masks."""
    listener = listener or Listener()
    device = device_.resolve(device_name)
    spec = registry.resolve(arch, output_size)
    net = build(spec, base_weights(spec, seed)).to(device)
    training = None
    if spec.family == "mlp" and spec.mask_on == "weights":
        listener.start(f"training {steps} steps, one task and {tasks_per_step} at once", 0)
        train = [task_tensors(load_task(TaskData("mnist", permute=p + 1), "train"), spec, device)
                 for p in range(max(1, tasks_per_step))]
        training = speed.training_floor(net, train, TrainConfig(steps=steps, seed=seed)).to_dict()
    examples = load_task(TaskData("mnist", permute=0), "test")
    x = EvalSet.of(examples, images, spec, device).x
    real = real_outputs(spec, examples.classes)
    rows = []
    for k in ks:
        listener.start(f"k = {k}", 0)
        sup = superposition.superposition(net, speed.random_packed_masks(spec, k, seed, device), real)
        rows.append({"k": k, **speed.inference_rates(sup, x), "peak_memory_mib": speed.peak_memory_mib(device),
                     "gflops": speed.contraction_gflops(sup, x)})
    listener.start(f"supsup infer, one image, k = {ks[-1]}", 0)
    with tempfile.TemporaryDirectory(prefix="supsup-speed-") as scratch:
        seconds = speed.one_image_infer_seconds(spec, ks[-1], examples.images[0], Path(scratch), str(device))
    return {"suite": "speed", "arch": spec.name, "output_size": spec.output_size, "device": str(device),
            "training": training, "images": images, "by_k": rows,
            "infer_one_image_seconds": {"k": ks[-1], **seconds}}
