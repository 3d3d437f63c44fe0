"""One search, from a `SearchConfig` to a `SearchResult`: predictor set-up, NSGA-II, front extraction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize
from tqdm.auto import tqdm

from nas.config import SearchConfig, UsageError
from nas.devices import Target, resolve_target
from nas.evaluator import Evaluator, Objective
from nas.metrics import pareto_mask
from nas.problem import NasProblem
from predictor.tables import LatencyTable
from search_spaces import SearchSpace, get_space


@dataclass
class SearchResult:
    config: SearchConfig
    space: SearchSpace
    target: Target
    quality: Objective
    evaluated: pd.DataFrame          # every candidate: arch_str, <quality>, predicted_latency_ms
    front: pd.DataFrame              # the non-dominated subset of `evaluated`
    samples: dict[str, float]        # what was measured on the target
    timings_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


class _GenerationBar(Callback):
    """A tqdm bar over NSGA-II generations."""

    def __init__(self, total: int, enabled: bool):
        super().__init__()
        self.bar = tqdm(total=total, desc="NSGA-II", unit="gen", disable=not enabled, leave=False)

    def notify(self, algorithm):
        self.bar.update(1)
        self.bar.set_postfix(evaluated=algorithm.evaluator.n_eval)


def load_space(config: SearchConfig) -> SearchSpace:
    try:
        return get_space(config.space, config.dataset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def initial_table(space: SearchSpace) -> LatencyTable:
    long = space.latency_table()
    if long is None:
        raise UsageError(f"search space {space.name!r} ships no latency tables; give the predictor an initial set")
    return LatencyTable.from_long(long)


def quality_objective(space: SearchSpace) -> Objective:
    """Benchmark accuracy where the space has a table, otherwise the training-free proxy."""
    dataset = getattr(space, "dataset", None)
    if space.accuracy([], dataset) is not None:
        return Objective("accuracy", f"{dataset} test accuracy (%)", lambda archs: space.accuracy(archs, dataset))
    from search_spaces.proxy import ProxyConfig, proxy_score

    proxy = ProxyConfig()
    return Objective("proxy_score", f"{proxy.name} proxy score (not accuracy)",
                     lambda archs: np.array([proxy_score(space, a, proxy) for a in archs]))


def build_predictor(space: SearchSpace, table: LatencyTable, target: Target, n_samples: int, progress: bool):
    """Fit on every shipped device but the target, then adapt from the target's measured samples."""
    from predictor.maple import MaplePredictor

    initial = table.without(target.name) if target.name in table.devices else table
    predictor = MaplePredictor(space).fit(initial)
    references = predictor.reference_archs(n_samples)
    samples = target.measure(references)
    return predictor.adapt(samples), samples


def run_search(config: SearchConfig) -> SearchResult:
    config.validate()
    start = time.perf_counter()
    timings = {}
    space = load_space(config)
    table = initial_table(space)
    target = resolve_target(config.device, space, table, config.profiles_dir)
    quality = quality_objective(space)

    t = time.perf_counter()
    predictor, samples = build_predictor(space, table, target, config.samples, config.progress)
    timings["predictor_s"] = time.perf_counter() - t

    latency = Objective("predicted_latency_ms", f"predicted latency on {target.name} (ms)", predictor.predict)
    evaluator = Evaluator(quality, latency)
    problem = NasProblem(space, evaluator)
    algorithm = NSGA2(
        pop_size=config.pop_size,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    t = time.perf_counter()
    bar = _GenerationBar(config.generations, config.progress)
    minimize(problem, algorithm, ("n_gen", config.generations), seed=config.seed, callback=bar, verbose=False)
    bar.bar.close()
    timings["search_s"] = time.perf_counter() - t

    evaluated = pd.DataFrame(
        [(a, q, lat) for a, (q, lat) in evaluator.records.items()],
        columns=["arch_str", quality.name, latency.name],
    )
    # The front is taken over every candidate evaluated, not only the last population: an archive
    # costs nothing here and never loses a non-dominated architecture NSGA-II saw on the way.
    mask = pareto_mask(np.column_stack([-evaluated[quality.name], evaluated[latency.name]]))
    front = evaluated[mask].sort_values(latency.name).reset_index(drop=True)
    return SearchResult(config, space, target, quality, evaluated, front, samples, timings,
                        time.perf_counter() - start)
