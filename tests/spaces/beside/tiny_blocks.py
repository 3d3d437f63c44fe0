"""A helper module beside a user space file: the space imports it by its bare name, as a script would."""

from torch import nn


def tiny_net(widths, num_classes=10) -> nn.Module:
    layers, c = [], 3
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
