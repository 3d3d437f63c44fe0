"""Latency metrics on hand-computed examples."""

import numpy as np
import pytest

from predictor.metrics import error_bound_accuracy, latency_scores, spearman


def test_error_bound_accuracy_hand_computed():
    true = [10.0, 10.0, 10.0, 10.0, 2.0]
    pred = [10.05, 10.4, 11.0, 8.0, 2.3]
    # relative errors: 0.005, 0.04, 0.10 (on the bound: inside), 0.20, 0.15
    assert error_bound_accuracy(pred, true, 0.01) == pytest.approx(1 / 5)
    assert error_bound_accuracy(pred, true, 0.05) == pytest.approx(2 / 5)
    assert error_bound_accuracy(pred, true, 0.10) == pytest.approx(3 / 5)
    assert error_bound_accuracy(pred, true, 0.20) == pytest.approx(5 / 5)


def test_spearman_hand_computed_with_ties():
    # true has a tie: average ranks 1, 2.5, 2.5, 4; pred ranks 1, 2, 3, 4
    # centred: (-1.5, 0, 0, 1.5) . (-1.5, -0.5, 0.5, 1.5) = 4.5; norms sqrt(4.5) * sqrt(5)
    true = [1.0, 2.0, 2.0, 3.0]
    pred = [0.1, 0.2, 0.3, 0.4]
    assert spearman(pred, true) == pytest.approx(4.5 / np.sqrt(4.5 * 5.0))
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_latency_scores_keys_and_values():
    scores = latency_scores([1.0, 2.2, 2.9], [1.0, 2.0, 3.0])
    assert set(scores) == {"within_1pct", "within_5pct", "within_10pct", "spearman"}
    assert scores["within_1pct"] == pytest.approx(1 / 3)
    assert scores["within_5pct"] == pytest.approx(2 / 3)
    assert scores["within_10pct"] == pytest.approx(1.0)
    assert scores["spearman"] == pytest.approx(1.0)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        error_bound_accuracy([1.0, 2.0], [1.0], 0.1)
    with pytest.raises(ValueError):
        error_bound_accuracy([1.0], [0.0], 0.1)
    with pytest.raises(ValueError):
        spearman([], [])


def test_a_prediction_that_is_not_a_number_is_refused_not_scored():
    # NaN ranks made Spearman exactly 0.0, and a NaN counted as one more miss of every bound
    with pytest.raises(ValueError, match=r"1 prediction\(s\) are not finite numbers"):
        spearman([1.0, 2.0, np.nan, 4.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"1 true latency\(s\) are not finite numbers"):
        error_bound_accuracy([1.0, 2.0], [1.0, np.inf], 0.1)
