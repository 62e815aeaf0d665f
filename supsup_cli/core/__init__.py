"""The core: errors, the architecture registry, the integer generator, the base weights made from it,
the choices of every option, result dataclasses and safe file writes.

May import numpy and the standard library only: never torch, never a layer above
(tests/test_layers.py)."""
