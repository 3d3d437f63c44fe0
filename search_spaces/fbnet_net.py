"""The FBNet network in PyTorch, following HW-NAS-Bench's `FBNet_Infer`.

Source followed: github.com/GATECH-EIC/HW-NAS-Bench, `hw_nas_bench_api/fbnet_models/model_infer.py`
(commit 6c67e04375d0b9016846cce627f67804235f5e9e, MIT, "Copyright (c) 2022 GaTech-EIC"); the code below is
written anew to that layout. For CIFAR input (HW-NAS-Bench's "unofficial CIFAR-10/100 setting"):

    stem: conv 3x3 (3 -> 16, stride 1) - BN - ReLU
    22 blocks in 7 stages of [1, 4, 4, 4, 4, 4, 1] blocks, [16, 24, 32, 64, 112, 184, 352] channels,
    first-block strides [1, 1, 2, 2, 1, 2, 1] (so 32 -> 32 -> 32 -> 16 -> 8 -> 8 -> 4 -> 4 pixels)
    head: conv 1x1 (352 -> 1504) - BN - ReLU - global average pool - linear (1504 -> num_classes)

A block kK_eE[_gG] is an inverted residual: 1x1 conv to E*C_in channels with G groups - BN - ReLU - channel
shuffle (G > 1 only) - depthwise KxK conv with the block's stride - BN - ReLU - 1x1 conv with G groups - BN,
plus the input when C_in == C_out and stride 1. 'skip' is the identity, or 1x1 conv (stride s) - BN - ReLU where
the shape changes. Weight initialisation is HW-NAS-Bench's: Kaiming normal (fan_out) for convs, BN weight 1 and
bias 0, linear weights N(0, 0.001^2).

Deviations: none in structure or values. Each ReLU is its own module and not in place (HW-NAS-Bench shares one
in-place ReLU per block), so that the module hooks of the training-free proxies see every activation once per
call and autograd never meets an in-place op under a hook. The ImageNet variant
(stride-2 stem, strides [1, 2, 2, 2, 1, 2, 1], 1984 head channels) is available with `cifar=False` but the
space ships no tables for it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from search_spaces.fbnet import (BLOCKS, CIFAR_HEAD_CHANNELS, CIFAR_STAGE_STRIDES, N_LAYERS, STAGE_CHANNELS,
                                 STEM_CHANNELS, Block, layer_specs)

_IMAGENET_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
_IMAGENET_HEAD_CHANNELS = 1984


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


class ChannelShuffle(nn.Module):
    """[N, g*c, H, W] -> [N, c*g, H, W]: interleave the groups so the next grouped conv mixes them."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class InvertedResidual(nn.Module):
    """FBNet's block: grouped 1x1 expansion, depthwise KxK, grouped 1x1 projection (HW-NAS-Bench's `ConvBlock`)."""

    def __init__(self, block: Block, c_in: int, c_out: int, stride: int):
        super().__init__()
        mid, g = c_in * block.expansion, block.groups
        layers: list[nn.Module] = [nn.Conv2d(c_in, mid, 1, groups=g, bias=False), nn.BatchNorm2d(mid), nn.ReLU()]
        if g > 1:
            layers.append(ChannelShuffle(g))
        layers += [
            nn.Conv2d(mid, mid, block.kernel, stride=stride, padding=block.kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, c_out, 1, groups=g, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = c_in == c_out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


def make_block(block: Block, c_in: int, c_out: int, stride: int) -> nn.Module:
    if not block.is_skip:
        return InvertedResidual(block, c_in, c_out, stride)
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return ConvBNReLU(c_in, c_out, 1, stride)


class FBNetNet(nn.Module):
    def __init__(self, genome: Sequence[int], num_classes: int = 100, cifar: bool = True):
        super().__init__()
        if len(genome) != N_LAYERS:
            raise ValueError(f"an FBNet genome has {N_LAYERS} entries, not {len(genome)}")
        stem_stride = 1 if cifar else 2
        strides = CIFAR_STAGE_STRIDES if cifar else _IMAGENET_STAGE_STRIDES
        head = CIFAR_HEAD_CHANNELS if cifar else _IMAGENET_HEAD_CHANNELS
        self.stem = ConvBNReLU(3, STEM_CHANNELS, 3, stem_stride)
        # layer_specs' input size only matters for MACs; the module works at any input size.
        self.blocks = nn.Sequential(*(make_block(BLOCKS[int(g)], s.c_in, s.c_out, s.stride)
                                      for g, s in zip(genome, layer_specs(32, strides, stem_stride))))
        self.head = ConvBNReLU(STAGE_CHANNELS[-1], head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)
        self._init_params()

    def _init_params(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))
