"""MAPLE-style latency predictor: one regressor over (architecture encoding, hardware descriptor).

MAPLE (Abbasi, Wong, Shafiee) trains a single regressor on an *initial set* of many devices, each
described by a hardware descriptor, and adapts it to an unseen target from as few as 3 measured
architectures by mixing those samples into the training set.

Performance counters are not in the shipped tables, so the descriptor here is built from what the
target's samples measure: the log-latencies of a fixed set of *reference architectures*, centred by
their mean. Latencies span ~1000x across devices, so the regressor predicts
``log(latency) - c`` where ``c`` is the device's mean log-latency over the references: one
regressor then serves a 1 ms FPGA and a 180 ms phone alike, and the scale comes back from the
samples at prediction time.

Twenty-one devices are few points to learn a descriptor -> profile map from, so training also draws
*synthetic devices*: random mixtures of training devices (see `MapleConfig.synthetic_fraction`).

The reference architectures are chosen once per initial set by a stated principle: greedy forward
selection of the architectures whose (centred) log-latencies best reconstruct every other
architecture's log-latency across the initial-set devices by ridge regression, leave-one-device-out
(`greedy_references`). `MapleConfig.references = "random"` draws them instead (for comparison).

Fitting the regressor is the expensive step, so `fit` caches the fitted state on disk, keyed by a
hash of the table, the architecture features and the fit-time configuration (see `predictor.cache`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from predictor.cache import ModelCache
from predictor.tables import LatencyTable
from search_spaces.base import SearchSpace

#: Bump when a change to this module makes old cache entries wrong.
_CACHE_VERSION = 1


@dataclass(frozen=True)
class MapleConfig:
    """Every hyper-parameter of `MaplePredictor`, with the chosen values as defaults."""

    #: Reference architectures the target measures; also the descriptor's length.
    n_samples: int = 3
    #: "greedy" (reconstruction-driven selection, see module docstring) or "random" (seeded draw).
    references: str = "greedy"
    #: False drops the hardware descriptor from the regressor's input (the ablation).
    use_descriptor: bool = True

    # --- the regressor ---------------------------------------------------------------------------
    hidden: int = 256
    n_layers: int = 3
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 0.0

    # --- synthetic devices -----------------------------------------------------------------------
    #: Fraction of each training batch that comes from synthetic devices instead of real ones.
    synthetic_fraction: float = 0.5
    #: How many training devices one synthetic device mixes.
    synthetic_mix: int = 3
    #: "log" mixes log-latencies (a geometric mean of devices); "linear" mixes latencies, each device
    #: first scaled to mean 1 (a device whose run time is a sum of parts behaving like different devices).
    synthetic_space: str = "log"
    #: Dirichlet concentration of the mixing weights (small: mostly near one device).
    dirichlet_alpha: float = 1.0

    # --- adaptation ------------------------------------------------------------------------------
    #: Fine-tuning steps on the initial set mixed with the target's samples (0: descriptor only).
    adapt_steps: int = 100
    adapt_lr: float = 3e-4
    #: Weight of the target samples' loss relative to the initial-set batch loss while adapting.
    adapt_sample_weight: float = 1.0
    #: Initial-set rows per adaptation step.
    adapt_batch_size: int = 256

    #: Greedy selection reconstructs this many architectures (a fixed subsample) and picks from this
    #: many candidates; bounds the cost on large tables.
    greedy_eval_archs: int = 2000
    greedy_candidates: int = 3000
    greedy_ridge: float = 1e-3

    seed: int = 0
    #: Seed of the adaptation's initial-set batches (varied across benchmark trials; no refit needed).
    adapt_seed: int = 0
    #: Cache fitted models on disk (`HWNAS_CACHE_DIR`, default ~/.cache/hwnas).
    cache: bool = True

    def validate(self) -> None:
        if self.n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        if self.references not in ("greedy", "random"):
            raise ValueError(f"references must be 'greedy' or 'random', not {self.references!r}")
        if self.synthetic_space not in ("log", "linear"):
            raise ValueError(f"synthetic_space must be 'log' or 'linear', not {self.synthetic_space!r}")
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise ValueError("synthetic_fraction must lie in [0, 1]")


#: Fields that only change `adapt`/`predict`, so they do not key the fitted-model cache.
_ADAPT_FIELDS = frozenset({"adapt_steps", "adapt_lr", "adapt_sample_weight", "adapt_batch_size", "adapt_seed",
                           "cache"})


class _Regressor(torch.nn.Module):
    """MLP over [architecture features, standardised descriptor] -> standardised centred log-latency."""

    def __init__(self, n_in: int, hidden: int, n_layers: int):
        super().__init__()
        layers, width = [], n_in
        for _ in range(n_layers):
            layers += [torch.nn.Linear(width, hidden), torch.nn.SiLU()]
            width = hidden
        layers.append(torch.nn.Linear(width, 1))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(-1)


def greedy_references(log_lat: np.ndarray, k: int, *, start: Sequence[int] = (), eval_cols: np.ndarray,
                      candidates: np.ndarray, ridge: float = 1e-3) -> list[int]:
    """Greedy forward selection of `k` columns of `log_lat` (devices x archs) as reference archs.

    The chosen set S is the one whose descriptor ``d_i = log_lat[i, S] - c_i`` (``c_i`` the mean over
    S) best predicts every evaluation column ``log_lat[i, e] - c_i`` by ridge regression across
    devices, scored leave-one-device-out: exactly the question the predictor faces for an unseen
    device, asked of a linear model. Returns column indices, `start` first, in selection order.
    """
    chosen = list(start)
    n_dev = log_lat.shape[0]
    target = log_lat[:, eval_cols]
    while len(chosen) < k:
        best, best_col = np.inf, -1
        base_sum = log_lat[:, chosen].sum(axis=1) if chosen else np.zeros(n_dev)
        for col in candidates:
            if col in chosen:
                continue
            cols = chosen + [int(col)]
            c = (base_sum + log_lat[:, col]) / len(cols)
            design = np.column_stack([np.ones(n_dev), log_lat[:, cols] - c[:, None]])
            y = target - c[:, None]
            gram = design.T @ design + ridge * np.eye(design.shape[1])
            gram[0, 0] -= ridge  # no penalty on the intercept
            inv = np.linalg.pinv(gram)
            hat_diag = np.einsum("ij,jk,ik->i", design, inv, design)
            resid = y - design @ (inv @ (design.T @ y))
            loo = resid / np.clip(1.0 - hat_diag, 1e-6, None)[:, None]
            score = float(np.mean(loo ** 2))
            if score < best:
                best, best_col = score, int(col)
        chosen.append(best_col)
    return chosen


class MaplePredictor:
    """Latency predictor for an unseen device from a few measured architectures (MAPLE-style).

    `fit(table)` learns from the initial set (every device in `table`); `reference_archs()` names
    the architectures the target must measure; `adapt(samples)` takes those measurements (ms);
    `predict(archs)` returns predicted latencies (ms) on the target. Works through the
    `SearchSpace` interface only (`space.features`), so archs outside the table are fine.
    """

    def __init__(self, space: SearchSpace, config: MapleConfig | None = None):
        self.space = space
        self.config = config

    # --- fitting ---------------------------------------------------------------------------------
    def _cfg(self) -> MapleConfig:
        return self.config if self.config is not None else MapleConfig()

    def _cache_key(self, table: LatencyTable, features: np.ndarray) -> str:
        cfg = self._cfg()
        h = hashlib.sha256()
        h.update(f"maple-v{_CACHE_VERSION}|{type(self.space).__module__}.{type(self.space).__qualname__}".encode())
        fit_fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _ADAPT_FIELDS}
        h.update(repr(sorted(fit_fields.items())).encode())
        h.update("\0".join(table.devices).encode())
        h.update("\0".join(table.archs).encode())
        h.update(np.ascontiguousarray(table.latency_ms, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
        return h.hexdigest()[:32]

    def fit(self, table: LatencyTable) -> "MaplePredictor":
        """Learn from the initial set: every device in `table` (latencies in ms)."""
        cfg = self._cfg()
        cfg.validate()
        if len(table.devices) < 2:
            raise ValueError("the initial set needs at least 2 devices")
        if len(table.archs) <= cfg.n_samples:
            raise ValueError(f"the initial set needs more than n_samples={cfg.n_samples} architectures")
        self.table_ = table
        self.features_ = np.asarray(self.space.features(list(table.archs)), dtype=np.float32)
        self.log_lat_ = np.log(table.latency_ms).astype(np.float64)
        self._col = {a: j for j, a in enumerate(table.archs)}

        cache = ModelCache() if cfg.cache else None
        key = self._cache_key(table, self.features_)
        state = cache.load(key) if cache is not None else None
        if state is None:
            state = self._train(cfg)
            if cache is not None:
                cache.save(key, state)
        self.reference_order_ = list(state["reference_order"])
        self.desc_mean_ = np.asarray(state["desc_mean"].numpy(), dtype=np.float32)
        self.desc_std_ = np.asarray(state["desc_std"].numpy(), dtype=np.float32)
        self.y_scale_ = float(state["y_scale"])
        self.net_ = self._new_net(cfg)
        self.net_.load_state_dict(state["net"])
        self.net_.eval()
        for attr in ("target_net_", "offset_", "descriptor_"):
            self.__dict__.pop(attr, None)
        return self

    def _new_net(self, cfg: MapleConfig) -> _Regressor:
        n_in = self.features_.shape[1] + (cfg.n_samples if cfg.use_descriptor else 0)
        return _Regressor(n_in, cfg.hidden, cfg.n_layers)

    def _choose_references(self, cfg: MapleConfig, k: int, start: Sequence[int] = ()) -> list[int]:
        n_arch = self.log_lat_.shape[1]
        # Fixed seeds: the reference set must not depend on the regressor's seed, so a target can be
        # measured once and reused.
        rng = np.random.default_rng(12345)
        if cfg.references == "random":
            order = list(np.random.default_rng(cfg.seed).permutation(n_arch))
            return list(start) + [c for c in order if c not in start][: k - len(start)]
        eval_cols = np.sort(rng.choice(n_arch, min(cfg.greedy_eval_archs, n_arch), replace=False))
        candidates = np.sort(rng.choice(n_arch, min(cfg.greedy_candidates, n_arch), replace=False))
        return greedy_references(self.log_lat_, k, start=start, eval_cols=eval_cols, candidates=candidates,
                                 ridge=cfg.greedy_ridge)

    def _train(self, cfg: MapleConfig) -> dict:
        refs = self._choose_references(cfg, cfg.n_samples)
        ref_log = self.log_lat_[:, refs]
        offsets = ref_log.mean(axis=1)
        desc = ref_log - offsets[:, None]
        desc_mean, desc_std = desc.mean(axis=0), desc.std(axis=0) + 1e-3
        y_scale = float(np.std(self.log_lat_ - offsets[:, None])) + 1e-6
        state = {"reference_order": [int(r) for r in refs], "y_scale": y_scale,
                 "desc_mean": torch.as_tensor(desc_mean, dtype=torch.float32),
                 "desc_std": torch.as_tensor(desc_std, dtype=torch.float32)}
        self.desc_mean_, self.desc_std_ = desc_mean.astype(np.float32), desc_std.astype(np.float32)
        self.y_scale_ = y_scale
        self.reference_order_ = state["reference_order"]

        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            net = self._new_net(cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        rng = np.random.default_rng(cfg.seed)
        net.train()
        for _ in range(cfg.steps):
            x, y = self._initial_batch(cfg, rng, cfg.batch_size)
            loss = torch.mean((net(x) - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        state["net"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return state

    def _initial_batch(self, cfg: MapleConfig, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` (architecture, device) rows from the initial set, real or synthetic devices."""
        n_dev, n_arch = self.log_lat_.shape
        refs = self.reference_order_[: cfg.n_samples]
        cols = rng.integers(0, n_arch, n)
        weights = np.zeros((n, n_dev))
        n_syn = int(round(cfg.synthetic_fraction * n))
        weights[np.arange(n - n_syn), rng.integers(0, n_dev, n - n_syn)] = 1.0
        if n_syn:
            m = min(cfg.synthetic_mix, n_dev)
            picks = np.argsort(rng.random((n_syn, n_dev)), axis=1)[:, :m]
            w = rng.dirichlet(np.full(m, cfg.dirichlet_alpha), size=n_syn)
            np.put_along_axis(weights[n - n_syn:], picks, w, axis=1)
        if cfg.synthetic_space == "log":
            y_log = np.einsum("nd,dn->n", weights, self.log_lat_[:, cols])
            ref_log = weights @ self.log_lat_[:, refs]
        else:
            scaled = np.exp(self.log_lat_ - self.log_lat_.mean(axis=1, keepdims=True))
            y_log = np.log(np.einsum("nd,dn->n", weights, scaled[:, cols]))
            ref_log = np.log(weights @ scaled[:, refs])
        offset = ref_log.mean(axis=1)
        y = (y_log - offset) / self.y_scale_
        x = self._inputs(self.features_[cols], ref_log - offset[:, None], cfg)
        return x, torch.as_tensor(y, dtype=torch.float32)

    def _inputs(self, features: np.ndarray, desc: np.ndarray | None, cfg: MapleConfig) -> torch.Tensor:
        feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if not cfg.use_descriptor:
            return feats
        d = (np.asarray(desc, dtype=np.float32) - self.desc_mean_) / self.desc_std_
        if d.ndim == 1:
            d = np.repeat(d[None, :], len(feats), axis=0)
        return torch.cat([feats, torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))], dim=1)

    # --- the target ------------------------------------------------------------------------------
    def _check_fitted(self, attr: str = "net_", what: str = "fit") -> None:
        if not hasattr(self, attr):
            raise NotFittedError(f"this MaplePredictor is not {what}ted yet: call "
                                 + ("fit(table) first" if what == "fit" else "adapt(samples) after fit(table)"))

    def reference_archs(self, k: int | None = None) -> list[str]:
        """The `k` architectures the target must measure (default `config.n_samples`).

        Deterministic for a given initial set and configuration, and nested: the first
        `n_samples` are always the descriptor's references.
        """
        self._check_fitted()
        cfg = self._cfg()
        k = cfg.n_samples if k is None else int(k)
        if not 1 <= k <= len(self.table_.archs):
            raise ValueError(f"k must lie in 1..{len(self.table_.archs)}")
        if k > len(self.reference_order_):
            self.reference_order_ = self._choose_references(cfg, k, start=self.reference_order_)
        return [self.table_.archs[j] for j in self.reference_order_[:k]]

    def adapt(self, samples: Mapping[str, float]) -> "MaplePredictor":
        """Adapt to the target from measured latencies in ms, ``{arch_str: latency_ms}``.

        Best with `reference_archs()`; any architectures of the space work (the missing reference
        latencies are then inferred from the regressor).
        """
        self._check_fitted()
        cfg = self._cfg()
        archs = list(samples)
        if not archs:
            raise ValueError("adapt needs at least one measured architecture")
        y = np.array([samples[a] for a in archs], dtype=np.float64)
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("measured latencies must be positive numbers of ms")
        log_y = np.log(y)
        feats = np.asarray(self.space.features(archs), dtype=np.float32)
        refs = [self.table_.archs[j] for j in self.reference_order_[: cfg.n_samples]]
        if cfg.use_descriptor and all(r in samples for r in refs):
            ref_log = np.log([samples[r] for r in refs])
            offset = float(ref_log.mean())
            desc = (ref_log - offset).astype(np.float32)
        else:
            offset, desc = self._infer_descriptor(feats, log_y, cfg)

        net = copy.deepcopy(self.net_)
        if cfg.adapt_steps > 0:
            self._fine_tune(net, feats, log_y, offset, desc, cfg)
        self.target_net_, self.offset_, self.descriptor_ = net, offset, desc
        return self

    def _infer_descriptor(self, feats: np.ndarray, log_y: np.ndarray, cfg: MapleConfig):
        """Offset and descriptor that make the regressor best match samples lacking some references.

        A least-squares fit over the descriptor, pulled towards the initial set's descriptors (in
        their standardised units) so that a few samples cannot push it off what was learnt.
        """
        if not cfg.use_descriptor:
            with torch.no_grad():
                pred = self.net_(self._inputs(feats, None, cfg)).numpy() * self.y_scale_
            return float(np.mean(log_y - pred)), None
        z = torch.zeros(cfg.n_samples, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)
        feats_t = torch.as_tensor(feats)
        target = torch.as_tensor(log_y, dtype=torch.float32)
        mean, std = torch.as_tensor(self.desc_mean_), torch.as_tensor(self.desc_std_)
        for p in self.net_.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(200):
                desc = mean + std * z
                desc = desc - desc.mean()  # a descriptor is centred by construction
                x = torch.cat([feats_t, ((desc - mean) / std).expand(len(feats_t), -1)], dim=1)
                pred = self.net_(x) * self.y_scale_
                off = torch.mean(target - pred).detach()
                loss = torch.mean((pred + off - target) ** 2) + 1e-2 * torch.mean(z ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for p in self.net_.parameters():
                p.requires_grad_(True)
        with torch.no_grad():
            desc = mean + std * z
            desc = (desc - desc.mean()).numpy()
            x = self._inputs(feats, desc, cfg)
            off = float(np.mean(log_y - self.net_(x).numpy() * self.y_scale_))
        return off, desc.astype(np.float32)

    def _fine_tune(self, net: _Regressor, feats, log_y, offset, desc, cfg: MapleConfig) -> None:
        """MAPLE's adaptation: keep training on the initial set with the target's samples mixed in."""
        rng = np.random.default_rng([cfg.seed, cfg.adapt_seed, 1])
        x_t = self._inputs(feats, desc, cfg)
        y_t = torch.as_tensor((log_y - offset) / self.y_scale_, dtype=torch.float32)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.adapt_lr)
        net.train()
        for _ in range(cfg.adapt_steps):
            x, y = self._initial_batch(cfg, rng, cfg.adapt_batch_size)
            loss = torch.mean((net(x) - y) ** 2) + cfg.adapt_sample_weight * torch.mean((net(x_t) - y_t) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()

    def predict(self, archs: Sequence[str]) -> np.ndarray:
        """Predicted latency in ms on the adapted target, one per architecture."""
        self._check_fitted("target_net_", "adap")
        cfg = self._cfg()
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        feats = np.asarray(self.space.features(archs), dtype=np.float32)
        out = np.empty(len(archs))
        with torch.no_grad():
            for s in range(0, len(archs), 8192):
                x = self._inputs(feats[s:s + 8192], self.descriptor_, cfg)
                out[s:s + 8192] = self.target_net_(x).numpy()
        return np.exp(out * self.y_scale_ + self.offset_)
