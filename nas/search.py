"""`python -m nas.search`: hardware-aware NSGA-II search with a latency predictor adapted to the target.

Data flows one way: command line -> SearchConfig -> run_search -> write_results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nas.config import HelpFormatter, SearchConfig, UsageError, path_arg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nas.search",
        description="Search for the most accurate networks that run fast on a target device. Latency comes "
                    "from a MAPLE-style predictor trained on many devices and adapted to the target from "
                    "a few measurements (table values for devices with a shipped table).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--device", default=SearchConfig.device,
                   help="target: a device with a shipped table (e.g. gold_6226, titan_rtx_256, pixel2), a name "
                        "with a saved profile (python -m profiler profile --name NAME), or 'local' to measure "
                        "this machine now ('local-cuda' for its GPU)")
    p.add_argument("--space", default=SearchConfig.space,
                   help="search space: nasbench201, fbnet, or your own as path/to/file.py:ClassName or "
                        "package.module:ClassName")
    p.add_argument("--dataset", default=None,
                   help="dataset whose accuracy is the quality objective (nasbench201: cifar10, cifar100, "
                        "imagenet16-120); default: the space's own")
    p.add_argument("--tables", type=path_arg, nargs="+", action="extend", default=[],
                   help="latency tables (parquet/CSV with columns device, arch_str, latency_ms, or folders of "
                        "them) to train the predictor on instead of the space's shipped tables; needed for a "
                        "space that ships none (python -m profiler collect makes them)")
    p.add_argument("--pop-size", type=int, default=SearchConfig.pop_size, help="NSGA-II population size")
    p.add_argument("--generations", type=int, default=SearchConfig.generations, help="NSGA-II generations")
    p.add_argument("--seed", type=int, default=SearchConfig.seed, help="seed of every random choice")
    p.add_argument("--samples", type=int, default=SearchConfig.samples,
                   help="architectures measured on the target to adapt the predictor")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray workers for expensive evaluations (proxy scores of spaces without an accuracy "
                        "table, e.g. FBNet); default: one per CPU. Table look-ups and predictor calls cost "
                        "microseconds per candidate and always run inline, where Ray would only add overhead")
    p.add_argument("--ray-address", default=None,
                   help="join an existing Ray cluster (HOST:PORT, e.g. 10.0.0.1:6379, or 'auto' for the one "
                        "`ray start` began on this machine) instead of starting a local one; see the README")
    p.add_argument("--out", type=path_arg, default=SearchConfig.out,
                   help="results go to OUT/<space>-<device>-<time>/")
    p.add_argument("--profiles-dir", type=path_arg, default=None,
                   help="where saved device profiles live (default: $HWNAS_PROFILES_DIR or "
                        "~/.local/share/hwnas/profiles)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(device=args.device, space=args.space, dataset=args.dataset, pop_size=args.pop_size,
                        generations=args.generations, seed=args.seed, samples=args.samples, out=args.out,
                        workers=args.workers, ray_address=args.ray_address,
                        profiles_dir=args.profiles_dir, tables=tuple(args.tables), progress=not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    start = time.perf_counter()
    out = None
    try:
        config.validate()
        for caution in config.cautions():
            print(f"warning: {caution}", file=sys.stderr)
        from nas.report import OutputDir, run_name, write_results
        from nas.run import run_search, verify_on_device

        out = OutputDir(config.out, run_name(config.space, config.device))
        result = run_search(config)
        result.wall_s = time.perf_counter() - start
        # Verification re-measures the front on this machine; it is not part of the search's wall time.
        verify = verify_on_device(result) if result.target.can_measure_here else None
        try:
            path, summary = write_results(result, out, verify=verify)
        except OSError as exc:  # a full disk, say: the folder was writable when checked at the start
            raise UsageError(f"cannot write results under {config.out}: {exc.strerror or exc}") from None
    except UsageError as exc:
        if out is not None:
            out.discard()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if out is not None:
            out.discard()
        print("interrupted: nothing was written", file=sys.stderr)
        return 130  # the shell's code for a run stopped by Ctrl-C
    except BaseException as exc:
        if out is not None:
            out.discard()
        from search_spaces.registry import user_code_error

        why = user_code_error(exc) if isinstance(exc, Exception) else None
        if why is None:
            raise
        print(f"error: {why}", file=sys.stderr)
        return 2
    print_summary(path, summary)
    return 0


def print_summary(path: Path, summary: dict) -> None:
    lines = [f"results: {path}",
             f"  device {summary['device']} ({summary['device_source']}), space {summary['space']}, "
             f"{summary['n_evaluated']} candidates evaluated, {summary['n_front']} on the front, "
             f"{summary['samples_measured']} measured on the target, {summary['wall_s']:.1f} s"]
    if "true_hv_ratio" in summary:
        regret = ", ".join(f"{k} {v:.2f}" for k, v in summary["regret_pp"].items())
        hv = summary["true_hv_ratio"]
        hv = ("n/a (the true front has no hypervolume: no architecture above 0% accuracy, or none faster than the "
              "slowest)") if hv is None else f"{hv:.4f}"
        lines.append(f"  against the device's table: HV ratio {hv}, "
                     f"predicted within ±10% {summary['pred_within_10pct']:.3f}, regret (pp) {regret}")
    elif "pred_within_10pct" in summary:  # no true front: a table of part of the space, or a proxy objective
        lines.append(f"  against the device's table, which holds {summary['n_with_table_latency']} of the "
                     f"evaluated candidates: predicted within ±10% {summary['pred_within_10pct']:.3f}")
    elif summary.get("n_with_table_latency") == 0:  # FBNet's tables hold 5,000 of its archs
        lines.append("  against the device's table: it holds none of the evaluated candidates, so none could be "
                     "checked")
    from nas.metrics import format_speedup

    lines.append(f"  speedup vs measuring every candidate: {format_speedup(summary['speedup'])} "
                 f"({summary['speedup_method'].split(':')[0]})")
    if "verify" in summary:
        v = summary["verify"]
        # Spearman is None for a one-architecture front: no ranking to compare.
        rho = "n/a (one architecture)" if v["spearman"] is None else f"{v['spearman']:.3f}"
        lines.append(f"  front re-measured here: {v['n']} archs, within ±10% {v['within_10pct']:.2f}, "
                     f"Spearman {rho}")
    lines += [f"  caution: {c}" for c in summary.get("cautions", [])]
    print("\n".join(lines))


def cli() -> int:
    """`python -m nas.search` and the `hwnas-search` script: `main`, in a process set up for a command line."""
    from nas.config import setup_command_line

    setup_command_line()
    return main()


if __name__ == "__main__":
    sys.exit(cli())
