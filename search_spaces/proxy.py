"""Training-free accuracy proxies computed on a space's freshly initialised PyTorch module.

- ``naswot``: Mellor et al., "Neural Architecture Search without Training" (ICML 2021). Every ReLU's input over a
  minibatch gives each sample a binary code (unit active or not); the kernel K[i, j] sums, over all ReLU units,
  the number of units on which samples i and j agree (units minus Hamming distance). The score is log det K:
  networks whose activation patterns separate the inputs well score high.
- ``synflow``: Tanaka et al. (NeurIPS 2020), used as a zero-cost NAS proxy by Abdelfattah et al. (ICLR 2021).
  With batch-norm removed, every parameter replaced by its absolute value and an all-ones input in float64, the
  score is sum |theta * dR/dtheta| over conv and linear weights, R the sum of the outputs; we return its natural
  log. It needs no data.

No dataset is available offline, so ``naswot`` reads a fixed-seed standard Gaussian minibatch instead of images
(a known variant; `proxy_benchmark` measures how well it still ranks NAS-Bench-201). Scores are deterministic: the
module's initial weights and the minibatch come from `ProxyConfig.seed` without touching torch's global RNG.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from search_spaces.base import SearchSpace

PROXIES = ("naswot", "synflow")


@dataclass(frozen=True)
class ProxyConfig:
    """Which proxy, on how many random inputs, from which seed (weights and inputs).

    synflow is the default: on 1000 NAS-Bench-201 archs it ranks CIFAR-10 accuracy with Spearman 0.80 against
    0.71 (batch 16) to 0.75 (batch 64) for NASWOT on random inputs, and costs ~0.04 s per NAS-Bench-201 arch and
    ~0.1-0.15 s per FBNet arch on one thread, where NASWOT needs ~0.27 s (batch 16) to ~0.9 s (batch 64).
    """

    name: str = "synflow"
    batch_size: int = 16  # naswot only (16 keeps an FBNet score under 0.3 s); synflow reads one all-ones input
    seed: int = 0


@contextmanager
def _torch_single_thread(seed: int):
    """One intra-op thread (parallelism comes from separate workers) and a private RNG stream."""
    import torch

    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield torch
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


def _naswot(torch, module, inputs) -> float:
    """log det of the NASWOT kernel; 0 where K is singular (an integer positive-definite K has det >= 1)."""
    n = inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_module, args, _output):
        codes = (args[0].detach().flatten(1) > 0).to(torch.float32)
        agree = codes @ codes.T                           # units active in both
        active = codes.sum(1)
        # units on which i and j agree = both active + both inactive = a_ij + (U - s_i - s_j + a_ij)
        k = 2 * agree.double() - active.double()[:, None] - active.double()[None, :] + codes.shape[1]
        kernel.add_(k)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.ReLU)]
    try:
        with torch.no_grad():
            module(inputs)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else 0.0


def _synflow(torch, module, input_shape) -> float:
    """Natural log of the synflow sum (same ranking, readable scale); a sum of 0 (output ignores the input, e.g.
    a NAS-Bench-201 cell with no path) gets log of the smallest positive float64, about -708."""
    def strip_bn(m):
        for name, child in m.named_children():
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
                setattr(m, name, torch.nn.Identity())
            else:
                strip_bn(child)

    strip_bn(module)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.abs_()
    out = module(torch.ones(1, *input_shape, dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.grad is not None:
                total += float((m.weight * m.weight.grad).abs().sum())
    return math.log(total) if total > 0 else float(np.log(np.finfo(float).tiny))


def proxy_score(space: SearchSpace, arch: str, config: ProxyConfig = ProxyConfig()) -> float:
    """The proxy score of `arch` at initialisation; higher is better; the same value on every call."""
    if config.name not in PROXIES:
        raise ValueError(f"unknown proxy {config.name!r}; choose from {', '.join(PROXIES)}")
    with _torch_single_thread(config.seed) as torch:
        module = space.build_module(arch)
        if config.name == "synflow":
            return _synflow(torch, module, space.input_shape)
        gen = torch.Generator().manual_seed(config.seed)
        inputs = torch.randn(config.batch_size, *space.input_shape, generator=gen)
        module.train()  # batch statistics, as at the start of training
        return _naswot(torch, module, inputs)


def _timed_scores(space: SearchSpace, archs: list[str], config: ProxyConfig,
                  progress: bool) -> tuple[np.ndarray, float]:
    iterator = archs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(archs, desc=f"{config.name} on {space.name}", unit="arch")
    start = time.perf_counter()
    scores = np.array([proxy_score(space, a, config) for a in iterator])
    return scores, (time.perf_counter() - start) / max(len(archs), 1)


def proxy_benchmark(n: int = 1000, seed: int = 0, config: ProxyConfig = ProxyConfig(),
                    progress: bool = True, n_fbnet: int = 50) -> dict:
    """How well, and how fast, the proxy ranks architectures without training.

    Scores `n` distinct NAS-Bench-201 architectures drawn with `seed` and returns the Spearman rank correlation
    with NATS-Bench test accuracy for each dataset (`spearman_<dataset>`), next to the same correlation for the
    parameter count (`params_spearman_<dataset>`, the baseline a proxy has to beat), and the seconds per
    architecture on one thread for NAS-Bench-201 and for `n_fbnet` FBNet architectures (the space without an
    accuracy table, where the proxy is what the search optimises).
    """
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanr

    from search_spaces.registry import get_space

    space = get_space("nasbench201")
    everything = space.all_archs()
    rng = np.random.default_rng(seed)
    archs = [everything[i] for i in rng.choice(len(everything), n, replace=False)]
    scores, seconds = _timed_scores(space, archs, config, progress)
    params = np.array([sum(p.numel() for p in space.build_module(a).parameters()) for a in archs])
    # `seed` drew the architectures; the proxy's own seed (its random input) is `proxy_seed`.
    result = {"n": n, "seed": seed, "proxy": config.name, "batch_size": config.batch_size, "proxy_seed": config.seed,
              "seconds_per_arch": seconds}
    with warnings.catch_warnings():
        # A handful of architectures may share one parameter count: the correlation is undefined, NaN
        # (n/a in the printout, null in JSON), which says it; scipy's warning block would add nothing.
        warnings.simplefilter("ignore", ConstantInputWarning)
        for dataset in space.datasets:
            acc = space.accuracy(archs, dataset)
            result[f"spearman_{dataset}"] = float(spearmanr(scores, acc).statistic)
            result[f"params_spearman_{dataset}"] = float(spearmanr(params, acc).statistic)
    if n_fbnet:
        fbnet = get_space("fbnet")
        _, result["fbnet_seconds_per_arch"] = _timed_scores(fbnet, fbnet.random_sample(n_fbnet, rng), config, progress)
        result["n_fbnet"] = n_fbnet
    return result
