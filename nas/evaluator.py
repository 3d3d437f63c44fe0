"""Evaluating candidates: a quality objective (accuracy or a proxy) and latency, cached per architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

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
            q = np.asarray(self.quality.fn(new), dtype=float)
            lat = np.asarray(self.latency.fn(new), dtype=float)
            self.records.update(zip(new, zip(q.tolist(), lat.tolist())))
        values = np.array([self.records[a] for a in archs], dtype=float).reshape(-1, 2)
        return values[:, 0], values[:, 1]

    @property
    def n_evaluated(self) -> int:
        return len(self.records)
