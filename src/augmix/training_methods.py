"""The method table: every training method by name, the baselines of `methods.py` plus AugMix with and
without the JSD loss.

A method is a step `step(model, batch, hp, gen) -> (loss, logs)` and, for methods whose randomness is
per sample (AugMix), a view maker: views are drawn from (seed, epoch, index) keys, so they do not depend
on batch composition and can be made for a whole epoch up front (`augment.EpochViews`). `hp` is the
method's own typed params section (`config.METHOD_PARAMS[name]`) with its per-dataset values applied
(`section_for`). tests/test_config.py checks that this table and the params schema name the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from augmix import augment
from augmix.losses import augmix_loss
from augmix.methods import BASELINES, Batch
from augmix.rng import SampleKeys


@dataclass
class TrainBatch(Batch):
    x_uint8: torch.Tensor | None = None  # (B, 3, H, W) uint8 after the shared flip and crop
    keys: SampleKeys | None = None  # the batch's (seed, epoch, index) keys
    views: torch.Tensor | None = None  # (V*B, 3, H, W) precomputed views, or None


ViewMaker = Callable[..., torch.Tensor]  # (x_uint8, keys, *, out=None) -> float32 views


@dataclass(frozen=True)
class Method:
    step: Callable[..., tuple[torch.Tensor, dict[str, Any]]]
    # hp -> a maker of the per-sample views for a whole epoch, or None (views made in the step)
    epoch_views: Callable[[Any], ViewMaker | None] = lambda hp: None
    n_views: int = 0  # views per sample the maker writes (JSD: clean + 2)


def augmix_backend(hp: Any) -> str:
    """`auto` is the batched per-sample tensor path on every device; `pil` the reference's loop."""
    return "tensor" if hp.backend == "auto" else hp.backend


def _augmix_maker(jsd: bool) -> Callable[[Any], ViewMaker | None]:
    def maker(hp: Any) -> ViewMaker | None:
        if augmix_backend(hp) != "tensor":
            return None  # the PIL path loops over images anyway: made per step

        def views(x: torch.Tensor, keys: SampleKeys, *, out: torch.Tensor | None = None) -> torch.Tensor:
            return augment.make_views(x, keys, jsd=jsd, backend="tensor", out=out, **_augmix_kwargs(hp))

        return views

    return maker


def _augmix_kwargs(hp: Any) -> dict[str, Any]:
    return {"severity": hp.severity, "width": hp.width, "depth": hp.depth, "alpha": hp.alpha,
            "all_ops": hp.all_ops, "affine_fill": hp.fill}


def _views(batch: TrainBatch, hp: Any, jsd: bool) -> torch.Tensor:
    if batch.views is not None:
        return batch.views
    return augment.make_views(batch.x_uint8, batch.keys, jsd=jsd, backend=augmix_backend(hp), **_augmix_kwargs(hp))


def augmix_jsd(model: torch.nn.Module, batch: TrainBatch, hp: Any, gen: torch.Generator):
    """REF cifar.py train step: one forward over [clean; aug1; aug2], CE on clean + lambda * JS."""
    logits = model(_views(batch, hp, jsd=True))
    loss, parts = augmix_loss(logits, batch.y, jsd_weight=hp.jsd_weight)
    return loss, {k: v.detach() for k, v in parts.items()}  # tensors: no device sync per step


def augmix_nojsd(model: torch.nn.Module, batch: TrainBatch, hp: Any, gen: torch.Generator):
    """REF --no-jsd: one AugMix view per sample, plain cross-entropy, no clean view."""
    loss = torch.nn.functional.cross_entropy(model(_views(batch, hp, jsd=False)), batch.y)
    return loss, {"ce": loss.detach()}


METHODS: dict[str, Method] = {
    **{name: Method(step) for name, step in BASELINES.items()},
    "augmix": Method(augmix_jsd, _augmix_maker(jsd=True), n_views=3),
    "augmix_nojsd": Method(augmix_nojsd, _augmix_maker(jsd=False), n_views=1),
}


def section_for(section: Any, dataset: str) -> Any:
    """A method's typed section with the values `per_dataset[dataset]` sets applied."""
    override = section.per_dataset.get(dataset)
    if override is None:
        return section
    return section.model_copy(update={k: v for k, v in override.model_dump().items() if v is not None})


def method_hparams(params: Any, method: str, dataset: str) -> Any:
    """The typed hyperparameters `method` trains with on `dataset` (read through a job's view)."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    section = getattr(params.methods, method)
    return section_for(section.model() if hasattr(section, "model") else section, dataset)
