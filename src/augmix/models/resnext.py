"""ResNeXt (Xie et al. 2017) for CIFAR as REF builds it.

REF: google-research/augmix third_party/ResNeXt_DenseNet/models/resnext.py (vendored from
D-X-Y/ResNeXt-DenseNet at 0de9a8c); REF's ``resnext29()`` is depth 29, cardinality 4, base width
32 (4 groups of width 32, "4x32d"). Layer names follow that file so its checkpoints load.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import CIFAR_MEAN, CIFAR_STD, Normalize, reference_init

EXPANSION = 4


class ResNeXtBottleneck(nn.Module):
    """Type-C block: 1x1 reduce, grouped 3x3, 1x1 expand (x4), post-activation residual."""

    def __init__(
        self, inplanes: int, planes: int, cardinality: int, base_width: int, stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        dim = int(math.floor(planes * (base_width / 64.0)))
        inner = dim * cardinality
        self.conv_reduce = nn.Conv2d(inplanes, inner, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, planes * EXPANSION, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(planes * EXPANSION)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn_reduce(self.conv_reduce(x)))
        out = F.relu(self.bn(self.conv_conv(out)))
        out = self.bn_expand(self.conv_expand(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(residual + out)


class CifarResNeXt(nn.Module):
    """Stem conv 64, three stages of (depth - 2) / 9 blocks with planes 64, 128, 256."""

    def __init__(self, depth: int, cardinality: int, base_width: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"ResNeXt depth must be 9n + 2, got {depth}")
        n = (depth - 2) // 9
        self.cardinality, self.base_width = cardinality, base_width
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        self.conv_1_3x3 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        self.inplanes = 64
        self.stage_1 = self._make_stage(64, n, 1)
        self.stage_2 = self._make_stage(128, n, 2)
        self.stage_3 = self._make_stage(256, n, 2)
        self.avgpool = nn.AvgPool2d(8)
        self.classifier = nn.Linear(256 * EXPANSION, num_classes)
        reference_init(self, linear_weight="kaiming_normal")

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * EXPANSION:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * EXPANSION, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * EXPANSION),
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, self.cardinality, self.base_width, stride, downsample)]
        self.inplanes = planes * EXPANSION
        layers += [ResNeXtBottleneck(self.inplanes, planes, self.cardinality, self.base_width)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_1(self.conv_1_3x3(self.normalize(x))))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return self.classifier(self.avgpool(x).flatten(1))
