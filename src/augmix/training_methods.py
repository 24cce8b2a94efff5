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
from pathlib import Path
from typing import Any

import torch

from augmix import ablation, augment, mixing
from augmix.losses import augmix_loss
from augmix.methods import BASELINES, Batch
from augmix.rng import SampleKeys
from augmix.successors import prime, randaugment
from augmix.successors.pixmix import pixmix_batch


@dataclass
class TrainBatch(Batch):
    x_uint8: torch.Tensor | None = None  # (B, 3, H, W) uint8 after the shared flip and crop
    keys: SampleKeys | None = None  # the batch's (seed, epoch, index) keys
    views: torch.Tensor | None = None  # (V*B, 3, H, W) precomputed views, or None


ViewMaker = Callable[..., torch.Tensor]  # (x_uint8, keys, *, out=None) -> float32 views


def _no_setup(hp: Any, data_root: Path, device: torch.device) -> Any:
    return hp


@dataclass(frozen=True)
class Method:
    step: Callable[..., tuple[torch.Tensor, dict[str, Any]]]
    # hp -> a maker of the per-sample views for a whole epoch, or None (views made in the step)
    epoch_views: Callable[[Any], ViewMaker | None] = lambda hp: None
    n_views: int = 0  # views per sample the maker writes (JSD: clean + 2)
    # (hp, data root, device) -> what the step and maker get as hp (e.g. with PixMix's pictures)
    setup: Callable[[Any, Path, torch.device], Any] = _no_setup


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


# ----------------------------------------------------------------------------- per-sample views
# Methods whose per-sample augmentation is a pure function of (image, keys): their views are made for
# the whole epoch up front, like AugMix's, then a plain cross-entropy (one view) or the JSD loss
# (clean + two views) trains on them.

ViewFn = Callable[[torch.Tensor, SampleKeys, Any, bool], torch.Tensor]  # (x, keys, hp, jsd) -> (V*B, ...) float


def views_method(make: ViewFn, *, jsd: bool, per_step: Callable[[Any], bool] = lambda hp: False,
                 setup: Callable[[Any, Path, torch.device], Any] = _no_setup) -> Method:
    n_views = 3 if jsd else 1

    def epoch_views(hp: Any) -> ViewMaker | None:
        if per_step(hp):
            return None

        def maker(x: torch.Tensor, keys: SampleKeys, *, out: torch.Tensor | None = None) -> torch.Tensor:
            views = make(x, keys, hp, jsd)
            if out is None:
                return views
            out.copy_(views.view(out.shape))
            return out

        return maker

    def step(model: torch.nn.Module, batch: TrainBatch, hp: Any, gen: torch.Generator):
        views = batch.views if batch.views is not None else make(batch.x_uint8, batch.keys, hp, jsd)
        if jsd:
            loss, parts = augmix_loss(model(views), batch.y, jsd_weight=hp.jsd_weight)
            return loss, {k: v.detach() for k, v in parts.items()}
        loss = torch.nn.functional.cross_entropy(model(views), batch.y)
        return loss, {"ce": loss.detach()}

    return Method(step, epoch_views, n_views, setup)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


def _randaugment(ops: tuple[str, ...]) -> ViewFn:
    return lambda x, keys, hp, jsd: _u8(randaugment.randaugment_batch(
        x, keys, num_ops=hp.num_ops, magnitude=hp.magnitude, num_bins=hp.num_bins, ops=ops))


def _trivialaugment(ops: tuple[str, ...]) -> ViewFn:
    return lambda x, keys, hp, jsd: _u8(randaugment.trivialaugment_batch(x, keys, num_bins=hp.num_bins, ops=ops))


def _autoaugment_star(x, keys, hp, jsd):
    return _u8(ablation.autoaugment_star_batch(x, keys, policy=hp.policy, drop=hp.drop))


def _random_autoaugment_star(x, keys, hp, jsd):
    return ablation.random_autoaugment_star_views(x, keys, jsd=jsd, space=hp.space, depth=hp.depth,
                                                  severity=hp.severity)


PRIME_FIELDS = tuple(f for f in prime.PrimeConfig.__dataclass_fields__)


def _prime(x, keys, hp, jsd):
    cfg = {f: (tuple(getattr(hp, f)) if f == "transforms" else getattr(hp, f)) for f in PRIME_FIELDS}
    return prime.prime_views(x, keys, jsd=jsd, **cfg)


@dataclass(frozen=True)
class PixMixRun:
    """PixMix's hyperparameters with the mixing pictures they name, on the training device."""

    hp: Any
    pictures: torch.Tensor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hp, name)


def _pixmix_setup(hp: Any, data_root: Path, device: torch.device) -> PixMixRun:
    return PixMixRun(hp, mixing.mixing_set(hp.mixing, data_root, device))


def _pixmix(x, keys, run, jsd):
    return pixmix_batch(x, keys, run.pictures, k=run.k, beta=run.beta, aug_severity=run.aug_severity,
                        all_ops=run.all_ops)


METHODS: dict[str, Method] = {
    **{name: Method(step) for name, step in BASELINES.items()},
    "augmix": Method(augmix_jsd, _augmix_maker(jsd=True), n_views=3),
    "augmix_nojsd": Method(augmix_nojsd, _augmix_maker(jsd=False), n_views=1),
    "autoaugment_star": views_method(_autoaugment_star, jsd=False),
    "random_autoaugment_star": views_method(_random_autoaugment_star, jsd=False),
    "random_autoaugment_star_jsd": views_method(_random_autoaugment_star, jsd=True),
    "randaugment": views_method(_randaugment(randaugment.RANDAUGMENT_OPS), jsd=False),
    "randaugment_no_overlap": views_method(_randaugment(randaugment.RANDAUGMENT_NO_OVERLAP_OPS), jsd=False),
    "trivialaugment": views_method(_trivialaugment(randaugment.TRIVIALAUGMENT_OPS), jsd=False),
    "trivialaugment_no_overlap": views_method(_trivialaugment(randaugment.TRIVIALAUGMENT_NO_OVERLAP_OPS), jsd=False),
    # PRIME's reference draws a transform's parameters once per batch: then views are made per step,
    # on the training batch itself, as there.
    "prime": views_method(_prime, jsd=True, per_step=lambda hp: hp.shared_draws),
    "prime_nojsd": views_method(_prime, jsd=False, per_step=lambda hp: hp.shared_draws),
    "pixmix": views_method(_pixmix, jsd=False, setup=_pixmix_setup),
}


def section_for(section: Any, dataset: str) -> Any:
    """A method's typed section with the values `per_dataset[dataset]` sets applied."""
    override = section.per_dataset.get(dataset)
    if override is None:
        return section
    return section.model_copy(update={k: getattr(override, k) for k in override.model_fields_set
                                      if getattr(override, k) is not None})


def method_hparams(params: Any, method: str, dataset: str) -> Any:
    """The typed hyperparameters `method` trains with on `dataset` (read through a job's view)."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    section = getattr(params.methods, method)
    return section_for(section.model() if hasattr(section, "model") else section, dataset)
