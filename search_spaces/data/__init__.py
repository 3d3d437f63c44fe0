"""Tables shipped inside the package so that an installed copy works offline (see README.md here)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd


def data_path(name: str) -> Path:
    """Path of a shipped data file."""
    return Path(str(resources.files(__name__).joinpath(name)))


def device_catalog() -> pd.DataFrame:
    """One row per shipped device: kind, hardware, HELP split per space (HELP's `devices.csv`)."""
    return pd.read_csv(data_path("devices.csv")).set_index("device")
