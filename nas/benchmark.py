"""`python -m nas.benchmark`: figures that need a run of their own.

  speedup     the same NSGA-II twice on this machine, once with the predictor and once measuring every
              candidate: both wall times, their ratio, and both fronts' hypervolume under measured latency
  proxy       the training-free accuracy proxy against NATS-Bench accuracy on NAS-Bench-201
  throughput  proxy evaluations per second through Ray, by worker count (--workers, default 1,2)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from nas.config import HelpFormatter, SearchConfig, UsageError, check_output_folder, file_arg, path_arg


def speedup(args) -> dict:
    from nas.devices import resolve_target
    from nas.evaluator import Evaluator, Objective
    from nas.metrics import hypervolume, normalised_objectives
    from nas.parallel import ParallelConfig, make_runner
    from nas.run import has_accuracy_table, initial_table, load_space, quality_objective, run_nsga2, run_search
    from profiler.benchmark import without_this_machine

    if args.device not in ("local", "local-cuda"):
        raise UsageError("the speedup benchmark measures every candidate, so it needs --device local (or local-cuda)")
    config = SearchConfig(device=args.device, space=args.space, tables=tuple(args.tables),
                          pop_size=args.pop_size, generations=args.generations, seed=args.seed,
                          progress=not args.no_progress)
    config.validate()
    # Loaded before step 1 is announced, so that a bad --space, --tables or a missing GPU is the only
    # line printed (resolving a local target measures nothing).
    space = load_space(config)
    table = initial_table(space, config.tables)
    target = resolve_target(config.device, space, table, progress=config.progress)
    # The benchmark scores this machine as a device the predictor has not seen: a table of it among
    # the user's would flatter the predictor's front.
    try:
        _, left_out = without_this_machine(table, config.tables, target.details["measure_config"], config.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = dataclasses.replace(config, leave_out=tuple(left_out))
    notes = list(left_out.values())
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    print(f"[1/3] search with the predictor ({args.pop_size} x {args.generations} generations)", file=sys.stderr)
    t = time.perf_counter()
    with_predictor = run_search(config)
    wall_pred = time.perf_counter() - t

    print("[2/3] the same search measuring every candidate on this machine", file=sys.stderr)
    t = time.perf_counter()
    measured_ms: dict[str, float] = {}

    def measure(archs):
        values = target.measure(archs)
        measured_ms.update(values)
        return np.array([values[a] for a in archs])

    # Proxy scores through Ray as in step 1 (inline, they made the ratio flatter the predictor); they
    # are computed for a whole generation before its latencies are measured, never beside them.
    with make_runner(ParallelConfig(workers=config.workers), not has_accuracy_table(space)) as runner:
        evaluator = Evaluator(quality_objective(space, runner),
                              Objective("measured_latency_ms", "measured latency (ms)", measure))
        evaluated = run_nsga2(space, evaluator, config.pop_size, config.generations, config.seed, config.progress)
        runner_meas = runner.name
    wall_meas = time.perf_counter() - t
    front_meas = evaluated[evaluated["on_front"]]

    print("[3/3] measuring the predictor's front to score both fronts on the same footing", file=sys.stderr)
    pred_front = with_predictor.front
    todo = [a for a in pred_front["arch_str"] if a not in measured_ms]
    measured_ms.update(target.measure(todo) if todo else {})
    pred_front_lat = np.array([measured_ms[a] for a in pred_front["arch_str"]])
    max_lat = max(float(np.max(pred_front_lat)), float(front_meas["measured_latency_ms"].max())) * 1.0001
    q = with_predictor.quality.name
    pred_q, meas_q = pred_front[q].to_numpy(dtype=float), front_meas[q].to_numpy(dtype=float)
    if q == "accuracy":
        normalisation = "error fraction, latency / max measured latency over both fronts, reference (1, 1)"
    else:
        # A proxy score is no percentage: read as one, 1 - score/100 went negative. Rescaled instead
        # over both fronts, so that the best scores 100 and the worst just above 0.
        low, high = float(min(pred_q.min(), meas_q.min())), float(max(pred_q.max(), meas_q.max()))
        span = (high - low) * 1.0001 or 1.0
        pred_q, meas_q = (100.0 * (1.0 - (high - v) / span) for v in (pred_q, meas_q))
        normalisation = (f"{q} rescaled over both fronts to (0, 1] (best 1), latency / max measured latency over "
                         "both fronts, reference (1, 1)")
    hv_pred = hypervolume(normalised_objectives(pred_q, pred_front_lat, max_lat))
    hv_meas = hypervolume(normalised_objectives(meas_q, front_meas["measured_latency_ms"], max_lat))
    return {
        "device": args.device, "space": args.space, "tables": [str(p) for p in args.tables],
        "pop_size": args.pop_size, "generations": args.generations,
        "seed": args.seed,
        "wall_s_predictor": wall_pred, "wall_s_measure_all": wall_meas, "speedup": wall_meas / wall_pred,
        "unique_measured_measure_all": len(evaluated), "unique_evaluated_predictor": len(with_predictor.evaluated),
        "measured_on_target_predictor": len(with_predictor.samples),
        "predictor_timings_s": with_predictor.timings_s,
        # where each search computed its quality objective: the same, or the ratio would compare runners
        "quality_runner_predictor": with_predictor.runner, "quality_runner_measure_all": runner_meas,
        "hv_predictor_front": hv_pred, "hv_measured_front": hv_meas,
        "hv_ratio": hv_pred / hv_meas if hv_meas > 0 else None,
        "hv_normalisation": normalisation,
        "notes": notes,
    }


def print_speedup(r: dict) -> None:
    from nas.metrics import format_speedup

    print(f"search with predictor : {r['wall_s_predictor']:8.1f} s  ({r['measured_on_target_predictor']} "
          f"measured on the device, {r['unique_evaluated_predictor']} candidates evaluated)")
    print(f"measure every candidate: {r['wall_s_measure_all']:8.1f} s  ({r['unique_measured_measure_all']} "
          f"unique candidates measured)")
    print(f"speedup                : {format_speedup(r['speedup']):>9s}")
    print(f"HV under measured latency: predictor front {r['hv_predictor_front']:.4f}, measured front "
          f"{r['hv_measured_front']:.4f}, hv_ratio "
          + ("n/a (no architecture above 0% quality)" if r["hv_ratio"] is None else f"{r['hv_ratio']:.4f}"))


def proxy(args) -> dict:
    from search_spaces.proxy import ProxyConfig, proxy_benchmark

    return proxy_benchmark(n=args.n, seed=args.seed, config=ProxyConfig(), progress=not args.no_progress)


def throughput(args) -> dict:
    from nas.parallel import ParallelConfig, RayRunner
    from nas.run import proxy_scores
    from search_spaces import get_space
    from search_spaces.proxy import ProxyConfig

    try:
        space = get_space(args.space)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    archs = space.random_sample(args.n, np.random.default_rng(args.seed))
    cfg = ProxyConfig()
    rates = {}
    for workers in args.workers:
        runner = RayRunner(ParallelConfig(workers=workers, batch_size=2))
        try:
            # As the search scores them: an architecture the space cannot score stops the run, so
            # that no rate is printed for failures.
            proxy_scores(archs[: 2 * workers], space, cfg, runner)   # warm the workers up
            t = time.perf_counter()
            proxy_scores(archs, space, cfg, runner)
            rates[workers] = args.n / (time.perf_counter() - t)
        finally:
            runner.close()
    base = rates[min(rates)]
    return {"space": args.space, "n": args.n, "proxy": cfg.name,
            "archs_per_s": {str(k): v for k, v in rates.items()},
            "scaling": {str(k): v / base for k, v in rates.items()}}


def print_proxy(r: dict) -> None:
    print(f"{r['proxy']} proxy on {r['n']} random NAS-Bench-201 architectures, Spearman with NATS-Bench test "
          f"accuracy, beside the parameter count's (the baseline a proxy must beat):")
    for key in r:
        if key.startswith("spearman_"):
            dataset = key.removeprefix("spearman_")
            proxy, params = (f"{v:6.3f}" if np.isfinite(v) else "   n/a" for v in (r[key], r["params_" + key]))
            print(f"  {dataset:15s} proxy {proxy}   parameters {params}")
    line = f"seconds per architecture, one thread: NAS-Bench-201 {r['seconds_per_arch']:.3f}"
    if "fbnet_seconds_per_arch" in r:
        line += f", FBNet {r['fbnet_seconds_per_arch']:.3f} (over {r['n_fbnet']})"
    print(line)


def print_throughput(r: dict) -> None:
    print(f"{r['proxy']} proxy on {r['n']} random {r['space']} architectures through Ray:")
    print("  workers  archs/s  scaling")
    for workers, rate in r["archs_per_s"].items():
        print(f"  {workers:>7s}  {rate:7.1f}  {r['scaling'][workers]:6.2f}x")


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 1,2, got {text!r}")
    return list(dict.fromkeys(counts))  # a repeat would print one row for two runs


def check_args(args) -> None:
    """Refuse what cannot work before minutes of measuring, not after."""
    if args.what == "proxy" and not 2 <= args.n <= 15625:
        raise UsageError(f"--n must be between 2 and 15625 (NAS-Bench-201's size) for a Spearman, got {args.n}")
    if args.what == "throughput" and args.n < 1:
        raise UsageError(f"--n must be a positive integer, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")

    check_output_folder(args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True, metavar="BENCHMARK")
    s = sub.add_parser("speedup", help="predictor search vs measuring every candidate, on this machine",
                       formatter_class=HelpFormatter)
    s.add_argument("--device", default="local", help="local or local-cuda: every candidate is measured on it")
    s.add_argument("--space", default="nasbench201", help="search space")
    s.add_argument("--tables", type=path_arg, nargs="+", action="extend", default=[],
                   help="latency tables to train the predictor on, as nas.search --tables (needed for a space "
                        "that ships none)")
    s.add_argument("--pop-size", type=int, default=40, help="NSGA-II population size")
    s.add_argument("--generations", type=int, default=20, help="NSGA-II generations")
    s.add_argument("--seed", type=int, default=0, help="seed of both searches")
    x = sub.add_parser("proxy", help="proxy score vs true accuracy on NAS-Bench-201",
                       formatter_class=HelpFormatter)
    x.add_argument("--n", type=int, default=1000, help="random NAS-Bench-201 architectures scored")
    x.add_argument("--seed", type=int, default=0, help="seed of the random architectures")
    t = sub.add_parser("throughput", help="proxy evaluations per second through Ray, by worker count",
                       formatter_class=HelpFormatter)
    t.add_argument("--space", default="fbnet", help="search space")
    t.add_argument("--n", type=int, default=96, help="architectures scored per worker count")
    t.add_argument("--workers", type=_worker_counts, default=[1, 2],
                   help="comma-separated worker counts (default: 1,2)")
    t.add_argument("--seed", type=int, default=0, help="seed of the random architectures")
    for sp in (s, x, t):
        sp.add_argument("--json", type=file_arg, help="also write the figures to this JSON file")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        result = {"speedup": speedup, "proxy": proxy, "throughput": throughput}[args.what](args)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from search_spaces.registry import user_code_error

        why = user_code_error(exc)
        if why is None:
            raise
        print(f"error: {why}", file=sys.stderr)
        return 2
    {"speedup": print_speedup, "proxy": print_proxy, "throughput": print_throughput}[args.what](result)
    if args.json:
        from predictor.benchmark import write_json

        try:
            write_json(args.json, result)
        except OSError as exc:  # the figures above are printed all the same
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted: the figures are printed above; {args.json} was not written", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    from nas.config import setup_command_line

    setup_command_line()
    sys.exit(main())
