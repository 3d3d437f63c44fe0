"""Which device a search targets, and how its few measurements are obtained.

`local`/`local-cuda` always mean this machine, measured now. Any other name is, in order, a device
with a shipped table (its 'measurement' is the table value) or a saved profile (measured earlier on
that machine with `python -m profiler profile`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from nas.config import UsageError
from predictor.tables import LatencyTable, shipped_devices
from profiler.measure import LOCAL_DEVICES
from search_spaces import SearchSpace


@dataclass
class Target:
    """The device a search optimises for."""

    name: str
    source: str                                        # "table", "profile" or "local"
    description: str
    measure_fn: Callable[[Sequence[str]], dict[str, float]]
    true_latency_ms: pd.Series | None = None           # the whole table column, where one exists
    can_measure_here: bool = False                     # True when the target is this machine
    details: dict = field(default_factory=dict)

    def measure(self, archs: Sequence[str]) -> dict[str, float]:
        """Latency in ms of each arch on the target: exactly these archs, nothing more."""
        return self.measure_fn(list(archs))


def known_devices(table: LatencyTable, profiles_dir: Path | None, space: SearchSpace) -> list[str]:
    names = list(table.devices)
    names += [n for n in _saved_profiles(profiles_dir, space.name) if n not in names + list(LOCAL_DEVICES)]
    return names + list(LOCAL_DEVICES)


def _saved_profiles(profiles_dir: Path | None, space_name: str) -> list[str]:
    from profiler.profiles import saved_profiles

    return [name for name, space in saved_profiles(profiles_dir) if space == space_name]


def profile_command(name: str, space: SearchSpace, tables: Sequence[Path] = (), samples: int | None = None) -> str:
    """The command that makes, on the target machine, the profile a search for `name` looks for.

    It names the space as the user did (`space.spec`) and the search's `--tables`, which decide the
    reference architectures the profile must hold.
    """
    words = ["python", "-m", "profiler", "profile", "--name", name, "--space", space.spec]
    if tables:
        words += ["--tables", *map(str, tables)]
    if samples is not None:
        words += ["--samples", str(samples)]
    return shlex.join(words)


def resolve_target(name: str, space: SearchSpace, table: LatencyTable, profiles_dir: Path | None = None,
                   batch_size: int = 1, progress: bool = True, tables: Sequence[Path] = ()) -> Target:
    """The target called `name`; UsageError naming what to do when it cannot be had.

    `table` is the predictor's initial set: the space's shipped tables, or the user's `tables`.
    """
    origin = "given" if tables else "shipped"
    if name in LOCAL_DEVICES:
        return _local_target(name, space, batch_size, progress)
    if name in table.devices:
        column = table.column(name)

        def from_table(archs):
            return {a: float(column[a]) for a in archs}

        return Target(name, "table", f"{origin} {space.name} latency table", from_table, column)

    from profiler.profiles import ProfileError, load_profile, profile_path, saved_profiles
    from profiler.profiles import profiles_dir as default_profiles_dir

    try:
        profile = load_profile(name, space.name, profiles_dir, redo=profile_command(name, space, tables))
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    if profile is not None:
        def from_profile(archs):
            missing = [a for a in archs if a not in profile.samples]
            if missing:
                raise UsageError(
                    f"profile {name!r} lacks {len(missing)} of the architectures the predictor asks for"
                    f"{_why_it_lacks(profile, archs, table, tables)}; re-run on that machine: "
                    f"{profile_command(name, space, tables, len(archs))}")
            return {a: float(profile.samples[a]) for a in archs}

        on_gpu = profile.measure_config.get("device") == "cuda"
        label = profile.machine.get("gpu_name" if on_gpu else "cpu_model") or f"unknown {'GPU' if on_gpu else 'CPU'}"
        return Target(name, "profile", f"saved profile ({label}, {profile.created})", from_profile,
                      details={"profile_machine": profile.machine, "counters": profile.counters})

    known = ", ".join(known_devices(table, profiles_dir, space))
    if tables and name in shipped_devices(space):  # the default gold_6226, say: --tables replace the shipped ones
        raise UsageError(f"device {name!r} is in the shipped {space.name} tables, but --tables replace them and "
                         f"hold no {name!r}: give --device one of theirs, or local ({known})")
    try:
        profile_path(name, space.name)
    except ProfileError as exc:  # no profile can have this name: do not print a command that fails
        raise UsageError(f"unknown device {name!r} for {space.name}, and it cannot be a profile's: {exc} "
                         f"(known devices: {known})") from None
    # a profile made for another space is an easy slip: `profiler profile` defaults to nasbench201
    elsewhere = [s for n, s in saved_profiles(profiles_dir) if n == name]
    other = f" ({name!r} has a profile for {', '.join(elsewhere)} only)" if elsewhere else ""
    raise UsageError(
        f"unknown device {name!r} for {space.name}: no {origin} table and no saved profile{other} in "
        f"{profiles_dir or default_profiles_dir()}. "
        f"To target that machine, run there: {profile_command(name, space, tables)} (known devices: {known})")


def _why_it_lacks(profile, archs: Sequence[str], table: LatencyTable, tables: Sequence[Path]) -> str:
    """Why a profile lacks architectures the predictor asks for: more samples asked for than it was
    made with (the references are nested), or other tables than it was made for (by their contents:
    the paths are another machine's), or a predictor that has changed since."""
    held = len(profile.samples)
    # (A profile of --arch architectures holds no references by design, whatever it holds.)
    if profile.tables is not None and 0 < held < len(archs) and set(archs[:held]) == set(profile.samples):
        return f" (it holds the first {held}, as made with --samples {held}, and this search asks for {len(archs)})"
    made_for = profile.tables_made_for()
    if made_for is None or profile.tables_digest is None:
        return ""
    if profile.tables_digest == table.digest():
        return (f" (it was made on {profile.created} for tables of the same contents as this search's; this "
                "package's predictor has changed since, and now chooses other architectures)")
    these = f"--tables {' '.join(map(str, tables))}" if tables else "the shipped tables"
    return (f" (it was made on {profile.created} for {made_for}, whose contents differ from the tables this search "
            f"fits on, {these})")


def _local_target(name: str, space: SearchSpace, batch_size: int, progress: bool) -> Target:
    from profiler.measure import MeasureConfig, MeasurementError, machine_description, measure_archs

    device = "cuda" if name == "local-cuda" else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device local-cuda needs a CUDA GPU, and torch sees none on this machine")
    config = MeasureConfig(batch_size=batch_size, device=device)
    machine = machine_description()

    def measure_here(archs):
        try:
            measured = measure_archs(space, archs, config, progress=progress)
        except MeasurementError as exc:  # e.g. a user space whose module fails its forward pass
            raise UsageError(f"cannot measure on this machine: {exc}") from None
        return {a: m.median_ms for a, m in measured.items()}

    label = machine.get("gpu_name") if device == "cuda" else machine.get("cpu_model")
    return Target(name, "local", f"this machine ({label}), measured now", measure_here,
                  can_measure_here=True, details={"machine": machine, "measure_config": config})
