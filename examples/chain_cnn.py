"""An example user search space in one file: a chain of 4 blocks, each with a block type and a width.

Use it with `--space examples/chain_cnn.py:ChainCNN`. Everything the tool needs comes from the
`SearchSpace` methods below; nothing else in the project knows this space exists.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from search_spaces import SearchSpace

BLOCKS = ("conv3x3", "conv5x5", "dwsep3x3", "skip")
WIDTHS = (16, 32, 48)
N_LAYERS = 4
STRIDES = (1, 2, 1, 2)   # the spatial size halves at layers 2 and 4


def _block(kind: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if kind == "skip":
        if c_in == c_out and stride == 1:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    if kind == "dwsep3x3":
        return nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
            nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
    k = 3 if kind == "conv3x3" else 5
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ChainCNN(SearchSpace):
    """Genome: (block, width) for each of 4 layers; arch string like `conv3x3/32-skip/16-...`."""

    name = "chain_cnn"
    input_shape = (3, 32, 32)

    def __init__(self, dataset: str | None = None):
        pass  # no accuracy table: the tool scores candidates with its training-free proxy

    @property
    def n_choices(self) -> np.ndarray:
        return np.array([len(BLOCKS), len(WIDTHS)] * N_LAYERS)

    def decode(self, genome: Sequence[int]) -> str:
        if not self.is_valid(genome):
            raise ValueError(f"genome {list(genome)} is not in ChainCNN")
        g = [int(v) for v in genome]
        return "-".join(f"{BLOCKS[g[2 * i]]}/{WIDTHS[g[2 * i + 1]]}" for i in range(N_LAYERS))

    def encode(self, arch: str) -> np.ndarray:
        layers = arch.split("-")
        if len(layers) != N_LAYERS:
            raise ValueError(f"not a ChainCNN architecture: {arch!r}")
        genome = []
        for layer in layers:
            kind, _, width = layer.partition("/")
            if kind not in BLOCKS or not width.isdigit() or int(width) not in WIDTHS:
                raise ValueError(f"not a ChainCNN architecture: {arch!r}")
            genome += [BLOCKS.index(kind), WIDTHS.index(int(width))]
        return np.array(genome)

    def build_module(self, arch: str, num_classes: int = 10) -> nn.Module:
        g = self.encode(arch)
        layers, c = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
        for i in range(N_LAYERS):
            c_out = WIDTHS[g[2 * i + 1]]
            layers.append(_block(BLOCKS[g[2 * i]], c, c_out, STRIDES[i]))
            c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        return nn.Sequential(*layers)


if __name__ == "__main__":
    space = ChainCNN()
    arch = space.random_sample(1, np.random.default_rng(0))[0]
    print(arch, space.build_module(arch)(torch.randn(1, *space.input_shape)).shape)
