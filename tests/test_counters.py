"""profiler.counters: parsing real `perf stat -x,` output, and the reasons given when counters cannot be read.

The files in tests/data/perf_*.txt are verbatim perf output captured on the development VM (their
first two lines, marked as added by hand, say how). That VM exposes no hardware counters, so the
readable path is exercised with the software events it does count.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from profiler.counters import (DEFAULT_EVENTS, WITNESS_EVENT, CounterReading, derived_metrics, parse_perf_stat,
                               reading_from_output, read_counters)

DATA = Path(__file__).parent / "data"
SOFTWARE_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults")


def data(name: str) -> str:
    return (DATA / name).read_text()


# --- parsing real output ---------------------------------------------------------------------

def test_parse_hardware_not_supported_capture():
    parsed = parse_perf_stat(data("perf_hw_not_supported_epyc_vm.txt"))
    assert parsed == {"cycles": None, "instructions": None, "cache-references": None, "cache-misses": None,
                      "branch-misses": None, "task-clock": 136.41}


def test_parse_software_events_capture():
    parsed = parse_perf_stat(data("perf_sw_events_epyc_vm.txt"))
    assert parsed == {"task-clock": 98.02, "context-switches": 3.0, "cpu-migrations": 0.0, "page-faults": 0.0}


def test_parse_strips_user_space_modifier():
    parsed = parse_perf_stat(data("perf_user_modifier_epyc_vm.txt"))
    assert parsed == {"cycles": None, "instructions": None, "task-clock": 23.37}


def test_parse_skips_lines_that_are_not_counters():
    text = data("perf_sw_events_epyc_vm.txt") + "\nsome warning, with a comma\n,,,,,0.04,stalled cycles per insn\n"
    assert set(parse_perf_stat(text)) == set(SOFTWARE_EVENTS)


# --- text -> CounterReading --------------------------------------------------------------------

def test_reading_of_not_supported_capture_is_unavailable_with_reason():
    text = data("perf_hw_not_supported_epyc_vm.txt")
    reading = reading_from_output(text, DEFAULT_EVENTS + (WITNESS_EVENT,), witness=WITNESS_EVENT)
    assert reading.available is False
    assert reading.reason.startswith("<not supported> on this CPU/VM: cycles, instructions, cache-references, "
                                     "cache-misses, branch-misses")
    # Only what perf really counted is kept, and no ratio is made up from missing counts.
    assert reading.values == {"task-clock": 136.41}
    assert reading.derived == {}


def test_reading_of_software_capture_is_available():
    reading = reading_from_output(data("perf_sw_events_epyc_vm.txt"), SOFTWARE_EVENTS, witness=WITNESS_EVENT)
    assert reading == CounterReading(True, {"task-clock": 98.02, "context-switches": 3.0, "cpu-migrations": 0.0,
                                            "page-faults": 0.0}, None, SOFTWARE_EVENTS)


def test_reading_refuses_a_capture_where_the_attach_saw_nothing():
    text = data("perf_not_counted_epyc_vm.txt")
    witnessed = reading_from_output(text, ("page-faults",), witness=WITNESS_EVENT)
    assert not witnessed.available and "counted no task-clock" in witnessed.reason
    plain = reading_from_output(text, ("task-clock", "page-faults"))
    assert not plain.available and plain.reason.startswith("<not counted>: task-clock, page-faults")


def test_reading_names_events_perf_did_not_print():
    reading = reading_from_output(data("perf_sw_events_epyc_vm.txt"), ("task-clock", "cycles"))
    assert not reading.available and "no line for cycles" in reading.reason
    assert reading.values["task-clock"] == 98.02


def test_derived_metrics_arithmetic():
    # Arithmetic only: these inputs are not a perf capture.
    values = {"cycles": 2000.0, "instructions": 3000.0, "cache-references": 100.0, "cache-misses": 25.0,
              "branch-misses": 6.0}
    assert derived_metrics(values) == pytest.approx({"ipc": 1.5, "cache_miss_rate": 0.25, "branch_mpki": 2.0})
    assert derived_metrics({"instructions": 10.0, "cycles": 0.0}) == {}


# --- the live machine ------------------------------------------------------------------------

def _perf_can_read_cycles() -> str:
    """'missing', 'unsupported' or 'readable': asked of perf directly, not through the code under test."""
    if shutil.which("perf") is None:
        return "missing"
    proc = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True, text=True)
    lines = [ln for ln in proc.stderr.splitlines() if ",cycles" in ln]
    if proc.returncode == 0 and lines and lines[0][:1].isdigit():
        return "readable"
    return "unsupported"


def _work():
    return sum(i * i for i in range(200_000))


def test_read_counters_here_takes_the_path_that_applies():
    calls = []
    reading = read_counters(lambda: calls.append(_work()))
    assert calls and len(calls) == 1, "the callable runs exactly once whatever perf can do"
    state = _perf_can_read_cycles()
    if state == "readable":
        assert reading.available, reading.reason
        assert reading.values["cycles"] > 0 and reading.values["instructions"] > 0
        assert reading.derived["ipc"] > 0
    else:
        assert reading.available is False
        assert reading.reason
        if state == "missing":
            assert reading.reason.startswith("perf not installed")
        else:
            assert "cycles" in reading.reason or "perf" in reading.reason


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf not installed here")
def test_software_events_of_a_callable_are_read_here():
    reading = read_counters(_work, events=("task-clock", "page-faults"))
    if not reading.available and "not permitted" in (reading.reason or ""):
        pytest.skip(reading.reason)
    assert reading.available, reading.reason
    assert reading.values["task-clock"] > 0


def test_callable_exception_propagates_and_perf_is_stopped():
    def boom():
        raise RuntimeError("from the measured code")

    with pytest.raises(RuntimeError, match="from the measured code"):
        read_counters(boom)


def test_perf_missing_from_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    calls = []
    reading = read_counters(lambda: calls.append(1))
    assert reading == CounterReading(False, {}, reading.reason, DEFAULT_EVENTS)
    assert reading.reason.startswith("perf not installed (no 'perf' on PATH)")
    assert calls == [1]


def test_perf_executable_that_does_not_exist():
    reading = read_counters(["true"], perf="/nonexistent/perf")
    assert not reading.available and reading.reason.startswith("perf not installed (no executable '/nonexistent/perf')")


def test_perf_not_permitted_is_named(tmp_path):
    # A stand-in for perf that fails as perf does under perf_event_paranoid=3 (message text from perf).
    fake = tmp_path / "perf"
    fake.write_text("#!/bin/sh\necho 'Error:' >&2\n"
                    "echo 'Access to performance monitoring and observability operations is limited.' >&2\n"
                    "exit 255\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    for target in (_work, ["true"]):
        reading = read_counters(target, perf=str(fake))
        assert not reading.available
        assert reading.reason.startswith("perf not permitted: kernel.perf_event_paranoid=")


def test_unknown_event_is_a_reason_not_an_exception():
    if shutil.which("perf") is None:
        pytest.skip("perf not installed here")
    reading = read_counters(_work, events=("no-such-event",))
    assert not reading.available and "no-such-event" in reading.reason
