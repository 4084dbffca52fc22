"""Shared ground: paths, data contracts, file I/O, hashing, the time split, plots, MLflow and the registry."""
