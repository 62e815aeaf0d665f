"""Datasets, task transforms and image files.

May import the core, numpy, scipy and Pillow; never torch, the archive, the engine, the API, the
command line or the benchmark (tests/test_layers.py)."""
