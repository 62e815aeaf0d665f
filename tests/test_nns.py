"""Scenario NNs: learning without task ids; masks are allocated when the model is uncertain."""

import pytest

from supsup_cli import archive


@pytest.fixture
def stream(cli, tmp_path):
    path = tmp_path / "nns.supsup"
    assert cli("init", path, "--arch", "lenet300-100", "--output-size", "500").code == 0
    return path


def _auto(cli, path, *argv):
    result = cli("learn-task", path, "--auto", "--steps", "300", "--json", *argv)
    assert result.code == 0, result.err
    return result.json()


@pytest.mark.slow
def test_new_data_allocates_and_known_data_trains_its_own_mask(cli, stream):
    first = _auto(cli, stream, "--permute", "1")
    assert first["allocated"] == [0] and first["masks"] == 1
    assert first["decisions"][0] == {"step": 0, "statistic": None, "threshold": 1.125, "candidates": 0,
                                     "action": "allocate", "mask": 0}
    assert all(d["action"] == "reuse" and d["mask"] == 0 for d in first["decisions"][1:])
    assert all(d["statistic"] >= d["threshold"] for d in first["decisions"][1:])

    second = _auto(cli, stream, "--permute", "2")
    opening = second["decisions"][0]
    assert opening["action"] == "allocate" and opening["statistic"] < opening["threshold"]
    assert opening["candidates"] == 5  # one mask plus four untrained ones
    assert second["allocated"] == [1] and second["index"] == 1

    again = _auto(cli, stream, "--permute", "1", "--decide-every", "150")
    assert again["allocated"] == [] and again["reused"] == [0] and again["masks"] == 2
    assert [d["step"] for d in again["decisions"]] == [0, 150]
    with archive.Archive(stream) as opened:
        assert [t.name for t in opened.tasks] == ["auto-0", "auto-1"]
        assert opened.tasks[0].training["retrained"][0]["data"] == {"dataset": "mnist", "permute": 1}


@pytest.mark.slow
def test_the_mask_budget_is_respected_with_a_clear_message(cli, stream):
    _auto(cli, stream, "--permute", "1")
    result = cli("learn-task", stream, "--auto", "--steps", "100", "--permute", "2", "--max-masks", "1", "--json")
    assert result.code == 0
    report = result.json()
    assert report["budget_reached"] and report["allocated"] == [] and report["masks"] == 1
    assert report["decisions"][0]["action"] == "reuse-budget"
    assert "--max-masks 1 reached" in result.err


@pytest.mark.slow
def test_benchmark_nns_maps_each_task_to_one_mask_and_goes_on_in_stages(cli, tmp_path):
    """Learned as 2 tasks, then the same command with --tasks 3: the stream goes on after its
    second segment (read back from the masks' records), the first checkpoints from --out."""
    common = ["--scenario", "nns", "--steps", "300", "--eval-images", "400", "--output-size", "500", "--no-baselines",
              "--method", "one-shot", "--objective", "entropy", "--archive", tmp_path / "nns.supsup",
              "--out", tmp_path / "out", "--json"]
    first = cli("benchmark", "--tasks", "2", *common)
    assert first.code == 0, first.err
    result = cli("benchmark", "--tasks", "3", *common)
    assert result.code == 0, result.err
    assert "stream 1/3" not in result.err and "stream 3/3" in result.err  # only the third segment was learned
    report, before = result.json(), first.json()
    summary = report["summary"]
    assert summary["masks_allocated"] == 3 and summary["one_mask_per_task"]
    assert sorted(summary["task_to_mask"]) == [0, 1, 2]
    assert summary["task_inference_accuracy"]["one-shot/entropy"] > 0.95
    assert report["by_checkpoint"]["one-shot/entropy"][:2] == before["by_checkpoint"]["one-shot/entropy"]
    assert summary["steps_by_mask"][:2] == before["summary"]["steps_by_mask"]
    other = cli("benchmark", "--tasks", "4", *[a if a != "300" else "200" for a in common])
    assert other.code == 2 and "steps" in other.err
    no_out = cli("benchmark", "--tasks", "4", *common[:-3], "--json")
    assert no_out.code == 2 and "--out" in no_out.err


def test_auto_arguments_are_checked(cli, stream):
    assert cli("learn-task", stream, "--auto", "--decide-every", "0").code == 2
    assert cli("learn-task", stream, "--auto", "--max-masks", "0").code == 2
    assert cli("benchmark", "--scenario", "xyz").code == 2


def test_a_decision_over_committed_masks_with_changes_equals_one_over_all_masks_stacked():
    """Candidates reads the committed masks as they lie and counts them once; what it decides must be
    One-Shot over the candidates written out in full (issue 26)."""
    import torch

    from supsup_cli.engine import inference, superposition
    from supsup_cli.core import registry
    from supsup_cli.engine.allocation import Candidates
    from supsup_cli.data.tasks import load_task
    from supsup_cli.data.transforms import TaskData
    from supsup_cli.engine.masks import pack
    from supsup_cli.engine.models import build, normalize
    from supsup_cli.core.weights import base_weights

    spec = registry.resolve("lenet300-100", 500)
    net = build(spec, base_weights(spec, 0))
    generator = torch.Generator().manual_seed(1)

    def random_packed(count):
        return [torch.stack([pack(torch.rand(w.numel(), generator=generator) < 0.5) for _ in range(count)])
                for w in net.base()]

    committed, changed, added = random_packed(7), random_packed(2), random_packed(3)
    replaced = {2: [site[0] for site in changed], 5: [site[1] for site in changed]}
    images = load_task(TaskData("mnist", permute=3), "test").images[:64]
    x = normalize(torch.from_numpy(images), (0.1307,), (0.3081,))

    found = Candidates(net, committed).uncertainty(replaced, added, x, list(range(10)))

    full = [torch.cat([c.clone(), a]) for c, a in zip(committed, added)]
    for task, rows in replaced.items():
        for site, row in enumerate(rows):
            full[site][task] = row
    sup = superposition.superposition(net, full, list(range(10)))
    alpha = torch.full((sup.tasks,), 1.0 / sup.tasks)
    expected = torch.softmax(-inference.alpha_gradients(sup, x, alpha, "entropy", same_task=True)[0] / 64, dim=0)
    assert found.nu.shape == (10,)  # 7 committed (2 of them with new bits) and 3 added
    assert torch.allclose(found.nu, expected, rtol=1e-5, atol=1e-7)
    assert found.best() == int(expected.argmax())
