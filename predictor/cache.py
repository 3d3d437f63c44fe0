"""On-disk cache of fitted predictor state, so a search does not retrain on every run.

Entries live in ``$HWNAS_CACHE_DIR`` (default ``~/.cache/hwnas``), one file per key. Keys are
hashes of everything the fitted state depends on, so a stale entry is never found rather than
invalidated. A file that cannot be read back is treated as missing and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from nas.config import write_atomically


def default_cache_dir() -> Path:
    """``$HWNAS_CACHE_DIR`` if set, else ``~/.cache/hwnas`` (read at call time, not import time)."""
    env = os.environ.get("HWNAS_CACHE_DIR")
    # os.path, not Path.expanduser: an unknown ~user stays literal instead of raising RuntimeError
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "hwnas"


def fingerprint(header: str, fields: dict, table, features: np.ndarray) -> str:
    """A cache key: a hash of `header` (what is cached, and its version), the configuration `fields`,
    the initial set `table` (devices, architectures, latencies) and the architectures' `features`."""
    h = hashlib.sha256(header.encode())
    h.update(repr(sorted(fields.items())).encode())
    h.update("\0".join(table.devices).encode())
    h.update("\0".join(table.archs).encode())
    h.update(np.ascontiguousarray(table.latency_ms, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(features).tobytes())
    return h.hexdigest()[:32]


class ModelCache:
    """Load and save dicts of tensors and plain values (str, int, float, lists, dicts) under a string key."""

    def __init__(self, directory: str | os.PathLike | None = None, prefix: str = "maple"):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.prefix = prefix

    def path(self, key: str) -> Path:
        return self.directory / f"{self.prefix}-{key}.pt"

    def load(self, key: str) -> dict | None:
        """The stored state, or None when absent or unreadable (a corrupt entry is ignored)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            # weights_only: an entry holds tensors and plain values only, so loading runs no pickled code.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable entry is simply rebuilt
            return None
        return state if isinstance(state, dict) else None

    def save(self, key: str, state: dict) -> None:
        """Store `state`; failures to write (read-only home, full disk) only cost the cache."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # A reader never sees half a file; and the entry follows the umask (mkstemp's were private,
            # 0600, so a cache shared by a group was rewritten by each member in turn).
            write_atomically(self.path(key), lambda tmp: torch.save(state, tmp))
        except OSError:
            pass
