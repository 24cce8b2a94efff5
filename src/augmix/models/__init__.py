"""Architectures of the AugMix grid, keyed by name (docs/reference-facts.md, "Models").

Every model takes float images in [0, 1] and normalises inside with non-persistent buffers
(``model.normalize``): mean = std = 0.5 per channel for CIFAR models (REF cifar.py), the ImageNet
statistics for ``resnet50``.

| name | what | REF |
| --- | --- | --- |
| allconv | AllConvNet with REF's quirks | models/cifar/allconv.py |
| densenet40_12 | DenseNet-40, growth 12, no bottleneck or compression (REF "densenet") | third_party/ResNeXt_DenseNet |
| densenet_bc100_12 | DenseNet-BC, k = 12, depth 100, compression 0.5 (as the paper names it) | same code, options on |
| wrn40_2 | WideResNet-40-2 (REF default "wrn") | third_party/WideResNet_pytorch |
| resnext29_4x32d | CifarResNeXt-29, cardinality 4, base width 32 (REF "resnext") | third_party/ResNeXt_DenseNet |
| resnet18 | standard CIFAR ResNet-18 | none |
| resnet50 | torchvision ResNet-50, random init, ImageNet | imagenet.py |
| wrn16_1, wrn16_2 | small WideResNets for CPU demos and tests | same code as wrn40_2 |
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from .allconv import AllConvNet
from .common import Normalize, reference_init
from .densenet import DenseNet
from .resnet import CifarResNet, ImageNetResNet50
from .resnext import CifarResNeXt
from .wrn import WideResNet

ARCHS: dict[str, Callable[..., nn.Module]] = {
    "allconv": lambda num_classes: AllConvNet(num_classes),
    "densenet40_12": lambda num_classes: DenseNet(12, 40, 1.0, num_classes, bottleneck=False),
    "densenet_bc100_12": lambda num_classes: DenseNet(12, 100, 0.5, num_classes, bottleneck=True),
    "wrn40_2": lambda num_classes: WideResNet(40, num_classes, widen_factor=2, drop_rate=0.0),
    "resnext29_4x32d": lambda num_classes: CifarResNeXt(29, 4, 32, num_classes),
    "resnet18": lambda num_classes: CifarResNet((2, 2, 2, 2), num_classes),
    "resnet50": lambda num_classes: ImageNetResNet50(num_classes),
    "wrn16_1": partial(WideResNet, 16, widen_factor=1, drop_rate=0.0),
    "wrn16_2": partial(WideResNet, 16, widen_factor=2, drop_rate=0.0),
}

# Input side length each architecture is built for (the CIFAR nets pool with fixed 8x8 windows).
INPUT_SIZE: dict[str, int] = {name: 32 for name in ARCHS} | {"resnet50": 224}


def build_model(name: str, num_classes: int, *, seed: int | None = None) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` outputs.

    With ``seed`` the initial weights come from ``torch.manual_seed(seed)`` inside a forked RNG
    state, so the same seed gives the same weights and the global generator is left untouched.
    Without it, PyTorch's global generator is used (as any ``nn.Module`` constructor does).
    """
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; valid: {', '.join(sorted(ARCHS))}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if seed is None:
        return ARCHS[name](num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHS[name](num_classes)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "ARCHS", "INPUT_SIZE", "build_model", "count_parameters", "Normalize", "reference_init",
    "AllConvNet", "DenseNet", "WideResNet", "CifarResNeXt", "CifarResNet", "ImageNetResNet50",
]
