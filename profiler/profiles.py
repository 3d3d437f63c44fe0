"""Device profiles: a machine's measured latencies (and counters) for a space, saved as JSON.

A profile is made once on the target machine (``python -m profiler profile --name NAME``) and read
wherever the search runs, so a search can target a machine it is not running on. Files live in
`profiles_dir()`: ``$HWNAS_PROFILES_DIR`` if set, else ``~/.local/share/hwnas/profiles``; each is
``<name>--<space>.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from nas.config import probe_writable, write_atomically
from profiler.counters import DEFAULT_EVENTS, derived_metrics, read_counters
from profiler.measure import (LOCAL_DEVICES, MeasureConfig, build_or_raise, busy_warning, machine_description,
                              measure_archs)
from search_spaces.base import name_problem

#: Bumped when a field changes meaning or a required one is added; older files are then refused.
FORMAT_VERSION = 1
ENV_VAR = "HWNAS_PROFILES_DIR"


class ProfileError(Exception):
    """A profile cannot be read or written (corrupt, for another space, incompatible, unwritable)."""


@dataclass
class DeviceProfile:
    """What one machine measured for one search space.

    `samples` maps arch -> median latency in ms; `spreads` maps arch -> {p25_ms, p75_ms, iqr_ms,
    min_ms, cpu_median_ms, runs}. `conditions` records how busy the machine was (load average
    before and after, and the busy warning if the runs were spread out). `counters` is a dict (``events``: counts per inference averaged over the archs,
    ``derived``: IPC and miss rates, ``per_arch``: counts per inference of each arch) or the string
    "unavailable", in which case `counters_reason` says why.
    """

    name: str
    space: str
    machine: dict
    torch_version: str
    threads: int
    batch_size: int
    samples: dict[str, float]
    spreads: dict[str, dict] = field(default_factory=dict)
    counters: dict | str = "unavailable"
    counters_reason: str | None = None
    created: str = ""
    format_version: int = FORMAT_VERSION
    measure_config: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)
    #: The --tables whose predictor chose the architectures measured, as absolute paths on the machine
    #: that made it ([] for the space's shipped tables), and `LatencyTable.digest` of their contents,
    #: which says on any machine whether a search fits on the same tables. None where --arch chose
    #: the architectures, or the profile predates these fields.
    tables: list[str] | None = None
    tables_digest: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def tables_made_for(self) -> str | None:
        """'the shipped tables' or '--tables A B' (what the architectures were chosen from), or None."""
        if self.tables is None:
            return None
        return f"--tables {' '.join(self.tables)}" if self.tables else "the shipped tables"


_REQUIRED = ("name", "space", "machine", "torch_version", "threads", "batch_size", "samples", "counters",
             "created", "format_version")


def resolved_tables(tables: Sequence) -> list[str]:
    """`tables` as a profile records them: absolute paths, so that a search from another folder compares alike."""
    return [os.path.abspath(os.path.expanduser(str(t))) for t in tables]


def profiles_dir() -> Path:
    """Where profiles are saved: ``$HWNAS_PROFILES_DIR``, else ``~/.local/share/hwnas/profiles``."""
    env = os.environ.get(ENV_VAR)
    # os.path, not Path.expanduser: an unknown ~user stays literal instead of raising RuntimeError
    return Path(os.path.expanduser(env)) if env else Path.home() / ".local" / "share" / "hwnas" / "profiles"


def profile_path(name: str, space: str, directory: Path | str | None = None) -> Path:
    """The file of profile `name` for `space`; ProfileError when `name` cannot be a file name."""
    problem = name_problem(name)
    if problem:
        raise ProfileError(f"profile name {name!r} {problem}")
    if name in LOCAL_DEVICES:
        raise ProfileError(f"{name!r} cannot name a profile: a search for --device {name} measures this "
                           "machine during the search; give the machine a name of its own")
    return Path(directory or profiles_dir()) / f"{name}--{space}.json"


def saved_profiles(directory: Path | str | None = None) -> list[tuple[str, str]]:
    """(name, space) of every profile file in `directory` (default `profiles_dir()`), sorted."""
    directory = Path(directory or profiles_dir())
    if not directory.is_dir():
        return []
    found = (tuple(p.name[: -len(".json")].rsplit("--", 1)) for p in directory.glob("*--*.json") if p.is_file())
    # A file under a name no profile can have (an older version's, or hand-made) would be listed, and
    # offered as a device, though no search can find it.
    return sorted((name, space) for name, space in found if not name_problem(name))


def check_writable(directory: Path | str | None = None) -> Path:
    """Create the profiles directory if needed and check a file can be written there.

    Called before measuring, so that minutes of measurement are not lost to a directory that
    cannot take the result. Raises ProfileError naming the directory.
    """
    directory = Path(directory or profiles_dir())
    if directory.exists() and not directory.is_dir():  # mkdir would say only "File exists"
        raise ProfileError(f"cannot write profiles to {directory}: it is a file, not a folder; "
                           f"choose another with --profiles-dir or ${ENV_VAR}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe_writable(directory)
    except OSError as exc:
        raise ProfileError(f"cannot write profiles to {directory}: {exc.strerror or exc}; "
                           f"choose another with --profiles-dir or ${ENV_VAR}") from None
    return directory


def save_profile(p: DeviceProfile, directory: Path | str | None = None) -> Path:
    """Write `p` to ``<directory>/<name>--<space>.json`` and return the path.

    Written to a temporary file in the same directory and renamed over the target, so an
    interrupted save leaves the previous profile (or nothing), never half a file.
    """
    path = profile_path(p.name, p.space, directory)
    check_writable(path.parent)

    def write(tmp: Path) -> None:
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(p.to_dict(), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())  # a profile is measured work: on disk before the rename

    try:
        return write_atomically(path, write)
    except OSError as exc:
        raise ProfileError(f"cannot write profile {path}: {exc.strerror or exc}") from None


def load_profile(name: str, space: str, directory: Path | str | None = None,
                 redo: str | None = None) -> DeviceProfile | None:
    """The saved profile `name` for `space`, or None when there is none.

    Raises ProfileError, naming the file and what to do, when it is not valid JSON, lacks fields,
    was written by an incompatible version or is for another space or name; `redo` is the command
    that makes it again (default: the profile command for a built-in space). A name that cannot be
    a profile file name (see `profile_path`) has no profile: None.
    """
    if name_problem(name):
        return None
    path = profile_path(name, space, directory)
    if not path.is_file():
        return None
    redo = f"delete it, or re-run on that machine: {redo or f'python -m profiler profile --name {name} --space {space}'}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an integer of 4,300+ digits, deep nesting
        raise ProfileError(f"profile {path} is not valid JSON ({type(exc).__name__}: {exc}); {redo}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path} holds a JSON {type(data).__name__}, not an object; {redo}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ProfileError(f"profile {path} has format_version {version!r}; this version reads "
                           f"{FORMAT_VERSION} only; {redo}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProfileError(f"profile {path} lacks field(s) {', '.join(missing)}; {redo}")
    if data["space"] != space:
        raise ProfileError(f"profile {path} is for search space {data['space']!r}, not {space!r}; {redo}")
    if data["name"] != name:
        raise ProfileError(f"profile {path} says its name is {data['name']!r}, not {name!r}; {redo}")
    samples = data["samples"]
    if not isinstance(samples, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf for v in samples.values()):
        raise ProfileError(f"profile {path}: samples must map architectures to positive, finite latencies in ms; "
                           f"{redo}")
    if not isinstance(data["machine"], dict):
        raise ProfileError(f"profile {path}: machine must be an object; {redo}")
    known = {f.name for f in fields(DeviceProfile)}
    # Unknown keys are ignored rather than refused: a newer writer may add optional fields.
    profile = DeviceProfile(**{k: v for k, v in data.items() if k in known})
    # Optional fields that only explain things: a hand-edited value is read as not recorded.
    if not (isinstance(profile.tables, list) and all(isinstance(t, str) for t in profile.tables)):
        profile.tables = None
    if not isinstance(profile.tables_digest, str):
        profile.tables_digest = None
    for field_name in ("measure_config", "conditions", "spreads"):  # read with .get: a hand-edited "cpu" failed there
        if not isinstance(getattr(profile, field_name), dict):
            setattr(profile, field_name, {})
    return profile


def name_matches_machine(name: str, model: str) -> bool:
    """Whether profile `name` mentions something of the `model` string ('xeon6230' vs 'Intel Xeon Gold 6230').

    Names and models are cut into runs of letters and of digits; they match when they share a run
    of 3+ digits, or a word of 3+ letters that is not a generic one ('cpu', 'core', 'intel', ...).
    """
    generic = {"cpu", "core", "cores", "intel", "amd", "processor", "ghz", "with", "radeon", "graphics",
               "nvidia", "geforce", "machine", "server", "local", "host", "box", "gpu", "the"}

    def runs(s: str) -> set[str]:
        return {t for t in re.findall(r"[a-z]+|[0-9]+", s.lower())
                if (t.isdigit() and len(t) >= 3) or (t.isalpha() and len(t) >= 3 and t not in generic)}

    return bool(runs(name) & runs(model))


def profile_machine(name: str, space, archs: Sequence[str], config: MeasureConfig | None = None,
                    progress: bool = True, *, counters: bool = True, perf: str = "perf") -> DeviceProfile:
    """Measure `archs` of `space` (a SearchSpace or its name) on this machine into a profile.

    Latencies first, then, in a separate pass over the same archs, hardware counters (so that
    perf's attach never perturbs the timings); counters are recorded as "unavailable" with the
    reason where perf cannot read them. Warns (UserWarning) when `name` does not look like this
    machine's CPU (or GPU, for device "cuda"); the profile records the real model either way.
    Does not save: see `save_profile`.
    """
    from search_spaces.registry import get_space

    if isinstance(space, str):
        space = get_space(space)
    config = config or MeasureConfig()
    profile_path(name, space.name)  # refuse a bad name before minutes of measuring
    if not archs:
        raise ValueError("profile_machine needs at least one architecture to measure")
    machine = machine_description()
    label = machine.get("gpu_name") if config.device == "cuda" else machine.get("cpu_model")
    if label and not name_matches_machine(name, label):
        warnings.warn(f"profile name {name!r} does not mention this machine's "
                      f"{'GPU' if config.device == 'cuda' else 'CPU'} ({label!r}); the profile records "
                      f"{label!r} as measured", UserWarning, stacklevel=2)
    load_before = _load()
    measured = measure_archs(space, archs, config, progress=progress)
    busy = busy_warning(list(measured.values()))
    if busy:
        warnings.warn(busy, UserWarning, stacklevel=2)
    conditions = {"load_average_1m_before": load_before, "load_average_1m_after": _load(), "busy_warning": busy}
    if counters:
        counter_field, reason = _count_archs(space, list(measured), config, perf)
    else:
        counter_field, reason = "unavailable", "counters not requested"
    return DeviceProfile(
        name=name, space=space.name, machine=machine, torch_version=machine["torch_version"],
        threads=config.threads, batch_size=config.batch_size,
        samples={a: m.median_ms for a, m in measured.items()},
        spreads={a: {"p25_ms": m.p25_ms, "p75_ms": m.p75_ms, "iqr_ms": m.iqr_ms, "min_ms": m.min_ms,
                     "cpu_median_ms": m.cpu_median_ms, "runs": m.runs} for a, m in measured.items()},
        counters=counter_field, counters_reason=reason,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        measure_config=asdict(config), conditions=conditions)


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _count_archs(space, archs: list[str], config: MeasureConfig, perf: str) -> tuple[dict | str, str | None]:
    """Counts per inference of each arch (averaged over `config.runs` forward passes)."""
    import torch

    per_arch: dict[str, dict[str, float]] = {}
    old_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(config.threads)
        for arch in archs:
            module = build_or_raise(space, arch).to(config.device).eval()
            x = torch.randn((config.batch_size, *space.input_shape)).to(config.device)
            sync = torch.cuda.synchronize if config.device == "cuda" else (lambda: None)
            with torch.inference_mode():
                for _ in range(max(config.warmup, 1)):  # creates torch's threads before perf lists them
                    module(x)
                sync()

                def runs():
                    for _ in range(config.runs):
                        module(x)
                    sync()

                reading = read_counters(runs, DEFAULT_EVENTS, perf=perf)
            if not reading.available:
                return "unavailable", reading.reason
            per_arch[arch] = {k: v / config.runs for k, v in reading.values.items()}
    finally:
        torch.set_num_threads(old_threads)
    events = {e: sum(v[e] for v in per_arch.values()) / len(per_arch) for e in DEFAULT_EVENTS}
    return {"events": events, "derived": derived_metrics(events), "per_arch": per_arch,
            "note": "counts per inference, averaged over the profiled architectures"}, None
