"""Configuration of a benchmark run: its options, their rules, the suite's recipe and the checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from supsup_cli.core import choices, registry
from supsup_cli.engine import inference
from supsup_cli.benchmark.suites import SEPARATE_HEADS_SUITES, SPLIT_CIFAR100_RECIPE, SUITES, suite_tasks
from supsup_cli.data.tasks import load_task
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.batched_training import stacking_refusal
from supsup_cli.engine.training import TrainConfig


PROTOCOLS = choices.PROTOCOLS


LATER_CHECKPOINTS = (25, 50, 100, 150, 200, 250, 500, 1000, 1500, 2000, 2500, 5000, 10000)


@dataclass(frozen=True)
class BenchmarkConfig:
    suite: str = "permuted-mnist"
    arch: str = "lenet300-100"
    tasks: int | None = None  # default: the suite's own count
    steps: int | None = None  # batches per task; default 1000, or about one epoch for neuron masks (HopSupSup)
    eval_images: int | None = None  # test images per task, spread over the split; None: all of them
    methods: tuple[str, ...] = ("one-shot", "binary")
    objectives: tuple[str, ...] = ("entropy", "g")
    same_task: bool = False
    archive: Path | None = None  # kept (and evaluated if it already has tasks); default: a temporary one
    device: str = "auto"
    seed: int = 0
    baselines: bool = True
    output_size: int | None = None
    scenario: str = "gnu"  # or "nns": no task ids even while learning
    hopfield: bool = False  # also store the masks in a Hopfield reservoir and evaluate recovered masks
    hopfield_steps: int | None = None  # None: hopfield.STEPS
    density: float | None = None  # top-k masks of this density (default: threshold masks)
    budget: str | None = None  # None: the suite's (SPLIT_CIFAR100_RECIPE), else "uniform"
    er_scale: float | None = None  # with budget "er": the paper's scale s
    epochs: int | None = None  # instead of steps: passes over the first task's training examples
    protocols: tuple[str, ...] = ("per-image",)  # and/or "paper" (evaluation.paper_gnu_accuracy)
    out: Path | None = None  # keep each evaluated checkpoint here (result_store), and resume from it
    max_masks: int | None = None  # scenario NNs: the mask budget (the paper's Table 5: 2500)
    tasks_per_step: int = 1  # supermasks trained together in one batched step (batched_training)
    data_dir: Path | None = None  # the dataset cache (None: $SUPSUP_DATA or ~/.cache/supsup)
    module: Any = None  # a torch module of one's own instead of `arch` (a new archive: random weights)

    @property
    def gnu_methods(self) -> list[str]:
        """Superposition methods; neuron masks (HopSupSup) infer their task by Hopfield recovery instead,
        and residual networks (per-task batch norm) are evaluated with the task given only."""
        spec = None if self.module is not None else registry.resolve(self.arch)
        if spec is not None and (spec.mask_on == "neurons" or spec.family != "mlp"):
            return []
        return [f"{method}/{objective}" for method in self.methods for objective in self.objectives]


# The paper's code evaluates RotatedMNIST after 2, 5, 10, 15, 20, 25, 30, 35 and 36 tasks
# (`experiments/GNu/MNISTRotate/supsup.py`, eval_ckpts); Table 6's "Avg" is over that curve.
ROTATED_CHECKPOINTS = (15, 20, 30, 35)


def checkpoints(count: int, suite: str | None = None) -> list[int]:
    """After every task up to 10, then at 25, 50, 100, 150, 200, 250, 500, ... and at the end (and
    for rotated-mnist at the paper's 15, 20, 30 and 35 too)."""
    later = LATER_CHECKPOINTS + (ROTATED_CHECKPOINTS if suite == "rotated-mnist" else ())
    rows = list(range(1, min(count, 10) + 1)) + [c for c in later if c < count]
    return sorted(set(rows) | {count})


def check_config(config: BenchmarkConfig) -> None:
    if config.scenario not in choices.SCENARIOS:
        raise InvalidArgument(f"--scenario must be gnu or nns, got {config.scenario!r}")
    if config.suite not in SUITES:
        raise InvalidArgument(f"--suite must be one of {', '.join(SUITES)} or speed, got {config.suite!r}")
    if (config.steps is not None and config.steps < 1) or (config.eval_images is not None and config.eval_images < 1):
        raise InvalidArgument("--steps and --eval-images must be at least 1")
    if config.module is not None and (config.hopfield or config.baselines):
        raise InvalidArgument("with --module, give --no-baselines (the baselines train the registry's networks "
                              "densely) and no --hopfield (neuron masks are fc2048-2048-hop's)")
    if config.hopfield and registry.resolve(config.arch).mask_on != "neurons":
        raise InvalidArgument(f"--hopfield stores neuron masks; {config.arch} masks weights (use fc2048-2048-hop)")
    if config.tasks is not None and config.tasks < 1:
        raise InvalidArgument("--tasks must be at least 1")
    for method in config.methods:
        for objective in config.objectives:
            inference.check_choices(method, objective)
    if not config.methods or not config.objectives:
        raise InvalidArgument("give at least one --method and one --objective")
    if not config.protocols or any(p not in PROTOCOLS for p in config.protocols):
        raise InvalidArgument(f"--protocol must be per-image, paper or both, got {', '.join(config.protocols)}")
    if "paper" in config.protocols and config.same_task:
        raise InvalidArgument("--same-task infers one task per batch of 128 already; --protocol paper infers it "
                              "from each batch's first image: choose one")
    if config.max_masks is not None and config.scenario != "nns":
        raise InvalidArgument("--max-masks is the mask budget of --scenario nns")
    if config.tasks_per_step < 1:
        raise InvalidArgument(f"--tasks-per-step must be at least 1, got {config.tasks_per_step}")
    if config.tasks_per_step > 1:
        refusal = "--scenario nns decides which mask each batch trains" if config.scenario == "nns" else \
            "a module of one's own trains one task at a time" if config.module is not None else \
            stacking_refusal(registry.resolve(config.arch), TrainConfig(density=config.density,
                                                                         budget=config.budget or "uniform"))
        if refusal is not None:
            raise InvalidArgument(f"--tasks-per-step: tasks cannot share a step here: {refusal}")


def recipe(config: BenchmarkConfig, spec: registry.ArchSpec, steps: int) -> dict[str, Any]:
    """What the supermasks were trained with, resolved: the run's header shows it."""
    training = TrainConfig(steps=steps, density=config.density, budget=config.budget, er_scale=config.er_scale)
    resolved = training.resolved(spec)
    masks = "threshold (score >= 0)" if not training.top_k else (
        f"top-k, paper's ER budget at s = {config.er_scale:g}" if config.budget == "er" else
        f"top-k, density {config.density:g} ({config.budget})")
    return {"steps": steps, "epochs": config.epochs, "batch_size": resolved.batch_size,
            "optimizer": resolved.optimizer, "lr": resolved.lr,
            "weight_decay": resolved.weight_decay, "schedule": resolved.schedule,
            "masks": masks, "augmentation": "crops and flips" if config.suite == "split-cifar100" else "none",
            "split_seed": config.seed if config.suite == "split-cifar100" else None}


def with_suite_recipe(config: BenchmarkConfig) -> BenchmarkConfig:
    """The suite's own recipe wherever the run asked for nothing else."""
    if config.suite != "split-cifar100":
        return replace(config, budget=config.budget or "uniform")
    recipe = SPLIT_CIFAR100_RECIPE
    topk_by_scale = config.density is None and config.budget in (None, "er")
    return replace(config, epochs=config.epochs if config.steps or config.epochs else recipe["epochs"],
                   budget=config.budget or (recipe["budget"] if config.density is None else "uniform"),
                   er_scale=config.er_scale or (recipe["er_scale"] if topk_by_scale else None))


def default_steps(config: BenchmarkConfig) -> int:
    """1000 batches (the paper's GN experiments), one epoch of the first task for HopSupSup, or
    --epochs passes over it."""
    if (config.module is not None or registry.resolve(config.arch).mask_on != "neurons") and config.epochs is None:
        return 1000
    first = suite_tasks(config.suite, 1, config.seed)[0]
    examples = len(load_task(first, "train", config.data_dir).labels)
    return TrainConfig(epochs=config.epochs or 1).for_examples(examples).steps


def planned_steps(config: BenchmarkConfig, to_learn: int, tasks: int) -> int:
    """Training steps still to run: the masks to learn, and every baseline's on all the tasks."""
    baseline_tasks = 0
    if config.baselines:
        baseline_tasks = 2 * tasks  # upper and lower bound
        if config.suite in SEPARATE_HEADS_SUITES:
            baseline_tasks += 2 * tasks - 1  # heads on a trained trunk (its own first task's kept) and a random one
    return (to_learn + baseline_tasks) * config.steps
