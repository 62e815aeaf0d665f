"""The engine: tensors in, tensors out, never a file. The masked networks (the registry's and a
user's module), masks, training (general, flat and batched), the superposition and its searches,
scenario NNs' allocation, the Hopfield reservoir, devices and torchrun.

May import the core, data, torch, numpy and scipy; never the archive, the API, the command line or
the benchmark (tests/test_layers.py)."""
