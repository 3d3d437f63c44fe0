"""`python -m predictor.benchmark`: how well the predictor knows a device it has never seen.

For each target device: fit on the initial set (every shipped device except the target), adapt from
K measured samples (the target's table values at the reference architectures), predict every
architecture of the target's table, and score ±1% / ±5% / ±10% error-bound accuracy and Spearman's rho
on the ones each method did not measure. A target's table that lacks the design's references (a
`--table` of random architectures) has them chosen by the same design among the ones it holds.

Side by side:
  maple      ours, adapted from the K reference architectures it names (MAPLE-K)
  affine     pick the initial-set device whose latencies best fit the same K samples under an affine map
  no-desc    ours without the hardware descriptor (ablation; fitted separately), same K samples
  maple-10   ours adapted from 10 reference architectures (the same fitted model, 10 measurements);
             left out where K is 10 or more
  full-fit   our regressor fitted by least squares to the target's *whole* table, as if every
             architecture were measured: what the model can express, not a predictor. Not a bound:
             least squares minimises squared error, not misses of ±10%, so K samples can beat it
  rand-K     ours adapted from K architectures drawn at random from the target's table instead of
             the reference set (the "any architectures" path of `MaplePredictor.adapt`)
  mlp        the MLP two-tower regressor of `predictor.two_tower` (log-latency, learnt descriptor
             embedding), adapted from its own K reference architectures: the regressor ours replaced

What varies between trials: the random draw of `rand-K` (trial t draws with seed t). Given a fitted
model, the other columns are deterministic: the reference architectures are a fixed set (chosen by
the principle stated in `predictor.maple`) and the adaptation is closed-form, so their trial-to-trial
spread is zero by construction. `--seeds S` refits ours, the ablation and the MLP with seeds
0..S-1 (for ours the seed draws the reference design; S times the fitting cost, less what is cached
on disk: ours caches its reference design, the MLP its whole fit), and the spread (±, std) is then
over seeds (and draws, for rand-K).

Examples:
  python -m predictor.benchmark --space nasbench201 --samples 3
  python -m predictor.benchmark --space fbnet --samples 3 --json fbnet.json
  python -m predictor.benchmark --space nasbench201 --table my_devices.parquet
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nas.config import UsageError, check_output_folder, file_arg, path_arg, write_atomically
from predictor.baselines import AffineNearestDevice
from predictor.maple import MapleConfig, MaplePredictor
from predictor.metrics import latency_scores
from predictor.tables import LatencyTable, load_tables
from predictor.two_tower import TwoTowerConfig, TwoTowerPredictor

METHODS = ("maple", "affine", "no-desc", "maple-10", "full-fit", "rand", "mlp")
KEYS = ("within_1pct", "within_5pct", "within_10pct", "spearman")


def help_split(space_name: str, split: str, table_devices) -> list[str]:
    """HELP's `split` devices ("meta-test", "meta-valid", ...) of the space that the table has."""
    from search_spaces.data import device_catalog

    cat = device_catalog()
    col = f"help_split_{space_name}"
    if col not in cat.columns:
        raise UsageError(f"no HELP split for space {space_name!r}; name the devices with --devices")
    return [d for d in cat.index[cat[col] == split] if d in table_devices]


def _fitted(space, initial: LatencyTable, config, cache: dict, kind=MaplePredictor):
    key = (initial.devices, config)
    if key not in cache:
        cache[key] = kind(space, config).fit(initial)
    return cache[key]


def evaluate_target(space, initial: LatencyTable, truth, k: int, trials: int, config: MapleConfig,
                    fits: dict, methods=METHODS, seeds: int = 1, bar=None,
                    points: dict | None = None, notes: list | None = None) -> dict[str, dict[str, list[float]]]:
    """Scores of every method on one target: {method: {metric: [one value per seed (x trial)]}}.

    Each method is scored on the target's architectures it did not measure. Where the target's table
    lacks the references the design chose (a user's table of random architectures), they are chosen
    by the same design among the architectures it holds, and `notes` (where given) says so, as it
    says why a method is not scored (NaN). `points`, where given, gets maple-K's seed-0 predictions of
    every architecture ("predicted_ms") beside the table ("true_ms"), for the plot.
    """
    archs = list(truth.index)
    true = truth.to_numpy()
    out = {m: {key: [] for key in KEYS} for m in methods}
    said = set()

    def note(text):
        if notes is not None and text not in said:
            said.add(text)
            notes.append(text)

    def held_references(model, n, start=()):
        """(`model`'s n references, None), chosen among the target's architectures where its table
        lacks the design's, extending `start`; (None, why) where they cannot be had."""
        try:
            refs = model.reference_archs(n)
        except ValueError:  # more than the initial set offers: look among the target's
            refs = None
        if refs is not None and set(refs) <= set(truth.index):
            return refs, None
        if not isinstance(model, MaplePredictor):
            return None, f"the table lacks the {n} architectures it adapts from"
        try:
            refs = model.reference_archs_among(n, archs, start)
        except ValueError as exc:
            return None, str(exc)
        note(f"the table lacks the design's references: {n} chosen by the design among its {len(archs)} "
             f"architectures")
        return refs, None

    def score(method, pred, measured):
        """`pred` scored on the architectures `measured` left out: an architecture the method adapted
        from is no prediction."""
        keep = ~truth.index.isin(list(measured))
        if keep.sum() < 2:
            note(f"{_label(method, k)} not scored: fewer than 2 architectures left to predict")
            scores = {key: float("nan") for key in KEYS}
        else:
            scores = _scores(np.asarray(pred)[keep], true[keep])
            if not np.isfinite(scores["spearman"]):
                note("rho n/a: every architecture scored has the same latency in the table")
        for key, v in scores.items():
            out[method][key].append(v)

    def adapted(model, refs):
        return model.adapt({a: float(truth[a]) for a in refs}).predict(archs)

    def unscored(method, why):
        note(f"{_label(method, k)} not scored: {why}")
        for key in KEYS:
            out[method][key].append(float("nan"))

    def score_adapted(method, model, refs, why):
        """`model` adapted from `refs` and scored, or, where there are none, the reason noted."""
        if refs is None:
            unscored(method, why)
        else:
            score(method, adapted(model, refs), refs)

    for seed in range(seeds):
        cfg = dataclasses.replace(config, n_samples=k, seed=seed)
        maple = _fitted(space, initial, cfg, fits)
        refs, why = held_references(maple, k)
        if refs is None:  # no maple-K: every column that adapts from its references goes too
            raise UsageError(f"target {truth.name!r}: {why}")
        if "maple" in methods:
            pred = adapted(maple, refs)
            score("maple", pred, refs)
            if points is not None and seed == 0:
                points.update(true_ms=true, predicted_ms=np.asarray(pred, dtype=float),
                              measured=truth.index.isin(refs))
        if "maple-10" in methods:  # the same model, more samples
            score_adapted("maple-10", maple, *held_references(maple, max(10, k), start=refs))
        if "full-fit" in methods and seed == 0:
            score("full-fit", maple.whole_table_fit(archs, true), ())  # fitted to every one: the ceiling
        if "no-desc" in methods:
            no_desc = _fitted(space, initial, dataclasses.replace(cfg, use_descriptor=False), fits)
            score("no-desc", adapted(no_desc, refs), refs)
        if "mlp" in methods:
            mlp = _fitted(space, initial, TwoTowerConfig(n_samples=k, seed=seed), fits, TwoTowerPredictor)
            score_adapted("mlp", mlp, *held_references(mlp, k))
        if "affine" in methods and seed == 0:
            # deterministic and seed-free: scored once
            if too_few := AffineNearestDevice.too_few(k):
                unscored("affine", too_few)
            elif set(archs) <= set(initial.archs):
                score("affine", adapted(AffineNearestDevice().fit(initial), refs), refs)
            else:  # it copies a table device, which lacks these archs: not scored (NaN), never a 0
                unscored("affine", "it copies a table device, and the tables lack some of the target's architectures")
        for t in range(trials):
            if "rand" in methods:
                drawn = list(np.random.default_rng(t).choice(archs, size=min(k, len(archs)), replace=False))
                score("rand", adapted(maple, drawn), drawn)
            if bar is not None:
                bar.update(1)
    return out


def _scores(pred, true) -> dict[str, float]:
    """`latency_scores`, with Spearman NaN (n/a) where the table's latencies are all equal: there is no
    ranking to agree with, and its 0.0 would read as a measured failure."""
    scores = latency_scores(pred, true)
    if np.ptp(true) == 0:
        scores["spearman"] = float("nan")
    return scores


def _unseen(name: str, truth, shipped: LatencyTable) -> tuple[LatencyTable, list[str]]:
    """The initial set for a user table's target `name` (latencies `truth`), and why devices were left
    out of it: a shipped device of that name (re-measured), and any shipped device whose latencies are
    the target's on every architecture they share, as they are or under a rising affine map (a shipped
    table under another name, in seconds or with an overhead added, which the affine copy would match
    exactly)."""
    initial, why = (shipped.without(name), [f"{name} is a shipped device: left out of its initial set"]) \
        if name in shipped.devices else (shipped, [])
    position = {a: i for i, a in enumerate(initial.archs)}
    shared = [a for a in truth.index if a in position]
    if len(shared) >= 2:
        cols = [position[a] for a in shared]
        # rtol 1e-6: the shipped tables are float32, and a copy through a CSV differs in the 8th digit
        y = truth[shared].to_numpy()
        copies = []
        for device, row in zip(initial.devices, initial.latency_ms[:, cols]):
            if np.allclose(row, y, rtol=1e-6, atol=0):
                copies.append(device)
                why.append(f"{device} has the same latencies on all {len(shared)} architectures the tables share: "
                           "taken for this device under another name and left out of its initial set")
            # Two points fit any line, and a constant fits any device at slope 0: an affine copy is only
            # told from 3 architectures on, with latencies that vary.
            elif len(shared) >= 3 and np.ptp(row) > 0 and np.ptp(y) > 0:
                (a, b), *_ = np.linalg.lstsq(np.stack([row, np.ones_like(row)], axis=1), y, rcond=None)
                if a > 0 and np.allclose(a * row + b, y, rtol=1e-6, atol=0):
                    b = b if abs(b) > 1e-6 * np.abs(y).max() else 0.0   # float32's rounding, not an overhead
                    copies.append(device)
                    why.append(f"{device}'s latencies map onto this device's on all {len(shared)} architectures "
                               f"the tables share, as {a:.6g} x latency {b:+.6g} ms: taken for this device in other "
                               "units or with an overhead added, and left out of its initial set")
        initial = initial.select([d for d in initial.devices if d not in copies])
    return initial, why


def shipped_space_and_table(space_name: str):
    """The space called `space_name` and its shipped latency table (the initial set's source)."""
    from search_spaces import get_space

    try:
        space = get_space(space_name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    long = space.latency_table()
    if long is None:
        raise UsageError(f"space {space_name!r} ships no latency tables to form an initial set: this benchmark "
                         "judges the predictor against the tables a space ships. For a space without, judge it "
                         f"on this machine: python -m profiler benchmark --space {shlex.quote(space_name)} "
                         "--tables YOUR_TABLES")
    return space, LatencyTable.from_long(long)


def run(space_name: str, k: int, trials: int, devices=None, table_path=None, config=None,
        progress: bool = True, methods=METHODS, seeds: int = 1) -> dict:
    """Benchmark every target; returns {space, samples, trials, seeds, per_device: {name: {method: scores}}}."""
    space, shipped = shipped_space_and_table(space_name)
    config = config or MapleConfig()
    if k >= len(shipped.archs):  # the fit would refuse it, as a traceback
        raise UsageError(f"--samples {k} leaves nothing to predict: the {space_name} tables hold "
                         f"{len(shipped.archs)} architectures")

    if table_path is not None:
        try:
            user_table = load_tables(space, [table_path])  # every arch checked against the space
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        names = devices or list(user_table.devices)
        unknown = [d for d in names if d not in user_table.devices]
        if unknown:
            raise UsageError(f"{table_path} has no device(s) {', '.join(unknown)}; it has: "
                             f"{', '.join(user_table.devices)}")
        if len(user_table.archs) < k + 2:  # every column would be n/a, and the run would "succeed"
            raise UsageError(f"{table_path} holds {len(user_table.archs)} architecture(s): --samples {k} leaves fewer "
                             "than 2 to score; measure more, or ask for fewer samples")
        targets = [(d, *_unseen(d, user_table.column(d), shipped), user_table.column(d)) for d in names]
    else:
        names = devices or help_split(space_name, "meta-test", shipped.devices)
        unknown = [d for d in names if d not in shipped.devices]
        if unknown:
            raise UsageError(f"unknown device(s) {', '.join(unknown)}; known: {', '.join(shipped.devices)}")
        targets = [(d, shipped.without(d), [], shipped.column(d)) for d in names]

    fits: dict = {}
    if k >= 10:  # the maple-10 column (max(10, K) references) would repeat maple-K
        methods = tuple(m for m in methods if m != "maple-10")
    per_device, points, notes = {}, {}, {}
    bar = tqdm(total=len(targets) * seeds * trials, desc="targets x seeds x trials", unit="trial",
               disable=not progress)
    with bar:  # closed before an error is printed, so that the message is not drawn over
        for name, initial, left_out, truth in targets:
            bar.set_postfix(device=name)
            truth.name = name
            points[name], notes[name] = {}, list(left_out)
            scores = evaluate_target(space, initial, truth, k, trials, config, fits, methods, seeds, bar,
                                     points[name], notes[name])
            per_device[name] = {m: {**{key: _mean(v) for key, v in s.items()},
                                    **{f"{key}_std": _std(v) for key, v in s.items()}}
                                for m, s in scores.items()}
            fits.clear()  # a target's fits are no use to the next target (its initial set differs)
    return {"space": space_name, "samples": k, "trials": trials, "seeds": seeds, "per_device": per_device,
            "points": points, "notes": {name: n for name, n in notes.items() if n}}


def _mean(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _std(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.std(values)) if values else float("nan")


def _mean_over_devices(values) -> float:
    """The mean over targets, NaN where a target is not scored: a mean over fewer targets would sit
    beside the other columns' means as if it were comparable."""
    return float(np.mean(values)) if np.all(np.isfinite(values)) else float("nan")


def _finite_or_none(obj):
    """`obj` with every NaN (or infinity) as None: JSON has no NaN, and null says 'not scored'."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)) and np.ndim(obj) == 0:  # numpy scalars, 0-d arrays
        obj = obj.item()
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    return obj


def as_json(result: dict) -> dict:
    """The documented JSON: per_device[name] holds our figures at the top level, baselines beneath."""
    per_device = {}
    for name, by_method in result["per_device"].items():
        entry = dict(by_method["maple"])
        entry["baselines"] = {m: v for m, v in by_method.items() if m != "maple"}
        per_device[name] = entry
    mean = {key: _mean_over_devices([d[key] for d in per_device.values()]) for key in KEYS}
    mean["baselines"] = {m: {key: _mean_over_devices([d["baselines"][m][key] for d in per_device.values()])
                             for key in KEYS}
                         for m in next(iter(per_device.values()))["baselines"]} if per_device else {}
    return _finite_or_none({"space": result["space"], "samples": result["samples"], "trials": result["trials"],
                            "seeds": result.get("seeds", 1), "per_device": per_device, "mean": mean,
                            "notes": result.get("notes", {})})


def format_table(result: dict) -> str:
    methods = list(next(iter(result["per_device"].values())).keys())
    k = result["samples"]
    head = f"{'device':<15}{'±1%':>7}{'±5%':>7}" + "".join(
        f"{_label(m, k) + ' ±10%':>16}{'rho':>7}" for m in methods)
    seeds = result.get("seeds", 1)
    lines = [f"{result['space']}: {k} sample{'s' if k != 1 else ''}; each method scored on the architectures it "
             f"did not measure (full-fit: on all); ±1%/±5% are maple-{k}'s; mean over {seeds} regressor seed(s), "
             f"rand-{k} also over {result['trials']} draws; ± = std (omitted when 0)", head]
    # A list, not a dict keyed by name: a target called MEAN must not replace its own row.
    rows = list(result["per_device"].items())
    rows.append(("MEAN", {m: {key: _mean_over_devices([d[m][key] for d in result["per_device"].values()])
                              for key in KEYS} for m in methods}))
    for name, by_method in rows:
        mp = by_method["maple"]
        line = f"{name:<15}{mp['within_1pct']:7.3f}{mp['within_5pct']:7.3f}"
        for m in methods:
            s = by_method[m]
            std = s.get("within_10pct_std")
            if not np.isfinite(s["within_10pct"]):
                line += f"{'n/a':>16}{'n/a':>7}"
                continue
            cell = f"{s['within_10pct']:.3f}" + (f"±{std:.3f}" if std else "")
            line += f"{cell:>16}{_shown(s['spearman']):>7}"
        lines.append(line)
    for name, said in result.get("notes", {}).items():
        lines += [f"{name}: {text}" for text in said]
    if any(not np.isfinite(d[m]["within_10pct"]) for d in result["per_device"].values() for m in methods):
        lines.append("n/a: not scored (why is said above); a mean over targets is n/a where one of them is")
    return "\n".join(lines)


def _shown(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def plot_predictions(result: dict, path: Path) -> None:
    """One panel per target: maple-K's prediction against the table for every architecture, on log
    axes, with the ±10% band that the error-bound accuracy counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = {name: p for name, p in result["points"].items() if p}
    k = result["samples"]
    cols = min(3, len(points))
    rows = -(-len(points) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
    for ax, (name, p) in zip(axes.flat, points.items()):
        true, pred = p["true_ms"], p["predicted_ms"]
        lo, hi = float(min(true.min(), pred.min())) / 1.2, float(max(true.max(), pred.max())) * 1.2
        line = np.geomspace(lo, hi, 50)
        ax.fill_between(line, line / 1.1, line * 1.1, color="0.85", label="±10%")
        ax.plot(line, line, color="0.5", lw=0.8)
        measured = p.get("measured", np.zeros(len(true), dtype=bool))
        ax.scatter(true[~measured], pred[~measured], s=2, alpha=0.3, color="tab:blue", rasterized=True, zorder=3)
        ax.scatter(true[measured], pred[measured], s=30, marker="x", color="tab:red", zorder=4,
                   label=f"the {int(measured.sum())} it adapted from (not scored)")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="table latency (ms)",
               ylabel=f"maple-{k} predicted (ms)")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers; 1-2-5 ticks where the table spans under 2 decades
            axis.set_major_locator(LogLocator(subs=(1, 2, 5) if hi / lo < 100 else (1.0,)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        # The scores of the points drawn (seed 0's): with --seeds the table's are a mean over seeds.
        s = _scores(pred[~measured], true[~measured])
        seed = " (seed 0)" if result.get("seeds", 1) > 1 else ""
        ax.set_title(f"{name}{seed}: ±10% {s['within_10pct']:.3f}, rho {_shown(s['spearman'])}\n"
                     f"{int((~measured).sum())} architectures scored", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    for ax in axes.flat[len(points):]:
        ax.axis("off")
    fig.suptitle(f"{result['space']}: maple-{k} on devices it has not seen")
    fig.tight_layout()
    try:  # the format named, since the temporary name ends in .tmp
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".").lower()))
    finally:
        plt.close(fig)


def name_list(kind: str):
    """An argparse type of comma-separated `kind` names: the names, repeats dropped; none is an error."""
    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(d.strip() for d in text.split(",") if d.strip()))
        if not names:
            raise argparse.ArgumentTypeError(f"names no {kind}")
        return names
    return parse


device_list = name_list("device")


def check_image_format(path: Path) -> None:
    """UsageError unless matplotlib can write `path`'s suffix: said before the work, not after it."""
    from matplotlib.figure import Figure

    # pgf is LaTeX source that matplotlib can only write with a TeX installation: not an image anyway.
    formats = {f for f in Figure().canvas.get_supported_filetypes() if f != "pgf"}
    if path.suffix.lstrip(".").lower() not in formats:
        raise UsageError(f"cannot draw {path}: end its name in an image format, one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON, under a temporary name then renamed: never half a file."""
    # NaN as null: json.dumps writes a bare NaN, which is no JSON, and other readers refuse it.
    text = json.dumps(_finite_or_none(obj), indent=2, default=float, allow_nan=False)   # numpy scalars too
    write_atomically(path, lambda tmp: tmp.write_text(text + "\n"))


def _label(method: str, k: int) -> str:
    return {"maple": f"maple-{k}", "rand": f"rand-{k}"}.get(method, method)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m predictor.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="nasbench201", help="nasbench201 or fbnet (default: nasbench201)")
    p.add_argument("--samples", type=int, default=3, help="measured samples per target (default: 3)")
    p.add_argument("--trials", type=int, default=10,
                   help="random draws of K architectures for the rand-K column (default: 10)")
    p.add_argument("--seeds", type=int, default=1,
                   help="seeds: refits ours (a new reference design each), the ablation and the MLP this many "
                        "times per target (default: 1)")
    p.add_argument("--devices", type=device_list, default=None,
                   help="comma-separated targets (default: HELP's meta-test devices of the space)")
    p.add_argument("--table", type=path_arg, default=None,
                   help="parquet/CSV (or a folder of them) with columns device, arch_str, latency_ms: its devices "
                        "are the unseen targets; the initial set stays the shipped devices, less any of the same "
                        "name or the same latencies. Where the table lacks the design's references (random "
                        "architectures, say), the design chooses among the ones it holds")
    p.add_argument("--json", type=file_arg, default=None, help="write per-device and mean figures to this file")
    p.add_argument("--plot", type=file_arg, default=None,
                   help="draw maple-K's predictions against each target's table to this image (e.g. .png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        if args.samples < 1 or args.trials < 1 or args.seeds < 1:
            raise UsageError("--samples, --trials and --seeds must be positive integers")
        for out in (args.json, args.plot):
            check_output_folder(out)
        outputs = [o.resolve() for o in (args.json, args.plot) if o is not None]
        if args.table is not None and args.table.resolve() in outputs:  # the measured table, overwritten
            raise UsageError(f"--table {args.table} is also an output: give --json and --plot other names")
        if args.table is not None and args.table.is_dir():
            # A .csv or .parquet written into the folder would be read as a table by the next run.
            inside = [o for o in outputs if o.parent == args.table.resolve() and o.suffix in (".csv", ".parquet")]
            if inside:
                raise UsageError(f"{inside[0]} would be read as a latency table of --table {args.table} next time: "
                                 "write it elsewhere or under another suffix")
        if len(set(outputs)) < len(outputs):
            raise UsageError(f"--json and --plot name the same file {args.json}: give each its own")
        if args.plot is not None:
            check_image_format(args.plot)
        result = run(args.space, args.samples, args.trials, args.devices, args.table,
                     progress=not args.no_progress, seeds=args.seeds)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    for out, write in ((args.json, lambda: write_json(args.json, as_json(result))),
                       (args.plot, lambda: plot_predictions(result, args.plot))):
        if out is None:
            continue
        try:
            write()  # through a temporary file: never half of one
        except OSError as exc:  # the figures are printed above: only the file is lost
            print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted: the figures are printed above; {out} was not written", file=sys.stderr)
            return 130
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    from nas.config import setup_command_line

    setup_command_line()
    sys.exit(main())
