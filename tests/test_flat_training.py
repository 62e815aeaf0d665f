"""The flat path (written-out backward pass, RMSprop over one buffer) learns the masks autograd's path
learns, bit for bit, and takes only the tasks it can (issue 26)."""

import numpy as np
import pytest
import torch

from supsup_cli.engine import flat_training
from supsup_cli.core import registry
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import build
from supsup_cli.engine.training import TrainConfig, task_tensors, train_masks
from supsup_cli.core.weights import base_weights


def _examples(data: TaskData, rows: int):
    return load_task(data, "train", pick=lambda count: np.arange(0, count, count // rows)[:rows])


def _trained(arch: str, output_size: int | None, data: TaskData, config: TrainConfig, rows: int = 700):
    spec = registry.resolve(arch, output_size)
    net = build(spec, base_weights(spec, 1))
    return train_masks(net, task_tensors(_examples(data, rows), spec, torch.device("cpu")), config)


@pytest.mark.parametrize("arch, output_size, data, config", [
    ("lenet300-100", 500, TaskData("mnist", permute=7), TrainConfig(steps=40, seed=5)),  # Table 5's network
    ("lenet300-100", None, TaskData("mnist", rotate=40.0), TrainConfig(steps=25, seed=2, batch_size=50, lr=3e-4)),
    ("fc1024-1024", None, TaskData("mnist", permute=3), TrainConfig(steps=12, seed=9)),
])
def test_flat_masks_equal_autograd_masks_bit_for_bit(arch, output_size, data, config, monkeypatch):
    flat = _trained(arch, output_size, data, config)
    monkeypatch.setattr(flat_training, "flat_refusal", lambda *args: "the general path, for comparison")
    general = _trained(arch, output_size, data, config)

    assert flat.final_loss == general.final_loss
    for a, b in zip(flat.masks, general.masks):
        assert a.dtype == torch.bool and a.shape == b.shape and torch.equal(a, b)
    # It trained: the masks moved away from their start (about half kept, but not the same half).
    start = _trained(arch, output_size, data, TrainConfig(steps=1, seed=config.seed, batch_size=config.batch_size,
                                                          lr=config.lr))
    assert any(not torch.equal(a, b) for a, b in zip(flat.masks, start.masks))


def test_flat_path_uses_the_flat_trainer_only_where_it_applies(monkeypatch):
    built = []
    real = flat_training.FlatMaskTrainer

    def spy(*args, **kwargs):
        built.append(args[0].spec.name)
        return real(*args, **kwargs)

    monkeypatch.setattr(flat_training, "FlatMaskTrainer", spy)
    _trained("lenet300-100", None, TaskData("mnist", permute=1), TrainConfig(steps=2), rows=300)
    assert built == ["lenet300-100"]
    _trained("lenet300-100", None, TaskData("mnist", permute=1), TrainConfig(steps=2, density=0.5), rows=300)
    _trained("lenet300-100", None, TaskData("mnist", permute=1), TrainConfig(steps=2, optimizer="adam"), rows=300)
    assert built == ["lenet300-100"]


def test_flat_refusals_name_their_reason():
    lenet = registry.REGISTRY["lenet300-100"]
    plain = TrainConfig().resolved(lenet)
    assert flat_training.flat_refusal(lenet, plain, augment=False) is None
    assert "top-k" in flat_training.flat_refusal(lenet, TrainConfig(density=0.3).resolved(lenet), augment=False)
    assert "RMSprop" in flat_training.flat_refusal(lenet, TrainConfig(optimizer="sgd").resolved(lenet), augment=False)
    assert "augmented" in flat_training.flat_refusal(lenet, plain, augment=True)
    for name in ("fc2048-2048-hop", "resnet18-narrow"):
        spec = registry.REGISTRY[name]
        assert "not a weight-masked MLP" in flat_training.flat_refusal(spec, TrainConfig().resolved(spec), False)
