"""Hardware performance counters (MAPLE's CPU descriptor) read through the `perf` tool.

MAPLE describes a CPU by what it counts while running the reference architectures: cycles,
instructions, cache references and misses, branch misses. We read them with `perf stat`, which is
the one interface every Linux distribution ships, rather than `perf_event_open` through ctypes:
perf knows the event names of each CPU family, falls back to user-space-only counting when
`perf_event_paranoid` asks for it, and prints the same CSV everywhere.

Two ways of counting:

* a command (a string or an argument list): ``perf stat -x, -e EVENTS -- COMMAND``;
* a Python callable: perf attaches to *this* process (``-p PID``) with its events disabled
  (``--delay=-1``), we enable them through perf's control pipe (``--control fd:CTL,ACK``) just
  before the call and disable them just after, so the counts cover the call and nothing else
  (not the interpreter start-up, not the module build).

Counters are optional: where perf is missing, not permitted, or the CPU/VM does not expose an
event, `read_counters` returns ``available=False`` with the precise reason. It never raises for
that and never fills in values it did not read.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

#: The hardware events of MAPLE's descriptor, in perf's generic names.
DEFAULT_EVENTS: tuple[str, ...] = ("cycles", "instructions", "cache-references", "cache-misses", "branch-misses")

#: Counted alongside the requested events when a callable is measured: a software event that any
#: kernel supports, so a zero here shows that perf's attach missed the call (the counts would be
#: meaningless) rather than that the CPU is idle.
WITNESS_EVENT = "task-clock"

# Seconds to wait for perf to answer on its control pipe; starting perf takes ~20 ms here.
_ACK_TIMEOUT_S = 10.0
_EXIT_TIMEOUT_S = 10.0
# Event modifiers perf may append (":u" when perf_event_paranoid forces user-space-only counting).
_MODIFIERS = re.compile(r":[ukhIGHpPSDWe]+$")


@dataclass
class CounterReading:
    """What perf counted, or why it could not.

    `available` is True only when every requested event was counted. `values` holds the events
    perf did count (event name -> count; ``task-clock`` in ms), also when others were not, so a
    partial reading is visible but never mistaken for a complete one. `reason` says why
    `available` is False (None when it is True).
    """

    available: bool
    values: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    events: tuple[str, ...] = DEFAULT_EVENTS

    @property
    def derived(self) -> dict[str, float]:
        """IPC, cache-miss rate and branch misses per 1000 instructions, from what was counted."""
        return derived_metrics(self.values)


def derived_metrics(values: dict[str, float]) -> dict[str, float]:
    """Ratios of counts: ``ipc``, ``cache_miss_rate`` (misses / references) and ``branch_mpki``.

    A ratio is left out when an input is missing or its denominator is zero, rather than set to 0.
    """
    out: dict[str, float] = {}

    def ratio(num: str, den: str, scale: float = 1.0) -> float | None:
        n, d = values.get(num), values.get(den)
        return scale * n / d if n is not None and d else None

    for key, value in (("ipc", ratio("instructions", "cycles")),
                       ("cache_miss_rate", ratio("cache-misses", "cache-references")),
                       ("branch_mpki", ratio("branch-misses", "instructions", 1000.0))):
        if value is not None:
            out[key] = value
    return out


def base_event(name: str) -> str:
    """`name` without perf's modifiers: ``cycles:u`` -> ``cycles``."""
    return _MODIFIERS.sub("", name.strip())


def parse_perf_stat(text: str) -> dict[str, float | None]:
    """Counts from ``perf stat -x,`` output: event name (modifiers stripped) -> value.

    Each CSV line is ``value,unit,event,run-time,%enabled[,metric,metric-unit]``; values are already
    scaled by perf when events were multiplexed. ``<not supported>`` and ``<not counted>`` become
    None. Comment lines (``# started on ...``), blank lines and lines that are not counter lines
    (perf's own warnings) are skipped.
    """
    out: dict[str, float | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) < 3 or not parts[2]:
            continue
        raw, event = parts[0].strip(), base_event(parts[2])
        if raw.startswith("<"):
            out[event] = None
            continue
        try:
            out[event] = float(raw)
        except ValueError:
            continue  # a warning line that happens to contain commas
    return out


def reading_from_output(text: str, events: Sequence[str], *, witness: str | None = None) -> CounterReading:
    """The `CounterReading` that perf's CSV `text` amounts to for the requested `events`.

    `witness` (an event counted on top of `events`) must be positive, else the reading is
    declared unavailable: perf ran but did not see the code it was meant to count.
    """
    parsed = parse_perf_stat(text)
    wanted = [base_event(e) for e in events]
    values = {e: v for e, v in parsed.items() if v is not None}
    if witness is not None and not values.get(base_event(witness)):
        return CounterReading(False, values, f"perf counted no {witness} during the call: its attach to "
                                             "this process did not cover the measured code", tuple(events))
    missing = [e for e in wanted if e not in parsed]
    unsupported = [e for e in wanted if e in parsed and parsed[e] is None and _status(text, e) == "<not supported>"]
    not_counted = [e for e in wanted if e in parsed and parsed[e] is None and e not in unsupported]
    problems = []
    if unsupported:
        problems.append(f"<not supported> on this CPU/VM: {', '.join(unsupported)} "
                        "(perf runs, but the processor or hypervisor does not expose these counters)")
    if not_counted:
        problems.append(f"<not counted>: {', '.join(not_counted)} (perf could not schedule the event)")
    if missing:
        problems.append(f"perf printed no line for {', '.join(missing)}")
    if problems:
        return CounterReading(False, values, "; ".join(problems), tuple(events))
    return CounterReading(True, values, None, tuple(events))


def _status(text: str, event: str) -> str | None:
    """The ``<...>`` marker perf printed for `event`, if any."""
    for line in text.splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 3 and base_event(parts[2]) == event and parts[0].startswith("<"):
            return parts[0].strip()
    return None


def read_counters(fn_or_cmd: Callable[[], object] | str | Sequence[str], events: Sequence[str] = DEFAULT_EVENTS,
                  *, perf: str = "perf") -> CounterReading:
    """Count `events` while running `fn_or_cmd`, a Python callable or a command.

    A callable is run exactly once, in this process, whether or not perf can count (so callers can
    rely on its side effects); its exceptions propagate. A command is run under perf only when perf
    is usable. `perf` is the executable to use (a name looked up on PATH, or a path).

    Returns ``CounterReading(available=False, reason=...)`` when perf is missing, not permitted, or
    does not support an event; never raises for those.
    """
    events = tuple(events)
    if not events:
        raise ValueError("read_counters needs at least one event")
    executable = shutil.which(perf)
    if executable is None:
        where = (f"no executable {perf!r}" if os.sep in perf else f"no {perf!r} on PATH")  # a path is not looked up
        reason = (f"perf not installed ({where}); install linux-perf (Debian) or "
                  "linux-tools-$(uname -r) (Ubuntu) to read hardware counters")
        if callable(fn_or_cmd):
            fn_or_cmd()
        return CounterReading(False, {}, reason, events)
    if callable(fn_or_cmd):
        return _count_callable(executable, fn_or_cmd, events)
    cmd = shlex.split(fn_or_cmd) if isinstance(fn_or_cmd, str) else [str(c) for c in fn_or_cmd]
    return _count_command(executable, cmd, events)


def _count_command(perf: str, cmd: list[str], events: tuple[str, ...]) -> CounterReading:
    with tempfile.TemporaryDirectory(prefix="hwnas-perf-") as tmp:
        out = Path(tmp) / "stat.csv"
        proc = subprocess.run([perf, "stat", "-x,", "-e", ",".join(events), "-o", str(out), "--", *cmd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        text = out.read_text() if out.exists() else ""
    if not parse_perf_stat(text):
        return CounterReading(False, {}, _failure_reason(proc.stderr, proc.returncode), events)
    return reading_from_output(text, events)


def _count_callable(perf: str, fn: Callable[[], object], events: tuple[str, ...]) -> CounterReading:
    counted = events if WITNESS_EVENT in map(base_event, events) else events + (WITNESS_EVENT,)
    ctl_r, ctl_w = os.pipe()
    ack_r, ack_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="hwnas-perf-") as tmp:
        out = Path(tmp) / "stat.csv"
        # perf -p lists this process's threads when it starts: callers should warm their code up
        # (which creates torch's worker threads) before calling us.
        proc = subprocess.Popen(
            [perf, "stat", "-x,", "-e", ",".join(counted), "--delay=-1",
             "--control", f"fd:{ctl_r},{ack_w}", "-p", str(os.getpid()), "-o", str(out)],
            pass_fds=(ctl_r, ack_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        os.close(ctl_r)
        os.close(ack_w)
        failure = None
        try:
            enabled = _command(ctl_w, ack_r, "enable")
            try:
                fn()
            finally:
                if enabled:
                    _command(ctl_w, ack_r, "disable")
            if not enabled:
                failure = "perf did not start counting"
        finally:
            os.close(ctl_w)
            os.close(ack_r)
            stderr, returncode = _stop(proc)
        text = out.read_text() if out.exists() else ""
    if failure is not None or not parse_perf_stat(text):
        return CounterReading(False, {}, _failure_reason(stderr, returncode), events)
    reading = reading_from_output(text, counted, witness=WITNESS_EVENT)
    reading.events = events
    return reading


def _command(ctl_w: int, ack_r: int, command: str) -> bool:
    """Send a control command to perf; True once perf acknowledges it, False if perf has gone."""
    try:
        os.write(ctl_w, f"{command}\n".encode())
    except BrokenPipeError:
        return False
    deadline = time.monotonic() + _ACK_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([ack_r], [], [], left)
        if ready:
            # perf's ack is "ack\n" (plus a NUL); EOF means perf exited without answering.
            return os.read(ack_r, 64).startswith(b"ack")
    return False


def _stop(proc: subprocess.Popen) -> tuple[str, int]:
    """Stop an attached perf (it counts until interrupted) and collect its stderr and exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return stderr or "", proc.returncode


def _failure_reason(stderr: str, returncode: int | None) -> str:
    """One line saying why perf produced no counts, from what it printed."""
    text = stderr.strip()
    lowered = text.lower()
    if "perf_event_paranoid" in lowered or "access to performance monitoring" in lowered \
            or "permission denied" in lowered or "no permission" in lowered:
        return f"perf not permitted: kernel.perf_event_paranoid={_paranoid()} for this user " \
               "(lower it with sysctl, or grant CAP_PERFMON)"
    if "unknown option" in lowered or "unknown switch" in lowered:
        return f"perf is too old for --control/--delay=-1 (needs perf >= 5.10): {_first_line(text)}"
    if "event syntax error" in lowered:
        return f"perf does not know an event: {_first_line(text)}"
    if "not found for kernel" in lowered:
        return f"perf not installed for this kernel: {_first_line(text)}"
    detail = _first_line(text) or "no message"
    return f"perf stat failed (exit {returncode}): {detail}"


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Events ")), "")


def _paranoid() -> str:
    try:
        return Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    except OSError:
        return "unknown"
