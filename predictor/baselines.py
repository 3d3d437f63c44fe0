"""Baselines the MAPLE predictor is compared against in `predictor.benchmark`."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from predictor.base import LATENCY_FLOOR
from predictor.tables import LatencyTable


class AffineNearestDevice:
    """Pick the initial-set device whose latencies best fit the samples under an affine map.

    `fit` stores the table; `adapt` fits ``target ~ a * device + b`` on the samples for every
    device and keeps the one with the smallest squared error; `predict` applies that map, floored
    like `MaplePredictor`'s at `LATENCY_FLOOR` x the smallest sample.
    """

    def fit(self, table: LatencyTable) -> "AffineNearestDevice":
        self.table_ = table
        self.col_ = {a: j for j, a in enumerate(table.archs)}
        return self

    def adapt(self, samples: Mapping[str, float]) -> "AffineNearestDevice":
        archs = list(samples)
        y = np.array([samples[a] for a in archs], dtype=float)
        x_all = self.table_.latency_ms[:, [self.col_[a] for a in archs]]
        best = (np.inf, 0, 1.0, 0.0)
        for i, x in enumerate(x_all):
            design = np.stack([x, np.ones_like(x)], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
            err = float(np.sum((design @ [a, b] - y) ** 2))
            if err < best[0]:
                best = (err, i, a, b)
        _, self.device_, self.a_, self.b_ = best
        self.floor_ms_ = LATENCY_FLOOR * float(y.min())
        return self

    def predict(self, archs: Sequence[str]) -> np.ndarray:
        x = self.table_.latency_ms[self.device_, [self.col_[a] for a in archs]]
        return np.maximum(self.a_ * x + self.b_, self.floor_ms_)
