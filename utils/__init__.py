"""lead2value: the logic behind the notebooks (one module per concern)."""
