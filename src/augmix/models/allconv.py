"""All-convolutional net (Springenberg et al. 2015) as REF builds it.

REF: google-research/augmix models/cifar/allconv.py. The Sequential below has the same module
order (conv, BN, GELU; max pool, dropout; ...) so REF's ``features.<i>`` checkpoint keys load.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .common import CIFAR_MEAN, CIFAR_STD, Normalize, reference_init

# 96 x3, pool+dropout, 192 x3, pool+dropout, 3x3 unpadded conv, two 1x1 "NIN" convs, average pool.
LAYOUT = (96, 96, 96, "Md", 192, 192, 192, "Md", "nopad", "NIN", "NIN", "A")


class SigmoidGELU(nn.Module):
    """GELU approximated as x * sigmoid(1.702 x) (Hendrycks & Gimpel 2016), as REF uses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _conv_unit(c_in: int, c_out: int, kernel: int, padding: int) -> list[nn.Module]:
    # REF keeps the conv bias (PyTorch default) even though BatchNorm follows.
    return [nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.BatchNorm2d(c_out), SigmoidGELU()]


# token -> (layers, output channels) given the input channels.
# REF quirks kept for parity, named once here: the "NIN" 1x1 convs have padding 1, so the map grows
# 6x6 -> 8x8 -> 10x10, and AvgPool2d(8) on the 10x10 map averages only its top-left 8x8 window.
_TOKENS: dict[str, Callable[[int], tuple[list[nn.Module], int]]] = {
    "Md": lambda c: ([nn.MaxPool2d(2, 2), nn.Dropout(0.5)], c),
    "nopad": lambda c: (_conv_unit(c, c, 3, 0), c),
    "NIN": lambda c: (_conv_unit(c, c, 1, 1), c),
    "A": lambda c: ([nn.AvgPool2d(8)], c),
}


def make_features(layout: tuple = LAYOUT, in_channels: int = 3) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c = in_channels
    for token in layout:
        if isinstance(token, int):
            new, c = _conv_unit(c, token, 3, 1), token
        else:
            new, c = _TOKENS[token](c)
        layers += new
    return nn.Sequential(*layers), c


class AllConvNet(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        self.features, width = make_features()
        self.classifier = nn.Linear(width, num_classes)
        reference_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))
