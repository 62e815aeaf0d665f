"""infer on real permuted-MNIST tasks: accuracy, agreement with the per-input reference, bad inputs."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from supsup_cli import archive
from supsup_cli.engine import inference, superposition
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine.models import MaskedNet, normalize
from tests import reference
from tests.conftest import Result


@pytest.fixture(scope="session")
def five_tasks(tmp_path_factory):
    """5 permuted-MNIST tasks, lenet300-100, 1000 steps each, and 200 exported test images per task."""
    from supsup_cli.cli.app import run

    root = tmp_path_factory.mktemp("five")
    path = root / "five.supsup"
    assert run(["init", str(path), "--arch", "lenet300-100"]) == 0
    for seed in range(5):
        assert run(["learn-task", str(path), "--permute", str(seed + 10)]) == 0
        assert run(["data", "export", "--permute", str(seed + 10), "-n", "200", "--out", str(root / f"t{seed}")]) == 0
    return path, root


@pytest.fixture(scope="session")
def fc_tasks(tmp_path_factory):
    """3 permuted-MNIST tasks on fc1024-1024 (100 steps each): its first layer is wider than its
    input, so the contractions take their other side, and its 500 outputs leave room for G."""
    from supsup_cli.cli.app import run

    path = tmp_path_factory.mktemp("fc") / "fc.supsup"
    assert run(["init", str(path), "--arch", "fc1024-1024"]) == 0
    assert run(["learn-task", str(path), "--permute", "10-12", "--steps", "100"]) == 0
    return path, None


ARCHS = ["five_tasks", "fc_tasks"]  # every weight-masked MLP of the registry: what can be superimposed
PER_TASK = {"five_tasks": 1.0, "fc_tasks": 0.5}  # of the inputs per task (the reference is slow on FC 1024-1024)


def _truth(root, task):
    with open(root / f"t{task}" / "labels.csv") as handle:
        return {f"{root}/t{task}/{row['file']}": int(row["label"]) for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_one_shot_finds_task_and_class_per_image(cli, five_tasks):
    path, root = five_tasks
    truth = {name: (task, label) for task in range(5) for name, label in _truth(root, task).items()}
    scores = {}
    for method in ("one-shot", "binary", "exhaustive"):
        result = cli("infer", path, *[root / f"t{t}" for t in range(5)], "--method", method, "--json")
        assert result.code == 0, result.err
        lines = result.json_lines()
        assert len(lines) == 1000 and {"input", "task", "task_name", "class", "confidence"} <= set(lines[0])
        task_ok = [truth[r["input"]][0] == r["task"] for r in lines]
        both_ok = [ok and truth[r["input"]][1] == r["class"] for ok, r in zip(task_ok, lines)]
        scores[method] = (np.mean(task_ok), np.mean(both_ok))
    assert scores["one-shot"][0] >= 0.97 and scores["one-shot"][1] >= 0.92, scores
    assert scores["binary"][0] >= 0.95 and scores["exhaustive"][0] >= 0.95, scores


def _superposition(path, chunk=None):
    with archive.Archive(path) as opened:
        net = MaskedNet(opened.spec, opened.base_weights())
        packed = [torch.from_numpy(p) for p in opened.packed_masks()]
    return superposition.superposition(net, packed, range(10), chunk=chunk)


def _mixed_inputs(count_per_task=12, tasks=5):
    parts = [load_task(TaskData("mnist", permute=seed + 10), "test").images[:count_per_task] for seed in range(tasks)]
    return normalize(torch.from_numpy(np.concatenate(parts)), (0.1307,), (0.3081,))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["one-shot", "binary", "exhaustive"])
@pytest.mark.parametrize("kind", ["entropy", "g"])
def test_vectorized_path_matches_the_per_input_reference(request, arch, method, kind):
    sup = _superposition(request.getfixturevalue(arch)[0])
    x = _mixed_inputs(round(12 * PER_TASK[arch]), tasks=sup.tasks)
    ours = inference.infer_tasks(sup, x, method, kind).tolist()
    theirs = getattr(reference, method.replace("-", "_"))(sup, x, kind)
    assert ours == theirs
    classes = superposition.task_logits(sup, x, torch.tensor(ours)).argmax(1)
    masks = reference.all_masks(sup)
    expected = torch.stack([sup.net(x[b:b + 1], [m[t] for m in masks])[0] for b, t in enumerate(theirs)]).argmax(1)
    assert torch.equal(classes, expected)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["one-shot", "binary"])
@pytest.mark.parametrize("kind", ["entropy", "g"])
def test_same_task_matches_the_reference_on_mixed_batches(five_tasks, method, kind):
    sup = _superposition(five_tasks[0])
    x = _mixed_inputs(12)
    for batch in (x[:12], x[20:44], x[30:60], x):  # one task, two tasks, three tasks, all five
        ours = inference.infer_tasks(sup, batch, method, kind, same_task=True)
        theirs = getattr(reference, method.replace("-", "_") + "_same_task")(sup, batch, kind)
        assert ours.tolist() == [theirs] * batch.shape[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["one-shot", "binary"])
@pytest.mark.parametrize("kind", ["entropy", "g"])
def test_one_or_two_inputs_read_the_packed_bits_and_match_the_reference(request, arch, method, kind):
    """Batches this small take another path (inference.PACKED_DOT_MAX_INPUTS): the same tasks."""
    sup = _superposition(request.getfixturevalue(arch)[0])
    x = _mixed_inputs(count_per_task=round(4 * PER_TASK[arch]), tasks=sup.tasks)
    ours = [t for start in range(0, len(x), 2) for t in inference.infer_tasks(sup, x[start:start + 2], method,
                                                                               kind).tolist()]
    assert ours == getattr(reference, method.replace("-", "_"))(sup, x, kind)
    assert inference.infer_tasks(sup, x[:1], method, kind).tolist() == ours[:1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["one-shot", "binary", "exhaustive"])
def test_result_does_not_depend_on_the_chunk_size(five_tasks, method):
    x = _mixed_inputs(6)
    results = [inference.infer_tasks(_superposition(five_tasks[0], chunk), x, method, "entropy").tolist()
               for chunk in (1, 2, 5)]
    assert results[0] == results[1] == results[2]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("held", ["floats", "bytes", "nothing"])
def test_binary_chooses_the_same_tasks_however_its_masks_are_held(request, arch, held, monkeypatch):
    """Binary keeps the later layers' masks unpacked for its rounds as W * M, as bytes or not at all,
    by the memory they need; each way reads the same masks."""
    sup = _superposition(request.getfixturevalue(arch)[0], chunk=2)
    later = range(1, len(sup.packed))
    elements = sup.tasks * sum(sup.net.base()[site].numel() for site in later)
    if held == "bytes":
        sup.hold_unpacked(later, budget=elements)
        assert not any(sup.unpacked[site].is_floating_point() for site in later)
    elif held == "nothing":
        monkeypatch.setattr(superposition.Superposition, "hold_unpacked", lambda *args, **kwargs: None)
    x = _mixed_inputs(round(8 * PER_TASK[arch]), tasks=sup.tasks)
    assert inference.infer_tasks(sup, x, "binary", "entropy").tolist() == reference.binary(sup, x, "entropy")


@pytest.mark.slow
def test_same_task_infers_one_task_for_the_batch(cli, five_tasks):
    path, root = five_tasks
    for method in ("one-shot", "binary", "exhaustive"):
        result = cli("infer", path, root / "t3", "--same-task", "--method", method, "--json")
        assert result.code == 0 and {r["task"] for r in result.json_lines()} == {3}


@pytest.mark.slow
def test_given_task_and_npy_inputs(cli, five_tasks, tmp_path):
    path, root = five_tasks
    images = load_task(TaskData("mnist", permute=12), "test").images[:20]
    np.save(tmp_path / "u8.npy", images)
    np.save(tmp_path / "f32.npy", (images.reshape(20, 784) / 255.0).astype(np.float32))
    by_uint8 = cli("infer", path, tmp_path / "u8.npy", "--json").json_lines()
    by_float = cli("infer", path, tmp_path / "f32.npy", "--json").json_lines()
    assert [r["input"] for r in by_uint8][:2] == [f"{tmp_path}/u8.npy[0]", f"{tmp_path}/u8.npy[1]"]
    assert [(r["task"], r["class"]) for r in by_uint8] == [(r["task"], r["class"]) for r in by_float]
    assert sum(r["task"] == 2 for r in by_uint8) >= 19
    given = cli("infer", path, tmp_path / "u8.npy", "--task", "mnist-permute-12", "--json").json_lines()
    assert {r["task"] for r in given} == {2} and {r["task_name"] for r in given} == {"mnist-permute-12"}
    assert cli("infer", path, tmp_path / "u8.npy", "--task", "2", "--json").json_lines() == given


# --- bad inputs --------------------------------------------------------------------------------------

def _errors(result: Result) -> list[str]:
    return [line for line in result.err.strip().splitlines() if line]


@pytest.fixture
def tiny_archive(cli, lenet_archive, tmp_path):
    assert cli("learn-task", lenet_archive, "--permute", "1", "--steps", "20").code == 0
    assert cli("data", "export", "--permute", "1", "-n", "2", "--out", tmp_path / "ok").code == 0
    return lenet_archive, tmp_path


def test_bad_inputs_are_listed_and_good_ones_still_reported(cli, tiny_archive):
    path, tmp = tiny_archive
    (tmp / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.new("L", (32, 30)).save(tmp / "big.png")
    result = cli("infer", path, tmp / "ok" / "00000.png", tmp / "missing.png", tmp / "corrupt.png",
                 tmp / "big.png", tmp / "ok" / "00001.png", "--json")
    assert [r["input"] for r in result.json_lines()] == [f"{tmp}/ok/00000.png", f"{tmp}/ok/00001.png"]
    errors = _errors(result)
    assert len(errors) == 3 and all(e.startswith("supsup: error: ") for e in errors)
    assert "missing.png: no such file" in errors[0]
    assert "corrupt.png: cannot decode" in errors[1]
    assert "32x30" in errors[2] and "--resize" in errors[2]
    assert result.code == 3  # the first bad input's code: file not found
    resized = cli("infer", path, tmp / "big.png", "--resize", "--json")
    assert resized.code == 0 and len(resized.json_lines()) == 1


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((3, 27, 28), np.uint8), "shape"),
    (np.zeros((3, 784), np.int64), "dtype"),
    (np.full((2, 784), 1.5, np.float32), "within [0, 1]"),
    (np.full((1, 784), {"a": 1}, dtype=object), "dtype"),
])
def test_bad_arrays_are_refused_without_unpickling(cli, tiny_archive, array, fragment):
    path, tmp = tiny_archive
    np.save(tmp / "bad.npy", array, allow_pickle=True)
    result = cli("infer", path, tmp / "bad.npy")
    assert result.code == 9 and fragment in result.err and len(_errors(result)) == 1


def test_archive_without_tasks_and_unknown_task(cli, lenet_archive, tmp_path):
    assert cli("data", "export", "-n", "1", "--out", tmp_path / "x").code == 0
    empty = cli("infer", lenet_archive, tmp_path / "x")
    assert empty.code == 10 and "no tasks" in empty.err
    assert cli("learn-task", lenet_archive, "--steps", "2").code == 0
    unknown = cli("infer", lenet_archive, tmp_path / "x", "--task", "nope")
    assert unknown.code == 10 and "no task named 'nope'" in unknown.err
