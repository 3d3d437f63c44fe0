"""One search, from a `SearchConfig` to a `SearchResult`: predictor set-up, NSGA-II, front extraction."""

from __future__ import annotations

import contextlib
import math
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
from nas.parallel import InlineRunner, ParallelConfig, check_cluster_address, make_runner
from nas.problem import NasProblem
from predictor.tables import LatencyTable, load_tables
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
    runner: str = "inline"
    workers: int = 1
    measure_s_per_sample: float | None = None   # wall time of one target measurement, where measured here
    cautions: list[str] = field(default_factory=list)   # what the figures do not mean, said with them


class _GenerationBar(Callback):
    """A tqdm bar over NSGA-II generations, counting unique candidates as the summary does."""

    def __init__(self, total: int, enabled: bool, evaluator: Evaluator):
        super().__init__()
        self.evaluator = evaluator
        self.bar = tqdm(total=total, desc="NSGA-II", unit="gen", disable=not enabled, leave=False)

    def notify(self, algorithm):
        self.bar.update(1)
        # Not pymoo's n_eval: it counts genomes again when NSGA-II revisits an architecture.
        self.bar.set_postfix(candidates=self.evaluator.n_evaluated)


def load_space(config: SearchConfig) -> SearchSpace:
    try:
        return get_space(config.space, config.dataset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def initial_table(space: SearchSpace, tables=()) -> LatencyTable:
    """The predictor's initial set: the user's tables where given, else the tables the space ships."""
    from profiler.measure import LOCAL_DEVICES

    try:
        table = load_tables(space, tables)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    named = [d for d in table.devices if d in LOCAL_DEVICES]
    if named:  # --device local measures this machine, and its initial set silently left the table's out
        raise UsageError(f"the latency tables name a device {named[0]!r}, a name that means this machine, measured "
                         f"during a search for --device {named[0]}: rename it in its table (collect refuses that name)")
    return table


def _accuracy(space: SearchSpace, archs, dataset):
    """The space's accuracy of `archs`; a ValueError from a user's accuracy() is one line, as one from
    its decode or build_module is, not a traceback."""
    try:
        return space.accuracy(archs, dataset)
    except ValueError as exc:
        raise UsageError(f"accuracy of search space {space.name!r} failed on "
                         + (f"a batch of {len(archs)} architecture(s) starting {archs[0]!r}" if len(archs) else
                            "no architectures (the first call, which asks whether it has an accuracy at all)")
                         + f": {exc}") from None


def has_accuracy_table(space: SearchSpace) -> bool:
    return _accuracy(space, [], getattr(space, "dataset", None)) is not None


def _proxy_of(arch: str, space: SearchSpace, proxy) -> tuple[float, str | None]:
    """(score, None), or (nan, why) where the space's module fails: returned, not raised, so that Ray
    does not retry a user space's bug as if a worker had been lost, and the driver says it in one line."""
    from search_spaces.proxy import proxy_score

    try:
        return proxy_score(space, arch, proxy), None
    except Exception as exc:  # anything a user's build_module or forward pass can raise
        return math.nan, f"{type(exc).__name__}: {exc}"


def proxy_scores(archs, space: SearchSpace, proxy, runner) -> np.ndarray:
    """The `proxy` score of each of `archs`, computed through `runner`; UsageError naming the first
    architecture the space cannot score (the workers return errors rather than raise them)."""
    scored = runner.map(_proxy_of, archs, space, proxy)
    for arch, (_, error) in zip(archs, scored):
        if error is not None:
            raise UsageError(f"cannot score {arch!r} of search space {space.name!r} with the {proxy.name} proxy: "
                             f"{error}")
    return np.array([score for score, _ in scored], dtype=float)


def quality_objective(space: SearchSpace, runner=None) -> Objective:
    """Benchmark accuracy where the space has a table, otherwise the training-free proxy (via `runner`)."""
    dataset = getattr(space, "dataset", None)
    if has_accuracy_table(space):
        label = f"{dataset} test accuracy (%)" if dataset else "accuracy (%)"   # a user space may declare no datasets
        return Objective("accuracy", label, lambda archs: _accuracy(space, archs, dataset))
    from search_spaces.proxy import ProxyConfig

    proxy = ProxyConfig()
    runner = runner or InlineRunner()
    return Objective("proxy_score", f"{proxy.name} proxy score (not accuracy)",
                     lambda archs: proxy_scores(archs, space, proxy, runner))


def build_predictor(space: SearchSpace, table: LatencyTable, target: Target, n_samples: int, progress: bool = False):
    """Fit on every shipped device but the target, then adapt from the target's measured samples.

    Returns (predictor, samples, seconds spent measuring the samples on the target).
    """
    from predictor.maple import MaplePredictor

    try:
        initial = table.initial_set(target.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        predictor = MaplePredictor(space, progress=progress).fit(initial)
        references = predictor.reference_archs(n_samples)
    except ValueError as exc:  # tables too small, e.g. fewer architectures than samples to measure
        raise UsageError(f"cannot fit the predictor on these tables ({len(initial.archs)} architectures) "
                         f"with --samples {n_samples}: {exc}") from None
    t = time.perf_counter()
    samples = target.measure(references)
    return predictor.adapt(samples), samples, time.perf_counter() - t


def nsga2(pop_size: int) -> NSGA2:
    """NSGA-II on integer genomes with pymoo's own integer operators."""
    return NSGA2(
        pop_size=pop_size,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )


def run_nsga2(space: SearchSpace, evaluator: Evaluator, pop_size: int, generations: int, seed: int,
              progress: bool) -> pd.DataFrame:
    """Run NSGA-II and return every evaluated candidate with a `on_front` column (archive front)."""
    bar = None
    try:
        # Made inside the try: a Ctrl-C just after the bar first shows would leave it on the line that
        # "interrupted: nothing was written" then continues.
        bar = _GenerationBar(generations, progress, evaluator)
        minimize(NasProblem(space, evaluator), nsga2(pop_size), ("n_gen", generations), seed=seed,
                 callback=bar, verbose=False)
    finally:
        if bar is not None:
            bar.bar.close()
    q, lat = evaluator.quality, evaluator.latency
    evaluated = pd.DataFrame([(a, v, l) for a, (v, l) in evaluator.records.items()],
                             columns=["arch_str", q.name, lat.name])
    # The front is taken over every candidate evaluated, not only the last population: an archive
    # costs nothing here and never loses a non-dominated architecture NSGA-II saw on the way.
    evaluated["on_front"] = pareto_mask(np.column_stack([-evaluated[q.name], evaluated[lat.name]]))
    return evaluated


def run_search(config: SearchConfig) -> SearchResult:
    config.validate()
    if config.ray_address:
        check_cluster_address(config.ray_address)  # before the predictor's fit, not a minute later
    start = time.perf_counter()
    timings = {}
    space = load_space(config)
    table = initial_table(space, config.tables)
    for name in config.leave_out:
        table = table.without(name)
    target = resolve_target(config.device, space, table, config.profiles_dir, progress=config.progress,
                            tables=config.tables)

    expensive = not has_accuracy_table(space)
    parallel = ParallelConfig(workers=config.workers, address=config.ray_address)
    with contextlib.ExitStack() as stack:
        # A cluster is joined before the predictor's fit (minutes when not cached), so that a refused
        # join (a missing token, say) is said at once. A local Ray starts after it: its workers
        # starting up would disturb the samples measured on this machine.
        runner = stack.enter_context(make_runner(parallel, expensive)) if config.ray_address else None
        t = time.perf_counter()
        predictor, samples, measure_s = build_predictor(space, table, target, config.samples, config.progress)
        timings["predictor_s"] = time.perf_counter() - t
        runner = runner or stack.enter_context(make_runner(parallel, expensive))
        quality = quality_objective(space, runner)
        latency = Objective("predicted_latency_ms", f"predicted latency on {target.name} (ms)", predictor.predict)
        evaluator = Evaluator(quality, latency)
        t = time.perf_counter()
        evaluated = run_nsga2(space, evaluator, config.pop_size, config.generations, config.seed, config.progress)
        timings["search_s"] = time.perf_counter() - t
        workers = getattr(runner, "workers", 1)
    front = evaluated[evaluated.pop("on_front")].sort_values(latency.name).reset_index(drop=True)
    return SearchResult(config, space, target, quality, evaluated, front, samples, timings,
                        time.perf_counter() - start, runner.name, workers,
                        measure_s / len(samples) if target.can_measure_here and samples else None,
                        table_input_cautions(space, config.tables))


def table_input_cautions(space: SearchSpace, tables=()) -> list[str]:
    """A caution where the shipped tables timed networks on another input than the search's (NB201's
    ImageNet16-120 takes 16x16 images, its tables are of 32x32 ones): accuracy and latency are then
    of different networks. The user's own --tables say nothing of their input, so nothing is said."""
    shape = space.tables_input_shape
    if tables or shape is None or tuple(shape) == tuple(space.input_shape):
        return []
    def dims(s):
        return "x".join(map(str, s))

    dataset = getattr(space, "dataset", None)
    return [f"{space.name}'s shipped latency tables time its networks on {dims(shape)} input (where their sources "
            f"state it), and {dataset or 'this search'}'s take {dims(space.input_shape)}: the predictor learnt "
            f"from the {dims(shape)} networks, and a table device's latencies are theirs, not those of the "
            "networks whose accuracy is searched"]


def verify_on_device(result: SearchResult) -> pd.DataFrame:
    """Re-measure every front architecture on the target (only when the target is this machine)."""
    archs = result.front["arch_str"].tolist()
    measured = result.target.measure(archs)
    return pd.DataFrame({"arch_str": archs,
                         "predicted_latency_ms": result.front["predicted_latency_ms"].to_numpy(),
                         "measured_latency_ms": [measured[a] for a in archs]})
