"""A task leaves supsup (issue 30, first part): `supsup export` to ONNX and safetensors, checked
against `supsup infer --task` on real images."""

import sys

import numpy as np
import pytest
import torch

import supsup_cli as supsup

onnxruntime = pytest.importorskip("onnxruntime")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _exported(cli, path, form, out):
    result = cli("export", path, "--task", "0", "--format", form, "--out", out, "--json")
    assert result.code == 0, result.err
    return result.json()


def test_an_mlp_task_in_onnx_and_safetensors_predicts_as_supsup(cli, tmp_path):
    model = supsup.Model.create(tmp_path / "m.supsup", "lenet300-100", output_size=20)
    model.learn(supsup.TaskData("mnist", permute=4, classes=(3, 5, 7)), steps=150)
    images, _ = supsup.load_data("mnist", split="test", permute=4, classes=(3, 5, 7))
    images = images[:300]
    expected = model.infer(images, task=0)

    written = _exported(cli, model.path, "onnx", tmp_path / "t.onnx")
    assert written["classes"] == [3, 5, 7] and written["bytes"] > 0
    session = onnxruntime.InferenceSession(str(tmp_path / "t.onnx"))
    logits, labels = session.run(None, {"images": images[:, None]})
    assert np.array_equal(labels, expected.classes)  # class labels, not output positions
    reference = model.network(0)(images).detach().numpy()
    assert logits.shape == (300, 3) and np.abs(logits - reference).max() < 1e-4
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["classes"] == "[3, 5, 7]" and meta["weights_sha256"] == model.weights_sha256

    _exported(cli, model.path, "safetensors", tmp_path / "t.safetensors")
    tensors = safetensors_torch.load_file(str(tmp_path / "t.safetensors"))
    x = (torch.from_numpy(images).float().reshape(300, -1) / 255 - 0.1307) / 0.3081
    h = torch.relu(x @ tensors["fc1.weight"].T)
    h = torch.relu(h @ tensors["fc2.weight"].T)
    plain = (h @ tensors["fc3.weight"].T)[:, tensors["outputs"]]
    assert np.array_equal(np.array([3, 5, 7])[plain.argmax(1).numpy()], expected.classes)


def test_a_residual_task_with_its_statistics_in_onnx(cli, tmp_path):
    model = supsup.Model.create(tmp_path / "r.supsup", "resnet18-narrow")
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8), np.arange(48) % 5
    model.learn(images, labels, steps=3, batch_size=16)
    _exported(cli, model.path, "onnx", tmp_path / "r.onnx")
    logits, predicted = onnxruntime.InferenceSession(str(tmp_path / "r.onnx")).run(None, {"images": images[:20]})
    assert np.array_equal(predicted, model.infer(images[:20], task=0).classes)
    assert np.abs(logits - model.network(0)(images[:20]).detach().numpy()).max() < 1e-4
    _exported(cli, model.path, "safetensors", tmp_path / "r.safetensors")
    tensors = safetensors_torch.load_file(str(tmp_path / "r.safetensors"))
    assert "layer1.0.conv1.weight" in tensors and "norm0.running_mean" in tensors


def test_what_cannot_be_exported_is_refused_in_one_line(cli, tmp_path, monkeypatch):
    model = supsup.Model.create(tmp_path / "h.supsup", "fc2048-2048-hop")
    model.learn(supsup.TaskData("mnist", classes=(0, 1)), steps=5)
    refused = cli("export", model.path, "--task", "0", "--format", "onnx", "--out", tmp_path / "h.onnx")
    assert refused.code == 2 and "export it as safetensors" in refused.err
    assert _exported(cli, model.path, "safetensors", tmp_path / "h.safetensors")["bytes"] > 0
    assert cli("export", model.path, "--task", "0", "--format", "tflite", "--out", tmp_path / "x").code == 2
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    missing = cli("export", model.path, "--task", "0", "--format", "onnx", "--out", tmp_path / "h.onnx")
    assert missing.code == 14 and "supsup[export]" in missing.err and not (tmp_path / "h.onnx").exists()


@pytest.fixture(scope="module")
def many_tasks(tmp_path_factory):
    """100 permuted-MNIST LeNet tasks, each mask trained 25 steps on its task (what is checked is
    agreement, not accuracy) and committed in one transaction, and 1,000 test images from 10 of them."""
    path = tmp_path_factory.mktemp("many") / "many.supsup"
    model = supsup.Model.create(path, "lenet300-100")
    _append_trained(path, [supsup.TaskData("mnist", permute=seed) for seed in range(1, 101)])
    images = np.concatenate([supsup.load_data("mnist", split="test", permute=seed)[0][:100]
                             for seed in range(1, 101, 10)])
    return model, images


def _append_trained(path, datas):
    from supsup_cli import archive
    from supsup_cli.archive.records import TaskRecord
    from supsup_cli.data.tasks import load_task
    from supsup_cli.api.learn import mask_digest
    from supsup_cli.engine.models import build
    from supsup_cli.engine.training import TrainConfig, task_tensors, train_masks

    with archive.Archive(path) as opened:
        spec, net = opened.spec, build(opened.spec, opened.base_weights())
    stored = []
    for index, data in enumerate(datas):
        examples = load_task(data, "train")
        trained = train_masks(net, task_tensors(examples, spec, torch.device("cpu")), TrainConfig(steps=25, seed=index))
        masks = [m.numpy() for m in trained.masks]
        record = TaskRecord(name=data.default_name(), data=data.to_plain(), classes=examples.classes,
                            mean=examples.mean, std=examples.std, density=tuple(float(m.mean()) for m in masks),
                            mask_sha256=mask_digest(masks))
        stored.append(archive.StoredTask.of(record, masks))
    archive.append_tasks(path, lambda current: stored)


def test_every_task_in_one_onnx_model_the_size_of_the_archive(cli, tmp_path, many_tasks):
    model, images = many_tasks
    out = tmp_path / "all.onnx"
    written = cli("export", model.path, "--all-tasks", "--format", "onnx", "--out", out, "--json").json()
    assert written["tasks"] == 100 and out.stat().st_size <= 1.2 * model.path.stat().st_size
    session = onnxruntime.InferenceSession(str(out))
    for task in (0, 41, 99):
        logits, labels = session.run(None, {"images": images[:, None], "task": np.array(task, dtype=np.int64)})
        assert np.array_equal(labels, model.infer(images, task=task).classes)
        assert np.abs(logits - model.network(task)(images).detach().numpy()).max() < 1e-4


@pytest.mark.parametrize("tasks", [10, 100])
def test_an_onnx_model_that_finds_its_own_task(tmp_path, many_tasks, tasks):
    """At k = 10 (an archive of the first 10 tasks) and k = 100: the task One-Shot finds, the class
    under it and its confidence, as supsup infer --method one-shot gives them."""
    model, images = many_tasks
    if tasks < len(model):
        first = supsup.Model.create(tmp_path / "first.supsup", "lenet300-100")
        _append_trained(first.path, [supsup.TaskData("mnist", permute=seed) for seed in range(1, tasks + 1)])
        assert [t.mask_sha256 for t in first.tasks] == [t.mask_sha256 for t in model.tasks[:tasks]]
        model, images = first, images[: 100 * (tasks // 10)]
    model.export(None, "onnx", tmp_path / "one.onnx", infer="one-shot")
    found, labels, confidences = onnxruntime.InferenceSession(str(tmp_path / "one.onnx")).run(None, {"images": images[:, None]})
    ours = model.infer(images, method="one-shot")
    agree = found == ours.tasks
    assert agree.mean() >= 0.999, agree.mean()
    assert np.array_equal(labels[agree], ours.classes[agree])
    assert np.abs(confidences[agree] - ours.confidences[agree]).max() < 1e-4
    assert (ours.tasks == np.repeat(np.arange(0, 100, 10)[: len(images) // 100], 100)).mean() > 0.5  # not chance


def test_only_weight_masked_mlps_export_all_their_tasks(cli, tmp_path):
    model = supsup.Model.create(tmp_path / "r.supsup", "resnet18-narrow")
    rng = np.random.default_rng(1)
    model.learn(rng.integers(0, 256, (32, 3, 32, 32), dtype=np.uint8), np.arange(32) % 5, steps=1, batch_size=16)
    refused = cli("export", model.path, "--all-tasks", "--format", "onnx", "--out", tmp_path / "r.onnx")
    assert refused.code == 2 and "one at a time (--task)" in refused.err
    for argv in (["--all-tasks", "--task", "0"], ["--infer", "binary"], ["--all-tasks", "--format", "safetensors"]):
        flags = argv if "--format" in argv else [*argv, "--format", "onnx"]
        assert cli("export", model.path, *flags, "--out", tmp_path / "x").code == 2


def test_the_readme_snippet_runs_as_written(tmp_path, many_tasks, monkeypatch):
    import re

    from tests.conftest import REPO

    model, images = many_tasks
    section = (REPO / "README.md").read_text().split("## Use a task elsewhere")[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    model.export(3, "onnx", tmp_path / "task3.onnx")
    model.export(None, "onnx", tmp_path / "all.onnx", all_tasks=True)
    model.export(None, "onnx", tmp_path / "finds.onnx", infer="one-shot")
    np.save(tmp_path / "digits.npy", images[:40])
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(snippet, names)  # noqa: S102 (the README's own code)
    found = model.infer(images[:40])
    assert np.array_equal(names["task"], found.tasks) and np.array_equal(names["label"], found.classes)
