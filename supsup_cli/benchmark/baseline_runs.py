"""The paper's baselines in a run: trained on the run's tasks, evaluated at its checkpoints, and what
they would store."""

from __future__ import annotations

import torch

from supsup_cli.core import prng, registry
from supsup_cli.benchmark import baselines
from supsup_cli.benchmark.suites import SEPARATE_HEADS_SUITES
from supsup_cli.benchmark.evaluation import EvalSet, fraction
from supsup_cli.benchmark.matrices import pad
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.training import TrainConfig
from supsup_cli.benchmark.run import train_tensors


def baseline_rows(spec, weights, datas, evals, rows, config, steps, device, listener) -> dict[str, list]:
    def train_config(index: int, data: TaskData) -> TrainConfig:  # the batches of that task's supermask
        return TrainConfig(steps=steps, seed=prng.task_seed(config.seed, index, data.default_name(), config.seed))

    upper, first_model = [], None
    for j, data in enumerate(datas):
        listener.start(f"upper bound {j + 1}/{len(datas)}", steps)
        net = baselines.fresh_dense(spec, weights, device)
        baselines.train_dense(net, train_tensors(data, spec, device, config.data_dir), train_config(j, data),
                              lambda s, *_: listener.advance(s))
        upper.append(_dense_accuracy(net, evals[j]))
        if j == 0:
            first_model = net  # the trunk of "separate heads", trained on the first task
    lower_net, lower = baselines.SeparateHeads(spec, weights, device), []
    for i, data in enumerate(datas):
        listener.start(f"lower bound {i + 1}/{len(datas)}", steps)
        lower_net.train_task(train_tensors(data, spec, device, config.data_dir), train_config(i, data),
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
                heads.train_task(train_tensors(data, spec, device, config.data_dir), train_config(j, data),
                                 lambda s, *_: listener.advance(s))
            accuracy = [_dense_accuracy(heads.with_head(j), evals[j]) for j in range(len(datas))]
            found[name] = [pad(accuracy[:c], len(datas)) for c in rows]
    return found


def baseline_bytes(spec: registry.ArchSpec, weights, tasks: int, suite: str) -> dict[str, int]:
    """What each baseline stores for all the tasks, in float32: models, trunks, heads and each task's
    batch-norm statistics (a random trunk is regenerated from the seed, as the base network is)."""
    model, head, stats = 4 * sum(w.size for w in weights), 4 * weights[-1].size, 4 * registry.stats_size(spec)
    kept = {"upper-bound": tasks * (model + stats), "lower-bound": model + (tasks - 1) * head + stats}
    if suite in SEPARATE_HEADS_SUITES:
        kept["separate-heads"] = model + (tasks - 1) * head + tasks * stats
        kept["separate-heads-rand-w"] = tasks * (head + stats)
    return kept


def _dense_accuracy(net, e: EvalSet) -> float:
    best = baselines.dense_predictions(net, e.x, e.outputs)
    return fraction(torch.tensor(e.classes, device=e.x.device)[best] == e.labels)
