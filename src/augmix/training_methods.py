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
    views: torch.Tensor | None = None  # (V*B, 3, H, W) precomputed AugMix views, or None


def _views(batch: TrainBatch, hp: Mapping[str, Any], jsd: bool) -> torch.Tensor:
    from augmix.augment import make_views

    if batch.views is not None:
        return batch.views
    return make_views(batch.x_uint8, batch.keys, jsd=jsd, backend=hp["backend"], **_augmix_kwargs(hp))


def _augmix_kwargs(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The make_views keywords from a method's hp. `affine_fill` (PIL fillcolor int of the area the
    affine ops uncover) is set only for ImageNet, from `imagenet.augmix_fill`; CIFAR hps lack
    it and get 0, the committed reference's black."""
    kw = {k: hp[k] for k in ("severity", "width", "depth", "alpha", "all_ops")}
    kw["affine_fill"] = hp.get("affine_fill", 0)
    return kw


def augmix_jsd(model: torch.nn.Module, batch: TrainBatch, hp: Mapping[str, Any], gen: torch.Generator):
    """REF cifar.py train step: one forward over [clean; aug1; aug2], CE on clean + 12 * JS."""
    from augmix.losses import augmix_loss

    logits = model(_views(batch, hp, jsd=True))
    loss, parts = augmix_loss(logits, batch.y, jsd_weight=hp["jsd_weight"])
    return loss, {k: v.detach() for k, v in parts.items()}  # tensors: no device sync per step


def augmix_nojsd(model: torch.nn.Module, batch: TrainBatch, hp: Mapping[str, Any], gen: torch.Generator):
    """REF --no-jsd: one AugMix view per sample, plain cross-entropy, no clean view."""
    loss = torch.nn.functional.cross_entropy(model(_views(batch, hp, jsd=False)), batch.y)
    return loss, {"ce": loss.detach()}


AUGMIX_METHODS: dict[str, Callable[..., Any]] = {"augmix": augmix_jsd, "augmix_nojsd": augmix_nojsd}
JSD = {"augmix": True, "augmix_nojsd": False}


class EpochViews:
    """All of an epoch's flip/crop and AugMix views, made in large chunks before the first step.

    Every draw depends only on (seed, epoch, sample index), so making the views for the whole
    epoch in chunks of `chunk` samples gives exactly the tensors the per-step path would make;
    on a GPU the batched AugMix runs at its large-batch rate instead of a latency-bound 128.
    """

    def __init__(self, x: torch.Tensor, seed: int, epoch: int, method: str, hp: Mapping[str, Any], chunk: int = 8192):
        from augmix.augment import base_transform_batch, make_views
        from augmix.rng import SampleKeys

        n = len(x)
        self.base = torch.empty_like(x)
        n_views = 3 if JSD.get(method) else 1  # JSD: [clean; aug1; aug2]
        # The PIL backend (the reference path) stays per step: it loops over images anyway.
        batched = method in AUGMIX_METHODS and hp.get("backend") == "tensor"
        self.views = torch.empty(n_views, *x.shape, device=x.device) if batched else None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = torch.arange(start, stop, device=x.device)
            keys = SampleKeys(seed, epoch, idx)
            self.base[idx] = base_transform_batch(x[idx], keys)
            if self.views is not None:  # written straight into the epoch's buffer
                make_views(self.base[idx], keys, jsd=JSD[method], backend="tensor", **_augmix_kwargs(hp),
                           out=self.views[:, start:stop])

    def batch_views(self, idx: torch.Tensor) -> torch.Tensor | None:
        if self.views is None:
            return None
        v = self.views[:, idx]
        return v.reshape(-1, *v.shape[2:])  # [clean; aug1; aug2] blocks, as make_views returns


def all_methods() -> dict[str, Callable[..., Any]]:
    return {**METHODS, **AUGMIX_METHODS}


# Published values that depend on the dataset: method -> {params key: (dataset, key it replaces)}.
# DeVries & Taylor 2017 cut a 16x16 hole on CIFAR-10 and an 8x8 one on CIFAR-100.
PER_DATASET_HPARAMS: dict[str, dict[str, tuple[str, str]]] = {
    "cutout": {"length_cifar100": ("cifar100", "length")},
}


def method_hparams(params: Any, method: str, device: torch.device, dataset: str = "cifar10") -> dict[str, Any]:
    """The hyperparameters a method reads, from its params section, for `dataset`."""
    from augmix.config import to_dict

    if method in AUGMIX_METHODS:
        hp = to_dict(params.augmix)
        if hp["backend"] == "auto":  # batched tensor path on GPU, reference PIL path on CPU
            hp["backend"] = "tensor" if device.type == "cuda" else "pil"
        return hp
    hp = to_dict(getattr(params.methods, method)) if hasattr(params.methods, method) else {}
    for key, (for_dataset, replaces) in PER_DATASET_HPARAMS.get(method, {}).items():
        value = hp.pop(key)
        if dataset == for_dataset:
            hp[replaces] = value
    return hp
