"""FBNet (Wu et al., CVPR 2019) as laid out by HW-NAS-Bench (Li et al., ICLR 2021): 22 searchable layers, 9 blocks.

The macro-architecture, block names and block order are HW-NAS-Bench's (`hw_nas_bench_api/fbnet_models`); the
shipped latency table is HELP's copy of 5,000 sampled architectures on 22 devices, for HW-NAS-Bench's CIFAR-100
input variant (32x32). An architecture string is the 22 block names, layers 1 -> 22, joined by '-', exactly as in
the table. There is no accuracy table for this space: the search scores it with a training-free proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import pandas as pd

from search_spaces.base import SearchSpace
from search_spaces.data import data_path

#: HW-NAS-Bench's `PRIMITIVES`, in its order: genome value i means OPS[i] (the table's `op_idx`).
OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
STAGE_DEPTHS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
#: First-block stride of each stage in HW-NAS-Bench's CIFAR variant (its ImageNet variant uses 1, 2, 2, 2, 1, 2, 1).
CIFAR_STAGE_STRIDES = (1, 1, 2, 2, 1, 2, 1)
STEM_CHANNELS = 16
#: Channels of the 1x1 head conv in HW-NAS-Bench's CIFAR variant (1984 for ImageNet).
CIFAR_HEAD_CHANNELS = 1504
N_LAYERS = sum(STAGE_DEPTHS)
DATASETS = {"cifar100": 100}

_SEP = "-"


@dataclass(frozen=True)
class Block:
    """One of the 9 choices: an inverted-residual block (kernel, expansion, groups) or 'skip'."""

    name: str
    kernel: int = 0
    expansion: int = 0
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.name == "skip"


def parse_block(name: str) -> Block:
    if name == "skip":
        return Block(name)
    parts = name.split("_")  # k3_e1_g2 -> k3, e1, g2
    kernel, expansion = int(parts[0][1:]), int(parts[1][1:])
    groups = int(parts[2][1:]) if len(parts) > 2 else 1
    return Block(name, kernel, expansion, groups)


BLOCKS = tuple(parse_block(op) for op in OPS)


@dataclass(frozen=True)
class LayerSpec:
    """Shape of one searchable layer: channels in/out, stride, input side length in pixels."""

    stage: int
    c_in: int
    c_out: int
    stride: int
    size_in: int

    @property
    def size_out(self) -> int:
        return self.size_in // self.stride


def layer_specs(input_size: int = 32, stage_strides: Sequence[int] = CIFAR_STAGE_STRIDES,
                stem_stride: int = 1) -> list[LayerSpec]:
    """The 22 searchable layers of HW-NAS-Bench's `FBNet_Infer`, in order."""
    specs = []
    size = input_size // stem_stride
    c_prev = STEM_CHANNELS
    for stage, (depth, c, s) in enumerate(zip(STAGE_DEPTHS, STAGE_CHANNELS, stage_strides)):
        for i in range(depth):
            stride = s if i == 0 else 1
            specs.append(LayerSpec(stage, c_prev, c, stride, size))
            size //= stride
            c_prev = c
    return specs


def block_macs(block: Block, layer: LayerSpec) -> int:
    """Multiply-accumulates of one block at one layer (convolutions only, as built by `fbnet_net`)."""
    hw_in, hw_out = layer.size_in ** 2, layer.size_out ** 2
    if block.is_skip:
        needs_conv = layer.stride != 1 or layer.c_in != layer.c_out
        return hw_out * layer.c_in * layer.c_out if needs_conv else 0
    mid = layer.c_in * block.expansion
    expand = hw_in * layer.c_in * mid // block.groups
    depthwise = hw_out * mid * block.kernel ** 2
    project = hw_out * mid * layer.c_out // block.groups
    return expand + depthwise + project


def genome_to_str(genome: Sequence[int]) -> str:
    return _SEP.join(OPS[int(g)] for g in genome)


def str_to_genome(arch: str) -> np.ndarray:
    names = arch.strip().split(_SEP)
    if len(names) != N_LAYERS or any(n not in OPS for n in names):
        raise ValueError(f"not an FBNet architecture string ({N_LAYERS} of {', '.join(OPS)} joined by "
                         f"'{_SEP}'): {arch!r}")
    return np.array([OPS.index(n) for n in names], dtype=np.int64)


class FBNet(SearchSpace):
    """The FBNet space of HW-NAS-Bench (CIFAR-100 variant) with HELP's latency tables; no accuracy table."""

    name = "fbnet"
    datasets = tuple(DATASETS)

    def __init__(self, dataset: str = "cifar100"):
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r} for fbnet; choose from {', '.join(DATASETS)}")
        self.dataset = dataset
        self.input_shape = (3, 32, 32)
        self._lat: pd.DataFrame | None = None

    def __getstate__(self) -> dict:
        # Spaces travel to Ray workers: send the settings, not the cached 110,000-row table.
        return {"dataset": self.dataset, "input_shape": self.input_shape, "_lat": None}

    @property
    def n_choices(self) -> np.ndarray:
        return np.full(N_LAYERS, len(OPS))

    def decode(self, genome: Sequence[int]) -> str:
        if not self.is_valid(genome):
            raise ValueError(f"genome {list(genome)} is not in FBNet ({N_LAYERS} integers in 0..{len(OPS) - 1})")
        return genome_to_str(genome)

    def encode(self, arch: str) -> np.ndarray:
        return str_to_genome(arch)

    # --- predictor features ------------------------------------------------------------------
    @cached_property
    def _macs_table(self) -> np.ndarray:
        """MACs of block j at layer i, shape (22, 9)."""
        specs = layer_specs(self.input_shape[1])
        return np.array([[block_macs(b, s) for b in BLOCKS] for s in specs], dtype=np.float64)

    @cached_property
    def _stage_of_layer(self) -> np.ndarray:
        return np.array([s.stage for s in layer_specs(self.input_shape[1])])

    def features(self, archs: Sequence[str]) -> np.ndarray:
        """One-hot of the 22 choices (198 columns) followed by 8 structural columns.

        The structural columns are each stage's MACs, then the whole network's searchable MACs, each as a
        fraction of its largest possible value (every layer k5_e6), so they lie in [0, 1].
        """
        onehot = super().features(archs)
        genomes = np.stack([self.encode(a) for a in archs]) if len(archs) else np.zeros((0, N_LAYERS), int)
        macs = self._macs_table[np.arange(N_LAYERS), genomes]            # (n, 22)
        in_stage = np.eye(len(STAGE_DEPTHS))[self._stage_of_layer]        # (22, 7)
        per_stage = macs @ in_stage
        max_layer = self._macs_table.max(axis=1)
        max_stage = max_layer @ in_stage
        struct = np.concatenate([per_stage / max_stage, macs.sum(1, keepdims=True) / max_layer.sum()], axis=1)
        return np.concatenate([onehot, struct.astype(np.float32)], axis=1)

    # --- data --------------------------------------------------------------------------------
    def latency_table(self) -> pd.DataFrame:
        if self._lat is None:
            lat = pd.read_parquet(data_path("fbnet_latency.parquet"), columns=["device", "arch_str", "latency_ms"])
            lat["device"] = lat["device"].astype(str)
            lat["arch_str"] = lat["arch_str"].astype(str)
            self._lat = lat
        return self._lat

    def all_archs(self) -> None:
        return None  # 9^22 architectures

    # --- the network -------------------------------------------------------------------------
    def build_module(self, arch: str, num_classes: int | None = None):
        from search_spaces.fbnet_net import FBNetNet

        return FBNetNet(self.encode(arch), num_classes or DATASETS[self.dataset])
