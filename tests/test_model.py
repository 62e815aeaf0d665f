"""The library first (issue 27): a notebook's session with `Model`, through names supsup_cli exports."""

import numpy as np
import pytest
import torch

import supsup_cli as supsup


def test_a_notebook_session(tmp_path):
    model = supsup.Model.create(tmp_path / "nb.supsup", "lenet300-100", seed=0)
    assert len(model) == 0 and "tasks=0" in repr(model)

    images, labels = supsup.load_data("mnist", split="train", permute=3)
    test_images, test_labels = supsup.load_data("mnist", split="test", permute=3)
    first = model.learn(images[:6000], labels[:6000], test=(test_images[:1000], test_labels[:1000]), steps=150)
    assert isinstance(first, supsup.LearnedTask) and first.index == 0 and first.test_accuracy > 0.7

    other, other_labels = supsup.load_data("mnist", split="train", permute=4)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(other[:3000]), torch.from_numpy(other_labels[:3000]))
    second = model.learn(dataset, name="from-a-dataset", steps=150)
    assert second.index == 1 and second.test_accuracy is None
    assert [t.name for t in model] == [first.name, "from-a-dataset"] and len(model) == 2
    assert model["from-a-dataset"].data["dataset"] == "arrays" and model[0].name == first.name

    found = model.infer(test_images[:40])  # no task given: One-Shot over both masks
    assert isinstance(found, supsup.Inferred) and len(found) == 40
    assert (found.tasks == 0).mean() > 0.9 and len(repr(found)) < 200

    given = model.infer(test_images[:40], task=0)
    network = model.network(0)
    assert isinstance(network, torch.nn.Module) and not network.training
    assert all(not p.requires_grad for p in network.parameters())
    logits = network(test_images[:40])
    assert logits.shape == (40, 10) and network.classes == tuple(range(10))
    assert np.array_equal(np.array(network.classes)[logits.argmax(1).numpy()], given.classes)

    report = model.size()
    assert isinstance(report, supsup.StorageReport) and report.tasks == 2 and report.to_dict()["tasks"] == 2
    assert model.verify().ok and "ok=True" in repr(model.verify())

    with pytest.raises(supsup.InvalidArgument, match="`method` has no effect with `task`"):
        model.infer(test_images[:4], task=0, method="binary")


def test_what_the_command_line_accepts_the_library_accepts_too(tmp_path):
    """Flat N x 784 arrays (as `supsup infer` reads .npy), (images, labels) pairs in learn_many, and one
    more of each refusal in Python names."""
    model = supsup.Model.create(tmp_path / "m.supsup", "lenet300-100")
    a, a_labels = supsup.load_data("mnist", split="train", permute=1)
    b, b_labels = supsup.load_data("mnist", split="train", permute=2)
    learned = list(model.learn_many([(a[:2000], a_labels[:2000]), (b[:2000], b_labels[:2000])], steps=20))
    assert [t.index for t in learned] == [0, 1]
    flat = model.infer(a[:5].reshape(5, -1), task=0)
    assert np.array_equal(flat.classes, model.infer(a[:5], task=0).classes)
    with pytest.raises(supsup.BadInput, match="at least two classes"):
        model.learn(a[:100], np.full(100, 150), steps=5)
    with pytest.raises(supsup.InvalidArgument, match="`steps` must be at least 1"):
        model.learn(a[:100], a_labels[:100], steps=0)
    with pytest.raises(supsup.InvalidArgument, match="no training parameter 'step'"):
        model.learn(a[:100], a_labels[:100], step=5)
    assert len(model) == 2  # nothing refused was committed


def test_merge_returns_a_dataclass_and_results_round_trip(tmp_path):
    parts = []
    for index in range(2):
        model = supsup.Model.create(tmp_path / f"p{index}.supsup", "lenet300-100")
        model.learn(supsup.TaskData("mnist", permute=index + 1), steps=5)
        parts.append(model.path)
    merged = supsup.merge(tmp_path / "all.supsup", parts)
    assert isinstance(merged, supsup.MergeResult) and merged.tasks == 2
    assert supsup.MergeResult.from_dict(merged.to_dict()) == merged
    assert len(supsup.open(tmp_path / "all.supsup")) == 2


def test_the_api_reference_lists_every_exported_name_and_nothing_else():
    import re
    from tests.conftest import REPO

    reference = (REPO / "docs" / "api.md").read_text()
    named = set(re.findall(r"`([A-Za-z_]+)[(`]", reference))
    exported = set(supsup.__all__)
    assert exported <= named, sorted(exported - named)
    top_level = {name for name in named if name[0].isupper() or name in {
        "open", "merge", "load_data", "create", "learn_task", "learn_tasks", "infer_arrays"}}
    assert top_level - exported <= {"Dataset"}, sorted(top_level - exported)


def test_every_exported_name_has_a_docstring():
    missing = [name for name in supsup.__all__ if not (getattr(supsup, name).__doc__ or "").strip()]
    assert not missing, missing


def test_benchmark_refusals_say_what_differs(cli, tmp_path):
    """An archive learned from arrays is refused as such (exit 2), not as damaged; a resume refusal
    names the setting that differs (issue 27's bugs)."""
    arrays = supsup.Model.create(tmp_path / "arrays.supsup", "lenet300-100")
    images, labels = supsup.load_data("mnist", split="train", permute=1)
    arrays.learn(images[:500], labels[:500], steps=3)
    refused = cli("benchmark", "--archive", tmp_path / "arrays.supsup", "--no-baselines", "--eval-images", "5",
                  "--method", "one-shot", "--objective", "entropy")
    assert refused.code == 2 and "learned from arrays in memory" in refused.err, refused.err

    run = tmp_path / "run.supsup"
    first = cli("benchmark", "--tasks", "1", "--steps", "3", "--eval-images", "5", "--no-baselines",
                "--method", "one-shot", "--objective", "entropy", "--archive", run)
    assert first.code == 0, first.err
    again = cli("benchmark", "--tasks", "2", "--steps", "4", "--eval-images", "5", "--no-baselines",
                "--method", "one-shot", "--objective", "entropy", "--archive", run)
    assert again.code == 2 and "steps 3 where this run has 4" in again.err, again.err
