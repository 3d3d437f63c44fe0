"""`python -m predictor.tune`: choose MapleConfig's hyper-parameters by a Ray Tune sweep on meta-valid devices.

Only HELP's *meta-valid* devices of the space are targets here (NB201: titanx_1, titanx_32,
titanx_256; gold_6240 is not in the shipped tables. FBNet: titanx_1, titanx_32, titanx_64). Meta-test
devices are refused as targets and left out of every initial set: the benchmark's figures must come
from devices nothing was tuned on. A target's initial set is every other shipped device except, by
default, its near-duplicates (log-latency correlation ≥ `--hold-out-corr` 0.98: the same GPU at
another batch size, its sibling GPUs): the meta-valid devices are Titan X GPUs whose siblings would
otherwise make every configuration look perfect, while the product's targets are devices it has
never seen anything like.

Each trial fits a MaplePredictor per meta-valid device, adapts it from `--samples` reference
architectures and scores every other architecture of the device's table. The objective is the mean over
those devices of ``(within_10pct + spearman) / 2``; by default the targets are the meta-valid
devices of both spaces, so that one configuration serves both (NB201's Titan X targets alone prefer
settings that cost FBNet 0.22 of ±10% accuracy: predictor/README.md). The search is random (Ray Tune's basic variant
generator) over the space in `SEARCH_SPACE`, with the current defaults evaluated first so that the
sweep can only confirm or improve them. A trial needs one CPU; trials run two at a time on the
2-core VM.

Usage:
  python -m predictor.tune [--space nasbench201,fbnet] [--num-samples 24] [--samples 3] [--json sweep.json]

The sweep that set the current defaults (see `MapleConfig`) is recorded in predictor/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile

import numpy as np

from nas.config import check_output_folder, file_arg
from predictor.benchmark import (UsageError, device_list, help_split, name_list,
                                 shipped_space_and_table, write_json)
from predictor.maple import MapleConfig

#: Fields searched, with Ray Tune domains built lazily (Ray is imported only when the sweep runs).
SEARCH_SPACE = {
    "prior_shrinkage": ("loguniform", 0.01, 10.0),
    "sample_noise": ("loguniform", 0.003, 0.3),
}


class TrialsFailed(RuntimeError):
    """No trial of the sweep returned scores (Ray has logged why)."""


def initial_set(table, device: str, excluded, hold_out_corr: float):
    """`table` without `device`, the `excluded` devices, and those whose log-latencies correlate with
    `device`'s at least `hold_out_corr`."""
    log = np.log(table.latency_ms)
    corr = np.corrcoef(log)[table.devices.index(device)]
    keep = [d for d, c in zip(table.devices, corr)
            if d != device and d not in excluded and c < hold_out_corr]
    return table.select(keep)


def score_config(space, table, devices, config: MapleConfig, excluded=(), hold_out_corr: float = 1.01) -> dict[str, float]:
    """Mean within_10pct, spearman and objective of `config` over `devices` as unseen targets."""
    from predictor.maple import MaplePredictor
    from predictor.metrics import latency_scores

    per = []
    for device in devices:
        truth = table.column(device)
        model = MaplePredictor(space, config).fit(initial_set(table, device, excluded, hold_out_corr))
        refs = model.reference_archs()
        # As in the benchmark, the architectures measured for adaptation are no predictions: scored
        # are the others.
        rest = truth[~truth.index.isin(refs)]
        pred = model.adapt({a: float(truth[a]) for a in refs}).predict(list(rest.index))
        per.append(latency_scores(pred, rest.to_numpy()))
    out = {key: float(np.mean([p[key] for p in per])) for key in per[0]}
    out["objective"] = 0.5 * (out["within_10pct"] + out["spearman"])
    return out


def _domain(spec):
    from ray import tune

    kind, *args = spec
    if kind == "choice":
        return tune.choice(args[0])
    return getattr(tune, kind)(*args)


def sweep(space_name: str, num_samples: int, samples: int, devices=None, workers: int = 2,
          hold_out_corr: float = 0.98) -> list[dict]:
    """Run the sweep; returns one dict per trial (its config values and scores), best first."""
    import ray
    from ray import tune

    from nas.parallel import drop_log_message, start_local_ray
    from search_spaces.data import device_catalog

    cat = device_catalog()
    names = [n for n in space_name.split(",") if n]
    if devices and len(names) > 1:
        raise UsageError("--devices needs a single --space")
    problems = []  # (space, table, targets, meta-test devices kept out of every initial set)
    for name in names:
        space, table = shipped_space_and_table(name)
        targets = devices or help_split(name, "meta-valid", table.devices)
        split = f"help_split_{name}"
        for d in targets:
            if d not in table.devices:
                raise UsageError(f"unknown device {d!r}; known: {', '.join(table.devices)}")
            if split in cat.columns and d in cat.index and cat.at[d, split] == "meta-test":
                raise UsageError(f"{d} is a meta-test device: tuning on it would leak into the benchmark")
        if not targets:
            raise UsageError(f"no validation devices for {name}")
        test = [d for d in table.devices if split in cat.columns and d in cat.index and cat.at[d, split] == "meta-test"]
        # Checked here, not left to the trials: inside Ray a bad setting only shows as "every trial failed".
        if samples >= len(table.archs):
            raise UsageError(f"--samples {samples} leaves nothing to predict: {name} has {len(table.archs)} archs")
        measurable = int(np.sum(~np.asarray(space.ignores_input(table.archs), dtype=bool)))
        if samples > measurable:  # the design never asks for an architecture whose output ignores its input
            raise UsageError(f"--samples {samples}: a target can be asked to measure at most {measurable} of {name}'s "
                             f"{len(table.archs)} architectures (those whose output depends on their input)")
        for d in targets:
            kept = initial_set(table, d, test, hold_out_corr).devices
            if len(kept) < 2:
                raise UsageError(f"{d}'s initial set has {len(kept)} device(s) at --hold-out-corr {hold_out_corr:g}, "
                                 f"and the predictor needs at least 2: raise --hold-out-corr")
        problems.append((space, table, targets, test))

    base = dataclasses.replace(MapleConfig(), n_samples=samples)

    def trial(params: dict) -> dict:
        # One configuration serves every space: the objective weighs each (space, target) pair equally.
        cfg = dataclasses.replace(base, **params)
        per = [(len(targets), score_config(space, table, targets, cfg, test, hold_out_corr))
               for space, table, targets, test in problems]
        total = sum(n for n, _ in per)
        return {key: sum(n * s[key] for n, s in per) / total for key in per[0][1]}

    defaults = {name: getattr(base, name) for name in SEARCH_SPACE}
    started = False
    if not ray.is_initialized():
        start_local_ray(workers)
        started = True
    try:
        # On Ctrl-C Ray Tune says how to resume from the sweep's storage, a temporary folder deleted a
        # moment later (a sweep takes minutes: it is re-run, not resumed).
        drop_log_message("ray.tune.tune", "Resume experiment with: Tuner.restore(")
        with tempfile.TemporaryDirectory(prefix="hwnas-tune-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(trial, {"cpu": 1}),
                param_space={name: _domain(spec) for name, spec in SEARCH_SPACE.items()},
                tune_config=tune.TuneConfig(
                    metric="objective", mode="max", num_samples=num_samples,
                    search_alg=tune.search.BasicVariantGenerator(points_to_evaluate=[defaults], random_state=0),
                ),
                run_config=tune.RunConfig(storage_path=storage, name="maple", verbose=1),
            )
            grid = tuner.fit()
            # Ctrl-C makes Ray Tune stop the sweep and return: trials cut short (or never started)
            # have neither an error nor an objective.
            done = [r for r in grid if r.error is None and "objective" in (r.metrics or {})]
            failed = sum(r.error is not None for r in grid)
            if len(done) + failed < num_samples:
                raise KeyboardInterrupt(f"after {len(done)} of {num_samples} configurations")
            rows = []
            for result in done:
                rows.append({**{k: result.config[k] for k in SEARCH_SPACE},
                             **{k: result.metrics[k] for k in ("objective", "within_10pct", "spearman",
                                                               "within_5pct", "within_1pct")}})
    finally:
        if started:
            ray.shutdown()
    if not rows:
        raise TrialsFailed("every trial failed; see Ray's log above")
    return sorted(rows, key=lambda r: -r["objective"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m predictor.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # A list that names no space is refused here: every trial used to start, in Ray, and fail.
    p.add_argument("--space", type=lambda text: ",".join(name_list("space")(text)), default="nasbench201,fbnet",
                   help="space(s) whose meta-valid devices are the targets, comma-separated; one configuration "
                        "is chosen for all of them (default: nasbench201,fbnet)")
    p.add_argument("--num-samples", type=int, default=24, help="configurations tried (default: 24)")
    p.add_argument("--samples", type=int, default=3, help="measured samples per target (default: 3)")
    p.add_argument("--devices", type=device_list, default=None,
                   help="validation targets (default: HELP's meta-valid devices of the space)")
    p.add_argument("--workers", type=int, default=2, help="trials run at once (default: 2)")
    p.add_argument("--hold-out-corr", type=float, default=0.98,
                   help="also leave out of a target's initial set the devices whose log-latencies correlate "
                        "with it at least this much (default: 0.98; above 1 keeps them)")
    p.add_argument("--json", type=file_arg, default=None, help="write every trial's config and scores here")
    args = p.parse_args(argv)
    try:
        if args.num_samples < 1 or args.samples < 1 or args.workers < 1:
            raise UsageError("--num-samples, --samples and --workers must be positive integers")
        check_output_folder(args.json)
        rows = sweep(args.space, args.num_samples, args.samples, args.devices, args.workers, args.hold_out_corr)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrialsFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' {exc}' if str(exc) else ''}: nothing was written", file=sys.stderr)
        return 130  # the shell's code for a run stopped by Ctrl-C
    names = list(SEARCH_SPACE)
    print("objective  ±10%    rho    " + "  ".join(names))
    for r in rows:
        print(f"{r['objective']:.4f}   {r['within_10pct']:.3f}  {r['spearman']:.3f}  "
              + "  ".join(f"{r[n]:.4g}" if isinstance(r[n], float) else str(r[n]) for n in names))
    best = {n: rows[0][n] for n in names}
    print(f"best: {best}")
    if args.json is not None:
        try:
            write_json(args.json, {"space": args.space, "trials": rows, "best": best})
        except OSError as exc:  # the sweep's table is printed above: only the file is lost
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted: the sweep is printed above; {args.json} was not written", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    from nas.config import setup_command_line

    setup_command_line()
    sys.exit(main())
