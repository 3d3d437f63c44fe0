"""Quality of a found front against the truth of a fully tabulated space, and how a speedup is shown."""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of F (all objectives minimised)."""
    F = np.asarray(F, dtype=float)
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def hypervolume(F: np.ndarray, ref=(1.0, 1.0)) -> float:
    """Hypervolume dominated by the points of F (minimised) up to the reference point."""
    F = np.asarray(F, dtype=float)
    F = F[np.all(F < np.asarray(ref), axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(ref, dtype=float))(F))


def normalised_objectives(accuracy_pct: np.ndarray, latency_ms: np.ndarray, max_latency_ms: float) -> np.ndarray:
    """(error as a fraction, latency / the device's maximum latency): both in [0, 1]."""
    return np.column_stack([1.0 - np.asarray(accuracy_pct) / 100.0, np.asarray(latency_ms) / max_latency_ms])


def true_hv_ratio(found_acc, found_lat, all_acc, all_lat) -> float | None:
    """HV of the found front under true objectives / HV of the true front of the whole space.

    None where the true front has no hypervolume (no architecture above 0% accuracy, or none faster
    than the slowest: a table of one latency): there is nothing to be a fraction of.
    """
    max_lat = float(np.max(all_lat))
    hv_found = hypervolume(normalised_objectives(found_acc, found_lat, max_lat))
    hv_true = hypervolume(normalised_objectives(all_acc, all_lat, max_lat))
    return hv_found / hv_true if hv_true > 0 else None


def regret_pp(found_acc, found_lat, all_acc, all_lat, percentiles=(25, 50, 75)) -> dict[str, float]:
    """Accuracy (percentage points) lost under latency budgets at percentiles of the device's latencies.

    For each budget: the best true accuracy in the whole space within it, minus the best true accuracy
    among the found architectures whose true latency is within it (all of it when none is).
    """
    found_acc, found_lat = np.asarray(found_acc), np.asarray(found_lat)
    all_acc, all_lat = np.asarray(all_acc), np.asarray(all_lat)
    out = {}
    for p in percentiles:
        budget = float(np.percentile(all_lat, p))
        best = float(np.max(all_acc[all_lat <= budget]))
        within = found_acc[found_lat <= budget]
        got = float(np.max(within)) if len(within) else 0.0
        out[f"p{p}"] = best - got
    return out


def format_speedup(speedup: float) -> str:
    """`12x`, or `0.54x` below 10, where the decimals matter: a tiny space's speedup can land either
    side of 1, and a ratio of 0.05 printed to one decimal read 0.0x."""
    return f"{speedup:.0f}x" if speedup >= 10 else f"{speedup:.2f}x"
