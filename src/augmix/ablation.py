"""The augmentations of the AugMix paper's ablation (Table 4, WRN-40-2): AutoAugment* and Random
AutoAugment*, batched per sample and keyed (`augmix.rng`).

What is known and what is assumed. The paper's text defining the asterisk could not be read by us.
Known: Table 4's rows are Standard, AutoAugment*, Random AutoAugment*, Random AutoAugment* + JSD
loss, AugmentAndMix (no JSD), AugMix; the paper (its Section 3) builds AugMix's op list from AutoAugment's
operations without those that overlap the test corruptions, and google-research/augmix
`augmentations.py` marks color, contrast, brightness and sharpness as "operation that overlaps with
ImageNet-C's test set" and leaves them out of the paper's list.
Assumed [unconfirmed]:

* AutoAugment* = AutoAugment's learned policy with the overlapping operations removed. The removed
  set is AugMix's: contrast, color, brightness and sharpness (plus Cutout and SamplePairing of
  Cubuk et al.'s search space, which torchvision's policies, and so this code, never contain).
  The policy is the CIFAR-10 one as torchvision ships it (25 sub-policies, magnitudes over 10
  bins, nearest interpolation, fill 0), the same as the `autoaugment` baseline of
  `augmix.methods`; how a removed op leaves a sub-policy is a choice: `drop="op"` (default) turns
  that slot into a no-op and keeps the other slot; `drop="subpolicy"` drops every sub-policy that
  holds one (15 of the 25 CIFAR-10 sub-policies remain).
  Removed ops: brightness, color, contrast, sharpness.
* Random AutoAugment* = the same kind of operations with no learned policy: each image gets a
  random chain. Default (`space="augmix"`): an AugMix augmentation chain without mixing: depth
  uniform on 1..3, each op uniform over AugMix's 9 ops (AutoAugment's operations minus the
  overlapping ones, as AugMix's own list), level U(0.1, severity), signs 1/2 (augmix.ops), so
  that Table 4's next rows add exactly the JSD loss, then the mixing. `space="autoaugment"`:
  the chain draws from AUTOAUGMENT_STAR_OPS with torchvision's op definitions (tvops) and a
  magnitude bin uniform over 10.
* "+ JSD loss" = `random_autoaugment_star_views(jsd=True)`: [clean; aug1; aug2] with two
  independent chains, as augment.make_views lays AugMix's views out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from augmix import ops as O
from augmix import rng as R
from augmix.errors import ConfigError
from augmix.successors import tvops
from augmix.successors._common import apply_by_op, augmix_op_values, check_names, check_uint8_batch
from augmix.successors.randaugment import PolicyDraws, apply_policy

Slot = tuple[str, float, int | None]  # (op, probability, magnitude bin of 10 or None)

# Cubuk et al. 2019 (CVPR), the learned policies as torchvision.transforms.v2.AutoAugment lists them.
POLICIES: dict[str, tuple[tuple[Slot, Slot], ...]] = {
    "cifar10": (
        (("invert", 0.1, None), ("contrast", 0.2, 6)),
        (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
        (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
        (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
        (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
        (("color", 0.4, 3), ("brightness", 0.6, 7)),
        (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
        (("equalize", 0.6, None), ("equalize", 0.5, None)),
        (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
        (("color", 0.7, 7), ("translate_x", 0.5, 8)),
        (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
        (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
        (("brightness", 0.9, 6), ("color", 0.2, 8)),
        (("solarize", 0.5, 2), ("invert", 0.0, None)),
        (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
        (("equalize", 0.2, None), ("equalize", 0.6, None)),
        (("color", 0.9, 9), ("equalize", 0.6, None)),
        (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
        (("brightness", 0.1, 3), ("color", 0.7, 0)),
        (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
        (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.9, None), ("solarize", 0.8, 3)),
        (("equalize", 0.8, None), ("invert", 0.1, None)),
        (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
    ),
    "imagenet": (
        (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
        (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
        (("equalize", 0.8, None), ("equalize", 0.6, None)),
        (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
        (("equalize", 0.4, None), ("solarize", 0.2, 4)),
        (("equalize", 0.4, None), ("rotate", 0.8, 8)),
        (("solarize", 0.6, 3), ("equalize", 0.6, None)),
        (("posterize", 0.8, 5), ("equalize", 1.0, None)),
        (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
        (("equalize", 0.6, None), ("posterize", 0.4, 6)),
        (("rotate", 0.8, 8), ("color", 0.4, 0)),
        (("rotate", 0.4, 9), ("equalize", 0.6, None)),
        (("equalize", 0.0, None), ("equalize", 0.8, None)),
        (("invert", 0.6, None), ("equalize", 1.0, None)),
        (("color", 0.6, 4), ("contrast", 1.0, 8)),
        (("rotate", 0.8, 8), ("color", 1.0, 2)),
        (("color", 0.8, 8), ("solarize", 0.8, 7)),
        (("sharpness", 0.4, 7), ("invert", 0.6, None)),
        (("shear_x", 0.6, 5), ("equalize", 1.0, None)),
        (("color", 0.4, 0), ("equalize", 0.6, None)),
        (("equalize", 0.4, None), ("solarize", 0.2, 4)),
        (("solarize", 0.6, 5), ("autocontrast", 0.6, None)),
        (("invert", 0.6, None), ("equalize", 1.0, None)),
        (("color", 0.6, 4), ("contrast", 1.0, 8)),
        (("equalize", 0.8, None), ("equalize", 0.6, None)),
    ),
}
AUTOAUGMENT_BINS = 10  # torchvision reads the policies' magnitudes over 10 bins

AUTOAUGMENT_OPS: tuple[str, ...] = tuple(tvops.SPACES["autoaugment"])  # torchvision's 14
# Withheld for overlapping the test corruptions (AugMix's rule; see the module docstring).
AUTOAUGMENT_STAR_REMOVED: tuple[str, ...] = ("brightness", "color", "contrast", "sharpness")
AUTOAUGMENT_STAR_OPS = tuple(o for o in AUTOAUGMENT_OPS if o not in AUTOAUGMENT_STAR_REMOVED)
RANDOM_SPACES = ("augmix", "autoaugment")
MAX_RANDOM_DEPTH = 3  # depth -1: 1..3 ops per chain, as AugMix's chains


def star_policy(policy: str = "cifar10", removed: Sequence[str] = AUTOAUGMENT_STAR_REMOVED,
                drop: str = "op") -> tuple[tuple[Slot, Slot], ...]:  # fmt: skip
    """The learned policy without the `removed` ops: drop "op" gives a removed slot probability 0
    (a no-op), drop "subpolicy" leaves out the sub-policies that hold one."""
    if policy not in POLICIES:
        raise KeyError(f"unknown AutoAugment policy {policy!r}; known: {sorted(POLICIES)}")
    removed = set(check_names(removed, tvops.SPACES["autoaugment"], "AutoAugment")) if removed else set()
    subs = POLICIES[policy]
    if drop == "op":
        return tuple(tuple((o, 0.0 if o in removed else p, m) for o, p, m in sp) for sp in subs)
    if drop == "subpolicy":
        kept = tuple(sp for sp in subs if not any(o in removed for o, _, _ in sp))
        if not kept:
            raise ConfigError(f"removing {sorted(removed)} leaves no sub-policy of {policy!r}")
        return kept
    raise KeyError(f"unknown drop mode {drop!r}; choose 'op' or 'subpolicy'")


def autoaugment_draws(keys: R.SampleKeys, subpolicies, stream: str = "autoaugment_star") -> PolicyDraws:
    """torchvision's AutoAugment draws per image: a uniform sub-policy; each slot applied if
    U <= its probability; a signed magnitude negated if U <= 1/2."""
    dev = keys.device
    index = {n: i for i, n in enumerate(AUTOAUGMENT_OPS)}
    ops = torch.tensor([[index[o] for o, _, _ in sp] for sp in subpolicies], device=dev)
    prob = torch.tensor([[p for _, p, _ in sp] for sp in subpolicies], dtype=torch.float64, device=dev)
    bins = torch.tensor([[m or 0 for _, _, m in sp] for sp in subpolicies], device=dev)
    chosen = R.randint(keys, stream + "/subpolicy", len(subpolicies))
    return PolicyDraws(
        op=ops[chosen], bin=bins[chosen],
        negate=R.uniform(keys, stream + "/sign", (2,)) <= 0.5,
        apply=R.uniform(keys, stream + "/apply", (2,)) <= prob[chosen],
    )  # fmt: skip


def autoaugment_star_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    policy: str = "cifar10",
    removed: Sequence[str] = AUTOAUGMENT_STAR_REMOVED,
    drop: str = "op",
    fill: tvops.Fill = 0,
) -> torch.Tensor:
    """AutoAugment* per sample: uint8 (B, 3, H, W) -> uint8. `removed=()` is plain AutoAugment
    (the `autoaugment` baseline's policy and op definitions, keyed draws). [unconfirmed] reading
    of the paper's asterisk: module docstring."""
    keys = check_uint8_batch(x, keys)
    draws = autoaugment_draws(keys, star_policy(policy, removed, drop))
    return apply_policy(x, draws, AUTOAUGMENT_OPS, space="autoaugment", num_bins=AUTOAUGMENT_BINS, fill=fill)


def _chain_draws(keys: R.SampleKeys, stream: str, depth: int, n_ops: int):
    """Per image: chain length (1..3 for depth -1), op per step, uniform level and sign draws."""
    steps = depth if depth > 0 else MAX_RANDOM_DEPTH
    if depth > 0:
        length = torch.full((len(keys),), depth, dtype=torch.int64, device=keys.device)
    else:
        length = 1 + R.randint(keys, stream + "/depth", MAX_RANDOM_DEPTH)
    return {
        "length": length,  # (B,)
        "op": R.randint(keys, stream + "/op", n_ops, (steps,)),  # (B, steps)
        "u": R.uniform(keys, stream + "/level", (steps,)),  # (B, steps) level or bin uniform
        "negate": R.uniform(keys, stream + "/sign", (steps,)) > 0.5,
    }


def random_autoaugment_star_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    space: str = "augmix",
    depth: int = -1,
    severity: float = 3.0,
    ops: Sequence[str] | None = None,
    fill: tvops.Fill = 0,
    view: int = 0,
) -> torch.Tensor:
    """Random AutoAugment* per sample: uint8 (B, 3, H, W) -> uint8, one random op chain per image.

    space "augmix" (default): AugMix's 9 ops (`ops` overrides, names of augmix.ops), level
    U(0.1, severity), fill 0; "autoaugment": AUTOAUGMENT_STAR_OPS by default, torchvision's op
    definitions, magnitude bin uniform over 10, `fill`. depth -1: 1..3 ops per chain. `view`
    selects an independent draw for the same keys. [unconfirmed] reading: module docstring."""
    keys = check_uint8_batch(x, keys)
    if depth == 0 or depth < -1:
        raise ConfigError(f"depth must be -1 (random 1..3) or >= 1, got {depth}")
    stream = f"random_autoaugment_star/v{view}"
    if space == "augmix":
        if not 0.1 < severity <= 10:
            raise ConfigError(f"severity must lie in (0.1, 10], got {severity}")
        names = check_names(ops if ops is not None else O.op_names(False), O.TENSOR_OPS, "AugMix")
        d = _chain_draws(keys, stream, depth, len(names))
        level = 0.1 + (severity - 0.1) * d["u"]
        value = augmix_op_values(names, d["op"], level, d["negate"], x.shape[-1])
        for j in range(d["op"].shape[1]):
            x = apply_by_op(x, d["op"][:, j], value[:, j], names, O.TENSOR_OPS, skip=d["length"] <= j)
        return x
    if space == "autoaugment":
        names = check_names(ops if ops is not None else AUTOAUGMENT_STAR_OPS, tvops.SPACES["autoaugment"],
                            "AutoAugment")  # fmt: skip
        d = _chain_draws(keys, stream, depth, len(names))
        steps = d["op"].shape[1]
        draws = PolicyDraws(
            op=d["op"], bin=(d["u"] * AUTOAUGMENT_BINS).floor().long().clamp(max=AUTOAUGMENT_BINS - 1),
            negate=d["negate"], apply=torch.arange(steps, device=keys.device) < d["length"][:, None],
        )  # fmt: skip
        return apply_policy(x, draws, names, space="autoaugment", num_bins=AUTOAUGMENT_BINS, fill=fill)
    raise KeyError(f"unknown Random AutoAugment* space {space!r}; choose from {list(RANDOM_SPACES)}")


def random_autoaugment_star_views(x: torch.Tensor, keys: R.SampleKeys, *, jsd: bool, **kw) -> torch.Tensor:
    """Training views as augment.make_views lays them out: jsd=True -> float32 (3B, 3, H, W) =
    [clean; aug1; aug2] (two independent chains per image, the "+ JSD loss" row's input);
    jsd=False -> float32 (B, 3, H, W) = [aug]. `kw`: random_autoaugment_star_batch's keywords."""
    if "view" in kw:
        raise ValueError("random_autoaugment_star_views draws its own views; do not pass `view`")
    views = [random_autoaugment_star_batch(x, keys, view=v, **kw) for v in ((0, 1) if jsd else (0,))]
    if jsd:
        views.insert(0, x)
    return torch.cat(views, 0).float().div_(255.0)
