"""The `SearchSpace` interface: everything the search, the predictor and the profiler know about a space.

A space maps integer genomes (what NSGA-II evolves) to canonical architecture strings (what tables,
results and users see), encodes architectures as fixed-length feature vectors (what the latency
predictor reads) and builds a PyTorch module (what the profiler measures). Nothing outside
`search_spaces` branches on which space it holds.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import pandas as pd


_FILE_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Names of spaces and devices become parts of file names (`<device>--<space>.json` profiles,
#: `<device>.csv` tables), which most file systems cap at 255 bytes.
MAX_NAME_LENGTH = 100


def name_problem(name) -> str | None:
    """Why `name` cannot be part of a file name (a space's or a device's), or None where it can.

    Refused up front, not when a file is written after minutes of measuring: a '/' or '..' would
    write elsewhere, a leading '.' a hidden file, a trailing newline a name no one can type.
    """
    if not (isinstance(name, str) and _FILE_SAFE.fullmatch(name)):
        return "must be letters, digits, '.', '_' or '-' (and start with a letter or digit)"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; use at most {MAX_NAME_LENGTH}"
    return None


#: How the search, the predictor and the profiler call a space's methods: an override must accept it.
_CALLED_AS = {"decode": ("genome",), "encode": ("arch",), "features": ("archs",), "cost_features": ("archs",),
              "ignores_input": ("archs",), "build_module": ("arch",), "accuracy": ("archs", "dataset"),
              "latency_table": (), "all_archs": ()}


class SearchSpace(ABC):
    """A discrete space of architectures with an integer genome.

    Subclasses set `name`, `n_vars` and `n_choices` (the number of options per genome position) and
    implement the abstract methods. Genome position `i` takes integers in ``0 .. n_choices[i] - 1``.
    """

    name: str = "space"
    #: Input shape (C, H, W) of one sample, for building and measuring modules.
    input_shape: tuple[int, int, int] = (3, 32, 32)
    #: Input shape the space's shipped latency tables were timed on, as far as their sources state it; a
    #: search whose `input_shape` differs says that its latencies are of other networks. None: not
    #: stated, or no tables.
    tables_input_shape: tuple[int, int, int] | None = None

    # --- genome <-> architecture -------------------------------------------------------------
    @property
    @abstractmethod
    def n_choices(self) -> np.ndarray:
        """Number of options at each genome position, shape (n_vars,)."""

    @property
    def n_vars(self) -> int:
        return len(self.n_choices)

    @abstractmethod
    def decode(self, genome: Sequence[int]) -> str:
        """Canonical architecture string of a genome."""

    @abstractmethod
    def encode(self, arch: str) -> np.ndarray:
        """Genome of a canonical architecture string; raises ValueError if `arch` is not in the space."""

    @property
    def spec(self) -> str:
        """What to pass as `--space` to load this space again: its name, or the `file.py:Class` /
        `module:Class` it was loaded from (set by `search_spaces.registry.get_space`). Commands printed
        for the user carry it, since a user space's `name` alone does not find it."""
        return self.__dict__.get("_spec", self.name)

    def is_valid(self, genome: Sequence[int]) -> bool:
        g = np.asarray(genome)
        return g.shape == (self.n_vars,) and bool(np.all((g >= 0) & (g < self.n_choices)))

    def random_sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """`n` architectures drawn uniformly over genomes."""
        genomes = rng.integers(0, self.n_choices, size=(n, self.n_vars))
        return [self.decode_within_choices(g) for g in genomes]

    def decode_within_choices(self, genome: Sequence[int]) -> str:
        """`decode` of a genome that `n_choices` allows; a ValueError from `decode` is re-raised
        saying that the space contradicts itself, since no user input caused it."""
        try:
            return self.decode(genome)
        except ValueError as exc:
            raise ValueError(f"search space {self.name!r} rejected genome {[int(g) for g in genome]} within its "
                             f"own n_choices: {exc}") from None

    def encode_within_choices(self, arch: str) -> np.ndarray:
        """`encode`, checked against `n_choices`: ValueError where `arch` is not in the space, or where
        `encode` gives a genome the space's own `n_choices` does not allow (a table measured before the
        space was narrowed; an encode off by one would index the wrong feature columns silently)."""
        genome = np.asarray(self.encode(arch))
        whole = np.issubdtype(genome.dtype, np.integer) or genome.dtype == bool   # bool: on/off choices
        if not (whole and self.is_valid(genome)):
            raise ValueError(f"search space {self.name!r} encodes {arch!r} as {genome.tolist()}, not a genome of "
                             f"integers within its own n_choices {np.asarray(self.n_choices).tolist()}")
        return genome

    def check(self, n_random: int = 8) -> None:
        """ValueError, saying what contradicts what, where the space is not self-consistent.

        `n_choices` must be a non-empty 1-D array of integers >= 1, and `decode` of a genome must be a
        string that `encode` takes back to a genome within `n_choices` (not necessarily the same genome:
        a space with interchangeable positions may canonicalise).
        Tried on the all-first and all-last genomes and `n_random` random ones, so that a user's space
        fails when it is loaded, in one line, not deep inside the predictor or pymoo. A space of one
        architecture is refused (nothing to search), and so is a method that cannot be called as the
        search calls it (`accuracy(self, archs)` without `dataset`, say).
        """
        choices = np.asarray(self.n_choices)
        if not (choices.ndim == 1 and choices.size > 0 and np.issubdtype(choices.dtype, np.integer)
                and np.all(choices >= 1)):
            raise ValueError(f"search space {self.name!r} has n_choices {choices.tolist()!r}: it must be a non-empty "
                             "1-D array of integers >= 1, the number of options at each genome position")
        if np.all(choices == 1):
            raise ValueError(f"search space {self.name!r} has n_choices {choices.tolist()!r}: one architecture, "
                             "nothing to search; give some position two choices or more")
        for method, args in _CALLED_AS.items():
            fn = getattr(self, method)
            if not callable(fn):
                raise ValueError(f"search space {self.name!r}: {method} is {type(fn).__name__} {fn!r}, not a method")
            try:
                signature = inspect.signature(fn)
            except ValueError:
                continue  # no signature to read (a C function): it is tried when called
            try:
                signature.bind(*args)
            except TypeError as exc:  # the search would stop on it in a TypeError traceback, minutes in
                raise ValueError(f"search space {self.name!r}: {method}{signature} cannot be called as "
                                 f"{method}({', '.join(args)}), as the search calls it: {exc}") from None
        rng = np.random.default_rng(0)
        genomes = [np.zeros_like(choices), choices - 1, *rng.integers(0, choices, size=(n_random, len(choices)))]
        for genome in genomes:
            arch = self.decode_within_choices(genome)
            if not isinstance(arch, str):
                raise ValueError(f"search space {self.name!r} decodes genome {genome.tolist()} as "
                                 f"{type(arch).__name__} {arch!r}: an architecture must be a string")
            try:
                self.encode_within_choices(arch)
            except ValueError as exc:
                raise ValueError(f"search space {self.name!r} decodes genome {genome.tolist()} as {arch!r}, which "
                                 f"its own encode does not take back: {exc}") from None

    # --- what the predictor and the profiler need --------------------------------------------
    def features(self, archs: Sequence[str]) -> np.ndarray:
        """Fixed-length encoding for the latency predictor, shape (len(archs), n_features), float32.

        The default is a one-hot of each genome position, which is what MAPLE and HELP feed their
        regressors; spaces may add structural features.
        """
        genomes = np.stack([self.encode(a) for a in archs]) if len(archs) else np.zeros((0, self.n_vars), int)
        offsets = np.concatenate([[0], np.cumsum(self.n_choices)[:-1]])
        out = np.zeros((len(archs), int(np.sum(self.n_choices))), dtype=np.float32)
        out[np.arange(len(archs))[:, None], genomes + offsets] = 1.0
        return out

    def cost_features(self, archs: Sequence[str]) -> np.ndarray:
        """Counts the latency predictor treats a device's latency as additive in, shape (len(archs), m).

        The predictor models a device as ``latency = intercept + cost_features . costs`` (one cost per
        column, learnt per device), so a column should be something that costs the same wherever it
        occurs. The default, a one-hot of each genome position without its choice 0, assumes nothing:
        each choice at each position has its own cost, relative to choice 0 there (whose cost the
        intercept holds; a column for it would only repeat the intercept). Spaces whose positions are
        interchangeable should pool them (see `NasBench201.cost_features`): fewer costs are inferred
        better from a few samples.
        """
        onehot = SearchSpace.features(self, archs)
        first = np.concatenate([[0], np.cumsum(self.n_choices)[:-1]])
        return np.delete(onehot, first, axis=1)

    def ignores_input(self, archs: Sequence[str]) -> np.ndarray:
        """True where the network's output does not depend on its input, shape (len(archs),) bool.

        A compiler may fold such a network away (on pixel3 and raspi4 NAS-Bench-201's cells with no
        input-to-output path run in microseconds), so its latency says nothing of its ops' costs and
        the predictor never asks a target to measure one. The default, all False, assumes none.
        """
        return np.zeros(len(archs), dtype=bool)

    @abstractmethod
    def build_module(self, arch: str, num_classes: int = 10):
        """A `torch.nn.Module` of the whole network for `arch` (input `input_shape`)."""

    # --- objectives and data shipped with the space ------------------------------------------
    datasets: tuple[str, ...] = ()

    def accuracy(self, archs: Sequence[str], dataset: str) -> np.ndarray | None:
        """Benchmark test accuracy in %, one finite number per arch, or None where the space has no
        accuracy table. The search calls it with no archs first, to learn which."""
        return None

    def latency_table(self) -> pd.DataFrame | None:
        """Long table of measured latencies: columns device, arch_str, latency_ms (+ metadata).

        None where the space ships none (the predictor then needs tables from the user).
        """
        return None

    def all_archs(self) -> list[str] | None:
        """Every architecture, where the space is small enough to enumerate; else None."""
        return None
