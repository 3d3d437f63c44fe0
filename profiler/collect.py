"""Measure an initial set for a search space that ships no latency table.

`python -m profiler collect --space file.py:Class --n 200 --out tables/` measures N random architectures
on this machine and writes `tables/<device>.csv` (columns device, arch_str, latency_ms, the shipped
tables' columns). Run it on every machine you have, into the same folder: the files merge, and the
folder is what `python -m nas.search --tables tables/` trains the predictor on.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from profiler.measure import MeasureConfig, machine_description, measure_archs


def default_device_name() -> str:
    """A file-safe name for this machine: its host name, prefixed so it never reads as a shipped device."""
    # Cut to 60 characters: the name must pass the rule of device names (at most 100), and a BSD
    # host name may be 255 long.
    return "host-" + re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-")[:60]


def this_machine_name(measure) -> str:
    """The device name `collect` gives this machine's table where not told one: its host name, then
    "-cuda" where `measure` (a MeasureConfig) times the GPU, then the batch size. CPU and GPU tables of
    one host are two devices, and shared one name."""
    return f"{default_device_name()}{'-cuda' if measure.device == 'cuda' else ''}-b{measure.batch_size}"


def collect_archs(space, n: int, seed: int) -> list[str]:
    """`n` distinct random architectures (fewer where the space is smaller).

    Drawing stops once 100 draws in a row find no new architecture. Each draw takes at least
    min(n, 256): drawing only the few still missing would rarely find them in a space barely larger
    than `n`, and would give up on a space that holds enough.
    """
    rng = np.random.default_rng(seed)
    archs: list[str] = []
    stale = 0
    while len(archs) < n and stale < 100:
        before = len(archs)
        archs = list(dict.fromkeys(archs + space.random_sample(max(n - len(archs), min(n, 256)), rng)))[:n]
        stale = stale + 1 if len(archs) == before else 0
    return archs


def collect_table(space, archs: Sequence[str], device: str, config: MeasureConfig,
                  progress: bool = True) -> pd.DataFrame:
    """Measure `archs` here, one at a time; a long table with the shipped tables' columns."""
    measured = measure_archs(space, archs, config, progress=progress)
    machine = machine_description()
    return pd.DataFrame({
        "device": device,
        "arch_str": list(measured),
        "latency_ms": [m.median_ms for m in measured.values()],
        "iqr_ms": [m.iqr_ms for m in measured.values()],
        "batch_size": config.batch_size,
        "threads": config.threads,
        "hardware": machine.get("gpu_name") if config.device == "cuda" else machine.get("cpu_model"),
    })


def write_table(df: pd.DataFrame, out_dir: Path) -> Path:
    """Write `<out_dir>/<device>.csv` atomically; re-collecting a device replaces its file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{df['device'].iloc[0]}.csv"
    from nas.config import write_atomically

    return write_atomically(path, lambda tmp: df.to_csv(tmp, index=False))
