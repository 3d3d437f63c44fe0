"""What every few-sample latency predictor here shares: the fit / reference_archs / adapt / predict contract.

A subclass names its config dataclass (`config_class`, with `n_samples`) and the attribute `fit`
sets (`fitted_attr`), sets `table_` and `reference_order_` in `fit`, and implements
`_choose_references(cfg, k, start)`, `adapt` and `predict`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from sklearn.exceptions import NotFittedError

from search_spaces.base import SearchSpace

#: Floor of a predicted latency as a fraction of the smallest sample: a sum of costs, or an affine
#: map, fitted to a few samples can dip below zero far from them, and a latency cannot.
LATENCY_FLOOR = 1e-3


class FewShotPredictor:
    config_class: type
    fitted_attr: str

    def __init__(self, space: SearchSpace, config=None, progress: bool = False):
        self.space = space
        self.config = config
        self.progress = progress  # a bar on stderr over the slow part of `fit`, for command-line use

    def _cfg(self):
        return self.config if self.config is not None else self.config_class()

    def _check_fitted(self, attr: str | None = None) -> None:
        attr = attr or self.fitted_attr
        if not hasattr(self, attr):
            step = "fit(table)" if attr == self.fitted_attr else "adapt(samples) after fit(table)"
            raise NotFittedError(f"this {type(self).__name__} is not ready: call {step} first")

    def reference_archs(self, k: int | None = None) -> list[str]:
        """The `k` architectures the target must measure (default `config.n_samples`).

        Deterministic for a given initial set and configuration, and nested: the first
        `n_samples` are always the same, more extend them.
        """
        self._check_fitted()
        cfg = self._cfg()
        k = cfg.n_samples if k is None else int(k)
        if not 1 <= k <= self._max_references():
            raise ValueError(f"a target can be asked to measure 1 to {self._max_references()} of the initial "
                             f"set's architectures, not {k}")
        if k > len(self.reference_order_):
            self.reference_order_ = self._choose_references(cfg, k, start=self.reference_order_)
        return [self.table_.archs[j] for j in self.reference_order_[:k]]

    def _max_references(self) -> int:
        """How many distinct architectures of the initial set a target may be asked to measure."""
        return len(self.table_.archs)

    def _measured(self, samples: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
        """The samples' architectures and latencies (ms), checked: at least one, all positive and finite."""
        self._check_fitted()
        archs = list(samples)
        if not archs:
            raise ValueError("adapt needs at least one measured architecture")
        y = np.array([samples[a] for a in archs], dtype=np.float64)
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("measured latencies must be positive numbers of ms")
        return archs, y
