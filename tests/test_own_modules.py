"""Any torch module as the base network (issue 29): random weights from the seed or the module's own,
masks by parameter name, per-task batch norm, every search against the per-input reference, scenario
NNs, transfer and merge, and the command line's --module."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import supsup_cli as supsup
from supsup_cli import archive
from supsup_cli.engine import superposition
from supsup_cli.api.base import base_network
from supsup_cli.data.transforms import TaskData
from supsup_cli.core.errors import InvalidArgument, ModuleRequired, WeightsMismatch
from supsup_cli.engine.inference import infer_tasks
from supsup_cli.engine.models import normalize
from supsup_cli.engine.user_module import ModuleNet
from tests import own_nets, reference

MNIST = (1, 28, 28)


def _images(data: TaskData, count: int) -> np.ndarray:
    images, _ = supsup.load_data(data.dataset, split="test", permute=data.permute, rotate=data.rotate)
    return images[:count]


def _superposition(model: supsup.Model) -> superposition.Superposition:
    with archive.Archive(model.path) as opened:
        net = base_network(opened, model.module)
        packed = [torch.from_numpy(p) for p in opened.packed_masks()]
        stats = [opened.stats(t) for t in range(len(opened.tasks))] if opened.spec.norm == "running" else None
        outputs = sorted({o for t in opened.tasks for o in range(len(t.classes))})
    return superposition.superposition(net, packed, outputs, stats=stats)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """The small CNN (batch norm, a skip) over random weights: three rotated-MNIST tasks."""
    torch.manual_seed(0)
    model = supsup.Model.create(tmp_path_factory.mktemp("cnn") / "cnn.supsup", module=own_nets.SmallCNN(),
                                input_shape=MNIST)
    datas = [TaskData("mnist", rotate=degrees) for degrees in (0, 120, 240)]
    list(model.learn_many(datas, steps=60, lr=1e-3))  # scores of 3x3 kernels are large: 1e-4 hardly moves them
    return model, datas


@pytest.fixture(scope="module")
def norm_mlp(tmp_path_factory):
    """An MLP with biases and LayerNorm over its own (given) weights, 20 outputs (room for G): three
    permuted-MNIST tasks."""
    torch.manual_seed(1)
    model = supsup.Model.create(tmp_path_factory.mktemp("mlp") / "mlp.supsup", module=own_nets.norm_mlp(20),
                                input_shape=MNIST, weights="given")
    datas = [TaskData("mnist", permute=seed) for seed in (1, 2, 3)]
    list(model.learn_many(datas, steps=100))
    return model, datas


def test_a_chain_of_linear_layers_is_lenet300_100_bit_for_bit(tmp_path):
    """The same weights, masks and predictions as --arch lenet300-100, whether the module is a chain
    (the MLP's written-out paths) or a forward function (autograd through the module)."""
    models = [supsup.Model.create(tmp_path / "registry.supsup", "lenet300-100"),
              supsup.Model.create(tmp_path / "chain.supsup", module=own_nets.lenet(), input_shape=MNIST),
              supsup.Model.create(tmp_path / "by-hand.supsup", module=own_nets.LenetByHand(), input_shape=MNIST)]
    assert len({m.weights_sha256 for m in models}) == 1
    datas = [TaskData("mnist", permute=seed) for seed in (4, 5)]
    for model in models:
        list(model.learn_many(datas, steps=60))
    assert len({tuple(t.mask_sha256 for t in m.tasks) for m in models}) == 1
    x = np.concatenate([_images(d, 10) for d in datas])
    given = [m.infer(x, task=1).classes.tolist() for m in models]
    found = [m.infer(x).tasks.tolist() for m in models]
    assert given[0] == given[1] == given[2] and found[0] == found[1] == found[2]
    assert found[0].count(0) >= 7 and found[0][10:].count(1) >= 7
    by_hand = _superposition(models[2])
    assert isinstance(by_hand.net, ModuleNet) and not isinstance(_superposition(models[1]).net, ModuleNet)


@pytest.mark.parametrize("fixture", ["cnn", "norm_mlp"])
@pytest.mark.parametrize("method", ["one-shot", "binary", "exhaustive"])
def test_every_method_matches_the_per_input_reference(request, fixture, method):
    model, datas = request.getfixturevalue(fixture)
    sup = _superposition(model)
    x = normalize(torch.from_numpy(np.concatenate([_images(d, 4) for d in datas])), (0.1307,), (0.3081,))
    for kind in ("entropy", "g") if fixture == "norm_mlp" else ("entropy",):
        ours = infer_tasks(sup, x, method, kind).tolist()
        assert ours == getattr(reference, method.replace("-", "_"))(sup, x, kind), kind
        together = infer_tasks(sup, x, method, kind, same_task=True).tolist()
        if method != "exhaustive":
            expected = getattr(reference, method.replace("-", "_") + "_same_task")(sup, x, kind)
            assert together == [expected] * len(x), kind


def test_batch_norm_statistics_belong_to_each_task(cnn):
    model, datas = cnn
    assert model.spec.norms == (("bn1", 4), ("bn2", 4)) and model.spec.norm == "running"
    with archive.Archive(model.path) as opened:
        stats = [opened.stats(t) for t in range(3)]
    assert all(len(s) == 16 for s in stats) and not np.array_equal(stats[0], stats[1])
    images, labels = supsup.load_data("mnist", split="test", rotate=120)
    correct = (model.infer(images[:300], task=1).classes == labels[:300]).mean()
    assert correct > 0.5, correct  # 60 steps over random convolutions; chance is 0.1
    network = model.network(1)
    assert (network(images[:300]).argmax(1).numpy() == model.infer(images[:300], task=1).classes).all()


def test_the_archive_keeps_a_fingerprint_not_the_weights(norm_mlp):
    model, _ = norm_mlp
    with h5py.File(model.path, "r") as f:
        stored = []
        f.visititems(lambda name, item: stored.append(item.size) if isinstance(item, h5py.Dataset) else None)
    assert model.spec.weights == "given" and len(model.spec.fingerprint) == 64
    assert sum(stored) < 64 * 784  # three masks' bits and records: less than the first layer's floats
    torch.manual_seed(1)
    assert len(supsup.open(model.path, module=own_nets.norm_mlp(20))) == 3  # the same weights again
    torch.manual_seed(2)
    with pytest.raises(WeightsMismatch, match="fingerprint"):
        supsup.open(model.path, module=own_nets.norm_mlp(20))
    with pytest.raises(WeightsMismatch, match="no parameter"):
        supsup.open(model.path, module=own_nets.SmallCNN())
    with pytest.raises(ModuleRequired, match="`module`"):
        supsup.open(model.path).infer(_images(TaskData("mnist", permute=1), 2))
    report = supsup.open(model.path).verify()
    assert report.ok and report.weights_sha256_ok is None  # given weights: checked when the module is bound


def test_random_weights_come_from_the_seed_alone(tmp_path):
    one = supsup.Model.create(tmp_path / "a.supsup", module=own_nets.SmallCNN(), input_shape=MNIST, seed=3)
    torch.manual_seed(123)  # the module's own initialization does not matter
    two = supsup.Model.create(tmp_path / "b.supsup", module=own_nets.SmallCNN(), input_shape=MNIST, seed=3)
    assert one.spec.fingerprint == two.spec.fingerprint and one.weights_sha256 == two.weights_sha256
    assert one.spec.sites == (("conv1.weight", (4, 1, 3, 3)), ("conv2.weight", (4, 4, 3, 3)), ("fc.weight", (10, 196)))
    assert supsup.open(tmp_path / "a.supsup").verify().weights_sha256_ok  # regenerated from the seed
    with pytest.raises(InvalidArgument, match="'embed.weight' is none of them"):
        supsup.Model.create(tmp_path / "c.supsup", module=_WithEmbedding(), input_shape=MNIST)
    only_fc = supsup.Model.create(tmp_path / "d.supsup", module=own_nets.SmallCNN(), input_shape=MNIST,
                                  mask=["fc.weight"], weights="given")
    assert [name for name, _ in only_fc.spec.sites] == ["fc.weight"]
    for bad, match in (({"mask": ["fc.bias"]}, "fewer than 2"), ({"mask": ["nope"]}, "names no parameter"),
                       ({"weights": "pretrained"}, "`weights`")):
        with pytest.raises(InvalidArgument, match=match):
            supsup.Model.create(tmp_path / "e.supsup", module=own_nets.SmallCNN(), input_shape=MNIST, **bad)
    with pytest.raises(InvalidArgument, match="shape"):
        supsup.Model.create(tmp_path / "f.supsup", module=own_nets.SmallCNN(), input_shape=(3, 32, 32))


class _WithEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(4, 784)
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1) + self.embed.weight[0])


def test_scenario_nns_transfer_and_merge_over_a_module(tmp_path):
    path = tmp_path / "nns.supsup"
    auto = supsup.Model.create(path, module=own_nets.norm_mlp(100), input_shape=MNIST)
    seen, unseen = TaskData("mnist", permute=1), TaskData("mnist", permute=2)
    first = auto.learn_auto(seen, steps=300, decide_every=150, lr=1e-3)
    again = auto.learn_auto(seen, steps=300, decide_every=150, lr=1e-3, name="seen-again")
    other = auto.learn_auto(unseen, steps=300, decide_every=150, lr=1e-3)
    assert first.allocated == [0] and again.allocated == [] and again.reused == [0]
    assert other.allocated == [1] and other.masks == 2
    transferred = auto.learn(TaskData("mnist", permute=3), steps=20, init="mean")
    assert transferred.index == 2
    second = supsup.Model.create(tmp_path / "second.supsup", module=own_nets.norm_mlp(100), input_shape=MNIST)
    second.learn(TaskData("mnist", permute=4), steps=5)
    merged = supsup.merge(tmp_path / "merged.supsup", [path, second.path])
    assert merged.tasks == 4
    assert len(supsup.open(tmp_path / "merged.supsup", module=own_nets.norm_mlp(100))) == 4
    cnn = supsup.Model.create(tmp_path / "cnn.supsup", module=own_nets.SmallCNN(), input_shape=MNIST)
    cnn.learn(TaskData("mnist", permute=1), steps=2)
    with pytest.raises(InvalidArgument):  # another network: masks that mean nothing together
        supsup.merge(tmp_path / "no.supsup", [path, cnn.path])


NETS_PY = '''
import torch.nn.functional as F
from torch import nn

class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1))

def small_cnn():
    return SmallCNN()

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
'''


def test_the_shell_names_the_module_every_time(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(NETS_PY)
    assert cli("init", "m.supsup", "--module", "nets.py:small_cnn", "--input-shape", "1,28,28").code == 0
    learned = cli("learn-task", "m.supsup", "--module", "nets.py:small_cnn", "--data", "mnist", "--permute", "5",
                  "--steps", "30", "--json")
    assert learned.code == 0, learned.err
    assert cli("data", "export", "--permute", "5", "-n", "4", "--out", "imgs").code == 0
    found = cli("infer", "m.supsup", "imgs", "--module", "nets.py:small_cnn", "--json")
    assert found.code == 0 and len(found.json_lines()) == 4
    refused = cli("infer", "m.supsup", "imgs")
    assert refused.code == 2 and "--module" in refused.err and len(refused.err.strip().splitlines()) == 1
    assert cli("infer", "m.supsup", "imgs", "--module", "nets.py:mlp").code == 7
    for bad, code in (("nets.py:nothing", 2), ("nets.py", 2), ("missing.py:small_cnn", 3), ("no_such_pkg:f", 2)):
        result = cli("infer", "m.supsup", "imgs", "--module", bad)
        assert result.code == code and result.err.count("\n") == 1, (bad, result.err)
    assert cli("init", "r.supsup", "--arch", "lenet300-100").code == 0
    assert cli("infer", "r.supsup", "imgs", "--module", "nets.py:mlp").code == 2  # no effect: refused
    assert cli("init", "x.supsup", "--arch", "lenet300-100", "--weights", "given").code == 2


def test_the_benchmark_runs_over_a_module(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(NETS_PY)
    common = ["--suite", "rotated-mnist", "--module", "nets.py:mlp", "--tasks", "2", "--steps", "20",
              "--eval-images", "20", "--method", "one-shot", "--objective", "entropy"]
    result = cli("benchmark", *common, "--no-baselines", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["arch"] == "module:Sequential" and report["speed"]["dense_step_ms"] is None
    assert set(report["summary"]["avg_accuracy"]) == {"gg", "one-shot/entropy"}
    assert cli("benchmark", *common).code == 2  # the baselines train the registry's networks
    assert cli("benchmark", *common, "--no-baselines", "--arch", "fc1024-1024").code == 2


def test_a_module_over_given_weights_with_batch_norm(tmp_path):
    """The CNN over its own (given) weights: the archive binds only that very module; its task's
    network answers as `infer` with the task given."""
    torch.manual_seed(5)
    given = own_nets.SmallCNN()
    model = supsup.Model.create(tmp_path / "given-cnn.supsup", module=given, input_shape=MNIST, weights="given")
    model.learn(TaskData("mnist", rotate=45), steps=30, lr=1e-3)
    images = _images(TaskData("mnist", rotate=45), 200)
    found = supsup.open(model.path, module=given).infer(images, task=0).classes
    assert (model.network(0)(images).argmax(1).numpy() == found).all()
    torch.manual_seed(6)
    with pytest.raises(WeightsMismatch):
        supsup.open(model.path, module=own_nets.SmallCNN())


def test_a_module_task_exports_as_the_users_own_layers(tmp_path, cnn):
    onnxruntime = pytest.importorskip("onnxruntime")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    model, datas = cnn
    images = _images(datas[1], 100)
    expected = model.infer(images, task=1).classes
    model.export(1, "onnx", tmp_path / "t.onnx")
    _, labels = onnxruntime.InferenceSession(str(tmp_path / "t.onnx")).run(None, {"images": images[:, None]})
    assert np.array_equal(labels, expected)
    model.export(1, "safetensors", tmp_path / "t.safetensors")
    state = safetensors_torch.load_file(str(tmp_path / "t.safetensors"))
    outputs = state.pop("outputs")
    plain = own_nets.SmallCNN()
    plain.load_state_dict(state)  # the user's own module, loaded with the task's weights and statistics
    x = normalize(torch.from_numpy(images), (0.1307,), (0.3081,))
    assert np.array_equal(plain.eval()(x)[:, outputs].argmax(1).numpy(), expected)
