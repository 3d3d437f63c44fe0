"""This machine as an unseen device: measure N random architectures, adapt from 3, score predictions.

The shipped tables never saw this machine, so this is the honest test of few-shot adaptation: the
MAPLE predictor is fitted on the tables, adapted from the reference architectures measured here,
and its predictions for N other architectures measured here are scored by MAPLE's ±10% error-bound
accuracy and Spearman's rank correlation. The affine nearest-device baseline is scored alongside.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from profiler.measure import MeasureConfig, busy_warning, machine_description, measure_archs


@dataclass
class BenchmarkConfig:
    """N random archs drawn with `seed`; `n_reference` archs (chosen by the predictor) to adapt from."""

    space: str = "nasbench201"
    #: Latency tables (files or folders) to fit on instead of the space's shipped ones.
    tables: tuple[str, ...] = ()
    n: int = 100
    seed: int = 0
    n_reference: int = 3
    #: Interleaved in 5 rounds: this is a comparison across archs, on machines shared with other jobs.
    measure: MeasureConfig = field(default_factory=lambda: MeasureConfig(rounds=5))
    #: False scores the baseline alone (fitting MAPLE without its disk cache takes minutes).
    use_maple: bool = True


@dataclass
class BenchmarkResult:
    machine: dict
    config: dict
    measured: dict[str, dict]                  # arch -> Measurement.to_dict(), the N test archs
    reference: dict[str, float]                # arch -> median ms, what the predictors adapted from
                                               # (the "(min)" predictors adapted from the minima)
    reference_source: str                      # "maple.reference_archs" or why another choice was made
    predictions: dict[str, dict[str, float]]   # predictor name -> arch -> predicted ms
    scores: dict[str, dict[str, float]]        # predictor name -> within_10pct, spearman, ...
    seconds_per_arch: float                    # wall time per measured arch, build included
    notes: list[str] = field(default_factory=list)


def sample_archs(space, n: int, seed: int) -> list[str]:
    """`n` distinct archs drawn uniformly with `seed`."""
    rng = np.random.default_rng(seed)
    everything = space.all_archs()
    if everything is not None:
        if n > len(everything):
            raise ValueError(f"--n {n} exceeds the {len(everything)} architectures of {space.name}")
        return [everything[i] for i in rng.choice(len(everything), size=n, replace=False)]
    from profiler.collect import collect_archs

    # The same draws as `profiler collect`, which stops after a bounded number of tries: a space
    # smaller than `n` (one that does not enumerate itself) would otherwise be sampled forever.
    archs = collect_archs(space, n, seed)
    if len(archs) < n:
        raise ValueError(f"--n {n}: drawing {space.name} architectures at random found only {len(archs)} "
                         f"distinct ones, so the space seems to hold fewer; give a smaller --n")
    return archs


def initial_table(space, config: BenchmarkConfig):
    """What the predictors learn from, and a note for each table of this machine left out of it.

    The space's shipped tables, or `config.tables`, less this machine: the benchmark scores an
    unseen device.
    """
    from predictor.tables import load_tables
    from profiler.collect import this_machine_name

    table = load_tables(space, config.tables)
    initial, left_out = without_this_machine(table, config.tables, config.measure, this_machine_name(config.measure))
    return initial, list(left_out.values())


def without_this_machine(table, tables: Sequence, measure: MeasureConfig, target: str):
    """The initial set of `table` for this machine as an unseen `target`, measured as `measure` says,
    and {device: a note saying why it was left out}.

    A user's `tables` may hold this machine: under the name `profiler collect` gives it, or under any
    name where the table records this machine's hardware, batch size and threads (this device under
    another name, or one of the same model). A benchmark of an unseen device learns from neither. (The
    same machine at another batch size stays: it is another device.) Raises ValueError, naming what
    was left out, where fewer than two devices remain.
    """
    from profiler.collect import this_machine_name

    here = this_machine_name(measure)
    left_out = {here: f"{here} (this machine at this batch size) left out of the initial set: the benchmark is for "
                      "a device the predictor has not seen"} if here in table.devices else {}
    for name in sorted(_measured_like_this_run(tables, measure) - {here}):
        left_out[name] = (f"{name} left out of the initial set: its table records this machine's hardware, batch size "
                          "and threads: this device under another name, or one of the same model, which the predictor "
                          "should not have seen either")
    for name in left_out:
        table = table.without(name)
    try:
        return table.initial_set(target), left_out
    except ValueError as exc:  # say which devices were left out, or a folder of 4 reads as holding 1
        raise ValueError(f"{exc}. Left out: {'; '.join(left_out.values())}" if left_out else str(exc)) from None


def _measured_like_this_run(tables: Sequence, m: MeasureConfig) -> set[str]:
    """Devices of the user's tables whose recorded hardware, batch size and threads are `m`'s here."""
    import pandas as pd

    from predictor.tables import MEASURED_ON, read_latency_files

    if not tables:
        return set()
    long = read_latency_files(tables)
    if not set(MEASURED_ON) <= set(long.columns):
        return set()
    machine = machine_description()
    hardware = machine["gpu_name"] if m.device == "cuda" else machine["cpu_model"]
    if hardware in (None, "unknown", platform.machine(), platform.processor()):
        return set()  # no model name, only an architecture such as aarch64: every board would match
    same = ((long["hardware"].astype(str) == str(hardware))
            & (pd.to_numeric(long["batch_size"], errors="coerce") == m.batch_size)
            & (pd.to_numeric(long["threads"], errors="coerce") == m.threads))
    return set(long.loc[same, "device"])


def run_benchmark(config: BenchmarkConfig, reference_archs: Sequence[str] | None = None,
                  progress: bool = True) -> BenchmarkResult:
    """Measure, adapt, predict and score; see the module docstring.

    `reference_archs` overrides the predictor's choice. With `config.use_maple` False the baseline
    alone is scored, adapted from `reference_archs` or, failing those, random archs outside the N.
    """
    import pandas as pd

    from predictor.baselines import AffineNearestDevice
    from predictor.metrics import latency_scores
    from search_spaces.registry import get_space

    space = get_space(config.space)
    table, notes = initial_table(space, config)
    test = sample_archs(space, config.n, config.seed)

    maple = None
    if config.use_maple:
        from predictor.maple import MaplePredictor

        maple = MaplePredictor(space, progress=progress).fit(table)
    if reference_archs is not None:
        refs, source = list(reference_archs), "given by the caller"
    elif maple is not None:
        try:
            refs, source = list(maple.reference_archs(config.n_reference)), "maple.reference_archs"
        except ValueError as exc:  # as --n's errors do, name the option
            raise ValueError(f"--reference {config.n_reference}: {exc}") from None
    else:
        pool = [a for a in sample_archs(space, config.n + 50, config.seed + 1) if a not in set(test)]
        refs, source = pool[:config.n_reference], "random (MAPLE not asked for)"
        notes.append("MAPLE not asked for: only the affine baseline is scored")
    # A reference is predicted from its own measurement: scoring it flatters the predictor. A user
    # space draws the test archs as `collect` drew its table, among which the references are chosen.
    scored = [a for a in test if a not in set(refs)]
    if len(scored) < 2:
        raise ValueError(f"--n {config.n}: {len(test) - len(scored)} of its architectures are the references the "
                         "predictors adapt from, which are not scored, and a Spearman needs two others; give a "
                         "larger --n")
    if len(scored) < len(test):
        notes.append(f"{len(test) - len(scored)} of the {len(test)} measured archs are references the predictors adapt "
                     f"from: scored on the other {len(scored)}")

    # The references are measured in the same call as the test archs (interleaved with them when
    # measure.rounds > 1), so that they see the same machine: a reference measured during a slow
    # spell would scale every prediction by that spell.
    start = time.perf_counter()
    all_measured = measure_archs(space, list(dict.fromkeys([*test, *refs])), config.measure, progress=progress)
    seconds_per_arch = (time.perf_counter() - start) / len(all_measured)
    measured = {a: all_measured[a] for a in test}
    ref_ms = {a: all_measured[a].median_ms for a in refs}

    # A freshly fitted predictor for each adaptation, so that one adaptation cannot leak into the other.
    factories = {}
    if too_few := AffineNearestDevice.too_few(len(refs)):
        notes.append(f"affine nearest-device baseline not scored: {too_few}")
    elif set(test) | set(refs) <= set(table.archs):
        factories["affine_nearest_device"] = lambda: AffineNearestDevice().fit(table)
    else:
        notes.append("affine nearest-device baseline not scored: it copies a table device, and the tables lack "
                     "some of the measured archs")
    if maple is not None:
        from predictor.maple import MaplePredictor

        fitted = iter([maple])
        factories = {"maple": lambda: next(fitted, None) or MaplePredictor(space).fit(table), **factories}
    predictions, scores = {}, {}
    # Medians are the figure of record. On a shared machine, other jobs only ever add time, so the
    # fastest run is the least disturbed one: scoring on minima too shows how much of the error is
    # the predictor's and how much the machine's noise.
    for stat in ("median_ms", "min_ms"):
        true = np.array([getattr(measured[a], stat) for a in scored])
        refs_stat = {a: getattr(all_measured[a], stat) for a in refs}
        suffix = "" if stat == "median_ms" else " (min)"
        for label, make in factories.items():
            pred = np.asarray(make().adapt(refs_stat).predict(scored), dtype=float)
            predictions[label + suffix] = dict(zip(scored, map(float, pred)))
            scores[label + suffix] = latency_scores(pred, true)
    busy = busy_warning(list(measured.values()))
    if busy:
        notes.append(f"warning: {busy}")
    summary = pd.Series([measured[a].median_ms for a in test])
    notes.append(f"measured medians over {len(test)} archs: min {summary.min():.2f} ms, "
                 f"median {summary.median():.2f} ms, max {summary.max():.2f} ms")
    return BenchmarkResult(
        machine=machine_description(),
        config={**asdict(config), "reference_archs": refs},
        measured={a: m.to_dict() for a, m in measured.items()},
        reference=ref_ms, reference_source=source, predictions=predictions, scores=scores,
        seconds_per_arch=seconds_per_arch, notes=notes)


def write_json(result: BenchmarkResult, path: Path | str) -> Path:
    """Write `result` to `path` through a temporary file, so a failed write leaves nothing half-done."""
    from nas.config import write_atomically

    return write_atomically(path, lambda tmp: tmp.write_text(json.dumps(asdict(result), indent=2) + "\n",
                                                            encoding="utf-8"))


def format_result(result: BenchmarkResult) -> str:
    """Human-readable summary: machine, cost per arch, measured spread, scores per predictor."""
    m = result.machine
    iqr_rel = [d["iqr_ms"] / d["median_ms"] for d in result.measured.values()]
    lines = [
        f"machine: {m['cpu_model']} ({m['logical_cores']} logical cores), torch {m['torch_version']}",
        f"measured {len(result.measured)} archs at batch {result.config['measure']['batch_size']}, "
        f"{result.config['measure']['threads']} thread(s): {result.seconds_per_arch:.2f} s per arch "
        f"(build + {MeasureConfig(**result.config['measure']).describe_runs()})",
        f"spread: IQR / median is {100 * np.median(iqr_rel):.1f}% at the median arch, "
        f"{100 * np.max(iqr_rel):.1f}% at worst",
        *result.notes,
        f"reference archs ({result.reference_source}):",
        *[f"  {ms:8.2f} ms  {a}" for a, ms in result.reference.items()],
    ]
    for label, s in result.scores.items():
        lines.append(f"{label:>28}: ±10% accuracy {100 * s['within_10pct']:.1f}%  ±5% {100 * s['within_5pct']:.1f}%  "
                     f"Spearman {s['spearman']:.3f}")
    return "\n".join(lines)
