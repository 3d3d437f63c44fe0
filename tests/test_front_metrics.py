import numpy as np
import pytest

from nas.metrics import hypervolume, pareto_mask, regret_pp, true_hv_ratio


def test_hypervolume_hand_computed():
    # [0.2,1]x[0.6,1] = 0.32, [0.5,1]x[0.3,1] = 0.35, overlap [0.5,1]x[0.6,1] = 0.20 -> 0.47
    assert hypervolume(np.array([[0.2, 0.6], [0.5, 0.3]])) == pytest.approx(0.47)
    # a dominated point adds nothing; a point beyond the reference counts for nothing
    assert hypervolume(np.array([[0.2, 0.6], [0.5, 0.3], [0.6, 0.7], [1.2, 0.1]])) == pytest.approx(0.47)
    assert hypervolume(np.zeros((0, 2))) == 0.0


def test_pareto_mask():
    F = np.array([[1, 5], [2, 2], [3, 3], [5, 1]])
    assert pareto_mask(F).tolist() == [True, True, False, True]


def test_true_hv_ratio_is_one_for_the_true_front_and_less_for_a_subset():
    acc = np.array([90.0, 80.0, 70.0, 60.0])
    lat = np.array([10.0, 5.0, 6.0, 1.0])
    assert true_hv_ratio(acc, lat, acc, lat) == pytest.approx(1.0)
    # normalised: (0.1, 1.0) sits on the reference latency and adds no area; (0.3, 0.6) is dominated.
    # (0.4, 0.1) -> 0.6 * 0.9 = 0.54, (0.2, 0.5) -> 0.8 * 0.5 = 0.40, overlap 0.6 * 0.5 = 0.30
    full = 0.54 + 0.40 - 0.30
    subset = 0.40
    assert true_hv_ratio(acc[[1]], lat[[1]], acc, lat) == pytest.approx(subset / full)


def test_regret_hand_computed():
    all_acc = np.array([50.0, 60.0, 70.0, 80.0, 90.0])
    all_lat = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # budgets at percentiles 25/50/75 of [1..5] = 2, 3, 4
    found_acc, found_lat = np.array([50.0, 70.0]), np.array([1.0, 3.0])
    r = regret_pp(found_acc, found_lat, all_acc, all_lat)
    assert r == pytest.approx({"p25": 10.0, "p50": 0.0, "p75": 10.0})


def test_true_hv_ratio_is_none_when_no_architecture_has_accuracy():
    # a space whose accuracy is a stub of zeros: the whole search ran, then a ZeroDivisionError lost it
    acc, lat = np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0])
    assert true_hv_ratio(acc[:2], lat[:2], acc, lat) is None
