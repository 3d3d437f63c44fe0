"""The search command end to end on the shipped tables, and its answers to bad input."""

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nas.benchmark import build_parser as benchmark_parser
from nas.benchmark import main as benchmark_main
from nas.config import UsageError
from nas.search import build_parser, main, print_summary


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nas.search", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.slow
def test_small_search_on_a_table_device_writes_every_result(tmp_path):
    assert main(["--device", "gold_6226", "--pop-size", "20", "--generations", "8", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    (run,) = list(tmp_path.iterdir())
    assert run.name.startswith("nasbench201-gold_6226-")
    assert {p.name for p in run.iterdir()} == {"pareto.csv", "evaluated.csv", "pareto.png", "summary.json"}
    summary = json.loads((run / "summary.json").read_text())
    for key in ("device", "space", "dataset", "seed", "n_evaluated", "wall_s", "samples_measured",
                "true_hv_ratio", "pred_within_10pct", "regret_pp", "speedup", "speedup_method"):
        assert key in summary, key
    assert summary["samples_measured"] == 3
    assert 0 < summary["true_hv_ratio"] <= 1.0 + 1e-9
    assert set(summary["regret_pp"]) == {"p25", "p50", "p75"}
    front = pd.read_csv(run / "pareto.csv")
    evaluated = pd.read_csv(run / "evaluated.csv")
    assert list(front.columns) == ["arch_str", "accuracy", "predicted_latency_ms", "table_latency_ms"]
    assert len(evaluated) == summary["n_evaluated"] >= 20
    assert set(front["arch_str"]) <= set(evaluated["arch_str"])
    # the front is non-dominated: sorted by latency, accuracy strictly increases
    assert front["predicted_latency_ms"].is_monotonic_increasing
    assert front["accuracy"].is_monotonic_increasing


def test_the_estimated_speedup_counts_measuring_the_samples(tmp_path):
    # 200 samples for about 20 candidates cost more than measuring the candidates: it claimed a speedup
    assert main(["--device", "fpga", "--samples", "200", "--pop-size", "10", "--generations", "2",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    (run,) = list(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    samples_s = sum(summary["samples"].values()) / 1000 * 60  # the profiler's 10 warm-up + 50 runs
    assert summary["measure_samples_s"] == pytest.approx(samples_s) and samples_s > summary["measure_all_s"]
    assert summary["speedup"] == pytest.approx(summary["measure_all_s"] / (summary["wall_s"] + samples_s))
    assert summary["speedup"] < 1 and "its 200 samples" in summary["speedup_method"]


@pytest.mark.parametrize("args, expected", [
    (["--device", "no_such_device"], "unknown device 'no_such_device'"),
    (["--space", "no_such_space"], "unknown search space"),
    (["--dataset", "mnist"], "unknown dataset"),
    (["--pop-size", "0"], "--pop-size must be a positive integer"),
    (["--pop-size", "100000"], "--pop-size must be at most 10000"),
    (["--generations", "-1"], "--generations must be a positive integer"),
    (["--space", "missing_file.py:Space"], "not found"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--ray-address", "head-node"], "is not HOST:PORT"),
    (["--ray-address", ""], "--ray-address is empty"),  # it ran a local search
    (["--ray-address", "localhost:99999"], "is not HOST:PORT (e.g. 10.0.0.1:6379, a port from 1 to 65535)"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, args, expected):
    out = tmp_path / "results"
    r = run_cli(*args, "--out", str(out), "--no-progress")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_an_out_that_is_a_file_is_named_as_one(tmp_path, capsys):
    # mkdir's "File exists" did not say what was wrong
    (tmp_path / "afile").write_text("keep")
    assert main(["--out", str(tmp_path / "afile"), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: cannot write results under {tmp_path / 'afile'}: it is a file, not a " \
                                      "folder; give --out a folder\n"
    assert (tmp_path / "afile").read_text() == "keep"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_with_one_line_exit_130_and_leaves_nothing(tmp_path, signum):
    # SIGTERM (kill, a scheduler's time limit) as a Ctrl-C: it ended the run on the spot, leaving a
    # half-written results folder where it fell during the write
    out = tmp_path / "results"
    # SIGINT back to its default in the child: a shell that starts a job in the background (as CI
    # may) passes it on ignored, and Python then never turns it into KeyboardInterrupt.
    # Generations enough to take minutes, interrupted once NSGA-II's bar counts a generation: in the
    # middle of the search, whatever this machine's speed.
    run = subprocess.Popen([sys.executable, "-m", "nas.search", "--out", str(out), "--generations", "100000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                               for s in (signal.SIGINT, signal.SIGTERM)])
    try:
        seen, deadline = b"", time.monotonic() + 300
        while b"candidates=" not in seen and run.poll() is None and time.monotonic() < deadline:
            if select.select([run.stderr], [], [], 1.0)[0]:
                seen += run.stderr.read1(4096)
        assert b"candidates=" in seen, seen.decode()[-2000:]  # a generation done: the search is under way
        run.send_signal(signum)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()  # a no-op once it has exited
    lines = (seen + stderr).decode().replace("\r", "\n").strip().splitlines()
    assert run.returncode == 130 and lines[-1] == "interrupted: nothing was written" and stdout == b""
    assert not any("Traceback" in line or line.startswith("error") for line in lines), lines  # progress bars only
    assert not out.exists()


def test_failed_run_removes_the_folders_it_created_and_keeps_existing_ones(tmp_path):
    fresh = tmp_path / "a" / "b"
    r = run_cli("--device", "gold_6226", "--tables", str(tmp_path / "missing.csv"), "--out", str(fresh), "--no-progress")
    assert r.returncode == 2 and "not found" in r.stderr
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    r = run_cli("--device", "no_such_device", "--out", str(existing), "--no-progress")
    assert r.returncode == 2
    assert existing.is_dir() and not any(existing.iterdir())


@pytest.mark.parametrize("devices, n_archs, args, expected", [
    # The target's own column leaves one device for the prior.
    (["gold_6226", "pixel3"], 20, ["--device", "gold_6226"], "at least 2 devices besides the target 'gold_6226'"),
    # More samples to measure than the tables have architectures.
    (["gold_6226", "pixel3", "raspi4"], 5, ["--device", "gold_6226", "--samples", "8"],
     "(5 architectures) with --samples 8"),
])
def test_tables_too_small_for_the_predictor_are_one_line_errors(tmp_path, devices, n_archs, args, expected):
    from search_spaces import get_space

    long = get_space("nasbench201").latency_table()
    archs = long["arch_str"].unique()[:n_archs]
    long[long["device"].isin(devices) & long["arch_str"].isin(archs)].to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("--tables", str(tmp_path / "t.csv"), *args, "--out", str(tmp_path / "results"), "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_a_table_device_named_local_is_refused(tmp_path):
    # --device local measures this machine, and the table's "local" was left out of training unsaid
    from search_spaces import get_space

    long = get_space("nasbench201").latency_table()
    long = long[long["device"].isin(["gold_6226", "pixel3", "raspi4"])
                & long["arch_str"].isin(long["arch_str"].unique()[:20])].copy()
    long["device"] = long["device"].replace({"raspi4": "local"})
    long.to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("--tables", str(tmp_path / "t.csv"), "--device", "gold_6226", "--out", str(tmp_path / "results"),
                "--no-progress")
    assert r.returncode == 2 and not (tmp_path / "results").exists()
    assert r.stderr == ("error: the latency tables name a device 'local', a name that means this machine, measured "
                        "during a search for --device local: rename it in its table (collect refuses that name)\n")


def test_a_shipped_device_missing_from_the_given_tables_says_the_tables_replace_the_shipped_ones(tmp_path, capsys):
    # the default --device gold_6226 with tables of two phones was told to profile gold_6226 "on that machine"
    from search_spaces import get_space

    long = get_space("nasbench201").latency_table()
    long = long[long["device"].isin(["pixel3", "raspi4"]) & long["arch_str"].isin(long["arch_str"].unique()[:20])]
    long.to_csv(tmp_path / "t.csv", index=False)
    assert main(["--tables", str(tmp_path / "t.csv"), "--out", str(tmp_path / "results"), "--no-progress"]) == 2
    # (other tests' saved profiles may follow in the list of known devices)
    assert capsys.readouterr().err.startswith("error: device 'gold_6226' is in the shipped nasbench201 tables, but "
                                              "--tables replace them and hold no 'gold_6226': give --device one of "
                                              "theirs, or local (pixel3, raspi4, local, local-cuda")
    assert not (tmp_path / "results").exists()


def test_a_word_where_a_latency_belongs_is_a_one_line_error(tmp_path):
    from search_spaces import get_space

    long = get_space("nasbench201").latency_table()
    long = long[long["device"].isin(["gold_6226", "pixel3", "raspi4"])].head(60)
    long = long.astype({"latency_ms": str})
    long.iloc[7, long.columns.get_loc("latency_ms")] = "n/a"
    long.to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("--tables", str(tmp_path / "t.csv"), "--device", "gold_6226", "--out", str(tmp_path / "results"),
                "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: latency table {tmp_path / 't.csv'}: latency_ms is not a positive number in 1 row(s), "
        "first in row 8 ('n/a')"]
    assert not (tmp_path / "results").exists()


def test_a_results_folder_follows_the_umask(tmp_path, umask):
    # results are often read by a teammate or served from a shared disk: not private like a temp folder
    from nas.report import OutputDir

    out = OutputDir(tmp_path / "results", "run")
    (out.open() / "summary.json").write_text("{}")
    final = out.commit()
    assert final == tmp_path / "results" / "run" and [p.name for p in final.iterdir()] == ["summary.json"]
    assert final.stat().st_mode & 0o777 == 0o777 & ~umask
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["run"]


def test_a_results_folder_is_made_only_when_the_results_are_written(tmp_path):
    # it was made before the search, and a driver that Ray ends outright (its cluster lost) left it behind
    from nas.report import OutputDir

    out = OutputDir(tmp_path / "results" / "deep", "run")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "results").write_text("")  # the check when constructed still finds a --out it cannot make
    with pytest.raises(UsageError, match="cannot write results under .*deep: Not a directory"):
        OutputDir(tmp_path / "results" / "deep", "run")
    (tmp_path / "results").unlink()
    assert out.open().is_dir() and out.commit() == tmp_path / "results" / "deep" / "run"


def test_two_runs_of_the_same_second_race_for_the_folder_and_both_keep_their_results(tmp_path, monkeypatch):
    # 1. another run's start removed the --out it had made between this run's two mkdirs: it failed
    #    with "cannot write results ...: No such file or directory";
    # 2. another run took the name between this run's check and its rename: a traceback, and this
    #    run's results were deleted
    import os

    import nas.report
    from nas.report import OutputDir

    parent, real_mkdir, removed = tmp_path / "results", Path.mkdir, []

    def removed_meanwhile(self, *args, **kwargs):
        if self.name.startswith(".") and not removed:   # once, just before the temporary folder's mkdir
            removed.append(self.parent)
            self.parent.rmdir()
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", removed_meanwhile)
    out = OutputDir(parent, "run")
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    assert removed == [parent]
    (out.open() / "summary.json").write_text("mine")
    real_rename = os.rename

    def taken_meanwhile(src, dst):
        if Path(dst).name == "run":
            real_mkdir(Path(dst))
            (Path(dst) / "summary.json").write_text("theirs")
        return real_rename(src, dst)

    monkeypatch.setattr(nas.report.os, "rename", taken_meanwhile)
    assert out.commit() == parent / "run-2"
    assert (parent / "run-2" / "summary.json").read_text() == "mine"
    assert (parent / "run" / "summary.json").read_text() == "theirs"


def test_a_full_disk_while_writing_the_results_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import errno

    import nas.report

    def full(result, out, **kwargs):
        (out.open() / "pareto.csv").write_text("arch_str,")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nas.report, "write_results", full)
    out = tmp_path / "results"
    assert main(["--device", "gold_6226", "--pop-size", "8", "--generations", "2", "--out", str(out),
                 "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: cannot write results under {out}: No space left on device\n"
    assert not out.exists()


def test_a_terminal_that_cannot_print_the_summary_gets_question_marks_not_a_traceback(tmp_path):
    # under LANG=C the summary's '±' raised UnicodeEncodeError after the results were written
    import os

    r = subprocess.run([sys.executable, "-m", "nas.search", "--pop-size", "8", "--generations", "2", "--out",
                        str(tmp_path), "--no-progress"], capture_output=True, timeout=300,
                       env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()[-2000:]
    assert b"predicted within ?10%" in r.stdout


def test_unknown_device_lists_the_known_ones(tmp_path):
    r = run_cli("--device", "no_such_device", "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 2
    for name in ("gold_6226", "titan_rtx_256", "pixel2", "local"):
        assert name in r.stderr
    assert "python -m profiler profile --name no_such_device" in r.stderr


def test_a_profile_made_for_another_space_is_named(tmp_path):
    # `profiler profile --name box` (NAS-Bench-201 by default), then a FBNet search for box
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "box--nasbench201.json").write_text("{}")
    r = run_cli("--device", "box", "--space", "fbnet", "--profiles-dir", str(profiles), "--out", str(tmp_path / "out"),
                "--no-progress")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    # where it looked: a mistyped --profiles-dir read as "no saved profile" alone
    assert f"no saved profile ('box' has a profile for nasbench201 only) in {profiles}. " in r.stderr
    assert "python -m profiler profile --name box --space fbnet" in r.stderr
    r = run_cli("--device", "bo", "--space", "fbnet", "--profiles-dir", str(profiles), "--out", str(tmp_path / "out"),
                "--no-progress")
    assert r.returncode == 2 and "has a profile" not in r.stderr


def test_a_device_name_no_profile_can_have_gets_no_profile_command(tmp_path):
    r = run_cli("--device", "../x", "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot be a profile's" in r.stderr and "python -m profiler profile" not in r.stderr


def test_unwritable_out_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = run_cli("--out", str(blocker / "sub"), "--no-progress")
    assert r.returncode == 2
    assert "cannot write results" in r.stderr and "Traceback" not in r.stderr


def test_help_shows_defaults_that_say_something():
    text = " ".join(build_parser().format_help().split())  # argparse wraps lines
    assert "(default: gold_6226)" in text and "(default: 60)" in text
    assert "(default: None)" not in text and "(default: ())" not in text and "(default: False)" not in text
    assert "path/to/file.py:ClassName" in text


def test_tables_given_twice_add_up():
    # argparse kept only the last --tables: the earlier files were dropped without a word
    from profiler.cli import build_parser as profiler_parser

    twice = ["--tables", "a.csv", "--tables", "b.csv", "c.csv"]
    assert build_parser().parse_args(twice).tables == [Path("a.csv"), Path("b.csv"), Path("c.csv")]
    assert benchmark_parser().parse_args(["speedup", *twice]).tables == [Path("a.csv"), Path("b.csv"), Path("c.csv")]
    for command in ("profile", "benchmark"):
        name = ["--name", "x"] if command == "profile" else []
        assert profiler_parser().parse_args([command, *name, *twice]).tables == [Path("a.csv"), Path("b.csv"),
                                                                                 Path("c.csv")]
    assert build_parser().parse_args([]).tables == []


def test_benchmark_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark_parser().parse_args(["speedup", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert stop.value.code == 0 and "(default: local)" in text and "NSGA-II generations (default: 20)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize("argv, message", [
    (["proxy", "--n", "1"], "--n must be between 2 and 15625"),
    (["proxy", "--n", "20000"], "--n must be between 2 and 15625"),
    (["throughput", "--n", "0"], "--n must be a positive integer"),
    (["proxy", "--n", "5", "--seed", "-1"], "--seed must be a non-negative integer"),
    (["throughput", "--n", "4", "--json", "/no/such/dir/x.json"], "/no/such/dir is not an existing folder"),
    (["proxy", "--n", "2", "--json", __file__.rsplit("/", 1)[0]], "it is a folder; give a file name"),
    (["speedup", "--space", "nosuch"], "unknown search space 'nosuch'"),      # was printed after "[1/3] ..."
    (["speedup", "--tables", "/no/such/t.parquet"], "latency table not found"),
])
def test_benchmark_refuses_bad_input_before_any_work(capsys, argv, message):
    # Each of these used to run (a local Ray, minutes of proxy scores) and then end in a traceback.
    assert benchmark_main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_speedup_on_a_missing_gpu_says_so_before_step_one(capsys):
    # "[1/3] search with the predictor" used to be printed above the error
    assert benchmark_main(["speedup", "--device", "local-cuda", "--no-progress"]) == 2
    assert capsys.readouterr().err == "error: --device local-cuda needs a CUDA GPU, and torch sees none on this machine\n"


@pytest.mark.parametrize("workers", ["0", "1,x", ""])
def test_benchmark_worker_counts_must_be_positive_integers(capsys, workers):
    with pytest.raises(SystemExit) as stop:
        benchmark_parser().parse_args(["throughput", "--workers", workers])
    assert stop.value.code == 2 and "expected comma-separated positive integers" in capsys.readouterr().err


def printed_summary(capsys, **fields) -> list[str]:
    """The lines `print_summary` prints for a local-device summary with `fields` replaced."""
    summary = {"device": "local", "device_source": "local", "space": "nasbench201", "n_evaluated": 1617,
               "n_front": 26, "samples_measured": 3, "wall_s": 9.2, "speedup": 60.0,
               "speedup_method": "measured: 3 samples", **fields}
    print_summary("results/run", summary)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("rho, shown", [(0.9820482277227042, "Spearman 0.982"),
                                        (None, "Spearman n/a (one architecture)")])
def test_summary_rounds_the_re_measured_fronts_spearman(capsys, rho, shown):
    lines = printed_summary(capsys, verify={"n": 26, "within_10pct": 0.88, "spearman": rho})
    assert lines[-2] == "  speedup vs measuring every candidate: 60x (measured)"
    assert lines[-1] == f"  front re-measured here: 26 archs, within ±10% 0.88, {shown}"


def test_summary_says_when_the_hv_ratio_has_nothing_to_be_a_fraction_of(capsys):
    lines = printed_summary(capsys, true_hv_ratio=None, pred_within_10pct=0.5, regret_pp={"p25": 0.0})
    assert lines[2] == ("  against the device's table: HV ratio n/a (the true front has no hypervolume: no "
                        "architecture above 0% accuracy, or none faster than the slowest), "
                        "predicted within ±10% 0.500, regret (pp) p25 0.00")


def test_summary_shows_the_predictors_accuracy_against_a_table_of_part_of_the_space(capsys):
    # an FBNet table device's summary.json held pred_within_10pct, and the printout left it out
    lines = printed_summary(capsys, pred_within_10pct=0.915, n_with_table_latency=44)
    assert lines[2] == ("  against the device's table, which holds 44 of the evaluated candidates: "
                        "predicted within ±10% 0.915")


def test_summary_says_when_the_table_holds_none_of_the_candidates(capsys):
    # FBNet's tables hold 5,000 of its archs: the summary said nothing of the table at all
    lines = printed_summary(capsys, n_with_table_latency=0)
    assert lines[2] == ("  against the device's table: it holds none of the evaluated candidates, so none could be "
                        "checked")


def test_workers_that_cannot_help_are_warned_of():
    # --workers 32 on 2 cores ran 5x slower unsaid; with --ray-address it was ignored unsaid
    import os

    from nas.config import SearchConfig

    many = os.cpu_count() + 30
    assert SearchConfig(workers=many).cautions() == [
        f"--workers {many} exceeds this machine's {os.cpu_count()} CPUs: where evaluations run on Ray (a proxy "
        "objective), the workers will contend for them and the search run slower"]
    assert "is ignored with --ray-address" in SearchConfig(workers=1, ray_address="10.0.0.1:6379").cautions()[0]
    assert SearchConfig(workers=1).cautions() == SearchConfig().cautions() == []


def test_throughput_runs_each_worker_count_once():
    # --workers 2,2 ran twice and printed one row
    assert benchmark_parser().parse_args(["throughput", "--workers", "2,1,2"]).workers == [2, 1]


def test_summary_shows_a_speedup_near_1_with_its_decimals(capsys):
    lines = printed_summary(capsys, speedup=0.9974667592875284)
    assert lines[-1] == "  speedup vs measuring every candidate: 1.00x (measured)"


def test_a_speedup_below_one_keeps_its_decimals(capsys):
    # nas.benchmark speedup printed a ratio of 0.05 as "0.0x"
    from nas.benchmark import print_speedup
    from nas.metrics import format_speedup

    assert (format_speedup(0.0512), format_speedup(1.29), format_speedup(73.4)) == ("0.05x", "1.29x", "73x")
    print_speedup({"wall_s_predictor": 10.3, "measured_on_target_predictor": 3, "unique_evaluated_predictor": 60,
                   "wall_s_measure_all": 0.53, "unique_measured_measure_all": 60, "speedup": 0.0512,
                   "hv_predictor_front": 0.5, "hv_measured_front": 0.5, "hv_ratio": 1.0})
    assert "speedup                :     0.05x" in capsys.readouterr().out


@pytest.mark.parametrize("module, argv", [
    ("nas.search", ["--out", ""]), ("nas.search", ["--tables", "a.csv", ""]), ("nas.search", ["--profiles-dir", " "]),
    ("nas.benchmark", ["speedup", "--json", ""]), ("predictor.benchmark", ["--plot", ""]),
    ("predictor.tune", ["--json", ""]), ("profiler.cli", ["collect", "--out", ""]),
    ("profiler.cli", ["benchmark", "--json", ""]), ("profiler.cli", ["profile", "--name", "x", "--profiles-dir", ""]),
])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(module, argv, capsys):
    # `--out "$OUT"` with OUT unset wrote the run into the current folder; `--json ''` wrote no JSON
    import importlib

    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "an empty path" in err and ": give a file or folder name" in err


@pytest.mark.parametrize("module, argv", [
    ("nas.benchmark", ["speedup", "--json", "out/"]), ("predictor.benchmark", ["--json", "out/"]),
    ("predictor.benchmark", ["--plot", "out/"]), ("predictor.tune", ["--json", "out/"]),
    ("profiler.cli", ["benchmark", "--json", "out/"]),
])
def test_an_output_file_ending_in_a_slash_is_refused(module, argv, tmp_path, monkeypatch, capsys):
    # Path("out/") is Path("out"): `--json out/` meant a folder and wrote a file named `out`
    import importlib

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'out/' ends in '/', so it names a folder" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, shown", [
    (["--tables", "/tmp/" + "a" * 300], "the name 'aaaaaaaa"), (["--out", "x/" * 2100], "the path is too long"),
    (["--space", "/tmp/" + "a" * 300 + ".py:X"], "File name too long"),
])
def test_a_path_too_long_for_the_file_system_is_one_line(argv, shown, capsys):
    # Path.is_file() raised ENAMETOOLONG: an OSError traceback
    try:
        code = main(argv + ["--no-progress"])
    except SystemExit as exc:   # argparse's refusal of a path option
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and shown in err and "Traceback" not in err


def test_benchmark_writes_its_figures_as_json(tmp_path, capsys):
    out = tmp_path / "proxy.json"
    assert benchmark_main(["proxy", "--n", "3", "--json", str(out), "--no-progress"]) == 0
    written = json.loads(out.read_text())
    assert written["n"] == 3 and -1 <= written["spearman_cifar10"] <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["proxy.json"]   # no temporary file left beside it
    # two architectures of one parameter count: no correlation, which was written as a bare NaN (no JSON),
    # and the seed of the draw was not in the file
    assert benchmark_main(["proxy", "--n", "2", "--seed", "1", "--json", str(out), "--no-progress"]) == 0

    def no_nan(text):
        raise AssertionError(f"{text} is no JSON")

    written = json.loads(out.read_text(), parse_constant=no_nan)
    assert written["seed"] == 1 and written["params_spearman_cifar10"] is None
    assert "parameters    n/a" in capsys.readouterr().out


def test_only_a_table_of_every_architecture_has_the_spaces_true_front():
    # the plot labelled the front of a user's 200-architecture table "true front of the whole space"
    from nas.report import covers_space
    from search_spaces import get_space

    space = get_space("nasbench201")
    long = space.latency_table()
    gold = long[long["device"] == "gold_6226"].set_index("arch_str")["latency_ms"]
    assert covers_space(gold, space)
    assert not covers_space(gold.iloc[:200], space)
    assert not covers_space(gold, get_space("fbnet"))       # a space that does not list its archs


def test_a_file_written_atomically_is_whole_or_untouched(tmp_path, umask):
    from nas.config import write_atomically

    path = tmp_path / "t.csv"
    write_atomically(path, lambda tmp: tmp.write_text("old\n"))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask        # not tempfile's private 0600

    def fails_half_way(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, fails_half_way)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    # the longest name a file system takes (and path_arg lets through) is written, temporary name and all
    longest = write_atomically(tmp_path / ("x" * 250 + ".json"), lambda tmp: tmp.write_text("{}"))
    assert longest.read_text() == "{}"


def test_an_accuracy_of_strings_in_an_object_array_is_refused():
    # a pandas column read from a text file is of dtype object: "50" became 50.0
    from nas.evaluator import Objective, checked_values

    text = Objective("accuracy", "accuracy (%)", lambda archs: pd.Series(["50"] * len(archs), dtype=object))
    with pytest.raises(UsageError, match="it holds strings or booleans, not numbers"):
        checked_values(text, ["a", "b"])
    numbers = Objective("accuracy", "accuracy (%)", lambda archs: pd.Series([50.0] * len(archs), dtype=object))
    assert checked_values(numbers, ["a", "b"]).tolist() == [50.0, 50.0]
