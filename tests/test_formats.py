"""The written specs must be enough to read archives without supsup's code."""

import json
import re
import subprocess
import sys

import numpy as np

from supsup_cli import api, archive
from supsup_cli.core import registry
from supsup_cli.archive import maskcodec
from tests.conftest import REPO, dummy_record, random_masks
from tests.data.archives.freeze import frozen_file, frozen_model, probe_images


def _run_spec_reader(spec_file: str, path) -> list[list[str]]:
    spec = (REPO / "formats" / spec_file).read_text()
    section = spec[spec.index("## 6. Reading an archive by hand"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('path = "model.supsup"', f'path = {str(path)!r}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [line.split(" ", 2) for line in out.stdout.splitlines()]


def test_the_v4_spec_reader_reads_bitpacked_and_rice_masks(lenet_archive):
    spec = registry.resolve("lenet300-100")
    dense, sparse = random_masks(spec, 1, 0.5), random_masks(spec, 2, 0.07)
    archive.append_task(lenet_archive, dummy_record("dense", spec, dense), dense)
    archive.append_task(lenet_archive, dummy_record("sparse", spec, sparse), sparse)
    with archive.Archive(lenet_archive) as opened:
        assert set(np.unique(opened.index.mask_codec).tolist()) == {maskcodec.BITPACK, maskcodec.RICE}
    lines = _run_spec_reader("supsup-v4.md", lenet_archive)
    assert [line[:2] for line in lines] == [["0", "dense"], ["1", "sparse"]]
    expected = [round(float(m.mean()), 4) for m in sparse]
    assert lines[1][2] == str(expected)


def test_the_v1_spec_reader_reads_the_frozen_v1_archive():
    lines = _run_spec_reader("supsup-v1.md", REPO / "tests" / "data" / "archives" / "v1" / "lenet-2tasks.supsup")
    assert [line[:2] for line in lines] == [["0", "task-0"], ["1", "task-1"]]


def test_the_v2_spec_reader_reads_the_frozen_v2_archive():
    lines = _run_spec_reader("supsup-v2.md", REPO / "tests" / "data" / "archives" / "v2" / "lenet-bitpacked-rice.supsup")
    assert [line[:2] for line in lines] == [["0", "threshold"], ["1", "top-k"]]


def test_the_spec_reader_predicts_as_supsup_on_every_frozen_archive(tmp_path):
    """Section 6's `predict`, written from section 7 alone, against what each frozen archive's
    tasks predicted when they were written (MANIFEST.json) and against supsup now."""
    frozen = REPO / "tests" / "data" / "archives"
    for name, pinned in json.loads((frozen / "MANIFEST.json").read_text()).items():
        if "hopfield" in pinned:
            continue  # its masks live only in the reservoir: recovering them is inference, not reading
        path = frozen / name
        with archive.Archive(path) as opened:
            images, label = probe_images(opened.spec), opened.spec.label
        module = "__import__('tests.own_nets').own_nets.SmallCNN()" if label else None  # the archive's own
        predicted = _spec_predictions(path, len(pinned["tasks"]), images, tmp_path, module)
        assert predicted == [t["classes"] for t in pinned["tasks"]], name
        model = frozen_model(path)
        assert predicted == [model.infer(images, task=t).classes.tolist() for t in range(len(predicted))]


def test_the_spec_reader_predicts_neuron_masks_with_batch_norm_as_supsup(tmp_path):
    spec = registry.resolve("fc2048-2048-hop")
    path = tmp_path / "hop.supsup"
    archive.create(path, spec, seed=5)
    for task in range(2):
        masks = random_masks(spec, task, 0.7)
        archive.append_task(path, dummy_record(f"hop-{task}", spec, masks), masks)
    images = probe_images(spec)
    predicted = _spec_predictions(path, 2, images, tmp_path)
    assert predicted == [api.infer_arrays(path, images, task=t).classes.tolist() for t in range(2)]
    assert len({c for row in predicted for c in row}) > 1  # not a constant answer


def _spec_predictions(path, tasks: int, images, tmp_path, module: str | None = None) -> list[list[int]]:
    """What section 6's `predict` (with `module`, an expression making the user's module:
    `predict_module`) says for each task."""
    spec = (REPO / "formats" / "supsup-v4.md").read_text()
    code = re.search(r"```python\n(.*?)```", spec[spec.index("## 6. Reading an archive by hand"):], re.S).group(1)
    np.save(tmp_path / "probe.npy", images)
    harness = code.replace('path = "model.supsup"', f"path = {str(path)!r}") + (
        f"\nprobe = np.load({str(tmp_path / 'probe.npy')!r})\n"
        f"for t in range({tasks}):\n    print('PREDICT', t, "
        + (f"predict_module(path, t, probe, {module})" if module else "predict(path, t, probe)") + ".tolist())\n")
    out = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    return [json.loads(line.split(" ", 2)[2]) for line in out.splitlines() if line.startswith("PREDICT")]


def test_the_v3_spec_reader_lists_masks_kept_only_in_the_reservoir(tmp_path):
    lines = _run_spec_reader("supsup-v3.md", frozen_file("v3/hopfield-dropped.supsup", tmp_path))
    assert lines == [["0", "split-0", "[None, None]"], ["1", "split-2", "[None, None]"]]


def test_the_v4_spec_reader_predicts_an_architecture_of_ones_own_as_supsup(tmp_path):
    """Version 4: an MLP of one's own widths (supsup init --arch mlp:W1-W2), read and predicted from
    the spec alone."""
    spec = registry.resolve("mlp:40-30-20", 12)
    path = tmp_path / "own.supsup"
    archive.create(path, spec, seed=3)
    for task in range(2):
        masks = random_masks(spec, task, 0.6)
        archive.append_task(path, dummy_record(f"own-{task}", spec, masks), masks)
    images = probe_images(registry.resolve("lenet300-100"))
    predicted = _spec_predictions(path, 2, images, tmp_path)
    assert predicted == [api.infer_arrays(path, images, task=t).classes.tolist() for t in range(2)]
    assert len({c for row in predicted for c in row}) > 1
