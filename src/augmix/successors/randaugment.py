"""RandAugment (Cubuk et al., CVPR-W 2020) and TrivialAugment wide (Mueller & Hutter, ICCV 2021),
batched per sample, as torchvision defines them (transforms/v2/_auto_augment.py, PIL backend; the
op twins are in `tvops`).

RandAugment: for each of `num_ops` slots, an op uniform over the op set, at the fixed bin
`magnitude` of `num_bins` (torchvision: 2, 9, 31), negated with probability 1/2 where the op is
signed. TrivialAugment wide: one op uniform over the op set, a bin uniform over `num_bins` (31),
the same sign rule, and wider ranges (`tvops.SPACES`). Fill (default 0) colours what the
geometric ops uncover; interpolation is torchvision's default, nearest.

The `*_NO_OVERLAP_OPS` sets drop the operations that overlap the test corruptions, following
AugMix's own rule: google-research/augmix `augmentations.py` (REF) marks color, contrast, brightness
and sharpness "operation that overlaps with ImageNet-C's test set" and keeps them out of the
paper's op list; Hendrycks (hendrycks/robustness PR #25) refused leaderboard entries trained with
such operations.

| op | test corruption it resembles | no-overlap set | why |
| --- | --- | --- | --- |
| brightness | brightness (CIFAR-10-C, ImageNet-C) | removed | a global brightness change (the corruption raises HSV value) |
| contrast | contrast | removed | a blend towards the mean, as the corruption's (x - mean) c + mean |
| color | saturate (the -C extras) | removed | a saturation change; REF marks it |
| sharpness | defocus / gaussian blur (factor < 1 blurs) | removed | factor < 1 is a 3x3 blur; REF marks it |
| autocontrast | contrast (weakly) | kept | in AugMix's set; REF issue #22: "AutoContrast in PIL is not statistically similar to contrast reduction" |
| equalize, posterize, solarize | none (posterize is not JPEG or pixelate) | kept | in AugMix's set |
| rotate, shear_x/y, translate_x/y | none (elastic_transform is a local warp) | kept | in AugMix's set |
| identity | none | kept | no-op |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from augmix import rng as R
from augmix.errors import ConfigError
from augmix.successors import tvops
from augmix.successors._common import apply_by_op, check_names, check_uint8_batch

RANDAUGMENT_OPS: tuple[str, ...] = tuple(tvops.SPACES["randaugment"])  # torchvision's order, 14
TRIVIALAUGMENT_OPS: tuple[str, ...] = tuple(tvops.SPACES["trivialaugment_wide"])  # 14
# The ops withheld for overlapping the test corruptions (table in the module docstring).
OVERLAPPING_OPS: tuple[str, ...] = ("brightness", "color", "contrast", "sharpness")
RANDAUGMENT_NO_OVERLAP_OPS = tuple(o for o in RANDAUGMENT_OPS if o not in OVERLAPPING_OPS)
TRIVIALAUGMENT_NO_OVERLAP_OPS = tuple(o for o in TRIVIALAUGMENT_OPS if o not in OVERLAPPING_OPS)


@dataclass
class PolicyDraws:
    """Per-sample choices for `steps` op slots (shapes in comments)."""

    op: torch.Tensor  # (B, steps) int64 index into the op names
    bin: torch.Tensor  # (B, steps) int64 magnitude bin
    negate: torch.Tensor  # (B, steps) bool: negate a signed op's magnitude
    apply: torch.Tensor  # (B, steps) bool: the slot runs (always, except AutoAugment's probabilities)


def step_values(space: str, names: Sequence[str], op: torch.Tensor, bin: torch.Tensor,
                negate: torch.Tensor, num_bins: int, height: int, width: int) -> torch.Tensor:  # fmt: skip
    """float64 magnitudes as torchvision passes them (bin value, sign applied); NaN for ops
    without magnitude. All shapes alike."""
    table = torch.full((len(names), num_bins), float("nan"), dtype=torch.float64)
    sign = torch.ones(len(names), dtype=torch.bool)
    for i, name in enumerate(names):
        mags = tvops.magnitude_table(space, name, num_bins, height, width)
        if mags is not None:
            table[i] = mags
        sign[i] = tvops.signed(space, name)
    table, sign = table.to(op.device), sign.to(op.device)
    value = table[op, bin]
    return torch.where(negate & sign[op], -value, value)


def apply_policy(x: torch.Tensor, draws: PolicyDraws, names: Sequence[str], *, space: str,
                 num_bins: int, fill: tvops.Fill = 0) -> torch.Tensor:  # fmt: skip
    """Run the drawn op slots in order on a uint8 batch, one call per (slot, op)."""
    h, w = x.shape[-2:]
    for j in range(draws.op.shape[1]):
        value = step_values(space, names, draws.op[:, j], draws.bin[:, j], draws.negate[:, j], num_bins, h, w)
        x = apply_by_op(x, draws.op[:, j], value, names, tvops.TV_OPS, skip=~draws.apply[:, j], fill=fill)
    return x


def _check_bins(num_bins: int) -> None:
    if num_bins < 2:
        raise ConfigError(f"num_bins must be >= 2, got {num_bins}")


def randaugment_draws(keys: R.SampleKeys, *, num_ops: int, magnitude: int, num_bins: int,
                      n_ops: int, stream: str = "randaugment") -> PolicyDraws:  # fmt: skip
    b = len(keys)
    return PolicyDraws(
        op=R.randint(keys, stream + "/op", n_ops, (num_ops,)),
        bin=torch.full((b, num_ops), magnitude, dtype=torch.int64, device=keys.device),
        negate=R.uniform(keys, stream + "/sign", (num_ops,)) <= 0.5,  # torch.rand(()) <= 0.5
        apply=torch.ones(b, num_ops, dtype=torch.bool, device=keys.device),
    )


def randaugment_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    num_ops: int = 2,
    magnitude: int = 9,
    num_bins: int = 31,
    ops: Sequence[str] = RANDAUGMENT_OPS,
    fill: tvops.Fill = 0,
) -> torch.Tensor:
    """Per-sample RandAugment: uint8 (B, 3, H, W) on any device -> uint8 (B, 3, H, W).

    Defaults are torchvision's (num_ops 2, magnitude 9 of 31 bins, fill 0). `ops` is any subset of
    RANDAUGMENT_OPS (RANDAUGMENT_NO_OVERLAP_OPS drops the corruption-like ops)."""
    keys = check_uint8_batch(x, keys)
    names = check_names(ops, tvops.SPACES["randaugment"], "RandAugment")
    _check_bins(num_bins)
    if num_ops < 0 or not 0 <= magnitude < num_bins:
        raise ConfigError(f"need num_ops >= 0 and 0 <= magnitude < num_bins, got {num_ops}, {magnitude}, {num_bins}")
    draws = randaugment_draws(keys, num_ops=num_ops, magnitude=magnitude, num_bins=num_bins, n_ops=len(names))
    return apply_policy(x, draws, names, space="randaugment", num_bins=num_bins, fill=fill)


def trivialaugment_draws(keys: R.SampleKeys, *, num_bins: int, n_ops: int,
                         stream: str = "trivialaugment") -> PolicyDraws:  # fmt: skip
    return PolicyDraws(
        op=R.randint(keys, stream + "/op", n_ops, (1,)),
        bin=R.randint(keys, stream + "/bin", num_bins, (1,)),
        negate=R.uniform(keys, stream + "/sign", (1,)) <= 0.5,
        apply=torch.ones(len(keys), 1, dtype=torch.bool, device=keys.device),
    )


def trivialaugment_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    num_bins: int = 31,
    ops: Sequence[str] = TRIVIALAUGMENT_OPS,
    fill: tvops.Fill = 0,
) -> torch.Tensor:
    """Per-sample TrivialAugment wide: uint8 (B, 3, H, W) -> uint8 (B, 3, H, W); torchvision's
    defaults (31 bins, fill 0). TRIVIALAUGMENT_NO_OVERLAP_OPS drops the corruption-like ops."""
    keys = check_uint8_batch(x, keys)
    names = check_names(ops, tvops.SPACES["trivialaugment_wide"], "TrivialAugment")
    _check_bins(num_bins)
    draws = trivialaugment_draws(keys, num_bins=num_bins, n_ops=len(names))
    return apply_policy(x, draws, names, space="trivialaugment_wide", num_bins=num_bins, fill=fill)
