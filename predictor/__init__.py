"""Latency predictors: the MAPLE-style predictor, its baselines and the benchmark that compares them."""
