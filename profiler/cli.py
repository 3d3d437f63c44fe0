"""`python -m profiler`: profile this machine for a search space, or benchmark the predictor on it.

Errors a user can cause (unknown space, unwritable directory, an architecture that does not build,
perf missing with --counters required) print one line on stderr and exit with status 2; nothing is
written unless the whole profile was measured.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from typing import Sequence

from nas.config import UsageError, check_output_folder, file_arg, path_arg, probe_writable
from profiler.counters import DEFAULT_EVENTS

USAGE_ERROR = 2


def _int_at_least(minimum: int, what: str, maximum: int | None = None):
    """An argparse type: an integer no smaller than `minimum` (and no larger than `maximum`)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


_positive = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "a non-negative integer")
# Far beyond any real use, and below what fails deep inside torch or numpy with a message that does not
# name the option (a batch of 10**20 overflows torch's sizes; 10**12 runs asked numpy for 7 TiB).
_batch_size = _int_at_least(1, "a positive integer up to 65536", 65536)
_runs = _int_at_least(1, "a positive integer up to 100000", 100_000)
_warmup = _int_at_least(0, "an integer from 0 to 100000", 100_000)  # unbounded, 10**9 ran for days
_n_archs = _int_at_least(1, "a positive integer up to 1000000", 1_000_000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m profiler",
        description="Measure neural architectures on this machine: latency (median of repeated runs), hardware "
                    "counters where perf can read them, and device profiles that a search on another machine "
                    "can target.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    measure = argparse.ArgumentParser(add_help=False)
    measure.add_argument("--space", default="nasbench201", help="search space (default: nasbench201)")
    measure.add_argument("--batch-size", type=_batch_size, default=1, help="inference batch size (default: 1)")
    measure.add_argument("--runs", type=_runs, default=50, help="timed runs per architecture (default: 50)")
    measure.add_argument("--warmup", type=_warmup, default=10,
                         help="untimed warm-up runs per architecture; with --rounds, shared out over the rounds, "
                              "rounded up, since each round warms up again (default: 10)")
    measure.add_argument("--threads", type=_positive, default=1, help="torch threads while measuring (default: 1)")
    measure.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                         help="where the networks run (default: cpu); profile reads the CPU's counters either way")
    measure.add_argument("--quiet", action="store_true", help="no progress bar")
    measure.add_argument("--rounds", type=_positive, default=None,
                         help="split each arch's timed runs into this many passes over all the archs, so that "
                              "other jobs' load falls on all alike (default: 5 for benchmark, else 1)")

    p = sub.add_parser(
        "profile", parents=[measure], help="measure the predictor's reference archs here and save a device profile",
        description="Measure the architectures the MAPLE predictor adapts from on this machine, read the hardware "
                    "counters (cycles, instructions, cache references/misses, branch misses) where perf can, and "
                    "save the profile as <profiles-dir>/<name>--<space>.json. Profiles are found in --profiles-dir, "
                    "else $HWNAS_PROFILES_DIR, else ~/.local/share/hwnas/profiles.")
    p.add_argument("--name", required=True,
                   help="device name the search will use, e.g. xeon6230 (letters, digits, '.', '_', '-')")
    p.add_argument("--samples", type=_positive, default=3,
                   help="how many reference archs the predictor picks (default: 3, as in MAPLE)")
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help="measure this architecture instead of the predictor's choice (repeatable)")
    p.add_argument("--tables", type=path_arg, nargs="+", metavar="PATH", action="extend", default=[],
                   help="the latency tables the search will train on (its --tables): the predictor picks the "
                        "reference archs from them; needed for a space that ships none")
    p.add_argument("--profiles-dir", type=path_arg,
                   help="directory for profiles (default: $HWNAS_PROFILES_DIR or ~/.local/share/hwnas/profiles)")
    p.add_argument("--counters", choices=("auto", "required", "off"), default="auto",
                   help="auto: record counters where perf can read them, else record why not (default); "
                        "required: fail (exit 2) when they cannot be read; off: do not try")
    p.add_argument("--perf", default="perf", help="perf executable (default: perf on PATH)")

    c = sub.add_parser(
        "collect", parents=[measure], help="measure an initial set here for a space that ships no latency table",
        description="Measure N random architectures of a space on this machine, one at a time, and write "
                    "OUT/<device>.csv (device, arch_str, latency_ms, and how it was measured: iqr_ms, batch_size, "
                    "threads, hardware). Run it on every machine you can, into the "
                    "same folder: the files merge, and `python -m nas.search --tables OUT` trains the latency "
                    "predictor on them. The predictor needs at least two devices: a second machine, or this "
                    "one at another batch size, counts as one.")
    c.add_argument("--n", type=_n_archs, default=200, help="architectures to measure (default: 200)")
    c.add_argument("--seed", type=_seed, default=0, help="seed of the random architectures (default: 0)")
    c.add_argument("--out", type=path_arg, default="tables", help="folder of latency tables (default: tables)")
    c.add_argument("--device-name", default=None,
                   help="name of this machine in the table (default: host-<hostname>-b<batch>, or "
                        "host-<hostname>-cuda-b<batch> with --device cuda)")

    b = sub.add_parser(
        "benchmark", parents=[measure], help="score the predictor on this machine as an unseen device",
        description="Measure N random architectures here (one at a time), adapt the MAPLE predictor from the "
                    "reference archs measured here, predict the N and print ±10% error-bound accuracy and Spearman "
                    "(with the affine nearest-device baseline alongside).")
    b.add_argument("--n", type=_n_archs, default=100, help="random architectures to measure (default: 100)")
    b.add_argument("--seed", type=_seed, default=0, help="seed of the random architectures (default: 0)")
    b.add_argument("--reference", type=_positive, default=3, help="reference archs to adapt from (default: 3)")
    b.add_argument("--tables", type=path_arg, nargs="+", metavar="PATH", action="extend", default=[],
                   help="latency tables to fit the predictor on instead of the space's shipped ones (as "
                        "nas.search --tables); needed for a space that ships none")
    b.add_argument("--json", type=file_arg, metavar="PATH",
                   help="also write every measurement and prediction to PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    new_folders = _folders_not_there_yet(args)
    try:
        with warnings.catch_warnings():
            # Our warnings are for the user, one line each, not Python's file:line format.
            warnings.showwarning = lambda message, *a, **k: print(f"warning: {message}", file=sys.stderr)
            return {"profile": _profile, "collect": _collect, "benchmark": _benchmark}[args.command](args)
    except KeyboardInterrupt:
        _remove_if_empty(new_folders)
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except UsageError as exc:
        _remove_if_empty(new_folders)
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as exc:
        from search_spaces.registry import user_code_error

        why = user_code_error(exc)
        if why is None:
            raise
        _remove_if_empty(new_folders)
        print(f"error: {why}", file=sys.stderr)
        return USAGE_ERROR


def _folders_not_there_yet(args) -> list:
    """The output folder of the command and its parents that do not exist yet, deepest first.

    Each command creates its output folder before measuring, to fail early when it cannot write;
    a run that then fails or is interrupted removes them again, so that it leaves nothing behind.
    """
    from pathlib import Path

    from profiler.profiles import profiles_dir

    if args.command == "collect":
        folder = args.out
    elif args.command == "profile":
        folder = args.profiles_dir or profiles_dir()
    elif args.json:
        folder = Path(args.json).parent
    else:
        return []
    folder = Path(folder).resolve()
    return [p for p in [folder, *folder.parents] if not p.exists()]


def _remove_if_empty(folders) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only an empty folder: never another run's files
        except OSError:
            break


def _space(name: str):
    from search_spaces.registry import get_space

    try:
        return get_space(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _measure_config(args):
    from profiler.measure import MeasureConfig

    # More threads than cores measures contention, not the network: --threads 999 on a 2-core VM
    # timed a 7.8 ms cell network at 4355 ms.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and args.threads > cores:
        raise UsageError(f"--threads {args.threads}: this process may use {cores} core(s); more threads than "
                         "cores would time their contention, not the network")
    # Each round times at least one run: more rounds than runs were quietly cut to the runs, while the
    # output and the files recorded the rounds asked for.
    if args.rounds and args.rounds > args.runs:
        raise UsageError(f"--rounds {args.rounds} exceeds --runs {args.runs}: each round times at least one run")
    rounds = args.rounds or (min(5, args.runs) if args.command == "benchmark" else 1)
    config = MeasureConfig(batch_size=args.batch_size, warmup=args.warmup, runs=args.runs,
                           threads=args.threads, device=args.device, rounds=rounds)
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA GPU on this machine")
    return config


def _reference_archs(space, k: int, table, name: str, progress: bool = False) -> list[str]:
    """The archs `nas.search --device NAME` will ask the profile for: the predictor's references when
    fitted on the same initial set (the shipped tables, or the search's --tables)."""
    from predictor.maple import MaplePredictor

    try:
        return list(MaplePredictor(space, progress=progress).fit(table.initial_set(name)).reference_archs(k))
    except ValueError as exc:  # e.g. fewer devices than the prior needs, fewer archs than --samples
        raise UsageError(f"cannot choose {k} reference archs from these tables: {exc}") from None


def _profile(args) -> int:
    from predictor.tables import load_tables
    from profiler.counters import read_counters
    from profiler.measure import MeasurementError
    from profiler.profiles import (ProfileError, check_writable, profile_machine, profile_path, resolved_tables,
                                   save_profile)

    space = _space(args.space)
    config = _measure_config(args)
    try:
        # Before the reference choice (minutes for FBNet) and the measuring: either would be lost.
        directory = check_writable(args.profiles_dir)
        path = profile_path(args.name, space.name, directory)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    if path.is_dir():
        raise UsageError(f"cannot save the profile as {path}: a folder of that name is in the way; move it, or give "
                         "another --name")
    try:
        table = load_tables(space, args.tables)
    except ValueError as exc:
        if args.tables or not args.arch:
            raise UsageError(str(exc)) from None
        table = None  # --arch in a space without tables: no references to choose, no name to clash with
    if table is not None and args.name in table.devices:
        raise UsageError(f"{args.name!r} is a device of the {'given' if args.tables else 'shipped'} {space.name} "
                         f"tables, and a search for --device {args.name} uses its table, never a profile: give "
                         f"this machine another name, e.g. {args.name}-mine")
    if args.arch:
        archs = list(dict.fromkeys(args.arch))
        for arch in archs:
            try:
                space.encode_within_choices(arch)
            except ValueError as exc:
                raise UsageError(f"--arch: {exc}") from None
            if space.ignores_input([arch])[0]:
                raise UsageError(f"--arch {arch}: its output does not depend on its input, so a compiler may fold "
                                 f"it away and its latency says nothing of its ops' costs; give another")
        # A search asks a profile for the predictor's references, and says it lacks them only then.
        warnings.warn(f"--arch: a search for --device {args.name} asks the profile for the predictor's reference "
                      "architectures, and these may not be they; leave out --arch to measure those", UserWarning)
    else:
        archs = _reference_archs(space, args.samples, table, args.name, progress=not args.quiet)
    if args.counters == "required":
        # Checked before minutes of measuring: a trivial command shows whether perf can count here.
        probe = read_counters(["true"], DEFAULT_EVENTS, perf=args.perf)
        if not probe.available:
            raise UsageError(f"--counters required, but they cannot be read: {probe.reason}")
    try:
        profile = profile_machine(args.name, space, archs, config, progress=not args.quiet,
                                  counters=args.counters != "off", perf=args.perf)
        # What chose the architectures: a search on other tables (or these, re-collected) asks for others.
        if not args.arch:
            profile.tables, profile.tables_digest = resolved_tables(args.tables), table.digest()
        if args.counters == "required" and profile.counters == "unavailable":
            raise UsageError(f"--counters required, but they cannot be read: {profile.counters_reason}")
        earlier = _earlier_profile(args.name, space.name, directory)
        path = save_profile(profile, directory)
    except (MeasurementError, ProfileError) as exc:
        raise UsageError(str(exc)) from None
    # Saving replaces a profile of the same name: say whose, in case it was another machine's.
    print(f"saved profile {profile.name!r} for {profile.space} to {path}"
          + (f", replacing {earlier}" if earlier else ""))
    print(f"machine: {profile.machine['cpu_model']}" + (f", GPU {profile.machine['gpu_name']}"
                                                        if profile.machine.get("gpu_name") else ""))
    print(f"batch {profile.batch_size}, {profile.threads} thread(s), {config.describe_runs()}")
    print("   median ms      IQR ms      min ms  thread-CPU ms  arch")
    for arch, ms in profile.samples.items():
        s = profile.spreads[arch]
        cpu = f"{s['cpu_median_ms']:13.3f}" if s.get("cpu_median_ms") is not None else f"{'-':>13}"
        print(f"  {ms:10.3f}  {s['iqr_ms']:10.3f}  {s['min_ms']:10.3f}  {cpu}  {arch}")
    if profile.counters == "unavailable":
        print(f"counters: unavailable ({profile.counters_reason})")
    else:
        ev = profile.counters["events"]
        print("counters per inference: " + ", ".join(f"{k} {v:.4g}" for k, v in ev.items()))
        print("derived: " + ", ".join(f"{k} {v:.4g}" for k, v in profile.counters["derived"].items()))
    return 0


def _earlier_profile(name: str, space: str, directory) -> str | None:
    """What a save would replace ('the one made on <CPU>, GPU <GPU> at <time>'), or None."""
    from profiler.profiles import ProfileError, load_profile

    try:
        p = load_profile(name, space, directory)
    except ProfileError:
        return "an unreadable or older-format file"
    if p is None:
        return None
    gpu = p.machine.get("gpu_name")
    machine = p.machine.get("cpu_model", "an unknown CPU") + (f", GPU {gpu}" if gpu else "")
    made_for = p.tables_made_for()
    return f"the one made on {machine} at {p.created}" + (f" for {made_for}" if made_for else "")


def _collect(args) -> int:
    from pathlib import Path

    from profiler.collect import collect_archs, collect_table, this_machine_name, write_table
    from profiler.measure import LOCAL_DEVICES, MeasurementError
    from search_spaces.base import name_problem

    space = _space(args.space)
    config = _measure_config(args)
    device = args.device_name or this_machine_name(config)
    problem = name_problem(device)
    if problem:  # the rule of profile names: it names a file, and `..` or a hidden file would surprise
        raise UsageError(f"--device-name {device!r} {problem}")
    if device in LOCAL_DEVICES:
        raise UsageError(f"--device-name {device!r}: a search for --device {device} measures this machine during "
                         "the search, never a table's device; give the machine a name of its own")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (the tables of every device go there)")
    if (out / f"{device}.csv").is_dir():  # "give a file name" would be the wrong advice: --out is a folder
        raise UsageError(f"cannot write this device's table {out / f'{device}.csv'}: a folder of that name is in the "
                         "way; move it, or give another --device-name")
    _check_writable_file(str(out / f"{device}.csv"))  # before minutes of measuring, not after
    try:
        archs = collect_archs(space, args.n, args.seed)
    except ValueError as exc:  # a user space whose decode refuses its own genomes
        raise UsageError(str(exc)) from None
    _refuse_a_folder_this_would_break(out, device, space, archs)
    if len(archs) < args.n:  # said before measuring: the user may have meant another space
        print(f"note: random draws found only {len(archs)} distinct {space.name} architectures (the space seems to "
              f"hold no more): measuring all of them, not --n {args.n}", file=sys.stderr)
    try:
        table = collect_table(space, archs, device, config, progress=not args.quiet)
    except MeasurementError as exc:
        raise UsageError(str(exc)) from None
    from predictor.tables import read_latency_files

    earlier, replaced = out / f"{device}.csv", ""
    if earlier.is_file():
        try:
            replaced = f", replacing the {len(read_latency_files([earlier]))} measurement(s) it held"
        except ValueError:  # not a latency table: replace it all the same
            replaced = ", replacing a file that is not a readable table"
    path = write_table(table, out)
    lat = table["latency_ms"]
    print(f"measured {len(table)} {space.name} architectures as device {device!r}: median {lat.median():.3f} ms, "
          f"range {lat.min():.3f}-{lat.max():.3f} ms")
    # Re-collecting a device replaces its table: say so, since the earlier measurements are gone.
    print(f"wrote {path}{replaced}")
    # Read back as a search's --tables will read the folder: counting its files named any CSV a device,
    # and a folder that also held another space's tables, or other architectures, looked fine.
    from predictor.tables import load_tables, shipped_devices

    try:
        devices = sorted(load_tables(space, [out]).devices)
    except ValueError as exc:
        print(f"warning: a search with --tables {out} will stop: {exc}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:  # main's "nothing was written" would be untrue now
        print(f"interrupted: {path} was written; the folder was not read back", file=sys.stderr)
        return 130
    more = ""
    if len(devices) < 2:
        more = (" (a search with --tables needs at least 2: collect again on another machine or with another "
                "--batch-size")
        # A space with shipped tables can already judge the predictor on this one, as an unseen device.
        judge = (f"; or judge the predictor on this device: python -m predictor.benchmark --space "
                 f"{shlex.quote(space.spec)} --table {shlex.quote(str(out))}")
        more += (judge if shipped_devices(space) else "") + ")"
    print(f"{out} now holds {len(devices)} device(s): {', '.join(devices)}{more}")
    return 0


def _refuse_a_folder_this_would_break(out, device: str, space, archs) -> None:
    """Refused before measuring: a folder that, with this device's table written, no search of this
    space could use (a search reads every table there, and every device needs the same archs).

    Another space's table (named by device alone, so this device's own file would also be lost),
    another device's table of other architectures (another --n or --seed), or another file holding
    this device: said after measuring, it cost minutes and left the folder broken.
    """
    from predictor.tables import read_latency_files

    for file in sorted(out.iterdir()) if out.is_dir() else []:
        if file.suffix not in (".csv", ".parquet"):
            continue
        try:
            rows = read_latency_files([file])
        except ValueError:
            continue  # not a table at all: said after measuring, as a search would say it
        theirs = set(rows["arch_str"])
        if file.name != f"{device}.csv" and device in set(rows["device"]):  # a copy kept beside it, or a .parquet
            raise UsageError(f"{file} also holds measurements of device {device!r}: with this device's table written "
                             f"beside it, a search of {out} would find two latencies for each architecture; move that "
                             "file out of the folder, or give another --device-name")
        for arch in sorted(theirs):  # sorted: the one named is the same from run to run
            try:
                space.encode_within_choices(arch)
            except ValueError:
                if file.stem == device:
                    what, harm = f"{file} holds another space's measurements", "which collecting would replace"
                else:
                    what, harm = f"{out} holds another space's table ({file.name})", "and a search reads every table there"
                raise UsageError(f"{what} ({arch!r} is not a {space.name} architecture), {harm}: give {space.name} a "
                                 "--out folder of its own (or, if it is this space's from before you changed its "
                                 "choices, move the file away)") from None
        if file.stem != device and theirs != set(archs):
            raise UsageError(f"{out} holds tables of other architectures ({file.name}: {len(theirs)}, of which "
                             f"{len(theirs & set(archs))} are among these {len(archs)}), and a search needs every "
                             "device to have the same ones: collect with the --n and --seed they were collected with")


def _benchmark(args) -> int:
    from profiler.benchmark import BenchmarkConfig, format_result, run_benchmark, write_json
    from profiler.measure import MeasurementError

    if args.n < 2:
        raise UsageError("--n must be at least 2: a Spearman needs two architectures to rank")
    space = _space(args.space)
    config = BenchmarkConfig(space=space.spec, tables=tuple(map(str, args.tables)), n=args.n, seed=args.seed,
                             n_reference=args.reference, measure=_measure_config(args))
    if args.json:
        check_output_folder(args.json)  # before minutes of measuring, not after; a missing folder is a typo
    try:
        result = run_benchmark(config, progress=not args.quiet)
    except (MeasurementError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(format_result(result))
    if args.json:
        try:
            print(f"wrote {write_json(result, args.json)}")
        except OSError as exc:
            raise UsageError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0


def _check_writable_file(path: str) -> None:
    """UsageError unless `path` can be written, its folder made where missing: collect's --out is a
    folder of tables that a first collect creates (a --json is refused in a missing folder instead,
    by check_output_folder, where a missing folder is more likely a typo)."""
    from pathlib import Path

    if Path(path).is_dir():
        raise UsageError(f"cannot write {path}: it is a folder; give a file name")
    parent = Path(path).resolve().parent
    blocking = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocking is not None and not blocking.is_dir():  # mkdir would say only "File exists"
        raise UsageError(f"cannot write {path}: {blocking} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe_writable(parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
