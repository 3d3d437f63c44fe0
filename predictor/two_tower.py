"""The MLP two-tower latency predictor that `predictor.maple` replaced, kept as a benchmark column.

`python -m predictor.benchmark` scores it beside the bilinear predictor (column `mlp`): it is the
evidence for the choice of regressor. Same interface as `MaplePredictor` (fit / reference_archs /
adapt / predict). What follows is its original description.

MAPLE-style latency predictor: one regressor over (architecture encoding, hardware descriptor).

MAPLE (Abbasi, Wong, Shafiee) trains a single regressor on an *initial set* of many devices, each
described by a hardware descriptor, and adapts it to an unseen target from as few as 3 measured
architectures by mixing those samples into the training set.

What is different here, and why:

* **Descriptor from samples, not counters.** Performance counters are not in the shipped tables (and
  not readable on every machine), so a device is described by what its samples measure: the
  log-latencies of a fixed set of *reference architectures*, centred by their mean ``c``.
* **Relative targets.** Latencies span ~1000x across devices, so the regressor predicts
  ``log(latency) - c``: one regressor serves a 1 ms FPGA and a 180 ms phone alike, and the scale
  comes back from the samples.
* **Synthetic devices.** Twenty-one devices are few points to learn a descriptor -> latency map
  from, so training also draws random mixtures of training devices in log space
  (`TwoTowerConfig.synthetic_fraction`).
* **A factorised regressor.** ``f(arch, descriptor) = g(descriptor) . h(arch)``: an architecture
  tower ``h`` (MLP over `space.features`) and a device tower ``g`` (MLP over the descriptor). Log
  latency tables are close to low rank across devices, so this loses little, and each training step
  scores a whole grid of (device, architecture) pairs for the cost of embedding each once: on 2 CPU
  cores it fits in seconds where an MLP over the concatenated input needed minutes for worse accuracy
  (see predictor/EXPERIMENTS.md).
* **Adaptation in closed form.** "Mixing the samples into the training set" is done for the last
  layer exactly: the target's device embedding ``g(d)`` is the prior mean, and a Bayesian linear
  regression on the samples (prior covariance: the spread of the initial-set devices' embeddings)
  moves it towards them. With only the reference samples this mostly makes them fit exactly; every
  extra sample (e.g. 10 instead of 3) adds information. Fine-tuning the whole network on the mixed
  set, as MAPLE does, was tried and was no better, and slower (README).

The reference architectures are chosen once per initial set by a stated principle: greedy forward
selection of the architectures whose (centred) log-latencies best reconstruct every other
architecture's log-latency across the initial-set devices by ridge regression, leave-one-device-out
(`greedy_references`). `TwoTowerConfig.references = "random"` draws them instead (it was worse).

Fitting is the expensive step, so `fit` caches the fitted state on disk, keyed by a hash of the
table, the architecture features and the fit-time configuration (`predictor.cache`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from predictor.base import FewShotPredictor
from predictor.cache import ModelCache, fingerprint
from predictor.tables import LatencyTable

#: Bump when a change to this module makes old cache entries wrong.
_CACHE_VERSION = 2


@dataclass(frozen=True)
class TwoTowerConfig:
    """Every hyper-parameter of `TwoTowerPredictor`, with the chosen values as defaults.

    The regressor, synthetic-device and adaptation defaults are the best of a 16-trial Ray Tune sweep
    on HELP's NB201 meta-valid devices (`predictor.tune` as of commit a3c17f5, which swept this
    config; the table is in predictor/EXPERIMENTS.md). The architecture of the model and the
    reference selection were chosen by hand on meta-train/meta-valid devices as targets, never on
    meta-test devices.
    """

    #: Reference architectures the target measures; also the descriptor's length.
    n_samples: int = 3
    #: "greedy" (reconstruction-driven selection, see module docstring) or "random" (seeded draw).
    references: str = "greedy"
    #: False drops the hardware descriptor: one latency profile for every device (the ablation).
    use_descriptor: bool = True

    # --- the regressor ---------------------------------------------------------------------------
    #: Width of the shared architecture embedding and of the device embedding.
    rank: int = 64
    arch_hidden: int = 256
    arch_layers: int = 3
    device_hidden: int = 64
    device_layers: int = 2
    steps: int = 3000
    #: Each step scores a grid of this many devices (real or synthetic) by this many architectures.
    devices_per_step: int = 64
    archs_per_step: int = 256
    lr: float = 1.68e-3
    weight_decay: float = 0.0

    # --- synthetic devices -----------------------------------------------------------------------
    #: Fraction of each step's devices that are synthetic mixtures instead of real devices.
    synthetic_fraction: float = 0.081
    #: How many training devices one synthetic device mixes (in log space).
    synthetic_mix: int = 3
    #: Dirichlet concentration of the mixing weights (small: mostly near one device).
    dirichlet_alpha: float = 2.04

    # --- adaptation ------------------------------------------------------------------------------
    #: Noise of the samples relative to the prior spread of device embeddings in the Bayesian
    #: update: small trusts the samples, large keeps the descriptor's prediction.
    adapt_noise: float = 0.0174

    #: Greedy selection reconstructs this many architectures (a fixed subsample) and picks from this
    #: many candidates; bounds its cost on large tables.
    greedy_eval_archs: int = 2000
    greedy_candidates: int = 3000
    greedy_ridge: float = 1e-3
    #: Devices whose log-latencies correlate at least this much with a held-out device are held out
    #: with it while scoring references (1.0: plain leave-one-device-out, the default).
    greedy_cluster_corr: float = 1.0

    #: Seed of the regressor's initialisation and training batches (and of random references).
    seed: int = 0
    #: Cache fitted models on disk (`HWNAS_CACHE_DIR`, default ~/.cache/hwnas).
    cache: bool = True

    def validate(self) -> None:
        if self.n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        if self.references not in ("greedy", "random"):
            raise ValueError(f"references must be 'greedy' or 'random', not {self.references!r}")
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise ValueError("synthetic_fraction must lie in [0, 1]")
        if self.adapt_noise <= 0:
            raise ValueError("adapt_noise must be positive")


#: Fields that only change `adapt`/`predict`, so they do not key the fitted-model cache.
_ADAPT_FIELDS = frozenset({"adapt_noise", "cache"})


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread, restoring the caller's setting afterwards.

    The regressor's matrices are small (hundreds wide), so a second thread gains little when the
    machine is idle, and when other jobs share the cores torch's worker threads spin-wait: measured
    on the 2-core dev VM under load, a training step took 265 ms on 2 threads and 27 ms on one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mlp(n_in: int, hidden: int, n_layers: int, n_out: int) -> torch.nn.Sequential:
    layers, width = [], n_in
    for _ in range(n_layers):
        layers += [torch.nn.Linear(width, hidden), torch.nn.SiLU()]
        width = hidden
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


class _TwoTower(torch.nn.Module):
    """``y[device, arch] = g(descriptor)[:r] . h(arch) + g(descriptor)[r]`` (standardised centred log ms)."""

    def __init__(self, n_features: int, n_descriptor: int, cfg: TwoTowerConfig):
        super().__init__()
        self.arch = _mlp(n_features, cfg.arch_hidden, cfg.arch_layers, cfg.rank)
        # Without a descriptor every device gets the same learnt embedding: the ablation.
        self.device = _mlp(n_descriptor, cfg.device_hidden, cfg.device_layers, cfg.rank + 1) if n_descriptor else None
        self.constant = torch.nn.Parameter(torch.zeros(cfg.rank + 1))

    def embed_archs(self, features: torch.Tensor) -> torch.Tensor:
        """Architecture embeddings with a trailing 1 for the device bias, shape (n, rank + 1)."""
        h = self.arch(features)
        return torch.cat([h, torch.ones(len(h), 1)], dim=1)

    def embed_devices(self, descriptors: torch.Tensor) -> torch.Tensor:
        if self.device is None:
            return self.constant.expand(len(descriptors), -1)
        return self.device(descriptors)

    def forward(self, features: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
        """Grid of predictions, shape (n_devices, n_archs)."""
        return self.embed_devices(descriptors) @ self.embed_archs(features).T


def greedy_references(log_lat: np.ndarray, k: int, *, start: Sequence[int] = (), eval_cols: np.ndarray,
                      candidates: np.ndarray, ridge: float = 1e-3, leave_out: np.ndarray | None = None) -> list[int]:
    """Greedy forward selection of `k` columns of `log_lat` (devices x archs) as reference archs.

    The chosen set S is the one whose descriptor ``d_i = log_lat[i, S] - c_i`` (``c_i`` the mean over
    S) best predicts every evaluation column ``log_lat[i, e] - c_i`` by ridge regression across
    devices, scored on held-out devices: exactly the question the predictor faces for an unseen
    device, asked of a linear model. Device ``i`` is predicted from a fit that leaves out
    ``leave_out[i]`` (boolean devices x devices; default: ``i`` alone, i.e. leave-one-device-out).
    Returns column indices, `start` first, in selection order.
    """
    chosen = [int(c) for c in start]
    n_dev = log_lat.shape[0]
    keep = ~(np.eye(n_dev, dtype=bool) if leave_out is None else (leave_out | np.eye(n_dev, dtype=bool)))
    keep = keep.astype(np.float64)
    # The residuals are (I - M) Y with Y = T - c 1^T (T: evaluated columns), so their squared sum
    # needs only the device x device products of T, computed once: selection stays ~seconds.
    target = log_lat[:, eval_cols]
    t_gram, t_sum, n_eval = target @ target.T, target.sum(axis=1), target.shape[1]
    while len(chosen) < k:
        best, best_col = np.inf, -1
        base_sum = log_lat[:, chosen].sum(axis=1) if chosen else np.zeros(n_dev)
        for col in candidates:
            if col in chosen:
                continue
            cols = chosen + [int(col)]
            c = (base_sum + log_lat[:, col]) / len(cols)
            x = np.column_stack([np.ones(n_dev), log_lat[:, cols] - c[:, None]])
            penalty = ridge * np.eye(x.shape[1])
            penalty[0, 0] = 0.0  # no penalty on the intercept
            # One ridge fit per held-out device i on the devices it keeps: its prediction of device
            # i is sum_j M[i, j] y_j with M[i, j] = keep[i, j] x_i^T G_i^-1 x_j.
            kept_t = (keep[:, :, None] * x[None]).transpose(0, 2, 1)  # (held-out, p, devices)
            weights = np.linalg.solve(kept_t @ x + penalty, kept_t)  # (held-out, p, devices)
            resid_map = np.eye(n_dev) - (x[:, None, :] @ weights)[:, 0, :]
            y_gram = t_gram - np.outer(t_sum, c) - np.outer(c, t_sum) + n_eval * np.outer(c, c)
            score = float(np.einsum("ij,jk,ik->", resid_map, y_gram, resid_map))
            if score < best:
                best, best_col = score, int(col)
        if best_col < 0:  # fewer candidates than k: fall back to the remaining columns in order
            best_col = next(c for c in range(log_lat.shape[1]) if c not in chosen)
        chosen.append(best_col)
    return chosen


class TwoTowerPredictor(FewShotPredictor):
    """Latency predictor for an unseen device from a few measured architectures (MAPLE-style).

    `fit(table)` learns from the initial set (every device in `table`); `reference_archs()` names
    the architectures the target must measure; `adapt(samples)` takes those measurements (ms);
    `predict(archs)` returns predicted latencies (ms) on the target. Works through the
    `SearchSpace` interface only (`space.features`), so architectures outside the table are fine.
    """

    config_class = TwoTowerConfig
    fitted_attr = "net_"

    # --- fitting ---------------------------------------------------------------------------------
    def _cache_key(self, table: LatencyTable, features: np.ndarray) -> str:
        fit_fields = {k: v for k, v in dataclasses.asdict(self._cfg()).items() if k not in _ADAPT_FIELDS}
        header = f"two-tower-v{_CACHE_VERSION}|{type(self.space).__module__}.{type(self.space).__qualname__}"
        return fingerprint(header, fit_fields, table, np.asarray(features, dtype=np.float32))

    def fit(self, table: LatencyTable) -> "TwoTowerPredictor":
        """Learn from the initial set: every device in `table` (latencies in ms). Returns self."""
        cfg = self._cfg()
        cfg.validate()
        if len(table.devices) < 2:
            raise ValueError("the initial set needs at least 2 devices")
        if len(table.archs) <= cfg.n_samples:
            raise ValueError(f"the initial set needs more than n_samples={cfg.n_samples} architectures")
        self.table_ = table
        self.features_ = np.asarray(self.space.features(list(table.archs)), dtype=np.float32)
        self.log_lat_ = np.log(np.asarray(table.latency_ms, dtype=np.float64))

        cache = ModelCache() if cfg.cache else None
        key = self._cache_key(table, self.features_)
        state = cache.load(key) if cache is not None else None
        if state is not None:
            try:
                self._load_state(state, cfg)
            except (KeyError, RuntimeError, ValueError, TypeError, AttributeError):
                state = None  # an entry from an incompatible layout: rebuild it
        if state is None:
            with _one_thread():
                state = self._train(cfg)
            self._load_state(state, cfg)
            if cache is not None:
                cache.save(key, state)
        for attr in ("embedding_", "offset_", "descriptor_"):
            self.__dict__.pop(attr, None)
        return self

    def _load_state(self, state: dict, cfg: TwoTowerConfig) -> None:
        net = _TwoTower(self.features_.shape[1], cfg.n_samples if cfg.use_descriptor else 0, cfg)
        net.load_state_dict(state["net"])
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        refs = [int(r) for r in state["reference_order"]]
        if len(refs) < cfg.n_samples or max(refs) >= len(self.table_.archs):
            raise ValueError("cached reference order does not fit this table")
        self.reference_order_ = refs
        self.desc_mean_ = state["desc_mean"].numpy().astype(np.float32)
        self.desc_std_ = state["desc_std"].numpy().astype(np.float32)
        self.y_scale_ = float(state["y_scale"])
        self.prior_cov_ = state["prior_cov"].numpy().astype(np.float64)
        self.net_ = net

    def _choose_references(self, cfg: TwoTowerConfig, k: int, start: Sequence[int] = ()) -> list[int]:
        n_arch = self.log_lat_.shape[1]
        if cfg.references == "random":
            order = np.random.default_rng(cfg.seed).permutation(n_arch)
            return list(start) + [int(c) for c in order if c not in start][: k - len(start)]
        # A fixed seed for the subsamples: the reference set must not depend on the regressor's
        # seed, so a target measured once serves every refit.
        rng = np.random.default_rng(12345)
        eval_cols = np.sort(rng.choice(n_arch, min(cfg.greedy_eval_archs, n_arch), replace=False))
        candidates = np.sort(rng.choice(n_arch, min(cfg.greedy_candidates, n_arch), replace=False))
        # Optionally hold out near-duplicates of a held-out device with it (same GPU at another batch
        # size, say). Off by default: on dev targets with their near-duplicates removed it did not
        # help (±10% 0.633 vs 0.662, predictor/EXPERIMENTS.md).
        leave_out = np.corrcoef(self.log_lat_) >= cfg.greedy_cluster_corr
        return greedy_references(self.log_lat_, k, start=start, eval_cols=eval_cols, candidates=candidates,
                                 ridge=cfg.greedy_ridge, leave_out=leave_out)

    def _train(self, cfg: TwoTowerConfig) -> dict:
        refs = self._choose_references(cfg, cfg.n_samples)
        ref_log = self.log_lat_[:, refs]
        offsets = ref_log.mean(axis=1)
        desc = ref_log - offsets[:, None]
        desc_mean, desc_std = desc.mean(axis=0), desc.std(axis=0) + 1e-3
        y_scale = float(np.std(self.log_lat_ - offsets[:, None])) + 1e-6

        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            net = _TwoTower(self.features_.shape[1], cfg.n_samples if cfg.use_descriptor else 0, cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        rng = np.random.default_rng(cfg.seed)
        features = torch.from_numpy(self.features_)
        net.train()
        for _ in range(cfg.steps):
            cols, y, d = self._draw_grid(cfg, rng, refs)
            d = torch.from_numpy(((d - desc_mean) / desc_std).astype(np.float32))
            y = torch.from_numpy((y / y_scale).astype(np.float32))
            loss = torch.mean((net(features[cols], d) - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()

        # Prior spread of device embeddings for the Bayesian adaptation: the least-squares embedding
        # of each initial-set device on the learnt architecture embeddings.
        with torch.no_grad():
            arch_emb = net.embed_archs(features).numpy().astype(np.float64)
        y_all = ((self.log_lat_ - offsets[:, None]) / y_scale).T
        dev_emb = np.linalg.lstsq(arch_emb, y_all, rcond=None)[0].T
        prior_cov = np.cov(dev_emb.T) + 1e-6 * np.eye(dev_emb.shape[1])
        return {"reference_order": [int(r) for r in refs], "y_scale": y_scale,
                "desc_mean": torch.as_tensor(desc_mean, dtype=torch.float32),
                "desc_std": torch.as_tensor(desc_std, dtype=torch.float32),
                "prior_cov": torch.as_tensor(prior_cov, dtype=torch.float64),
                "net": {k: v.detach().clone() for k, v in net.state_dict().items()}}

    def _draw_grid(self, cfg: TwoTowerConfig, rng: np.random.Generator, refs: Sequence[int]):
        """A training grid: architecture columns, centred log-latencies (devices x archs), descriptors.

        Devices are real initial-set devices or synthetic ones: Dirichlet-weighted mixtures of
        `synthetic_mix` real devices in log space (a device "between" them, e.g. a GPU of another
        generation), so the descriptor -> latency map is learnt from more than 21 points.
        """
        n_dev, n_arch = self.log_lat_.shape
        n_cols = min(cfg.archs_per_step, n_arch)
        cols = rng.choice(n_arch, n_cols, replace=False)
        n_rows = cfg.devices_per_step
        n_syn = int(round(cfg.synthetic_fraction * n_rows))
        weights = np.zeros((n_rows, n_dev))
        weights[np.arange(n_rows - n_syn), rng.integers(0, n_dev, n_rows - n_syn)] = 1.0
        if n_syn:
            m = min(cfg.synthetic_mix, n_dev)
            picks = np.argsort(rng.random((n_syn, n_dev)), axis=1)[:, :m]
            w = rng.dirichlet(np.full(m, cfg.dirichlet_alpha), size=n_syn)
            np.put_along_axis(weights[n_rows - n_syn:], picks, w, axis=1)
        lat = weights @ self.log_lat_[:, cols]
        ref_log = weights @ self.log_lat_[:, list(refs)]
        offset = ref_log.mean(axis=1, keepdims=True)
        return cols, lat - offset, ref_log - offset

    # --- the target ------------------------------------------------------------------------------
    def _descriptor_input(self, desc: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(desc, dtype=np.float32) - self.desc_mean_) / self.desc_std_)[None])

    def adapt(self, samples: Mapping[str, float]) -> "TwoTowerPredictor":
        """Adapt to the target from measured latencies in ms, ``{arch_str: latency_ms}``. Returns self.

        Best with `reference_archs()`; any architectures of the space work (the missing reference
        latencies are then inferred through the regressor). Only these samples are seen.
        """
        with _one_thread():
            return self._adapt(samples)

    def _adapt(self, samples: Mapping[str, float]) -> "TwoTowerPredictor":
        cfg = self._cfg()
        archs, y = self._measured(samples)
        log_y = np.log(y)
        with torch.no_grad():
            arch_emb = self.net_.embed_archs(torch.from_numpy(
                np.asarray(self.space.features(archs), dtype=np.float32))).numpy().astype(np.float64)
        refs = [self.table_.archs[j] for j in self.reference_order_[: cfg.n_samples]]
        if all(r in samples for r in refs):
            ref_log = np.log([samples[r] for r in refs])
            offset = float(ref_log.mean())
            desc = ref_log - offset
            with torch.no_grad():
                prior = self.net_.embed_devices(self._descriptor_input(desc))[0].numpy().astype(np.float64)
        else:
            offset, desc, prior = self._infer_descriptor(arch_emb, log_y, cfg)

        # Bayesian linear regression of the samples on the architecture embeddings, prior mean =
        # the descriptor's device embedding, prior covariance = the initial set's spread of them.
        resid = (log_y - offset) / self.y_scale_ - arch_emb @ prior
        gain = self.prior_cov_ @ arch_emb.T
        system = arch_emb @ gain + cfg.adapt_noise * np.eye(len(archs))
        self.embedding_ = prior + gain @ np.linalg.solve(system, resid)
        self.offset_, self.descriptor_ = offset, desc
        return self

    def _infer_descriptor(self, arch_emb: np.ndarray, log_y: np.ndarray, cfg: TwoTowerConfig):
        """Offset, descriptor and device embedding that best explain samples lacking some references.

        A least-squares fit over the (centred) descriptor through the device tower, pulled towards
        the initial set's descriptors so that a few samples cannot push it off what was learnt; the
        offset is the mean residual (log ms).
        """
        emb_t = torch.from_numpy(arch_emb.astype(np.float32))
        target = torch.from_numpy(log_y.astype(np.float32))
        mean, std = torch.from_numpy(self.desc_mean_), torch.from_numpy(self.desc_std_)
        z = torch.zeros(len(mean), requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)

        def descriptor(z):
            d = mean + std * z
            return d - d.mean()  # a descriptor is centred by construction

        for _ in range(200 if self.net_.device is not None else 0):
            pred = (emb_t @ self.net_.embed_devices(((descriptor(z) - mean) / std)[None])[0]) * self.y_scale_
            off = torch.mean(target - pred).detach()
            loss = torch.mean((pred + off - target) ** 2) + 1e-2 * torch.mean(z ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            desc = descriptor(z).numpy().astype(np.float64)
            prior = self.net_.embed_devices(self._descriptor_input(desc))[0].numpy().astype(np.float64)
        offset = float(np.mean(log_y - arch_emb @ prior * self.y_scale_))
        return offset, desc, prior

    def predict(self, archs: Sequence[str]) -> np.ndarray:
        """Predicted latency in ms on the adapted target, one per architecture."""
        self._check_fitted("embedding_")
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        features = np.asarray(self.space.features(archs), dtype=np.float32)
        out = np.empty(len(archs))
        with torch.no_grad(), _one_thread():
            for s in range(0, len(archs), 8192):
                emb = self.net_.embed_archs(torch.from_numpy(features[s:s + 8192])).numpy().astype(np.float64)
                out[s:s + 8192] = emb @ self.embedding_
        return np.exp(out * self.y_scale_ + self.offset_)
