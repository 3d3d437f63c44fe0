"""Accuracy metrics for latency predictors: error-bound accuracy (MAPLE's and HELP's metric) and Spearman."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

#: The error bounds MAPLE reports, as fractions of the true latency.
BOUNDS = {"within_1pct": 0.01, "within_5pct": 0.05, "within_10pct": 0.10}


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred and true differ in length ({pred.size} vs {true.size})")
    if pred.size == 0:
        raise ValueError("no predictions to score")
    # NaN ranks made Spearman 0.0 and counted as a miss of every bound: a score of a bug, not of a predictor.
    for side, values in (("prediction", pred), ("true latency", true)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{int(np.sum(~np.isfinite(values)))} {side}(s) are not finite numbers: nothing to score")
    return pred, true


def error_bound_accuracy(pred, true, bound: float) -> float:
    """Fraction of predictions within `bound` relative error: ``|pred - true| / true <= bound``.

    `bound` is a fraction (0.1 for MAPLE's "±10%"). `true` must be positive (latencies in ms).
    """
    pred, true = _pair(pred, true)
    if np.any(true <= 0):
        raise ValueError("true latencies must be positive")
    # The tiny slack keeps a prediction that is exactly on the bound (e.g. 1.1 for 1.0 at 10%)
    # inside it despite float rounding.
    return float(np.mean(np.abs(pred - true) / true <= bound + 1e-12))


def spearman(pred, true) -> float:
    """Spearman rank correlation, ties given their average rank (simulated devices have many ties).

    Returns 0.0 when either side is constant, where the correlation is undefined.
    """
    pred, true = _pair(pred, true)
    rp, rt = rankdata(pred), rankdata(true)
    rp -= rp.mean()
    rt -= rt.mean()
    denom = np.sqrt(np.sum(rp * rp) * np.sum(rt * rt))
    return float(np.sum(rp * rt) / denom) if denom > 0 else 0.0


def latency_scores(pred, true) -> dict[str, float]:
    """within_1pct, within_5pct, within_10pct (fractions in [0, 1]) and spearman of predicted latencies."""
    scores = {name: error_bound_accuracy(pred, true, bound) for name, bound in BOUNDS.items()}
    scores["spearman"] = spearman(pred, true)
    return scores
