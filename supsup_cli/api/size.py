"""What an archive's masks cost on disk, beside what they could cost.

entropy bound   sum over tasks and sites of n * H2(ones / n) bits: no lossless code of masks with
                those densities (as independent bits) can be smaller on average
CSC int16       the paper's scheme (scipy.sparse.csc_matrix, 16-bit integers) for a site seen as a
                matrix with one column per output unit: 2 bytes per kept weight (row index) plus 2
                bytes per column pointer (output units + 1); the data array of ones is not counted.
                With pointers per output unit, the figure with batch-norm statistics is within 2% of
                Table 2's at s = 1 (20,788 against 20,422 bytes a task); pointers per input column
                would add 16,724 bytes a task there. A 16-bit pointer cannot count past 65,535 kept
                weights: layers where a task keeps more are listed, and their figure is what the
                scheme would cost if its pointers could (the paper's networks never get there)
paper scheme    CSC int16 masks plus each task's batch-norm running means and variances as float32,
                as the paper counts them (Table 2)
dense fp32      one trained network per task instead: 4 bytes per weight
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from supsup_cli.archive import Archive
from supsup_cli.archive.maskcodec import NAMES
from supsup_cli.core.registry import weight_layers


MAX_INT16_POINTER = 65_535


def entropy_bits(ones: int, n: int) -> float:
    p = ones / n
    if p in (0.0, 1.0):
        return 0.0
    return n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def csc_int16_bytes(ones: int, shape: tuple[int, ...]) -> int:
    columns = shape[0] if len(shape) > 1 else 1
    return 2 * ones + 2 * (columns + 1)


def storage_report(opened: Archive) -> dict[str, Any]:
    index, tasks = opened.index, opened.index.tasks
    streams = opened.stream_bytes()
    weights = sum(layer.numel for layer in weight_layers(opened.spec))
    layers = []
    for site_index, site in enumerate(opened.sites):
        ones = [_ones(opened.packed_mask_site(task, site_index)) for task in range(tasks)
                if index.mask_codec[task, site_index]]
        codecs = np.bincount(index.mask_codec[:, site_index], minlength=len(NAMES)) if tasks else np.zeros(len(NAMES))
        layers.append({
            "site": site.name,
            "weights": site.numel,
            "mask_bytes": int(index.mask_extent[:, site_index, 1].sum()),
            "entropy_bound_bytes": sum(entropy_bits(o, site.numel) for o in ones) / 8,
            "csc_int16_bytes": sum(csc_int16_bytes(o, site.shape) for o in ones),
            "csc_int16_overflows": sum(o > MAX_INT16_POINTER for o in ones),  # tasks it cannot represent
            "density": sum(ones) / (len(ones) * site.numel) if ones else None,
            "codecs": {NAMES[c]: int(count) for c, count in enumerate(codecs) if count},
        })
    mask_bytes = sum(layer["mask_bytes"] for layer in layers)
    bound = sum(layer["entropy_bound_bytes"] for layer in layers)
    masked_weights = tasks * sum(site.numel for site in opened.sites)
    accounted = mask_bytes + streams["records"] + streams["statistics"] + streams["index"] + streams["hopfield"]
    return {
        "path": str(opened.path),
        "tasks": tasks,
        "bytes_on_disk": streams["file"],
        "mask_bytes": mask_bytes,
        "entropy_bound_bytes": bound,
        "mask_to_entropy_bound": mask_bytes / bound if bound else None,
        "csc_int16_bytes": sum(layer["csc_int16_bytes"] for layer in layers),
        "paper_scheme": {
            "masks_csc_int16_bytes": sum(layer["csc_int16_bytes"] for layer in layers),
            "batch_norm_statistics_bytes": streams["statistics"],
            "total_bytes": sum(layer["csc_int16_bytes"] for layer in layers) + streams["statistics"],
            "per_task_bytes": (sum(layer["csc_int16_bytes"] for layer in layers) + streams["statistics"]) / tasks
            if tasks else None,
            "layers_past_int16_pointers": [layer["site"] for layer in layers if layer["csc_int16_overflows"]],
        },
        "dense_fp32_bytes_per_task": 4 * weights,
        "base_network_fp32_bytes": 4 * weights,
        "mask_bytes_per_task": mask_bytes / tasks if tasks else None,
        "bytes_per_task": streams["file"] / tasks if tasks else None,
        "bits_per_weight": 8 * mask_bytes / masked_weights if masked_weights else None,
        "breakdown": {
            "header_and_spec": streams["file"] - accounted,
            "masks": {layer["site"]: layer["mask_bytes"] for layer in layers},
            "records": streams["records"],
            "statistics": streams["statistics"],
            "index_and_digests": streams["index"],
            "hopfield_reservoir": streams["hopfield"],
        },
        "layers": layers,
    }


def _ones(packed: np.ndarray) -> int:
    return int(np.unpackbits(packed).sum())
