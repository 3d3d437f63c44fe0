"""The NAS-Bench-201 network in PyTorch, as in the benchmark's reference code (`TinyNetwork`).

Stem conv 3x3 -> 5 cells (C=16) -> residual reduction -> 5 cells (C=32) -> residual reduction ->
5 cells (C=64) -> BN-ReLU -> global average pool -> linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.nasbench201 import EDGES, OPS


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, c: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {op!r}")


class Cell(nn.Module):
    """Node j sums op(node i) over the edges i -> j; the cell outputs node 3."""

    def __init__(self, genome, c: int):
        super().__init__()
        self.edges = nn.ModuleList(make_op(OPS[int(g)], c) for g in genome)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in (1, 2, 3):
            nodes.append(sum(op(nodes[src]) for op, (dst, src) in zip(self.edges, EDGES) if dst == to_node))
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's `ResNetBasicblock` with stride 2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NasBench201Net(nn.Module):
    def __init__(self, genome, num_classes: int = 10, c: int = 16, cells_per_stage: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        channels = [c, 2 * c, 4 * c]
        for stage, ch in enumerate(channels):
            if stage > 0:
                layers.append(ResidualReduction(channels[stage - 1], ch))
            layers.extend(Cell(genome, ch) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))
