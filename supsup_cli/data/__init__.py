"""Datasets, task transforms and image files."""
