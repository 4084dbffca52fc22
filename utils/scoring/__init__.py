"""Serving the registered models: predictions (pandas or Spark), summaries, drift monitoring, the dashboard."""
