"""NAS-Bench-201 (Dong & Yang, ICLR 2020): a cell of 4 nodes, 6 edges, 5 operations per edge.

Indices and strings follow the benchmark's canonical order (index 0..15624), taken from the shipped
tables rather than recomputed: the canonical order is the benchmark file's, not an enumeration.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from search_spaces.base import SearchSpace
from search_spaces.data import data_path

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges (to_node, from_node) in the order they appear in an arch string.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
DATASETS = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}
_ACC_COLUMNS = {
    "cifar10": "cifar10_test_acc",
    "cifar100": "cifar100_test_acc",
    "imagenet16-120": "imagenet16_120_test_acc",
}


def genome_to_str(genome: Sequence[int]) -> str:
    ops = [OPS[int(g)] for g in genome]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def str_to_genome(arch: str) -> np.ndarray:
    nodes = arch.strip().split("+")
    if len(nodes) != 3:
        raise ValueError(f"not a NAS-Bench-201 architecture string: {arch!r}")
    genome = []
    for to_node, node in enumerate(nodes, start=1):
        parts = [p for p in node.split("|") if p]
        if len(parts) != to_node:
            raise ValueError(f"not a NAS-Bench-201 architecture string: {arch!r}")
        for from_node, part in enumerate(parts):
            op, _, src = part.partition("~")
            if op not in OPS or src != str(from_node):
                raise ValueError(f"not a NAS-Bench-201 architecture string: {arch!r}")
            genome.append(OPS.index(op))
    # One spelling per architecture: tables and accuracies are keyed by it, so a string without its outer
    # '|' (which the split above reads) would be found by no look-up, and the same architecture under two
    # spellings would be two columns of a latency table.
    if genome_to_str(genome) != arch.strip():
        raise ValueError(f"not a NAS-Bench-201 architecture string: {arch!r} (NAS-Bench-201 spells it "
                         f"{genome_to_str(genome)!r})")
    return np.array(genome, dtype=np.int64)


class NasBench201(SearchSpace):
    """The NAS-Bench-201 topology space with its NATS-Bench accuracies and HELP latency tables."""

    name = "nasbench201"
    datasets = tuple(DATASETS)
    # HW-NAS-Bench's rows are its CIFAR-10 variant, on 32x32 input (search_spaces/data/README.md); HELP
    # does not state the input of its own rows.
    tables_input_shape = (3, 32, 32)

    def __init__(self, dataset: str = "cifar10"):
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
        self.dataset = dataset
        self.input_shape = (3, 16, 16) if dataset == "imagenet16-120" else (3, 32, 32)
        self._acc: pd.DataFrame | None = None
        self._lat: pd.DataFrame | None = None

    @property
    def n_choices(self) -> np.ndarray:
        return np.full(len(EDGES), len(OPS))

    def decode(self, genome: Sequence[int]) -> str:
        if not self.is_valid(genome):
            raise ValueError(f"genome {list(genome)} is not in NAS-Bench-201 (6 integers in 0..4)")
        return genome_to_str(genome)

    def encode(self, arch: str) -> np.ndarray:
        return str_to_genome(arch)

    # --- canonical index ---------------------------------------------------------------------
    def _accuracy_table(self) -> pd.DataFrame:
        if self._acc is None:
            acc = pd.read_parquet(data_path("nasbench201_accuracy.parquet"))
            acc["arch_str"] = acc["arch_str"].astype(str)
            self._acc = acc.set_index("arch_str")
        return self._acc

    def index_of(self, arch: str) -> int:
        """Canonical NAS-Bench-201 index of an architecture string."""
        try:
            return int(self._accuracy_table().at[arch, "arch_index"])
        except KeyError:
            raise ValueError(f"not a NAS-Bench-201 architecture string: {arch!r}") from None

    def arch_of(self, index: int) -> str:
        """Architecture string at a canonical index 0..15624."""
        archs = self.all_archs()
        if not 0 <= index < len(archs):
            raise ValueError(f"NAS-Bench-201 index {index} is outside 0..{len(archs) - 1}")
        return archs[index]

    def all_archs(self) -> list[str]:
        return self._accuracy_table().sort_values("arch_index").index.tolist()

    # --- objectives --------------------------------------------------------------------------
    def accuracy(self, archs: Sequence[str], dataset: str | None = None) -> np.ndarray:
        dataset = dataset or self.dataset
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
        return self._accuracy_table().loc[list(archs), _ACC_COLUMNS[dataset]].to_numpy(dtype=float)

    def latency_table(self) -> pd.DataFrame:
        if self._lat is None:
            lat = pd.read_parquet(data_path("nasbench201_latency.parquet"),
                                  columns=["device", "arch_str", "latency_ms"])
            lat["device"] = lat["device"].astype(str)
            lat["arch_str"] = lat["arch_str"].astype(str)
            self._lat = lat
        return self._lat

    # --- the network -------------------------------------------------------------------------
    def cost_features(self, archs: Sequence[str]) -> np.ndarray:
        """How many of the cell's 6 edges carry each op other than `none`, one column per op.

        The counts of all five ops sum to 6, so a `none` column would only repeat the intercept: the
        intercept holds six `none` edges and each column the cost of an op relative to `none`.
        Every edge of a cell sees a tensor of the same shape, so an op costs the same on any edge.
        Fitted by least squares to each shipped device's 15,625 latencies, intercept + op counts is
        within ±10% for ≥ 99.9% of the archs on eyeriss, fpga and the batch-256 GPUs and for ≥ 94.9%
        on every GPU; the 30-column one-hot of (edge, op) does no better (by ≤ 0.002) except on
        pixel3, a phone whose noise neither captures (0.55 vs 0.50).
        """
        genomes = np.stack([self.encode(a) for a in archs]) if len(archs) else np.zeros((0, len(EDGES)), int)
        return np.stack([(genomes == k).sum(axis=1) for k in range(1, len(OPS))], axis=1).astype(np.float32)

    def ignores_input(self, archs: Sequence[str]) -> np.ndarray:
        """True where no path of non-`none` edges leads from the cell's input to its output: no cell's
        output then depends on what it is fed, so the network's output is the same for any input
        (341 of the 15,625 archs)."""
        genomes = np.stack([self.encode(a) for a in archs]) if len(archs) else np.zeros((0, len(EDGES)), int)
        reached = {0: np.ones(len(genomes), dtype=bool)}
        for node in (1, 2, 3):  # EDGES only run from lower to higher nodes
            reached[node] = np.zeros(len(genomes), dtype=bool)
            for k, (to, src) in enumerate(EDGES):
                if to == node:
                    reached[node] |= reached[src] & (genomes[:, k] != OPS.index("none"))
        return ~reached[3]

    def build_module(self, arch: str, num_classes: int | None = None):
        from search_spaces.nasbench201_net import NasBench201Net

        return NasBench201Net(self.encode(arch), num_classes or DATASETS[self.dataset])
