"""The C kernels (core.native): built on first use where a compiler is, the same arithmetic as their
torch formulations (bit for bit in training, to float rounding in the packed products), and off
with SUPSUP_NATIVE=0."""

import shutil

import numpy as np
import pytest
import torch

from supsup_cli.core import native, registry
from supsup_cli.core.weights import base_weights
from supsup_cli.data.tasks import load_task
from supsup_cli.data.transforms import TaskData
from supsup_cli.engine import flat_training, masks
from supsup_cli.engine.models import build
from supsup_cli.engine.training import TrainConfig, task_tensors, train_masks

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="no C compiler on this machine")


@needs_compiler
def test_the_kernels_build_once_and_load_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPSUP_DATA", str(tmp_path))
    native.kernels.cache_clear()
    try:
        assert native.kernels() is not None
        (built,) = (tmp_path / "native").glob("kernels-*.so")
        stamp = built.stat().st_mtime_ns
        native.kernels.cache_clear()
        assert native.kernels() is not None and built.stat().st_mtime_ns == stamp
        assert [p.name for p in (tmp_path / "native").iterdir()] == [built.name]  # no build leftovers
        monkeypatch.setenv("SUPSUP_NATIVE", "0")
        native.kernels.cache_clear()
        assert native.kernels() is None
    finally:
        native.kernels.cache_clear()


@needs_compiler
@pytest.mark.parametrize("count", [300, 7])  # tables of byte sums; each mask's bits read directly
def test_packed_products_agree_with_torch_and_not_with_the_thread_count(count, monkeypatch):
    generator = torch.Generator().manual_seed(3)
    packed = torch.randint(0, 256, (count, 1250), dtype=torch.uint8, generator=generator)
    values = torch.randn(2, 9997, generator=generator)  # not a multiple of 8: the padded tail reads zeros
    assert native.kernels() is not None
    fast = masks.packed_dot(packed, values)
    exact = (masks.unpack(packed, 9997).double() @ values.double().T).T
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(masks.packed_dot(packed, values), fast)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(native, "kernels", lambda: None)
    slow = masks.packed_dot(packed, values)
    assert torch.allclose(fast.double(), exact, atol=1e-3) and torch.allclose(slow.double(), exact, atol=1e-3)


@needs_compiler
@pytest.mark.parametrize("arch, output_size", [("lenet300-100", 500), ("fc1024-1024", None)])
def test_training_with_the_kernels_gives_the_masks_of_torch_operations_bit_for_bit(arch, output_size, monkeypatch):
    spec = registry.resolve(arch, output_size)
    net = build(spec, base_weights(spec, 2))
    examples = load_task(TaskData("mnist", permute=4), "train", pick=lambda count: np.arange(0, count, 97)[:600])
    task = task_tensors(examples, spec, torch.device("cpu"))
    config = TrainConfig(steps=30 if arch.startswith("lenet") else 10, seed=4)
    assert flat_training.flat_refusal(spec, config.resolved(spec), False) is None
    with_kernels = train_masks(net, task, config)
    monkeypatch.setattr(native, "kernels", lambda: None)
    without = train_masks(net, task, config)
    assert with_kernels.final_loss == without.final_loss
    assert all(torch.equal(a, b) for a, b in zip(with_kernels.masks, without.masks))


@needs_compiler
def test_masks_unpack_into_signed_weights_as_the_table_does(monkeypatch):
    weight = torch.from_numpy(base_weights(registry.resolve("lenet300-100"), 5)[1])  # 100 x 300: 30000 = 8 x 3750
    generator = torch.Generator().manual_seed(6)
    threads = torch.get_num_threads()
    for n in (weight.numel(), weight.numel() - 5):  # a whole last byte, and a partial one
        flat = weight.reshape(-1)[:n]
        packed = torch.randint(0, 256, (9, (n + 7) // 8), dtype=torch.uint8, generator=generator)
        signed = masks.SignedUnpacking.of(flat)
        assert native.kernels() is not None
        for rows in (packed, packed[2:7], packed[::2]):  # whole, rows at an offset, every other row
            expected = masks.unpack(rows, n) * flat
            with monkeypatch.context() as patched:
                patched.setattr(native, "kernels", lambda: None)
                table = signed.unpack(rows)
            try:
                torch.set_num_threads(2)
                fast = signed.unpack(rows)
            finally:
                torch.set_num_threads(threads)
            # the same floats, zeros' signs included (a dropped negative weight is -0.0, as 0 x -c)
            for got in (fast, table):
                assert got.shape == expected.shape and torch.equal(got.view(torch.int32), expected.view(torch.int32))
    with pytest.raises(ValueError, match="uint8"):
        signed.unpack(packed[:, :-1])
