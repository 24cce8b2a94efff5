"""DenseNet (Huang et al. 2017) for CIFAR.

REF: google-research/augmix third_party/ResNeXt_DenseNet/models/densenet.py (vendored from
D-X-Y/ResNeXt-DenseNet at 0de9a8c); REF's ``densenet()`` is growth 12, depth 40, reduction 1.0,
no bottleneck. Layer names follow that file so its checkpoints load.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import CIFAR_MEAN, CIFAR_STD, Normalize, reference_init


class SingleLayer(nn.Module):
    """BN-ReLU-conv3x3 producing ``growth`` channels, concatenated to the input."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv1(F.relu(self.bn1(x)))), 1)


class Bottleneck(nn.Module):
    """BN-ReLU-conv1x1 (4 * growth) then BN-ReLU-conv3x3 (growth), concatenated to the input."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        inter = 4 * growth
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, inter, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inter)
        self.conv2 = nn.Conv2d(inter, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat((x, out), 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 then 2x2 average pooling."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv1(F.relu(self.bn1(x))), 2)


def _dense_block(channels: int, growth: int, n_layers: int, bottleneck: bool) -> nn.Sequential:
    layer = Bottleneck if bottleneck else SingleLayer
    return nn.Sequential(*(layer(channels + i * growth, growth) for i in range(n_layers)))


class DenseNet(nn.Module):
    """Three dense blocks joined by two transitions; ``reduction`` is the compression factor."""

    def __init__(self, growth: int, depth: int, reduction: float, num_classes: int, bottleneck: bool) -> None:
        super().__init__()
        # Each layer is one conv (two with a bottleneck); 4 = stem conv + 2 transitions + classifier.
        per_layer = 6 if bottleneck else 3
        if (depth - 4) % per_layer != 0:
            raise ValueError(f"DenseNet depth must be {per_layer}n + 4 (bottleneck={bottleneck}), got {depth}")
        n = (depth - 4) // per_layer
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        c = 2 * growth
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.dense1 = _dense_block(c, growth, n, bottleneck)
        c_out = int(math.floor((c + n * growth) * reduction))
        self.trans1 = Transition(c + n * growth, c_out)
        c = c_out
        self.dense2 = _dense_block(c, growth, n, bottleneck)
        c_out = int(math.floor((c + n * growth) * reduction))
        self.trans2 = Transition(c + n * growth, c_out)
        c = c_out
        self.dense3 = _dense_block(c, growth, n, bottleneck)
        c += n * growth
        self.bn1 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        reference_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = F.relu(self.bn1(self.dense3(out)))
        # REF uses torch.squeeze here, which also drops the batch axis at batch size 1.
        out = F.avg_pool2d(out, 8).flatten(1)
        return self.fc(out)
