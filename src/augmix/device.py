"""The device a job runs on (`runtime.device`): run-time, so no job re-runs when it changes."""

from __future__ import annotations

import torch

from augmix.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device: cuda requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
