"""Latency tables as a device x architecture matrix: the initial set the predictor learns from."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

#: The columns `profiler collect` writes besides the three the predictor reads.
MEASURED_ON = ("hardware", "batch_size", "threads")


@dataclass(frozen=True)
class LatencyTable:
    """Measured latencies in ms, `latency_ms[i, j]` for device `devices[i]` and arch `archs[j]`.

    Every device has a value for every architecture (the shipped tables are complete).
    """

    devices: tuple[str, ...]
    archs: tuple[str, ...]
    latency_ms: np.ndarray

    @classmethod
    def from_long(cls, df: pd.DataFrame) -> "LatencyTable":
        """From a long table with columns device, arch_str, latency_ms.

        Raises ValueError when a device lacks an architecture the others have, or a value is not
        a positive number.
        """
        missing = {"device", "arch_str", "latency_ms"} - set(df.columns)
        if missing:
            raise ValueError(f"latency table lacks column(s) {', '.join(sorted(missing))}")
        _refuse_conflicting_repeats(df)
        wide = df.pivot_table(index="device", columns="arch_str", values="latency_ms",
                              aggfunc="first", observed=True)
        if wide.isna().any().any():
            have = wide.notna().sum(axis=1)
            short = ", ".join(f"{d} has {n}" for d, n in have[have < wide.shape[1]].head(5).items())
            common = int(wide.notna().all(axis=0).sum())
            raise ValueError(f"latency table is incomplete: every device needs every one of its {wide.shape[1]} "
                             f"architectures, and {short} ({common} in common). Measure the same architectures "
                             f"on every device: python -m profiler collect with the same --n and --seed")
        values = wide.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError("latency table has non-positive or non-finite latencies")
        return cls(tuple(map(str, wide.index)), tuple(map(str, wide.columns)), values)

    def __post_init__(self):
        if self.latency_ms.shape != (len(self.devices), len(self.archs)):
            raise ValueError("latency_ms must have shape (n_devices, n_archs)")

    def digest(self) -> str:
        """A hash of the devices, architectures and latencies: the same tables on any machine, under
        any path, give the same digest."""
        h = hashlib.sha256("\0".join(self.devices).encode() + b"\1" + "\0".join(self.archs).encode())
        h.update(np.ascontiguousarray(self.latency_ms, dtype=np.float64).tobytes())
        return h.hexdigest()[:32]

    def select(self, devices: Sequence[str]) -> "LatencyTable":
        idx = [self.devices.index(d) for d in devices]
        return LatencyTable(tuple(devices), self.archs, self.latency_ms[idx])

    def without(self, device: str) -> "LatencyTable":
        """The initial set for `device` as target: every other device."""
        return self.select([d for d in self.devices if d != device])

    def initial_set(self, target: str) -> "LatencyTable":
        """What the predictor learns from for `target`: every other device, at least two of them.

        Raises ValueError, saying how to get more, when fewer than two remain: the prior over a
        device's costs is learnt across devices, and one device gives it no spread.
        """
        initial = self.without(target)
        if len(initial.devices) < 2:
            have = ", ".join(initial.devices) or "none"
            raise ValueError(f"the predictor needs latency tables of at least 2 devices besides the target "
                             f"{target!r}; these tables give {len(initial.devices)} ({have}). Measure another "
                             f"with python -m profiler collect, on another machine or at another --batch-size")
        return initial

    def column(self, device: str) -> pd.Series:
        """Latencies (ms) of one device, indexed by arch string."""
        return pd.Series(self.latency_ms[self.devices.index(device)], index=list(self.archs), name=device)


def _refuse_conflicting_repeats(df: pd.DataFrame) -> None:
    """ValueError where a (device, arch) pair has two different latencies: combining them (a median
    of two is their mean) would invent a value nobody measured. Exact repeats, as when a file is
    given twice, are harmless."""
    repeated = df[df.duplicated(["device", "arch_str"], keep=False)]
    if repeated.empty:
        return
    spread = repeated.groupby(["device", "arch_str"], observed=True)["latency_ms"].agg(["nunique", list])
    conflicting = spread[spread["nunique"] > 1]
    if len(conflicting):
        (device, arch), values = conflicting.index[0], conflicting["list"].iloc[0]
        raise ValueError(f"latency table gives {len(conflicting)} (device, architecture) pair(s) more than one "
                         f"latency, e.g. {device!r} at {arch!r}: {', '.join(f'{v:g}' for v in values)} ms. Keep one "
                         f"measurement of each (two files may name the same device: give each machine its own "
                         f"name)")


def read_latency_files(paths) -> pd.DataFrame:
    """Long latency table (device, arch_str, latency_ms, and the file each row came from) from
    parquet/CSV files or folders of them.

    Files measured on several machines merge by concatenation. Raises ValueError with the path when
    a file is missing, unreadable or lacks a column.
    """
    from pathlib import Path

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".parquet", ".csv"))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"latency table not found: {p}")
    if not files:
        raise ValueError(f"no .parquet or .csv latency tables in {', '.join(map(str, paths))}")
    frames = []
    for f in files:
        try:
            # Only an empty cell is missing: "n/a" or "NA" in a CSV is kept, so the error shows what was
            # written. Names are text as written: read as numbers, arch "007" and device "1.50" became 7 and 1.5.
            df = (pd.read_parquet(f) if f.suffix == ".parquet"
                  else pd.read_csv(f, keep_default_na=False, na_values=[""],
                                   dtype={"device": str, "arch_str": str}))
        except Exception as exc:  # pandas raises many types for a bad file
            raise ValueError(f"cannot read latency table {f}: {exc}") from None
        frames.append(_checked_rows(df, f).assign(file=str(f)))  # where a row came from, for messages
    return pd.concat(frames, ignore_index=True)


def _checked_rows(df: pd.DataFrame, path) -> pd.DataFrame:
    """The three columns of one file, or ValueError naming the file and its first bad row.

    A hand-edited or truncated CSV holds empty cells and words where numbers belong; said here,
    they are one line the user can act on, not a pandas traceback or a table that looks incomplete.
    """
    missing = {"device", "arch_str", "latency_ms"} - set(df.columns)
    if missing:
        raise ValueError(f"latency table {path} lacks column(s) {', '.join(sorted(missing))}")
    if df.empty:
        raise ValueError(f"latency table {path} has no rows")
    raw = df.reset_index(drop=True)
    df = raw[["device", "arch_str", "latency_ms"]]
    latency = pd.to_numeric(df["latency_ms"], errors="coerce")
    checks = [("device", df["device"].isna() | (df["device"].astype(str).str.strip() == "")),
              ("arch_str", df["arch_str"].isna() | (df["arch_str"].astype(str).str.strip() == "")),
              ("latency_ms", ~(np.isfinite(latency) & (latency > 0)))]
    for column, bad in checks:
        if bad.any():
            # 1-based, not counting a CSV's header line
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = df[column].iloc[row]
            shown = "empty" if pd.isna(value) else repr(str(value))
            what = "is empty" if column != "latency_ms" else "is not a positive number"
            raise ValueError(f"latency table {path}: {column} {what} in {int(bad.sum())} row(s), "
                             f"first in row {row + 1} ({shown})")
    # Blanks around a name are a slip of whoever wrote the file ("gold_6226 " was another device than
    # gold_6226, and so left the shipped gold_6226 in a benchmark's initial set; " 0-0-0" passed a
    # lenient encode, and then matched no candidate of the search).
    out = pd.DataFrame({"device": df["device"].astype(str).str.strip(),
                        "arch_str": df["arch_str"].astype(str).str.strip(),
                        "latency_ms": latency.astype(np.float64)})
    # What `profiler collect` records of how a device was measured, kept where present: it tells a
    # table of this machine under another name (profiler benchmark).
    for column in MEASURED_ON:
        if column in raw.columns:
            out[column] = raw[column].to_numpy()
    return out


def shipped_devices(space) -> frozenset[str]:
    """The devices of the tables `space` ships, for advice; none where it ships none, or where its
    `latency_table()` fails or gives no table (said where the tables are loaded, not here)."""
    try:
        long = space.latency_table()
    except Exception:  # a user space's code: the advice this serves is not worth a traceback
        return frozenset()
    if not isinstance(long, pd.DataFrame) or "device" not in long.columns:
        return frozenset()
    return frozenset(long["device"].astype(str).str.strip())


def load_tables(space, paths=()) -> LatencyTable:
    """The latency tables the predictor learns from: the user's `paths` where given, else those `space` ships.

    Raises ValueError saying what to do when there are none, a file cannot be read or is
    incomplete, or an architecture string is not in `space`.
    """
    if paths:
        long = read_latency_files(paths)
    else:
        long = space.latency_table()
        if long is None:
            raise ValueError(
                f"search space {space.name!r} ships no latency tables. Measure an initial set on this machine (and "
                f"on any other you have) with: python -m profiler collect --space {shlex.quote(space.spec)} "
                f"--n 200 --out tables/; then pass --tables tables/")
        if not isinstance(long, pd.DataFrame):
            raise ValueError(f"search space {space.name!r}: latency_table() returned {type(long).__name__}, not a "
                             "pandas DataFrame with columns device, arch_str, latency_ms (or None)")
        long = _checked_rows(long, f"of search space {space.name!r} (its latency_table())")
    # A space's own table is checked too (0.2 s for NAS-Bench-201's 15,625): a user space's may be stale.
    bad = []
    for arch in long["arch_str"].unique():
        try:
            space.encode_within_choices(arch)
        except ValueError as exc:
            bad.append((arch, exc))
    if bad:
        arch, why = bad[0]
        where = ""
        if "file" in long.columns:  # e.g. a folder that also holds another space's tables
            files = sorted(long.loc[long["arch_str"].isin([a for a, _ in bad]), "file"].unique())
            where = f", in {', '.join(files[:3])}{f' and {len(files) - 3} more' if len(files) > 3 else ''}"
        raise ValueError(f"{len(bad)} architecture string(s) in the tables are not in space {space.name!r}{where}, "
                         f"e.g. {arch!r} ({why})")
    return LatencyTable.from_long(long)
