"""profiler.measure, profiler.profiles, the CLI and the benchmark's pieces, on real (small) measurements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from profiler.measure import (MeasureConfig, Measurement, MeasurementError, machine_description, measure_archs,
                              measure_module)
from profiler.profiles import (FORMAT_VERSION, DeviceProfile, ProfileError, load_profile, name_matches_machine,
                               profile_machine, profile_path, profiles_dir, save_profile,
                               saved_profiles)
from search_spaces.registry import get_space

REPO = Path(__file__).resolve().parents[1]
# The cheapest NB201 networks: no convolutions in the cells.
TINY = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
TINY2 = "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
NO_PATH = "|skip_connect~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|"  # nothing reaches node 3
FAST = MeasureConfig(warmup=1, runs=5)


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench201")


# --- measure ---------------------------------------------------------------------------------

def test_measure_module_on_tiny_arch_restores_threads_and_mode(space):
    module = space.build_module(TINY).train()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = measure_module(module, space.input_shape, MeasureConfig(warmup=2, runs=7, threads=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert isinstance(m, Measurement)
    assert m.median_ms > 0 and m.p25_ms <= m.median_ms <= m.p75_ms
    assert m.iqr_ms == pytest.approx(m.p75_ms - m.p25_ms)
    assert m.runs == 7 and m.batch_size == 1 and m.threads == 1 and m.device == "cpu"
    assert m.input_shape == tuple(space.input_shape)
    assert module.training, "the caller's module comes back in the mode it was in"
    assert 0 < m.min_ms <= m.median_ms and 0 < m.cpu_median_ms
    assert 0 < m.wall_s < 60


def test_busy_warning_only_for_spread_out_runs():
    from profiler.measure import busy_warning

    def m(median, iqr):
        return Measurement(median, median - iqr / 2, median + iqr / 2, iqr, median - iqr, 5, 1, (3, 8, 8), "cpu", 1, 0.1)

    assert busy_warning([m(10.0, 0.5), m(5.0, 0.2)]) is None
    assert "spread out (IQR 40% of the median" in busy_warning([m(10.0, 4.0), m(5.0, 2.0)])
    assert busy_warning([]) is None


@pytest.mark.parametrize("load, cause", [(3.5, "the CPU was busy beyond the thread measuring"),
                                         (0.8, "no other jobs were running, so the noise is this machine's own")])
def test_busy_warning_blames_other_jobs_only_when_the_load_shows_them(monkeypatch, load, cause):
    # an idle 16-core H100 VM (load 0.8) was told "other jobs were using the CPU"
    from profiler import measure

    noisy = Measurement(10.0, 8.0, 12.0, 4.0, 6.0, 5, 1, (3, 8, 8), "cpu", 1, 0.1)
    monkeypatch.setattr(measure.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(measure.os, "cpu_count", lambda: 16)
    assert f"load average {load:.1f} on 16 cores): {cause}" in measure.busy_warning([noisy])


def test_measure_module_batch_size_reaches_the_input(space):
    shapes = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            shapes.append(tuple(x.shape))
            return x

    m = measure_module(Spy(), (3, 8, 8), MeasureConfig(batch_size=4, warmup=1, runs=3))
    assert shapes == [(4, 3, 8, 8)] * 4 and m.batch_size == 4


def test_forward_failure_is_a_measurement_error():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    threads = torch.get_num_threads()
    with pytest.raises(MeasurementError, match="shape mismatch"):
        measure_module(Broken(), (3, 4, 4), FAST)
    assert torch.get_num_threads() == threads


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error(space):
    with pytest.raises(MeasurementError, match="no CUDA GPU"):
        measure_module(space.build_module(TINY), space.input_shape, MeasureConfig(device="cuda", runs=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the lent H100 at stop 22)")
def test_cuda_measures_the_gpu_and_a_slower_network_takes_longer(space):
    conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    config = MeasureConfig(device="cuda", batch_size=256, warmup=3, runs=20)
    got = measure_archs(space, [TINY, conv], config, progress=False)
    assert all(m.device == "cuda" and m.cpu_median_ms is None and m.min_ms > 0 for m in got.values())
    assert got[conv].min_ms > got[TINY].min_ms  # 15 cells of six 3x3 convs against skips alone


def test_measure_config_refuses_nonsense():
    for bad in (dict(runs=0), dict(batch_size=0), dict(threads=0), dict(warmup=-1), dict(device="tpu"),
                dict(rounds=0)):
        with pytest.raises(ValueError):
            MeasureConfig(**bad)


def test_measure_archs_one_each_in_order(space):
    out = measure_archs(space, [TINY2, TINY, TINY2], FAST, progress=False)
    assert list(out) == [TINY2, TINY]
    assert all(m.median_ms > 0 and m.runs == 5 for m in out.values())


def test_measure_archs_in_rounds_interleaves_and_keeps_the_run_count(space, monkeypatch):
    import profiler.measure as measure

    order = []
    real = measure._time_runs

    def spy(module, shape, config, warmup, runs):
        order.append((id(module), warmup, runs))
        return real(module, shape, config, warmup, runs)

    monkeypatch.setattr(measure, "_time_runs", spy)
    out = measure_archs(space, [TINY, TINY2], MeasureConfig(warmup=4, runs=7, rounds=3), progress=False)
    assert [m.runs for m in out.values()] == [7, 7]
    assert [r for _, _, r in order] == [3, 3, 2, 2, 2, 2], "runs split 3+2+2, one pass over both archs per round"
    ids = [i for i, _, _ in order]
    assert ids[0] == ids[2] == ids[4] != ids[1] == ids[3] == ids[5], "archs alternate"
    assert all(w == 2 for _, w, _ in order), "each pass warms up again"
    order.clear()
    measure_archs(space, [TINY], MeasureConfig(warmup=0, runs=4, rounds=2), progress=False)
    assert [w for _, w, _ in order] == [0, 0], "--warmup 0 is none: each round warmed up once"
    # what the profiler prints says what was done: "1 warm-up" was printed for 5 warm-ups in 5 rounds
    assert MeasureConfig(warmup=1, runs=5, rounds=5).describe_runs() == ("1 warm-up before each of 5 interleaved "
                                                                        "rounds, 5 runs in all")
    assert MeasureConfig(warmup=10, runs=50).describe_runs() == "10 warm-up + 50 runs"


def test_measure_archs_names_the_arch_that_does_not_build(space):
    with pytest.raises(MeasurementError, match=r"cannot build 'not-an-arch' in search space 'nasbench201'"):
        measure_archs(space, [TINY, "not-an-arch"], FAST, progress=False)


def test_machine_description_is_this_machine():
    d = machine_description()
    assert d["logical_cores"] == os.cpu_count()
    assert d["torch_version"] == torch.__version__
    assert isinstance(d["cpu_model"], str) and d["cpu_model"]
    assert (d["gpu_name"] is None) == (not torch.cuda.is_available())


# --- profiles --------------------------------------------------------------------------------

def _profile(**overrides) -> DeviceProfile:
    fields = dict(name="box1", space="nasbench201", machine={"cpu_model": "AMD EPYC"}, torch_version="2.13.0",
                  threads=1, batch_size=1, samples={TINY: 1.5, TINY2: 2.5},
                  spreads={TINY: {"p25_ms": 1.4, "p75_ms": 1.6, "iqr_ms": 0.2, "runs": 5}},
                  counters="unavailable", counters_reason="perf not installed", created="2026-01-01T00:00:00+00:00")
    fields.update(overrides)
    return DeviceProfile(**fields)


def test_profile_round_trip(tmp_path):
    p = _profile()
    path = save_profile(p, tmp_path)
    assert path == tmp_path / "box1--nasbench201.json"
    assert load_profile("box1", "nasbench201", tmp_path) == p
    assert [f.name for f in tmp_path.iterdir()] == [path.name], "no temporary file is left behind"
    # the optional fields that only explain things, hand-edited: read as not recorded, not a TypeError
    # after minutes of measuring (profile's "replacing ..." note reads them)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "tables": [1], "tables_digest": 7, "measure_config": "cpu",
                                "conditions": None, "spreads": []}))
    p = load_profile("box1", "nasbench201", tmp_path)
    assert p.tables is None and p.tables_digest is None and p.tables_made_for() is None
    # a search reads measure_config.get("device"): an AttributeError traceback
    assert p.measure_config == {} and p.conditions == {} and p.spreads == {}


def test_a_saved_profile_follows_the_umask_like_any_file(tmp_path, umask):
    # it is copied to the machine that searches, and a teammate's search may read it
    path = save_profile(_profile(), tmp_path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_profile_save_overwrites_atomically(tmp_path):
    save_profile(_profile(), tmp_path)
    save_profile(_profile(samples={TINY: 9.0}), tmp_path)
    assert load_profile("box1", "nasbench201", tmp_path).samples == {TINY: 9.0}


def test_missing_profile_is_none(tmp_path):
    assert load_profile("nobody", "nasbench201", tmp_path) is None
    assert load_profile("nobody", "nasbench201", tmp_path / "no-such-dir") is None
    assert load_profile("../escape", "nasbench201", tmp_path) is None


def _write(tmp_path, text: str) -> None:
    (tmp_path / "box1--nasbench201.json").write_text(text)


@pytest.mark.parametrize("change, message", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: json.dumps([1, 2]), "not an object"),
    (lambda d: json.dumps({**d, "space": "fbnet"}), "is for search space 'fbnet'"),
    (lambda d: json.dumps({**d, "format_version": FORMAT_VERSION + 1}), "format_version"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "format_version"}), "format_version None"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "samples"}), "lacks field(s) samples"),
    (lambda d: json.dumps({**d, "samples": {TINY: -1}}), "positive, finite latencies"),
    (lambda d: json.dumps({**d, "name": "other"}), "says its name is 'other'"),
    # each of these used to end in a traceback, or (infinity) in the predictor's
    (lambda d: json.dumps({**d, "samples": {TINY: float("inf")}}), "positive, finite latencies"),
    (lambda d: "[" * 100_000 + "]" * 100_000, "not valid JSON (RecursionError"),
    (lambda d: '{"format_version": ' + "9" * 5000 + "}", "not valid JSON (ValueError"),
])
def test_bad_profiles_raise_profile_error(tmp_path, change, message):
    _write(tmp_path, change(_profile().to_dict()))
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile("box1", "nasbench201", tmp_path)


def test_profile_names_that_cannot_be_files(tmp_path):
    # "x\n" passed a `$`-anchored pattern; a 300-character name passed, and crashed after measuring
    for bad in ("", "../etc", "a/b", ".hidden", "box1\n", "a" * 101):
        with pytest.raises(ProfileError):
            save_profile(_profile(name=bad), tmp_path / "p")   # never the user's own profiles folder
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())
    assert profile_path("a" * 100, "nasbench201").name == "a" * 100 + "--nasbench201.json"
    # a stray file under a name no profile can have (saved by an older version) is not listed as one
    (tmp_path / "box1\n--nasbench201.json").write_text("{}")
    (tmp_path / "box2--nasbench201.json").mkdir()  # nor a folder under a profile's name
    save_profile(_profile(), tmp_path)
    assert saved_profiles(tmp_path) == [("box1", "nasbench201")]


def test_unwritable_profiles_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ProfileError, match="cannot write profiles to"):
        save_profile(_profile(), blocker / "sub")


def test_profiles_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HWNAS_PROFILES_DIR", str(tmp_path))
    assert profiles_dir() == tmp_path
    monkeypatch.delenv("HWNAS_PROFILES_DIR")
    assert profiles_dir() == Path.home() / ".local" / "share" / "hwnas" / "profiles"
    # Path.expanduser raised RuntimeError ("Could not determine home directory") on an unknown user
    monkeypatch.setenv("HWNAS_PROFILES_DIR", "~no_such_user_hwnas/p")
    assert profiles_dir() == Path("~no_such_user_hwnas/p")


def test_name_matches_machine():
    assert name_matches_machine("xeon6230", "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
    assert name_matches_machine("i5-7600k", "Intel(R) Core(TM) i5-7600K CPU @ 3.80GHz")
    assert name_matches_machine("epyc-vm", "AMD EPYC")
    assert not name_matches_machine("xeon6230", "AMD EPYC")
    assert not name_matches_machine("intel-box", "Intel(R) Core(TM) i9-9920X")


@pytest.mark.filterwarnings("ignore:the runs were spread out")  # depends on what else the machine runs
def test_profile_machine_measures_records_and_warns(space):
    model = machine_description()["cpu_model"]
    with pytest.warns(UserWarning, match="does not mention this machine's CPU"):
        p = profile_machine("zzqqxx", space, [TINY, TINY2], FAST, progress=False, perf="/nonexistent/perf")
    assert p.machine["cpu_model"] == model
    assert set(p.samples) == {TINY, TINY2} and all(v > 0 for v in p.samples.values())
    assert p.spreads[TINY]["runs"] == 5
    assert p.counters == "unavailable" and p.counters_reason.startswith("perf not installed")
    assert p.format_version == FORMAT_VERSION and p.space == "nasbench201"


# --- CLI ---------------------------------------------------------------------------------------

def _cli(*args, env=None, cwd=REPO):
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)  # this checkout, from any cwd
    env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    return subprocess.run([sys.executable, "-m", "profiler", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_unknown_space_exits_2_without_traceback():
    proc = _cli("profile", "--name", "x", "--space", "nope")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: unknown search space 'nope'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_profile_named_like_a_table_device(tmp_path):
    # nas.search --device pixel2 reads pixel2's shipped table: a profile of that name would never be used
    proc = _cli("profile", "--name", "pixel2", "--arch", TINY, "--runs", "2", "--quiet",
                "--profiles-dir", str(tmp_path / "p"))
    assert proc.returncode == 2 and "uses its table, never a profile" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


@pytest.mark.parametrize("argv", [["profile", "--name", "local", "--arch", TINY],
                                  ["collect", "--device-name", "local-cuda", "--n", "2"]])
def test_cli_refuses_the_names_that_mean_this_machine(tmp_path, argv):
    # a profile named 'local' used to shadow `nas.search --device local`: no measuring, no verification
    proc = _cli(*argv, "--runs", "2", "--quiet", "--profiles-dir" if argv[0] == "profile" else "--out",
                str(tmp_path / "p"))
    assert proc.returncode == 2 and "measures this machine during the search" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


@pytest.mark.parametrize("name", ["..", ".hidden", "\u00fcber", "a" * 101])
def test_cli_collect_refuses_the_device_names_profiles_refuse(tmp_path, name):
    # '..' wrote '...csv', a hidden file; a 300-character name crashed with OSError
    proc = _cli("collect", "--device-name", name, "--n", "2", "--runs", "2", "--quiet", "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: --device-name {name!r} ") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_cli_profile_takes_a_profiles_dir_naming_an_unknown_user_literally(tmp_path):
    # the shell leaves ~nosuchuser alone; the CLI expanded it again and ended in a RuntimeError traceback
    proc = _cli("profile", "--name", "box", "--profiles-dir", "~no_such_user_hwnas/p", "--arch", TINY, "--quiet",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "~no_such_user_hwnas" / "p" / "box--nasbench201.json").is_file()


def test_cli_profile_checks_where_it_will_save_before_anything_slow(tmp_path):
    # both were found only after the reference choice (minutes for FBNet), the second after measuring
    (tmp_path / "afile").write_text("")
    proc = _cli("profile", "--name", "box", "--profiles-dir", str(tmp_path / "afile"), "--quiet")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: cannot write profiles to {tmp_path / 'afile'}: it is a file, not a folder")
    (tmp_path / "p" / "box--nasbench201.json").mkdir(parents=True)
    proc = _cli("profile", "--name", "box", "--profiles-dir", str(tmp_path / "p"), "--arch", TINY, "--quiet")
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr == (
        f"error: cannot save the profile as {tmp_path / 'p' / 'box--nasbench201.json'}: a folder of that name is in "
        "the way; move it, or give another --name\n")


def test_local_means_this_machine_even_beside_an_old_profile_of_that_name(tmp_path, space):
    from nas.devices import known_devices, resolve_target
    from predictor.tables import LatencyTable

    old = profile_path("x", "nasbench201", tmp_path)
    save_profile(_profile(name="x"), tmp_path)
    old.rename(tmp_path / "local--nasbench201.json")  # as a version that allowed the name saved it
    table = LatencyTable.from_long(space.latency_table())
    assert resolve_target("local", space, table, tmp_path, progress=False).source == "local"
    assert known_devices(table, tmp_path, space).count("local") == 1


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_device = tmp_path / "one.csv"
    one_device.write_text(f"device,arch_str,latency_ms\nbox2,{TINY},1.0\nbox2,{TINY2},2.0\n")
    not_nb201 = tmp_path / "other.csv"
    not_nb201.write_text("device,arch_str,latency_ms\n" + "".join(f"{d},conv3x3/{w},1.0\n" for d in "abc"
                                                                  for w in range(5)))
    cases = [
        ("--tables", str(tmp_path / "missing"), "--profiles-dir", str(tmp_path / "p")),  # no such tables
        ("--tables", str(one_device), "--profiles-dir", str(tmp_path / "p")),            # 1 device: no prior
        ("--tables", str(not_nb201), "--profiles-dir", str(tmp_path / "p")),             # archs of another space
        ("--arch", TINY, "--profiles-dir", str(blocker / "sub")),                       # unwritable
        ("--arch", "not-an-arch", "--profiles-dir", str(tmp_path / "p")),               # does not parse
        ("--arch", NO_PATH, "--profiles-dir", str(tmp_path / "p")),                     # output ignores input
        ("--arch", TINY, "--counters", "required", "--perf", "/nonexistent/perf",       # perf missing
         "--profiles-dir", str(tmp_path / "p")),
        ("--arch", TINY, "--threads", str(len(os.sched_getaffinity(0)) + 1),             # more threads than cores
         "--profiles-dir", str(tmp_path / "p")),
    ]
    for extra in cases:
        proc = _cli("profile", "--name", "box", "--runs", "2", "--quiet", *extra)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]) == 1
        if NO_PATH in extra:
            assert "its output does not depend on its input" in proc.stderr
    assert not any((tmp_path / "p").glob("*.json"))


def test_cli_profile_writes_a_loadable_profile(tmp_path):
    proc = _cli("profile", "--name", "box", "--arch", TINY, "--runs", "3", "--warmup", "1", "--quiet",
                "--counters", "off", "--profiles-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path / "box--nasbench201.json") in proc.stdout
    # a search asks for the references, not TINY: the profile was saved without a word about that
    assert "warning: --arch: a search for --device box asks the profile for the predictor's reference" in proc.stderr
    p = load_profile("box", "nasbench201", tmp_path)
    assert list(p.samples) == [TINY] and p.counters_reason == "counters not requested"
    assert p.tables is None, "--arch chose the architectures, not a predictor on some tables"
    assert "replacing" not in proc.stdout
    # profiling again under the name replaces it, and says whose profile went (it was silent)
    again = _cli("profile", "--name", "box", "--arch", TINY2, "--runs", "3", "--warmup", "1", "--quiet",
                 "--counters", "off", "--profiles-dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert f", replacing the one made on {p.machine['cpu_model']} at {p.created}" in again.stdout
    # one made for tables says which: a profile for other tables is one a search on those still needs
    save_profile(_profile(name="box", tables=[str(tmp_path / "t")]), tmp_path)
    again = _cli("profile", "--name", "box", "--arch", TINY2, "--runs", "3", "--warmup", "1", "--quiet",
                 "--counters", "off", "--profiles-dir", str(tmp_path))
    assert (f", replacing the one made on AMD EPYC at 2026-01-01T00:00:00+00:00 for --tables {tmp_path / 't'}"
            in again.stdout)
    assert list(load_profile("box", "nasbench201", tmp_path).samples) == [TINY2]


# --- benchmark pieces ------------------------------------------------------------------------

def test_benchmark_samples_distinct_archs_reproducibly(space):
    from profiler.benchmark import sample_archs

    archs = sample_archs(space, 20, seed=3)
    assert len(set(archs)) == 20 and archs == sample_archs(space, 20, seed=3)


def test_benchmark_refuses_more_archs_than_a_small_user_space_holds():
    # FailsForward has 8 architectures and does not enumerate them: sample_archs drew forever.
    import threading

    sys.path.insert(0, str(REPO / "tests" / "spaces"))
    try:
        from broken_spaces import FailsForward
    finally:
        sys.path.pop(0)
    from profiler.benchmark import sample_archs

    outcome = {}

    def draw():
        try:
            outcome["archs"] = sample_archs(FailsForward(), 9, seed=0)
        except ValueError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=draw, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "sample_archs is still drawing"
    assert outcome == {"error": "--n 9: drawing fails_forward architectures at random found only 8 distinct "
                                "ones, so the space seems to hold fewer; give a smaller --n"}
    assert sorted(sample_archs(FailsForward(), 8, seed=0)) == sorted(
        f"{a}-{b}-{c}" for a in range(2) for b in range(2) for c in range(2))


def test_benchmark_draws_every_arch_of_a_space_barely_larger_than_n():
    # drawing only the few archs still missing gave up after 100 tries: --n 250 of 256 was refused
    # with "the space seems to hold fewer"
    import numpy as np

    from profiler.benchmark import sample_archs
    from search_spaces import SearchSpace

    class FourByFour(SearchSpace):
        name = "four_by_four"
        n_choices = np.array([4, 4, 4, 4])

        def decode(self, genome):
            return "-".join(str(int(g)) for g in genome)

        def encode(self, arch):
            return np.array([int(v) for v in arch.split("-")])

        def build_module(self, arch, num_classes=10):
            raise NotImplementedError

    for n in (250, 256):
        archs = sample_archs(FourByFour(), n, seed=0)
        assert len(set(archs)) == len(archs) == n


def test_benchmark_runs_end_to_end_small():
    from profiler.benchmark import BenchmarkConfig, format_result, run_benchmark

    config = BenchmarkConfig(n=4, seed=1, measure=MeasureConfig(warmup=1, runs=3, rounds=2), use_maple=False)
    result = run_benchmark(config, progress=False)
    assert len(result.measured) == 4 and len(result.reference) == 3
    assert set(result.scores) == {"affine_nearest_device", "affine_nearest_device (min)"}
    assert all(0.0 <= s["within_10pct"] <= 1.0 for s in result.scores.values())
    assert not set(result.reference) & set(result.measured), "references are not among the scored archs"
    assert "per arch" in format_result(result)


def test_benchmark_does_not_score_the_affine_baseline_below_3_references():
    # its two parameters fit 1 or 2 samples exactly on every device: the device it copied was chosen by
    # rounding, and its score was printed as a figure
    from profiler.benchmark import BenchmarkConfig, format_result, run_benchmark

    config = BenchmarkConfig(n=3, seed=1, n_reference=2, measure=MeasureConfig(warmup=1, runs=2), use_maple=False)
    result = run_benchmark(config, progress=False)
    assert len(result.reference) == 2 and result.scores == {} and result.predictions == {}
    assert any("affine nearest-device baseline not scored: an affine map fits 2 sample(s) exactly" in n
               for n in result.notes)
    assert "affine map fits 2 sample(s)" in format_result(result)


def test_benchmark_json_follows_the_umask(tmp_path, umask):
    from profiler.benchmark import BenchmarkResult, write_json

    result = BenchmarkResult(machine={}, config={}, measured={}, reference={}, reference_source="",
                             predictions={}, scores={}, seconds_per_arch=0.0)
    path = write_json(result, tmp_path / "b.json")
    assert json.loads(path.read_text())["seconds_per_arch"] == 0.0
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


@pytest.mark.slow
def test_benchmark_with_maple_uses_its_reference_archs():
    from profiler.benchmark import BenchmarkConfig, run_benchmark
    from predictor.maple import MaplePredictor
    from predictor.tables import LatencyTable

    space = get_space("nasbench201")
    expected = MaplePredictor(space).fit(LatencyTable.from_long(space.latency_table())).reference_archs(3)
    result = run_benchmark(BenchmarkConfig(n=5, seed=2, measure=MeasureConfig(warmup=1, runs=3)), progress=False)
    assert list(result.reference) == expected and result.reference_source == "maple.reference_archs"
    assert {"maple", "maple (min)"} <= set(result.scores)
    assert all(len(p) == 5 and all(v > 0 for v in p.values()) for p in result.predictions.values())


def test_cli_benchmark_refuses_unwritable_json_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = _cli("benchmark", "--n", "2", "--runs", "1", "--quiet", "--json", str(blocker / "out.json"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
    # it said "File exists", of a folder the user never meant to make
    assert proc.stderr == f"error: cannot write {blocker / 'out.json'}: {blocker} is a file, not a folder\n"
    # a folder passed the check and failed after the measuring
    proc = _cli("benchmark", "--n", "2", "--runs", "1", "--quiet", "--json", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"error: cannot write {tmp_path}: it is a folder; give a file name"
    # a missing folder is refused, as by every other --json: it was made, typo and all
    proc = _cli("benchmark", "--n", "2", "--runs", "1", "--quiet", "--json", str(tmp_path / "typo" / "b.json"))
    assert proc.returncode == 2 and proc.stdout == "" and not (tmp_path / "typo").exists()
    typo = tmp_path / "typo"
    assert proc.stderr.strip() == f"error: cannot write {typo / 'b.json'}: {typo} is not an existing folder"


def test_cli_benchmark_needs_two_archs_for_a_spearman():
    # With one architecture the benchmark used to print "Spearman 0.000", a figure nothing measured.
    proc = _cli("benchmark", "--n", "1", "--quiet")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --n must be at least 2") and proc.stdout == ""


def test_cli_seed_must_be_non_negative():
    proc = _cli("collect", "--space", "nasbench201", "--n", "2", "--seed", "-1", "--out", "unused")
    assert proc.returncode == 2 and "--seed: expected a non-negative integer, got -1" in proc.stderr


@pytest.mark.parametrize("option, value, expected", [
    # torch overflowed with a dozen lines of C++ frames; numpy asked for 7 TiB and blamed the forward pass
    ("--batch-size", "99999999999999999999", "a positive integer up to 65536"),
    ("--runs", "1000000000000", "a positive integer up to 100000"),
    ("--n", "99999999999999999999999", "a positive integer up to 1000000"),
    ("--warmup", "1000000000", "an integer from 0 to 100000"),  # ran for days
    ("--warmup", "-1", "an integer from 0 to 100000"),
])
def test_cli_refuses_absurd_sizes_naming_the_option(tmp_path, option, value, expected):
    proc = _cli("collect", option, value, "--quiet", "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and f"{option}: expected {expected}, got {value}" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "t").exists()


def test_cli_refuses_more_rounds_than_runs_and_records_the_rounds_it_used(tmp_path):
    # --rounds 10 --runs 5 measured in 5 rounds and recorded 10, in the summary and in the JSON
    proc = _cli("benchmark", "--n", "3", "--runs", "5", "--rounds", "10", "--quiet", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 2 and proc.stderr == "error: --rounds 10 exceeds --runs 5: each round times at least one run\n"
    proc = _cli("benchmark", "--n", "3", "--runs", "3", "--warmup", "0", "--quiet", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b.json").read_text())["config"]["measure"]["rounds"] == 3  # the default 5, cut


def test_cli_collect_into_a_file_says_it_is_not_a_folder(tmp_path):
    # it used to say "cannot write <file>/x.csv: File exists", a path nothing would have written
    (tmp_path / "tables").write_text("")
    proc = _cli("collect", "--n", "2", "--quiet", "--out", str(tmp_path / "tables"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: --out {tmp_path / 'tables'} is a file; give a folder")
    assert (tmp_path / "tables").read_text() == ""


def test_cli_collect_onto_a_folder_named_as_the_devices_table_says_so(tmp_path):
    # it said "it is a folder; give a file name", while --out takes a folder
    (tmp_path / "tables" / "box.csv").mkdir(parents=True)
    proc = _cli("collect", "--n", "2", "--quiet", "--device-name", "box", "--out", str(tmp_path / "tables"))
    table = tmp_path / "tables" / "box.csv"
    assert proc.returncode == 2 and proc.stderr == (f"error: cannot write this device's table {table}: a folder of "
                                                    "that name is in the way; move it, or give another --device-name\n")


def test_cli_collect_says_when_it_replaces_a_devices_table(tmp_path):
    # a second collect under the same device name silently replaced the first one's measurements
    out = tmp_path / "tables"
    args = ("collect", "--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--device-name", "box", "--out", str(out))
    first, second = _cli(*args), _cli(*args, "--seed", "1")
    assert first.returncode == 0 and "replacing" not in first.stdout
    # one device of a space that ships tables can be judged already: it said only "needs at least 2"
    assert first.stdout.endswith(f"{out} now holds 1 device(s): box (a search with --tables needs at least 2: collect "
                                 "again on another machine or with another --batch-size; or judge the predictor on "
                                 f"this device: python -m predictor.benchmark --space nasbench201 --table {out})\n")
    assert second.returncode == 0 and f"wrote {out / 'box.csv'}, replacing the 2 measurement(s) it held" in second.stdout


def test_cli_collect_says_when_the_space_holds_fewer_archs_than_asked(tmp_path):
    # it measured the whole 8-arch space for --n 20 and wrote 8 rows without a word
    space = f"{REPO / 'tests' / 'spaces' / 'beside' / 'space_with_helper.py'}:WithHelper"
    proc = _cli("collect", "--space", space, "--n", "20", "--runs", "2", "--warmup", "0", "--quiet",
                "--device-name", "box", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("note: random draws found only 8 distinct with_helper architectures (the space seems to "
                           "hold no more): measuring all of them, not --n 20\n")
    assert len(pd.read_csv(tmp_path / "box.csv")) == 8
    assert proc.stdout.endswith("(a search with --tables needs at least 2: collect again on another machine or with "
                                "another --batch-size)\n")   # a space without tables of its own: nothing to judge on


def test_cli_collect_never_measures_into_a_folder_of_another_spaces_tables(tmp_path):
    # tables are named by device alone: a second space's collect replaced the first one's measurements
    out, chain = tmp_path / "tables", f"{REPO / 'examples' / 'chain_cnn.py'}:ChainCNN"
    quick = ("--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--out", str(out))
    assert _cli("collect", "--device-name", "box", *quick).returncode == 0
    kept = (out / "box.csv").read_text()
    proc = _cli("collect", "--space", chain, "--device-name", "box", *quick)
    assert proc.returncode == 2 and proc.stdout == "" and (out / "box.csv").read_text() == kept
    assert proc.stderr.startswith(f"error: {out / 'box.csv'} holds another space's measurements (")
    assert proc.stderr.endswith("is not a chain_cnn architecture), which collecting would replace: give chain_cnn "
                                "a --out folder of its own (or, if it is this space's from before you changed its "
                                "choices, move the file away)\n")
    # under another name it would leave a folder no search of either space can use: refused too
    proc = _cli("collect", "--space", chain, "--device-name", "other", *quick)
    assert proc.returncode == 2 and not (out / "other.csv").exists()
    assert proc.stderr.startswith(f"error: {out} holds another space's table (box.csv) (")
    assert "and a search reads every table there: give chain_cnn a --out folder of its own" in proc.stderr


def test_cli_collect_refuses_before_measuring_other_archs_than_the_folders(tmp_path):
    # another --n or --seed was measured, written and only then said to break the folder
    out = tmp_path / "tables"
    quick = ("--runs", "2", "--warmup", "0", "--quiet", "--out", str(out))
    assert _cli("collect", "--n", "3", "--device-name", "a", *quick).returncode == 0
    for other in (("--n", "2"), ("--n", "3", "--seed", "1")):
        proc = _cli("collect", *other, "--device-name", "b", *quick)
        assert proc.returncode == 2 and not (out / "b.csv").exists(), proc.stderr
        assert proc.stderr.startswith(f"error: {out} holds tables of other architectures (a.csv: 3, of which ")
    assert _cli("collect", "--n", "3", "--device-name", "b", *quick).returncode == 0
    # the device's own file may hold other archs: it is what collecting again replaces
    solo = ("--device-name", "a", "--runs", "2", "--warmup", "0", "--quiet", "--out", str(tmp_path / "solo"))
    assert _cli("collect", "--n", "3", *solo).returncode == 0
    assert _cli("collect", "--n", "2", "--seed", "5", *solo).returncode == 0
    assert len(pd.read_csv(tmp_path / "solo" / "a.csv")) == 2
    # a copy of a device's table kept beside it under another name: collecting the device again wrote
    # a second latency per architecture, exit 0, and no search could read the folder any more
    (out / "a.csv").rename(out / "a-old.csv")
    proc = _cli("collect", "--n", "3", "--device-name", "a", *quick)
    assert proc.returncode == 2 and not (out / "a.csv").exists()
    assert proc.stderr == (f"error: {out / 'a-old.csv'} also holds measurements of device 'a': with this device's "
                           f"table written beside it, a search of {out} would find two latencies for each "
                           "architecture; move that file out of the folder, or give another --device-name\n")
    # the same as a parquet named for the device: collect writes a.csv beside it
    pd.read_csv(out / "a-old.csv").to_parquet(out / "a.parquet")
    (out / "a-old.csv").unlink()
    proc = _cli("collect", "--n", "3", "--device-name", "a", *quick)
    assert proc.returncode == 2 and not (out / "a.csv").exists()
    assert proc.stderr.startswith(f"error: {out / 'a.parquet'} also holds measurements of device 'a'")


def test_cli_collect_reads_the_folder_back_as_a_search_will(tmp_path):
    # any CSV in the folder was counted as a device: "now holds 2 device(s): box, notes"
    out = tmp_path / "tables"
    out.mkdir()
    (out / "notes.csv").write_text("what,when\nrun,today\n")
    proc = _cli("collect", "--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--device-name", "box",
                "--out", str(out))
    assert proc.returncode == 0 and "now holds" not in proc.stdout
    assert proc.stderr == (f"warning: a search with --tables {out} will stop: latency table {out / 'notes.csv'} lacks "
                           "column(s) arch_str, device, latency_ms\n")
    (out / "notes.csv").unlink()
    proc = _cli("collect", "--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--device-name", "box.2",
                "--out", str(out))
    assert f"{out} now holds 2 device(s): box, box.2\n" in proc.stdout


def test_cli_collect_replaces_a_devices_file_that_is_not_text(tmp_path):
    # counting the old file's rows as UTF-8 text crashed after measuring, and the new table was lost
    out = tmp_path / "tables"
    out.mkdir()
    (out / "box.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    proc = _cli("collect", "--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--device-name", "box",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out / 'box.csv'}, replacing a file that is not a readable table" in proc.stdout
    assert len(pd.read_csv(out / "box.csv")) == 2


def test_search_on_a_profile_without_its_references_names_the_command_to_run(tmp_path):
    # The profile holds two architectures, not the predictor's references: the search must say how
    # to make one that does, with the number of samples it asked for.
    save_profile(_profile(), tmp_path)
    r = subprocess.run([sys.executable, "-m", "nas.search", "--device", "box1", "--profiles-dir", str(tmp_path),
                        "--samples", "5", "--out", str(tmp_path / "results"), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "lacks 5 of the architectures" in r.stderr
    assert r.stderr.strip().endswith("python -m profiler profile --name box1 --space nasbench201 --samples 5")



def _shipped_digest() -> str:
    from predictor.tables import LatencyTable

    return LatencyTable.from_long(get_space("nasbench201").latency_table()).digest()


@pytest.mark.parametrize("made_for, same_contents, why", [
    # made for a user's tables, searched on the shipped ones: the re-run's command (without --tables)
    # then replaced the profile without a word about what it was for
    (["/data/tables"], False, "(it was made on 2026-01-01T00:00:00+00:00 for --tables /data/tables, whose contents "
                              "differ from the tables this search fits on, the shipped tables)"),
    # another machine's path to tables of the same contents: the paths say nothing, the contents do
    (["/home/pi/tables"], True, "(it was made on 2026-01-01T00:00:00+00:00 for tables of the same contents as this "
                                "search's; this package's predictor has changed since, and now chooses other "
                                "architectures)"),
])
def test_a_profiles_missing_references_are_explained_by_the_tables_it_was_made_for(tmp_path, made_for,
                                                                                     same_contents, why):
    save_profile(_profile(tables=made_for, tables_digest=_shipped_digest() if same_contents else "0" * 32), tmp_path)
    r = subprocess.run([sys.executable, "-m", "nas.search", "--device", "box1", "--profiles-dir", str(tmp_path),
                        "--out", str(tmp_path / "results"), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and f"lacks 3 of the architectures the predictor asks for {why}; re-run" in r.stderr


def test_cli_profile_records_the_tables_its_references_were_chosen_from(tmp_path):
    proc = _cli("profile", "--name", "box", "--runs", "2", "--warmup", "0", "--quiet", "--counters", "off",
                "--profiles-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    p = load_profile("box", "nasbench201", tmp_path)
    assert p.tables == [] and p.tables_made_for() == "the shipped tables" and len(p.samples) == 3
    assert p.tables_digest == _shipped_digest()
    # a search asking for more samples than the profile was made with says so, not that tables changed
    r = subprocess.run([sys.executable, "-m", "nas.search", "--device", "box", "--profiles-dir", str(tmp_path),
                        "--samples", "5", "--out", str(tmp_path / "results"), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and ("lacks 2 of the architectures the predictor asks for (it holds the first 3, as made "
                                  "with --samples 3, and this search asks for 5); re-run") in r.stderr


def test_a_gpu_profile_is_described_by_its_gpu(tmp_path):
    # a profile measured with --device cuda was described by the CPU of the machine that drove the GPU
    from nas.devices import resolve_target
    from predictor.tables import LatencyTable

    space = get_space("nasbench201")
    table = LatencyTable.from_long(space.latency_table())
    for device, label in (("cuda", "NVIDIA H100 80GB HBM3"), ("cpu", "AMD EPYC")):
        save_profile(_profile(machine={"cpu_model": "AMD EPYC", "gpu_name": "NVIDIA H100 80GB HBM3"},
                              measure_config={"device": device}), tmp_path)
        target = resolve_target("box1", space, table, tmp_path)
        assert target.description == f"saved profile ({label}, 2026-01-01T00:00:00+00:00)"


def test_a_ctrl_c_after_collect_wrote_its_table_says_it_was_written(tmp_path, monkeypatch, capsys):
    # the read-back of the folder after the write was interrupted as "nothing was written"
    import predictor.tables
    from profiler.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predictor.tables, "load_tables", interrupted)
    out = tmp_path / "tables"
    code = main(["collect", "--n", "2", "--runs", "2", "--warmup", "0", "--quiet", "--device-name", "box",
                 "--out", str(out)])
    assert code == 130 and (out / "box.csv").is_file()
    assert capsys.readouterr().err == f"interrupted: {out / 'box.csv'} was written; the folder was not read back\n"
