"""Latency predictors: the MAPLE-style predictor, its baselines and the benchmark that compares them."""

from predictor.maple import MapleConfig, MaplePredictor
from predictor.metrics import error_bound_accuracy, latency_scores, spearman
from predictor.tables import LatencyTable

__all__ = ["LatencyTable", "MapleConfig", "MaplePredictor", "error_bound_accuracy", "latency_scores", "spearman"]
