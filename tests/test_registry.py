import json

import pytest

from supsup_cli.core import registry
from supsup_cli.core.errors import ArchiveCorrupt, InvalidArgument


@pytest.mark.parametrize("name", sorted(registry.REGISTRY))
def test_spec_round_trips_through_plain_json(name):
    spec = registry.resolve(name)
    assert registry.from_json(registry.to_json(spec)) == spec


@pytest.mark.parametrize("name", sorted(registry.REGISTRY))
def test_mask_sites_cover_the_masked_tensors(name):
    spec = registry.resolve(name)
    sites = registry.mask_sites(spec)
    layers = registry.weight_layers(spec)
    if spec.mask_on == "weights":
        assert [s.shape for s in sites] == [layer.shape for layer in layers]
    else:
        assert [s.shape for s in sites] == [(w,) for w in spec.widths]


def test_paper_architectures():
    lenet = registry.resolve("lenet300-100")
    assert [layer.shape for layer in registry.weight_layers(lenet)] == [(300, 784), (100, 300), (100, 100)]
    fc = registry.resolve("fc1024-1024")
    assert fc.output_size == 500 and fc.widths == (1024, 1024)
    assert registry.resolve("lenet300-100", 25).output_size == 25


def test_output_size_bounds_and_unknown_names():
    with pytest.raises(InvalidArgument):
        registry.resolve("lenet300-100", 1)
    with pytest.raises(InvalidArgument, match="unknown architecture"):
        registry.resolve("resnet9000")


def test_stored_spec_must_equal_the_registry_entry():
    plain = json.loads(registry.to_json(registry.resolve("lenet300-100")))
    plain["widths"] = [300, 101]
    with pytest.raises(ArchiveCorrupt, match="differs"):
        registry.from_json(json.dumps(plain))
    # Version 4: a name outside the registry is an architecture of one's own, checked field by field
    assert registry.from_json(json.dumps({**plain, "name": "own"})).widths == (300, 101)
    for field, value, rule in (("widths", [300, 0], "widths must be"), ("activation", "gelu", "activation must be"),
                               ("blocks", [2], "blocks must be"), ("input_shape", [1, 28], "input_shape must be"),
                               ("widths", [65536, 65536, 65536], "more than 500,000,000 weights"),
                               ("output_size", True, "output_size must be int")):
        with pytest.raises(ArchiveCorrupt, match=rule):
            registry.from_json(json.dumps({**plain, "name": "own", field: value}))
    with pytest.raises(ArchiveCorrupt, match="exactly the fields"):
        registry.from_json(json.dumps({**plain, "name": "own", "code": "import os"}))
    with pytest.raises(ArchiveCorrupt, match="JSON"):
        registry.from_json("{not json")
