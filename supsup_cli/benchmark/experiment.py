"""A continual-learning experiment end to end: learn a suite of tasks (resumably), evaluate every
checkpoint under each protocol, train the baselines, and report with the paper's figures and speed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.core import choices, prng, registry
from supsup_cli.engine import device as device_, hopfield, inference, superposition
from supsup_cli.api.autolearn import learn_auto
from supsup_cli.benchmark import baselines, paper, result_store, speed
from supsup_cli.benchmark.listener import Listener
from supsup_cli.benchmark.suites import (DEFAULT_OUTPUT_SIZES, DEFAULT_TASKS, SEPARATE_HEADS_SUITES,
                                         SPLIT_CIFAR100_RECIPE, SUITES, suite_tasks)
from supsup_cli.benchmark.evaluation import (EvalSet, EvalSets, Timed, fraction, gg_accuracy, gnu_accuracy, hopfield_accuracy,
                                             paper_gg_accuracy, paper_gnu_accuracy)
from supsup_cli.benchmark.matrices import Rows, pad
from supsup_cli.data import datasets
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.api.hopfield_store import hopfield_store, reservoir_of
from supsup_cli.engine.batched_training import stacking_refusal
from supsup_cli.api.learn import LearnRequest, learn_tasks
from supsup_cli.api.base import base_network
from supsup_cli.engine.models import MaskedNet, real_outputs
from supsup_cli.api.size import storage_report
from supsup_cli.engine.training import TrainConfig, task_tensors

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


def checkpoints(count: int) -> list[int]:
    """After every task up to 10, then at 25, 50, 100, 150, 200, 250, 500, ... and at the end."""
    rows = list(range(1, min(count, 10) + 1)) + [c for c in LATER_CHECKPOINTS if c < count]
    return sorted(set(rows) | {count})


def gated_accuracy(results: dict[str, Any]) -> tuple[str, float]:
    """What --fail-under compares: the first inference method's final accuracy; for HopSupSup the
    recovered masks'; else (residual networks) the accuracy with the task given."""
    averages = results["summary"]["avg_accuracy"]
    name = next((m for m in averages if "/" in m), "hopfield" if "hopfield" in averages else "gg")
    return name, averages[name]


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


@dataclass
class _Run:
    """What a scenario produced: the learned archive's network, its evaluations, its cost."""

    spec: registry.ArchSpec
    net: MaskedNet  # the base network, on the CPU
    datas: list[TaskData]
    evals: EvalSets
    steps: int
    rows: Rows
    timers: dict[str, Timed]
    train_seconds: list[float]
    extra: dict[str, Any]

    @property
    def weights(self) -> list:
        """The base weights as numpy arrays (the baselines start from them)."""
        return [w.numpy() for w in self.net.base()]


def run_benchmark(config: BenchmarkConfig, listener: Listener | None = None) -> dict[str, Any]:
    check_config(config)
    config = _with_suite_recipe(config)
    config = replace(config, steps=config.steps or _default_steps(config),
                     output_size=config.output_size or DEFAULT_OUTPUT_SIZES.get(config.suite))
    listener = listener or Listener()
    device = device_.resolve(config.device)
    with tempfile.TemporaryDirectory(prefix="supsup-benchmark-") as scratch:
        path = config.archive or Path(scratch) / "benchmark.supsup"
        scenario = _stream_without_task_ids if config.scenario == "nns" else _learn_then_evaluate
        run = scenario(path, config, device, listener)
    rows = checkpoints(len(run.datas))
    if config.baselines:
        if "storage" in run.extra:  # scenario NNs reports no storage
            run.extra["storage"]["baseline_bytes"] = _baseline_bytes(run.spec, run.weights, len(run.datas), config.suite)
        run.rows.add_baselines(_baselines(run.spec, run.weights, run.datas, run.evals, rows, config, run.steps,
                                          device, listener))
    figures = paper.figures(config.suite, run.spec.name, run.spec.output_size, run.steps, config.scenario)
    main = config.protocols[0]
    summaries = {p: run.rows.summary(p) for p in config.protocols}
    return {
        "suite": config.suite,
        "scenario": config.scenario,
        "recipe": _recipe(config, run.spec, run.steps),
        "arch": run.spec.name,
        "output_size": run.spec.output_size,
        "tasks": len(run.datas),
        "steps": run.steps,
        "eval_images": config.eval_images,
        "eval_images_total": run.rows.images_total,
        "same_task": config.same_task,
        "protocols": list(config.protocols),
        "seed": config.seed,
        "device": str(device),
        "archive": str(config.archive) if config.archive else None,
        "checkpoints": rows,
        "summary": {**summaries[main],
                    "avg_accuracy_by_protocol": {p: s["avg_accuracy"] for p, s in summaries.items()},
                    "standard_error_by_protocol": {p: s["standard_error"] for p, s in summaries.items()},
                    "task_inference_accuracy_by_protocol": {p: s["task_inference_accuracy"]
                                                            for p, s in summaries.items()},
                    **run.extra},
        "by_checkpoint": run.rows.by_checkpoint(main),
        "by_checkpoint_by_protocol": {p: run.rows.by_checkpoint(p) for p in config.protocols},
        "matrix": run.rows.matrices[main],
        "matrix_by_protocol": {p: run.rows.matrices[p] for p in config.protocols},
        "task_inference": run.rows.inferred[main],
        "task_inference_by_protocol": {p: run.rows.inferred[p] for p in config.protocols},
        "paper": {str(c): figures[c] for c in rows if c in figures},
        "speed": _speed(run.net.to(device), run.datas[0], config, device, run.train_seconds, len(run.datas), run.steps,
                        run.timers),
    }


def _recipe(config: BenchmarkConfig, spec: registry.ArchSpec, steps: int) -> dict[str, Any]:
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


def _with_suite_recipe(config: BenchmarkConfig) -> BenchmarkConfig:
    """The suite's own recipe wherever the run asked for nothing else."""
    if config.suite != "split-cifar100":
        return replace(config, budget=config.budget or "uniform")
    recipe = SPLIT_CIFAR100_RECIPE
    topk_by_scale = config.density is None and config.budget in (None, "er")
    return replace(config, epochs=config.epochs if config.steps or config.epochs else recipe["epochs"],
                   budget=config.budget or (recipe["budget"] if config.density is None else "uniform"),
                   er_scale=config.er_scale or (recipe["er_scale"] if topk_by_scale else None))


def _default_steps(config: BenchmarkConfig) -> int:
    """1000 batches (the paper's GN experiments), one epoch of the first task for HopSupSup, or
    --epochs passes over it."""
    if (config.module is not None or registry.resolve(config.arch).mask_on != "neurons") and config.epochs is None:
        return 1000
    first = suite_tasks(config.suite, 1, config.seed)[0]
    examples = len(load_task(first, "train", config.data_dir).labels)
    return TrainConfig(epochs=config.epochs or 1).for_examples(examples).steps


def _learn_then_evaluate(path: Path, config: BenchmarkConfig, device: torch.device, listener: Listener) -> _Run:
    """Scenario GG/GNu: task ids while learning; then every checkpoint's tasks, with and without ids."""
    datas, train_seconds = _learned_tasks(path, config, device, listener)
    with archive.Archive(path) as opened:
        spec, net, records = opened.spec, base_network(opened, config.module), opened.tasks[: len(datas)]
        packed = [torch.from_numpy(p[: len(datas)]) for p in opened.packed_masks()]
        stats = [opened.stats(t) for t in range(len(datas))] if spec.norm == "running" else None
    evals = EvalSets(datas, config.eval_images, config.seed, spec, device, config.data_dir)
    real = sorted({o for r in records for o in real_outputs(spec, r.classes)})
    sup = superposition.superposition(net.to(device), packed, real, stats=stats)
    store = _store(config, spec, path)
    rows = Rows(config.protocols, len(datas))
    timers: dict[str, Timed] = {}
    for c in checkpoints(len(datas)):
        digest = result_store.masks_digest([r.mask_sha256 or "" for r in records[:c]])
        row = store.get(c, digest) if store else None
        if row is None:
            listener.start(f"evaluating after {c} tasks", 0, c * c)
            row = _evaluate_row(sup.first(c), evals, c, config, timers)
            if store:
                store.put(c, digest, row)
        rows.add(row)
    extra = {}
    if config.hopfield:
        listener.start("Hopfield recovery", 0)
        hopfield_store(path)
        with archive.Archive(path) as opened:
            reservoir = reservoir_of(opened)
        extra["hopfield"] = hopfield_accuracy(sup, reservoir, evals.all(), config.hopfield_steps or hopfield.STEPS)
        for name, key in (("hopfield", "recovered_accuracy"), ("explicit-masks", "explicit_accuracy")):
            rows.add_final(name, [t[key] for t in extra["hopfield"]["tasks"]])  # evaluated after the last task only
    steps = int(records[0].training.get("steps", config.steps))
    extra["storage"] = _storage(path)
    return _Run(spec, net.cpu(), datas, evals, steps, rows, timers, train_seconds, extra)


def _create(path: Path, config: BenchmarkConfig) -> registry.ArchSpec:
    """A new archive for the run: the registry's network, or the user's module over random weights."""
    if config.module is None:
        spec = registry.resolve(config.arch, config.output_size)
        archive.create(path, spec, seed=config.seed)
        return spec
    from supsup_cli.engine import user_module

    first = suite_tasks(config.suite, 1, config.seed)[0]
    shape = datasets.spec_of(first.dataset).image_shape
    spec, _ = user_module.prepare(config.module, shape, "random", config.seed, label=user_module.describe(config.module))
    archive.create(path, spec, seed=config.seed)
    return spec


def _store(config: BenchmarkConfig, spec: registry.ArchSpec, path: Path) -> result_store.ResultStore | None:
    """Where evaluated checkpoints are kept (--out), with the settings their rows depend on."""
    if config.out is None:
        return None
    with archive.Archive(path) as opened:
        weights_digest = opened.weights_sha256
    settings = {"suite": config.suite, "scenario": config.scenario, "arch": spec.name,
                "output_size": spec.output_size, "weights_sha256": weights_digest, "eval_images": config.eval_images,
                "methods": sorted(config.gnu_methods), "same_task": config.same_task,
                "protocols": sorted(config.protocols), "seed": config.seed}
    return result_store.ResultStore(config.out, settings)


def _storage(path: Path) -> dict[str, Any]:
    """What the run's archive costs on disk (supsup size), beside the paper's scheme and dense weights."""
    with archive.Archive(path) as opened:
        report = storage_report(opened)
    keys = ("bytes_on_disk", "bytes_per_task", "mask_bytes_per_task", "bits_per_weight", "entropy_bound_bytes",
            "csc_int16_bytes", "dense_fp32_bytes_per_task")
    return {key: report[key] for key in keys}


def _learned_tasks(path: Path, config: BenchmarkConfig, device: torch.device,
                   listener: Listener) -> tuple[list[TaskData], list[float]]:
    """The tasks to evaluate: an existing archive's (all of them when --tasks is not given), or the
    suite's, of which only those the archive does not hold yet are learned now (a resumed run)."""
    if not path.exists():
        _create(path, config)
    with archive.Archive(path) as opened:
        records, spec = opened.tasks, opened.spec
    if config.tasks is None and records:
        return [_reloadable(path, index, r) for index, r in enumerate(records)], []
    wanted = suite_tasks(config.suite, config.tasks or DEFAULT_TASKS[config.suite], config.seed)
    held = records[: len(wanted)]
    _check_resumable(path, spec, held, wanted, config)
    missing = wanted[len(held):]
    listener.plan(_planned_steps(config, len(missing), len(wanted)),
                  sum(c * c for c in checkpoints(len(wanted))))
    training = TrainConfig(steps=config.steps, seed=config.seed, density=config.density, budget=config.budget,
                           er_scale=config.er_scale)
    requests = [LearnRequest(path, data, training, device=str(device), data_dir=config.data_dir, module=config.module)
                for data in missing]
    seconds = [float(r.training.get("train_seconds", 0.0)) for r in held]

    together = config.tasks_per_step
    chunk = [1]  # tasks in the current step: their progress is counted together

    def started(position: int, request: LearnRequest, steps: int) -> None:
        if position % together:
            return
        chunk[0] = min(together, len(missing) - position)
        first = len(held) + position + 1
        label = f"supermask {first}" if chunk[0] == 1 else f"supermasks {first}-{first + chunk[0] - 1}"
        listener.start(f"{label}/{len(wanted)}", steps * chunk[0])

    def progress(step: int, loss: float, accuracy: float) -> None:
        listener.advance(step * chunk[0])

    for result in learn_tasks(requests, progress, started, together=together):
        seconds.append(result.train_seconds)
    return wanted, seconds


def _check_resumable(path: Path, spec: registry.ArchSpec, held: list, wanted: list[TaskData],
                     config: BenchmarkConfig) -> None:
    """A run goes on in an archive only if it holds the first tasks of the same run, learned alike
    (over a module, the module is checked against the archive's fingerprint when it is bound)."""
    expected = spec if config.module is not None else registry.resolve(config.arch, config.output_size)
    if (spec.name, spec.output_size) != (expected.name, expected.output_size):
        raise InvalidArgument(f"{path} holds {spec.name} with {spec.output_size} outputs, not {expected.name} with "
                              f"{expected.output_size}: it cannot go on with this run (give another --archive)")
    for index, (record, data) in enumerate(zip(held, wanted)):
        learned = {key: record.training.get(key) for key in ("steps", "density", "budget", "er_scale", "seed")}
        asked = {"steps": config.steps, "density": config.density, "budget": config.budget,
                 "er_scale": config.er_scale, "seed": config.seed}
        held_data = _reloadable(path, index, record)
        differences = [f"data {held_data.default_name()} where this run learns {data.default_name()}"] \
            if held_data != data else []
        differences += [f"{key} {learned[key]!r} where this run has {asked[key]!r}"
                        for key in asked if learned[key] != asked[key]]
        if differences:
            raise InvalidArgument(f"{path}: task {index} ({record.name}) was not learned by this run: "
                                  f"{'; '.join(differences)}; give another --archive or the same settings")


def _reloadable(path: Path, index: int, record: Any) -> TaskData:
    """A task's data spec, as the benchmark loads its data again; tasks learned from arrays in memory
    cannot be (their images are not in the archive)."""
    if record.data.get("dataset") == "arrays":
        raise InvalidArgument(f"{path}: task {index} ({record.name}) was learned from arrays in memory, which "
                              "the archive does not keep: the benchmark evaluates tasks of datasets it can load")
    return TaskData.from_plain(record.data)


def _stream_without_task_ids(path: Path, config: BenchmarkConfig, device: torch.device, listener: Listener) -> _Run:
    """Scenario NNs: the tasks arrive as one stream, never labelled; masks are allocated when uncertain."""
    if path.exists():
        raise InvalidArgument(f"--scenario nns learns a stream from scratch: {path} already exists")
    spec = _create(path, config)
    datas = suite_tasks(config.suite, config.tasks or DEFAULT_TASKS[config.suite], config.seed)
    evals = EvalSets(datas, config.eval_images, config.seed, spec, device, config.data_dir)
    real = sorted({o for d in datas
                   for o in real_outputs(spec, d.task_classes(datasets.spec_of(d.dataset).num_classes))})
    listener.plan(_planned_steps(config, len(datas), len(datas)),
                  sum(c * c for c in checkpoints(len(datas))))
    rows = Rows(config.protocols, len(datas))
    timers: dict[str, Timed] = {}
    mapping, trained_on, seconds = [], [], []
    for index, data in enumerate(datas):
        listener.start(f"stream {index + 1}/{len(datas)}", config.steps)
        training = TrainConfig(steps=config.steps, seed=config.seed, density=config.density, budget=config.budget,
                               er_scale=config.er_scale)
        request = LearnRequest(path, data, training, device=str(device), data_dir=config.data_dir,
                               module=config.module)
        result = learn_auto(request, max_masks=config.max_masks,
                            progress=lambda step, loss, acc: listener.advance(step))
        seconds.append(result["train_seconds"])
        trained_on.append(_steps_by_mask(result["decisions"], config.steps))
        mapping.append(max(trained_on[-1], key=trained_on[-1].get))
        if index + 1 in checkpoints(len(datas)):
            listener.start(f"evaluating after {index + 1} tasks", 0, (index + 1) ** 2)
            with archive.Archive(path) as opened:
                net, packed = base_network(opened, config.module), [torch.from_numpy(p) for p in opened.packed_masks()]
            sup = superposition.superposition(net.to(device), packed, real)
            rows.add(_evaluate_row(sup, evals, index + 1, config, timers, mapping))
    extra = {
        "masks_allocated": int(packed[0].shape[0]),
        "task_to_mask": mapping,
        "one_mask_per_task": all(len(t) == 1 for t in trained_on) and len(set(mapping)) == len(mapping),
        "steps_by_mask": [{str(m): s for m, s in t.items()} for t in trained_on],
    }
    return _Run(spec, net.cpu(), datas, evals, config.steps, rows, timers, seconds, extra)


def _steps_by_mask(decisions: list[dict[str, Any]], steps: int) -> dict[int, int]:
    """How many of a stream segment's batches trained each mask (a decision holds until the next)."""
    counts: dict[int, int] = {}
    for decision, following in zip(decisions, decisions[1:] + [{"step": steps}]):
        counts[decision["mask"]] = counts.get(decision["mask"], 0) + following["step"] - decision["step"]
    return counts


def _evaluate_row(sup: superposition.Superposition, evals: EvalSets, count: int, config: BenchmarkConfig,
                  timers: dict[str, Timed], masks: list[int] | None = None) -> dict[str, Any]:
    """Accuracy on each of the first `count` tasks, per protocol: GG (its own mask) and each GNu method.

    Returns {"images": [n_j], protocol: {method: {"accuracy": [...], "task": [...] or None}}}; the
    timers get the images and seconds of each method (per-image protocol)."""
    masks = list(range(count)) if masks is None else masks
    shared_labels = config.scenario == "nns"
    row: dict[str, Any] = {"images": [], **{p: {} for p in config.protocols}}

    def extend(protocol: str, name: str, accuracy: list[float], found: list[float] | None) -> None:
        entry = row[protocol].setdefault(name, {"accuracy": [], "task": None if found is None else []})
        entry["accuracy"] += accuracy
        if found is not None:
            entry["task"] += found

    for name in ["gg", *config.gnu_methods]:
        timers[name] = Timed()  # each row replaces the last: the speed section reports inference at the run's k
    for block in evals.blocks(count):
        sets = [evals[j] for j in block]
        own = [masks[j] for j in block]
        row["images"] += [len(e.labels) for e in sets]
        if "per-image" in config.protocols:
            extend("per-image", "gg", [gg_accuracy(sup, m, e, timers["gg"]) for m, e in zip(own, sets)], None)
        if "paper" in config.protocols:
            extend("paper", "gg", [paper_gg_accuracy(sup, m, e) for m, e in zip(own, sets)], None)
        for name in config.gnu_methods:
            method, objective = name.split("/")
            if "per-image" in config.protocols:
                extend("per-image", name, *gnu_accuracy(sup, sets, method, objective, config.same_task, timers[name],
                                                        own))
            if "paper" in config.protocols:
                seeds = [evals.seeds[j] for j in block]
                extend("paper", name, *paper_gnu_accuracy(sup, sets, method, objective, Timed(), seeds, own,
                                                          shared_labels))
    return row


def _baselines(spec, weights, datas, evals, rows, config, steps, device, listener) -> dict[str, list]:
    def train_config(index: int, data: TaskData) -> TrainConfig:  # the batches of that task's supermask
        return TrainConfig(steps=steps, seed=prng.task_seed(config.seed, index, data.default_name(), config.seed))

    upper, first_model = [], None
    for j, data in enumerate(datas):
        listener.start(f"upper bound {j + 1}/{len(datas)}", steps)
        net = baselines.fresh_dense(spec, weights, device)
        baselines.train_dense(net, _train_tensors(data, spec, device, config.data_dir), train_config(j, data),
                              lambda s, *_: listener.advance(s))
        upper.append(_dense_accuracy(net, evals[j]))
        if j == 0:
            first_model = net  # the trunk of "separate heads", trained on the first task
    lower_net, lower = baselines.SeparateHeads(spec, weights, device), []
    for i, data in enumerate(datas):
        listener.start(f"lower bound {i + 1}/{len(datas)}", steps)
        lower_net.train_task(_train_tensors(data, spec, device, config.data_dir), train_config(i, data),
                             lambda s, *_: listener.advance(s))
        if i + 1 in rows:
            lower.append(pad([_dense_accuracy(lower_net.with_head(j), evals[j]) for j in range(i + 1)], len(datas)))
    found = {"upper-bound": [pad(upper[:c], len(datas)) for c in rows], "lower-bound": lower}
    if config.suite in SEPARATE_HEADS_SUITES:
        initial_head = torch.from_numpy(weights[-1]).to(device)
        trunks = {"separate-heads": first_model, "separate-heads-rand-w": baselines.fresh_dense(spec, weights, device)}
        for name, trunk in trunks.items():
            heads = baselines.FixedTrunk(trunk, initial_head)
            for j, data in enumerate(datas):
                if j == 0 and name == "separate-heads":
                    heads.keep_as_is()  # the upper bound's first model, trunk and head
                    continue
                listener.start(f"{name} {j + 1}/{len(datas)}", steps)
                heads.train_task(_train_tensors(data, spec, device, config.data_dir), train_config(j, data),
                                 lambda s, *_: listener.advance(s))
            accuracy = [_dense_accuracy(heads.with_head(j), evals[j]) for j in range(len(datas))]
            found[name] = [pad(accuracy[:c], len(datas)) for c in rows]
    return found


def _baseline_bytes(spec: registry.ArchSpec, weights, tasks: int, suite: str) -> dict[str, int]:
    """What each baseline stores for all the tasks, in float32: models, trunks, heads and each task's
    batch-norm statistics (a random trunk is regenerated from the seed, as the base network is)."""
    model, head, stats = 4 * sum(w.size for w in weights), 4 * weights[-1].size, 4 * registry.stats_size(spec)
    kept = {"upper-bound": tasks * (model + stats), "lower-bound": model + (tasks - 1) * head + stats}
    if suite in SEPARATE_HEADS_SUITES:
        kept["separate-heads"] = model + (tasks - 1) * head + tasks * stats
        kept["separate-heads-rand-w"] = tasks * (head + stats)
    return kept


def _planned_steps(config: BenchmarkConfig, to_learn: int, tasks: int) -> int:
    """Training steps still to run: the masks to learn, and every baseline's on all the tasks."""
    baseline_tasks = 0
    if config.baselines:
        baseline_tasks = 2 * tasks  # upper and lower bound
        if config.suite in SEPARATE_HEADS_SUITES:
            baseline_tasks += 2 * tasks - 1  # heads on a trained trunk (its own first task's kept) and a random one
    return (to_learn + baseline_tasks) * config.steps


def _train_tensors(data: TaskData, spec, device, data_dir: Path | None):
    return task_tensors(load_task(data, "train", data_dir), spec, device)


def _dense_accuracy(net, e: EvalSet) -> float:
    best = baselines.dense_predictions(net, e.x, e.outputs)
    return fraction(torch.tensor(e.classes, device=e.x.device)[best] == e.labels)


def _speed(net: MaskedNet, first: TaskData, config: BenchmarkConfig, device: torch.device,
           train_seconds: list[float], tasks: int, steps: int, timers: dict[str, Timed]) -> dict[str, Any]:
    times = None if net.spec.family == registry.MODULE else _step_times(net, first, config, device, steps)
    trained_images = len(train_seconds) * steps * TrainConfig().batch_size
    return {
        "train_images_per_second": trained_images / sum(train_seconds) if train_seconds else None,
        "train_seconds_per_task": sum(train_seconds) / len(train_seconds) if train_seconds else None,
        "masked_step_ms": None if times is None else times.masked_seconds * 1e3,
        "dense_step_ms": None if times is None else times.dense_seconds * 1e3,  # a module: no dense yardstick
        "masked_to_dense_step_ratio": None if times is None else times.ratio,
        "inference_tasks": tasks,
        "inference_images_per_second": {name: timer.per_second for name, timer in timers.items()},
        "peak_memory_mib": speed.peak_memory_mib(device),
    }


def _step_times(net: MaskedNet, first: TaskData, config: BenchmarkConfig, device: torch.device,
                steps: int) -> speed.StepTimes:
    """A masked training step against the same network's dense step."""
    # A residual network's step costs about a hundred of an MLP's: fewer of them make the same estimate.
    steps_per_block, blocks = (60, 5) if net.spec.family == "mlp" else (5, 3)
    steps_per_block = min(steps_per_block, max(5, steps))  # never ten times the training it reports on
    first_task = _train_tensors(first, net.spec, device, config.data_dir)
    return speed.training_step_times(net, first_task, TrainConfig(seed=config.seed), steps_per_block, blocks)
