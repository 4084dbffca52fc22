"""Customer lifetime value: the four sources and transaction logs, the synthetic shop, GDP, features, models, metrics."""
