"""Baselines the MAPLE predictor is compared against in `predictor.benchmark`."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from predictor.base import LATENCY_FLOOR
from predictor.tables import LatencyTable


class AffineNearestDevice:
    """Pick the initial-set device whose latencies best fit the samples under an affine map.

    `fit` stores the table; `adapt` fits ``target ~ a * device + b`` on the samples for every
    device and keeps the one with the smallest squared error among those with a positive slope a
    (all of them if none has one); `predict` applies that map, floored like `MaplePredictor`'s at
    `LATENCY_FLOOR` x the smallest sample.

    A negative slope says that what is slower on the device is faster on the target. With 3 samples
    such a map can fit best by chance (FBNet's raspi4 picked titanx_1 at a = -19 and ranked at
    -0.29), and a baseline that takes it looks weaker than the method it describes.
    """

    @staticmethod
    def too_few(k: int) -> str | None:
        """Why `k` samples are too few to score this baseline, or None. Its two parameters fit 1 or 2
        samples exactly on every device, so the device it copies would be chosen by rounding."""
        if k < 3:
            return (f"an affine map fits {k} sample(s) exactly on every device, so the device it copies would be "
                    "arbitrary")
        return None

    def fit(self, table: LatencyTable) -> "AffineNearestDevice":
        self.table_ = table
        self.col_ = {a: j for j, a in enumerate(table.archs)}
        return self

    def adapt(self, samples: Mapping[str, float]) -> "AffineNearestDevice":
        archs = list(samples)
        y = np.array([samples[a] for a in archs], dtype=float)
        x_all = self.table_.latency_ms[:, [self.col_[a] for a in archs]]
        fits = []
        for i, x in enumerate(x_all):
            design = np.stack([x, np.ones_like(x)], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
            fits.append((float(np.sum((design @ [a, b] - y) ** 2)), i, a, b))
        rising = [f for f in fits if f[2] > 0]
        _, self.device_, self.a_, self.b_ = min(rising or fits, key=lambda f: f[0])
        self.floor_ms_ = LATENCY_FLOOR * float(y.min())
        return self

    def predict(self, archs: Sequence[str]) -> np.ndarray:
        x = self.table_.latency_ms[self.device_, [self.col_[a] for a in archs]]
        return np.maximum(self.a_ * x + self.b_, self.floor_ms_)
