"""The written specs must be enough to read archives without supsup's code."""

import re
import subprocess
import sys

import numpy as np

from supsup_cli import archive, registry
from supsup_cli.archive import maskcodec
from tests.conftest import REPO, dummy_record, random_masks


def _run_spec_reader(spec_file: str, path) -> list[list[str]]:
    spec = (REPO / "formats" / spec_file).read_text()
    section = spec[spec.index("## 6. Reading an archive by hand"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('path = "model.supsup"', f'path = {str(path)!r}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [line.split(" ", 2) for line in out.stdout.splitlines()]


def test_the_v2_spec_reader_reads_bitpacked_and_rice_masks(lenet_archive):
    spec = registry.resolve("lenet300-100")
    dense, sparse = random_masks(spec, 1, 0.5), random_masks(spec, 2, 0.07)
    archive.append_task(lenet_archive, dummy_record("dense", spec, dense), dense)
    archive.append_task(lenet_archive, dummy_record("sparse", spec, sparse), sparse)
    with archive.Archive(lenet_archive) as opened:
        assert set(np.unique(opened.index.mask_codec).tolist()) == {maskcodec.BITPACK, maskcodec.RICE}
    lines = _run_spec_reader("supsup-v2.md", lenet_archive)
    assert [line[:2] for line in lines] == [["0", "dense"], ["1", "sparse"]]
    expected = [round(float(m.mean()), 4) for m in sparse]
    assert lines[1][2] == str(expected)


def test_the_v1_spec_reader_reads_the_frozen_v1_archive():
    lines = _run_spec_reader("supsup-v1.md", REPO / "tests" / "data" / "archives" / "v1" / "lenet-2tasks.supsup")
    assert [line[:2] for line in lines] == [["0", "task-0"], ["1", "task-1"]]


def test_the_v2_spec_reader_reads_the_frozen_v2_archive():
    lines = _run_spec_reader("supsup-v2.md", REPO / "tests" / "data" / "archives" / "v2" / "lenet-bitpacked-rice.supsup")
    assert [line[:2] for line in lines] == [["0", "threshold"], ["1", "top-k"]]
