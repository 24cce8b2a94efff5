"""ResNets: the common CIFAR ResNet-18 and torchvision's ImageNet ResNet-50.

CIFAR ResNet-18: He et al. 2016 basic blocks [2, 2, 2, 2] (widths 64-512) with the usual CIFAR
stem (one 3x3 conv, no max pool) and 1x1-conv + BN projection shortcuts, 11,173,962 parameters for
10 classes. REF has no ResNet-18; we initialise it like the REF CIFAR models (common.reference_init)
so the whole CIFAR grid shares one initialisation rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from .common import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, Normalize, reference_init


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.normalize = Normalize(CIFAR_MEAN, CIFAR_STD)
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = (64, 128, 256, 512)
        stages, c = [], 64
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*(BasicBlock(c if j == 0 else width, width, stride if j == 0 else 1)
                                          for j in range(n))))
            c = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)
        reference_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # Adaptive pooling so inputs other than 32x32 also work.
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class ImageNetResNet50(ResNet):
    """torchvision's ResNet-50 with its default initialisation (REF imagenet.py, random init),
    taking [0, 1] inputs. Subclassing keeps torchvision's ``state_dict`` keys."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalize(x))
