"""Pieces shared by every architecture: input normalisation and the reference initialisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# REF cifar.py: transforms.Normalize([0.5] * 3, [0.5] * 3) for train and test.
CIFAR_MEAN = (0.5, 0.5, 0.5)
CIFAR_STD = (0.5, 0.5, 0.5)
# REF imagenet.py and torchvision's ImageNet recipe.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, so every model takes images in [0, 1].

    The buffers are non-persistent: they are constants of the architecture, and keeping them out
    of ``state_dict`` lets weights trained by the reference scripts (which normalise in the data
    pipeline) load with ``strict=True`` once the layer names match.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def reference_init(model: nn.Module, *, linear_weight: str = "default") -> None:
    """Initialise as every REF CIFAR model does (docs/reference-facts.md, "Models").

    Conv weights ~ N(0, 2 / (k_h * k_w * out_channels)) (He, fan-out; conv biases keep PyTorch's
    default), BatchNorm weight 1 and bias 0, Linear bias 0. The Linear weight keeps PyTorch's default
    (``"default"``) except in ResNeXt, where REF applies Kaiming-normal (``"kaiming_normal"``;
    REF third_party/ResNeXt_DenseNet/models/resnext.py).
    """
    if linear_weight not in ("default", "kaiming_normal"):
        raise ValueError(f"linear_weight must be 'default' or 'kaiming_normal', got {linear_weight!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_weight == "kaiming_normal":
                nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
