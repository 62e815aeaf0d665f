"""Write the frozen archives of this format version and their expected results (MANIFEST.json).

Run once per format version, by hand (`python tests/data/archives/freeze.py v2`); the files are then
never rewritten: tests/test_frozen_archives.py reads them on every CI run and checks, task by task,
that this supsup still reads what that version wrote and predicts the same.
"""

import hashlib
import json
import lzma
import sys
from pathlib import Path

import numpy as np

import supsup_cli
from supsup_cli import api, archive
from supsup_cli.core import registry
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.api.hopfield_store import hopfield_store

HERE = Path(__file__).parent


def probe_images(spec: registry.ArchSpec) -> np.ndarray:
    """Fixed inputs: 8 MNIST test images, or 8 seeded random 3 x 32 x 32 images."""
    if spec.input_shape == (1, 28, 28):
        return load_task(TaskData("mnist"), "test").images[:8]
    return np.random.default_rng(0).integers(0, 256, (8, *spec.input_shape), dtype=np.uint8)


def frozen_model(path: Path) -> supsup_cli.Model:
    """The archive as a Model, with the module it was written over (tests/own_nets.py) if any."""
    from tests import own_nets

    with archive.Archive(path, verify_content=False, check_weights=False, load_records=False) as opened:
        label = opened.spec.label
    modules = {"own_nets.SmallCNN": own_nets.SmallCNN}
    return supsup_cli.open(path, module=modules[label]() if label else None)


def write(version: str) -> None:
    """Write the archives of `version` that do not exist yet (a frozen file is never rewritten)."""
    folder = HERE / version
    folder.mkdir(exist_ok=True)

    def new(name: str) -> Path | None:
        path = folder / name
        return None if path.exists() or path.with_suffix(".supsup.xz").exists() else path

    if version <= "v3" and (path := new("lenet-bitpacked-rice.supsup")):
        api.create(path, "lenet300-100", seed=11)
        api.learn_task(path, TaskData("mnist", permute=3), steps=150, name="threshold")  # about half kept: bitpack
        rotation = TaskData("mnist", rotate=30.0, resample="nearest") if version >= "v3" else \
            TaskData("mnist", rotate=30.0)
        api.learn_task(path, rotation, steps=150, density=0.04, name="top-k")  # 4% kept: Rice
    if version == "v2" and (path := new("resnet18-narrow-stats.supsup")):
        api.create(path, "resnet18-narrow", seed=12)
        rng = np.random.default_rng(2026)
        images, labels = rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8), np.arange(64) % 5
        api.learn_task(path, images, labels, steps=4, batch_size=16, name="random-5-way")  # running statistics
    if version == "v3" and (path := new("hopfield-dropped.supsup")):
        api.create(path, "fc2048-2048-hop", seed=13)
        for first in (0, 2):
            api.learn_task(path, TaskData("mnist", classes=(first, first + 1)), steps=20, name=f"split-{first}")
        hopfield_store(path, drop_masks=True)  # the masks now live only in the reservoir (codec 0)
    if version >= "v4" and (path := new("mlp-of-ones-own.supsup")):
        api.create(path, "mlp:64-32", seed=14, output_size=12)  # an architecture not in the registry
        api.learn_task(path, TaskData("mnist", permute=5), steps=100, name="permuted")
        api.learn_task(path, TaskData("mnist", rotate=45.0, resample="nearest"), steps=100, name="rotated")
    if version >= "v4" and (path := new("module-small-cnn.supsup")):
        from tests import own_nets

        model = supsup_cli.Model.create(path, module=own_nets.SmallCNN(), input_shape=(1, 28, 28), seed=15,
                                        label="own_nets.SmallCNN")  # convolutions, batch norm, a skip
        model.learn(TaskData("mnist", permute=6), steps=40, lr=1e-3, name="permuted")
        model.learn(TaskData("mnist", rotate=90.0, resample="nearest"), steps=40, lr=1e-3, name="rotated")
    for lock in folder.glob("*.lock"):
        lock.unlink()
    manifest_path = HERE / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for path in sorted(HERE.glob("v*/*.supsup")):  # entries already there are frozen too: never recomputed
        manifest.setdefault(f"{path.parent.name}/{path.name}", expected(path))
        if path.stat().st_size > 4 * 2**20:  # a Hopfield reservoir: 32 MiB of floats that xz makes 50 KB
            path.with_suffix(".supsup.xz").write_bytes(lzma.compress(path.read_bytes(), preset=9))
            path.unlink()
    lines = [f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}" for key, value in sorted(manifest.items())]
    manifest_path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def frozen_file(name: str, scratch: Path) -> Path:
    """The frozen archive `name` (as in MANIFEST.json), decompressed into `scratch` if stored as .xz."""
    path = HERE / name
    if path.exists():
        return path
    unpacked = scratch / path.name
    unpacked.write_bytes(lzma.decompress((HERE / f"{name}.xz").read_bytes()))
    return unpacked


def expected(path: Path) -> dict:
    """What the archive must read as: its digest, and per task its name, mask digest and the classes
    (and for superposable networks the tasks found by One-Shot) of the probe images."""
    with archive.Archive(path) as opened:
        spec, names = opened.spec, [t.name for t in opened.tasks]
        digests, version = [t.mask_sha256 for t in opened.tasks], opened.format_version
    images = probe_images(spec)
    result = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "format_version": version}
    model = frozen_model(path)
    if spec.mask_on == "neurons":  # masks kept in the reservoir only: recovered from the images
        found = model.infer(images, hopfield=True)
        result["tasks"] = [{"name": name, "mask_sha256": digest, "classes": None} for name, digest in zip(names, digests)]
        result["hopfield"] = {"tasks": found.tasks.tolist(), "classes": found.classes.tolist()}
        return result
    result["tasks"] = [{"name": name, "mask_sha256": digest,
                        "classes": model.infer(images, task=index).classes.tolist()}
                       for index, (name, digest) in enumerate(zip(names, digests))]
    if spec.family in ("mlp", "module"):
        result["one_shot_tasks"] = model.infer(images).tasks.tolist()
    return result


if __name__ == "__main__":
    write(sys.argv[1])
