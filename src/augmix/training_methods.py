"""The full method table: the baselines of `methods.py` plus AugMix with and without the JSD loss.

AugMix differs from the baselines in one way that matters for the interface: its randomness is per
sample (drawn from (seed, epoch, index) keys, so results do not depend on batch composition), and it
needs the uint8 image after flip and crop. `TrainBatch` carries both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from augmix.methods import METHODS, Batch


@dataclass
class TrainBatch(Batch):
    x_uint8: torch.Tensor | None = None  # (B, 3, H, W) uint8 after the shared flip and crop
    keys: Any = None  # augmix.rng.SampleKeys of this batch


def _augmix_kwargs(hp: Mapping[str, Any]) -> dict[str, Any]:
    return {k: hp[k] for k in ("severity", "width", "depth", "alpha", "all_ops")}


def augmix_jsd(model: torch.nn.Module, batch: TrainBatch, hp: Mapping[str, Any], gen: torch.Generator):
    """REF cifar.py train step: one forward over [clean; aug1; aug2], CE on clean + 12 * JS."""
    from augmix.augment import make_views
    from augmix.losses import augmix_loss

    views = make_views(batch.x_uint8, batch.keys, jsd=True, backend=hp["backend"], **_augmix_kwargs(hp))
    logits = model(views)
    loss, parts = augmix_loss(logits, batch.y, jsd_weight=hp["jsd_weight"])
    return loss, {k: float(v) for k, v in parts.items()}


def augmix_nojsd(model: torch.nn.Module, batch: TrainBatch, hp: Mapping[str, Any], gen: torch.Generator):
    """REF --no-jsd: one AugMix view per sample, plain cross-entropy, no clean view."""
    from augmix.augment import make_views

    views = make_views(batch.x_uint8, batch.keys, jsd=False, backend=hp["backend"], **_augmix_kwargs(hp))
    loss = torch.nn.functional.cross_entropy(model(views), batch.y)
    return loss, {"ce": float(loss)}


AUGMIX_METHODS: dict[str, Callable[..., Any]] = {"augmix": augmix_jsd, "augmix_nojsd": augmix_nojsd}


def all_methods() -> dict[str, Callable[..., Any]]:
    return {**METHODS, **AUGMIX_METHODS}


def method_hparams(params: Any, method: str, device: torch.device) -> dict[str, Any]:
    """The hyperparameters a method reads, from its params section."""
    from augmix.config import to_dict

    if method in AUGMIX_METHODS:
        hp = to_dict(params.augmix)
        if hp["backend"] == "auto":  # batched tensor path on GPU, reference PIL path on CPU
            hp["backend"] = "tensor" if device.type == "cuda" else "pil"
        return hp
    return to_dict(getattr(params.methods, method)) if hasattr(params.methods, method) else {}
