from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from supsup_cli import archive
from supsup_cli.core import registry
from supsup_cli.cli.app import run
from supsup_cli.archive.records import TaskRecord

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def json_lines(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run one `supsup` command line in this process."""

    def invoke(*argv: object) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def supsup_subprocess(*argv: object, timeout: float = 300, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m supsup_cli` in a fresh process, as a user's shell would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "supsup_cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, **kwargs)


def random_masks(spec: registry.ArchSpec, seed: int, density: float = 0.5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(site.shape) < density for site in registry.mask_sites(spec)]


def dummy_record(name: str, spec: registry.ArchSpec, masks: list[np.ndarray]) -> TaskRecord:
    return TaskRecord(name=name, data={"dataset": "mnist", "permute": 1}, classes=tuple(range(10)),
                      mean=(0.1307,), std=(0.3081,), density=tuple(float(m.mean()) for m in masks))


@pytest.fixture
def lenet_archive(tmp_path) -> Path:
    path = tmp_path / "m.supsup"
    archive.create(path, registry.resolve("lenet300-100"), seed=0)
    return path


def append_random_tasks(path: Path, count: int, start_seed: int = 0) -> list[list[np.ndarray]]:
    with archive.Archive(path) as opened:
        spec = opened.spec
    added = []
    for i in range(count):
        masks = random_masks(spec, start_seed + i)
        archive.append_task(path, dummy_record(f"task-{start_seed + i}", spec, masks), masks)
        added.append(masks)
    return added
