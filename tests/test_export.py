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
