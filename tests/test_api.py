"""The Python API: the README's snippet runs, imports stay lazy, arrays in and typed results out."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import supsup_cli as supsup
from supsup_cli.data.tasks import load_task
from tests.conftest import REPO


def test_the_readme_python_section_runs(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    with supsup.Archive(tmp_path / "api.supsup") as opened:
        assert [t.name for t in opened.tasks][1] == "mnist-permute-4"
        assert opened.tasks[0].data["dataset"] == "arrays" and opened.tasks[0].test_accuracy > 0.8


def test_importing_the_package_does_not_import_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, supsup_cli as s; s.TaskData; s.SupsupError; "
                           "print('torch' in sys.modules)"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert "learn_task" in dir(supsup) and "infer_arrays" in dir(supsup)
    with pytest.raises(AttributeError):
        supsup.no_such_thing


def test_arrays_and_tensors_in_typed_results_out(tmp_path):
    path = tmp_path / "a.supsup"
    supsup.create(path, "lenet300-100")
    data = supsup.TaskData("mnist", permute=2)
    learned = supsup.learn_task(path, data, steps=50)
    assert isinstance(learned, supsup.LearnedTask) and learned.index == 0 and learned.steps == 50
    assert learned.name == "mnist-permute-2" and 0.5 < learned.test_accuracy <= 1
    images = load_task(data, "test").images[:8]
    as_numpy = supsup.infer_arrays(path, images, task=0)
    as_floats = supsup.infer_arrays(path, torch.from_numpy(images).float() / 255, task="mnist-permute-2")
    assert isinstance(as_numpy, supsup.Inferred)
    assert np.array_equal(as_numpy.classes, as_floats.classes) and as_numpy.tasks.tolist() == [0] * 8
    assert as_numpy.confidences.dtype == np.float32 and ((0 < as_numpy.confidences) & (as_numpy.confidences <= 1)).all()
    with pytest.raises(supsup.BadInput):
        supsup.infer_arrays(path, np.zeros((2, 5, 5), np.uint8))
    with pytest.raises(supsup.BadInput):
        supsup.learn_task(path, images, None)
    with pytest.raises(supsup.DuplicateTask):
        supsup.learn_task(path, data, steps=5)
    with pytest.raises(supsup.UnknownTask):
        supsup.infer_arrays(path, images, task="nope")


def test_a_closed_pipe_exits_0_or_141_in_silence(tmp_path):
    """`supsup infer ... | head -1`: the shell's SIGPIPE convention, never exit 1, nothing on stderr."""
    path = tmp_path / "p.supsup"
    supsup.create(path, "lenet300-100")
    supsup.learn_task(path, supsup.TaskData("mnist", permute=1), steps=5)
    images = tmp_path / "many.npy"
    np.save(images, load_task(supsup.TaskData("mnist", permute=1), "test").images[:3000])
    codes = set()
    for _ in range(8):
        reader = subprocess.Popen([sys.executable, "-m", "supsup_cli", "infer", str(path), str(images), "--task", "0",
                                   "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        reader.stdout.readline()
        reader.stdout.close()  # as head -1 does once it has its line
        _, err = reader.communicate(timeout=120)
        codes.add(reader.returncode)
        assert err == b"", err
    assert codes <= {0, 141} and 141 in codes, codes


def test_exported_labels_end_lines_with_a_newline_only(cli, tmp_path):
    assert cli("data", "export", "--permute", "1", "-n", "3", "--out", tmp_path / "e").code == 0
    assert (tmp_path / "e" / "labels.csv").read_bytes() == b"file,label\n00000.png,7\n00001.png,2\n00002.png,1\n"


def test_errors_name_the_paths_they_are_about(cli, tmp_path):
    path = tmp_path / "e.supsup"
    assert cli("init", path, "--arch", "lenet300-100").code == 0
    assert cli("learn-task", path, "--permute", "1", "--steps", "5").code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("infer", path, empty)
    assert result.code == 9 and str(empty) in result.err and "no input images found" in result.err
    missing = cli("learn-task", path, "--data", f"folder:{tmp_path / 'nowhere'}")
    assert missing.code == 3 and str(tmp_path / "nowhere") in missing.err and "PATH/train/<class>" in missing.err
