"""Architectures of one's own (issue 29, point 1): `--arch mlp:W1-W2-...` and `--arch-spec FILE.json`,
stored as data and checked field by field; they learn and infer as the registry's do."""

import json

import numpy as np

import supsup_cli as supsup
from supsup_cli.core import registry


def test_an_mlp_of_ones_own_widths_learns_and_infers(cli, tmp_path):
    path = tmp_path / "own.supsup"
    made = cli("init", path, "--arch", "mlp:128-64", "--output-size", "20", "--json")
    assert made.code == 0, made.err
    assert made.json()["arch"] == "mlp:128-64" and made.json()["output_size"] == 20
    for permute in ("1", "2"):
        assert cli("learn-task", path, "--permute", permute, "--steps", "300").code == 0
    model = supsup.open(path)
    assert model.spec.widths == (128, 64) and len(model) == 2 and model[0].test_accuracy > 0.6
    images, _ = supsup.load_data("mnist", split="test", permute=2)
    found = model.infer(images[:30])
    assert (found.tasks == 1).mean() > 0.8  # One-Shot finds the task over masks of one's own network
    shown = cli("inspect", path, "--json").json()
    assert shown["arch"]["widths"] == [128, 64] and shown["format_version"] == 4


def test_a_spec_file_of_ones_own_and_what_is_refused(cli, tmp_path):
    plain = json.loads(registry.to_json(registry.REGISTRY["resnet18-narrow"]))
    plain.update(name="tiny-resnet", widths=[4, 8], blocks=[1, 1], output_size=3)
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(json.dumps(plain))
    path = tmp_path / "tiny.supsup"
    assert cli("init", path, "--arch-spec", spec_file).code == 0
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8), np.arange(40) % 3
    learned = supsup.open(path).learn(images, labels, steps=3, batch_size=8)
    assert learned.index == 0
    assert supsup.open(path).network(0)(images[:4]).shape == (4, 3)

    for change, rule in (({"family": "transformer"}, "--arch-spec"), ({"blocks": [1]}, "blocks must give"),
                         ({"name": "lenet300-100"}, "is a registry name")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**plain, **change}))
        refused = cli("init", tmp_path / "bad.supsup", "--arch-spec", bad)
        assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1, refused.err
        assert rule in refused.err or "family must be" in refused.err, refused.err
    assert cli("init", tmp_path / "x.supsup", "--arch", "mlp:0").code == 2
    assert cli("init", tmp_path / "x.supsup", "--arch", "lenet300-100", "--arch-spec", spec_file).code == 2
    assert cli("init", tmp_path / "x.supsup", "--arch-spec", spec_file, "--output-size", "4").code == 2
    missing = cli("init", tmp_path / "x.supsup", "--arch-spec", tmp_path / "nope.json")
    assert missing.code == 3 and "no such file" in missing.err
