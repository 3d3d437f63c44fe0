"""Evaluating candidates: a quality objective (accuracy or a proxy) and latency, cached per architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nas.config import UsageError

BatchFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """A named objective over a batch of architectures."""

    name: str            # column name in the results, e.g. "accuracy" or "proxy_score"
    label: str           # axis label for plots
    fn: BatchFn


class Evaluator:
    """Evaluates each distinct architecture once and remembers every result in evaluation order."""

    def __init__(self, quality: Objective, latency: Objective):
        self.quality = quality
        self.latency = latency
        self.records: dict[str, tuple[float, float]] = {}

    def evaluate(self, archs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(quality, latency in ms) for each arch; only archs not seen before are computed."""
        new = list(dict.fromkeys(a for a in archs if a not in self.records))
        if new:
            q, lat = (checked_values(objective, new) for objective in (self.quality, self.latency))
            self.records.update(zip(new, zip(q.tolist(), lat.tolist())))
        values = np.array([self.records[a] for a in archs], dtype=float).reshape(-1, 2)
        return values[:, 0], values[:, 1]

    @property
    def n_evaluated(self) -> int:
        return len(self.records)


def checked_values(objective: Objective, archs: list[str]) -> np.ndarray:
    """One finite number per arch from `objective`, else UsageError: a user space's accuracy() that
    returns too few values or a NaN would otherwise fail inside pymoo, or write NaN results."""
    raw = objective.fn(archs)
    try:
        values = np.asarray(raw)
        if values.dtype.kind == "c":  # converting would keep the real part, with only a warning
            raise TypeError("complex numbers cannot be ranked")
        if values.dtype.kind in "bUS" or (values.dtype.kind == "O" and any(
                isinstance(v, (str, bytes, bool, np.bool_)) for v in values.ravel())):
            # "50" and True convert to 50.0 and 1.0, which pymoo takes, and numpy's negation of the
            # raw values (the report's true front) does not
            raise TypeError("it holds strings or booleans, not numbers")
        values = values.astype(float)
    except (TypeError, ValueError) as exc:  # e.g. None, strings or ragged lists for numbers
        raise UsageError(f"{objective.name} of {len(archs)} architectures is not an array of numbers: {exc}") from None
    if values.shape != (len(archs),):
        raise UsageError(f"{objective.name} returned shape {values.shape} for {len(archs)} architectures: one "
                         f"number per architecture is needed")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsageError(f"{objective.name} of {archs[i]!r} is {values[i]} ({int(bad.sum())} of {len(archs)} "
                         f"architectures not finite): every candidate needs a number")
    return values
