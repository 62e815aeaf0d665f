"""An archive's Hopfield reservoir: read into tensors, and hopfield-store (tasks in, masks optionally out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from supsup_cli import archive
from supsup_cli.engine import hopfield
from supsup_cli.archive import maskcodec
from supsup_cli.core.errors import InvalidArgument
from supsup_cli.engine.masks import unpack


def reservoir_of(current: archive.Archive) -> hopfield.Reservoir:
    """The archive's reservoir as tensors (empty if it has none yet)."""
    widths = [site.numel for site in current.sites]
    if current.reservoir_info is None:
        return hopfield.Reservoir.empty(widths)
    psi, mu = (torch.from_numpy(a.copy()) for a in current.reservoir())
    return hopfield.Reservoir(hopfield.unflat(psi, widths, squared=True), hopfield.unflat(mu, widths, squared=False),
                              current.reservoir_info.tasks)


def stored_reservoir(reservoir: hopfield.Reservoir, explicit_masks: bool) -> archive.StoredReservoir:
    return archive.StoredReservoir(hopfield.flat(reservoir.psi).numpy(), hopfield.flat(reservoir.mu).numpy(),
                                   reservoir.tasks, explicit_masks)


def hopfield_store(path: Path, drop_masks: bool = False) -> dict[str, Any]:
    """Store every task not yet in the reservoir (Storkey rule); with `drop_masks`, keep masks only there."""
    report: dict[str, Any] = {}

    def build(current: archive.Archive):
        if current.spec.mask_on != "neurons":
            raise InvalidArgument(f"{current.spec.name} masks weights; a Hopfield reservoir holds neuron masks "
                                  "(use an architecture such as fc2048-2048-hop)")
        reservoir = reservoir_of(current)
        added = list(range(reservoir.tasks, current.index.tasks))
        for task in added:
            reservoir.store([unpack(torch.from_numpy(p), site.numel)
                             for p, site in zip(current.packed_mask(task), current.sites)])
        was_explicit = current.reservoir_info is None or current.reservoir_info.explicit_masks
        explicit = was_explicit and not drop_masks
        tasks = [current.stored_task(i) for i in range(current.index.tasks)]
        if not explicit:
            tasks = [archive.StoredTask(t.record, [(maskcodec.NONE, b"")] * len(current.sites), t.stats)
                     for t in tasks]
        report.update(tasks=current.index.tasks, stored_now=len(added), explicit_masks=explicit)
        return tasks, stored_reservoir(reservoir, explicit)

    archive.rewrite(path, build)
    with archive.Archive(path) as opened:
        streams = opened.stream_bytes()
    return {**report, "reservoir_bytes": streams["hopfield"], "bytes_on_disk": streams["file"]}
