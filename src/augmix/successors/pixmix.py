"""PixMix (Hendrycks, Zou, Mazeika, Tang, Li, Song, Steinhardt, CVPR 2022), batched and keyed.

Reference: andyzoujm/pixmix at f867e87, `cifar.py` (`pixmix`, `augment_input`, arguments) and
`pixmix_utils.py` (`get_ab`, `add`, `multiply`, the ops). Per image, on float images in [0, 1]:

    mixed = augment(orig) with probability 1/2, else orig
    repeat r ~ U{0..k} times:
        partner = augment(orig) with probability 1/2, else the mixing picture
        mixed = clip(op(mixed, partner, beta), 0, 1),  op uniform over (add, multiply)

with augment = one op uniform over AugMix's op list (`--all-ops`: all 13, as the README's CIFAR
recipe passes; the ops, level sampling U(0.1, aug_severity) and signs are AugMix's, `augmix.ops`),
and, with (a, b) from get_ab(beta): with probability 1/2 a ~ Beta(beta, 1), b ~ Beta(1, beta),
otherwise a = 1 + Beta(1, beta), b = -Beta(1, beta) (independent draws, cast to float32):

    add(x, y) = (a (2x - 1) + b (2y - 1) + 1) / 2
    multiply(x, y) = (2x)^a * max(2y, 1e-37)^b / 2

One mixing picture per image, uniform over the mixing set (`np.random.choice`); the reference
resizes mixing pictures to 36 and random-crops 32 (`mixing_set_transform`): pass a set of 36 x 36
pictures to get the crop here (per image, uniform offsets), or pictures of the image size.
Outputs are float32 in [0, 1]; the reference then normalises with mean 0.5, std 0.5, which our
models do inside. No JSD: the reference trains PixMix with plain cross-entropy.

CIFAR hyperparameters (cifar.py defaults and README recipe): k = 4, beta = 3, aug_severity = 3,
all_ops = True.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from augmix import ops as O
from augmix import rng as R
from augmix.errors import ConfigError
from augmix.successors._common import apply_by_op, augmix_op_values, beta_ab, check_names, check_uint8_batch

MIXINGS: tuple[str, ...] = ("add", "multiply")  # pixmix_utils.mixings


def mix_add(img1: torch.Tensor, img2: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """pixmix_utils.add in float32: a, b broadcast per image (n, 1, 1, 1)."""
    img1, img2 = img1 * 2 - 1, img2 * 2 - 1
    out = a * img1 + b * img2
    return (out + 1) / 2


def mix_multiply(img1: torch.Tensor, img2: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """pixmix_utils.multiply in float32."""
    img1, img2 = img1 * 2, img2 * 2
    out = (img1**a) * (img2.clip(1e-37) ** b)
    return out / 2


@dataclass
class PixMixDraws:
    """Every random choice of PixMix for B images (shapes in comments), k rounds at most."""

    start_aug: torch.Tensor  # (B,) bool: mixed starts from an augmented copy
    rounds: torch.Tensor  # (B,) int64 in 0..k
    partner_aug: torch.Tensor  # (B, k) bool: the round's partner is an augmented copy
    mixing: torch.Tensor  # (B, k) int64 index into MIXINGS
    a: torch.Tensor  # (B, k) float32
    b: torch.Tensor  # (B, k) float32
    picture: torch.Tensor  # (B,) int64 index into the mixing set
    crop: torch.Tensor  # (B, 2) int64 (top, left) of the crop in the mixing picture
    aug_op: torch.Tensor  # (B, k + 1) int64 op of each augmented copy (slot 0: the start)
    aug_level: torch.Tensor  # (B, k + 1) float64 level U(0.1, severity)
    aug_negate: torch.Tensor  # (B, k + 1) bool


def pixmix_draws(keys: R.SampleKeys, *, k: int, beta: float, severity: float, n_ops: int,
                 n_pictures: int, crop_room: tuple[int, int]) -> PixMixDraws:  # fmt: skip
    s = "pixmix"
    first = R.uniform(keys, s + "/ab_branch", (k,)) < 0.5  # get_ab's np.random.random() < 0.5
    beta_b1 = beta_ab(keys, s + "/a_beta_1", beta, 1.0, (k,))  # Beta(beta, 1)
    one_beta = beta_ab(keys, s + "/a_1_beta", 1.0, beta, (k,))  # Beta(1, beta) (second branch's a)
    b_draw = beta_ab(keys, s + "/b_1_beta", 1.0, beta, (k,))  # Beta(1, beta)
    a = torch.where(first, beta_b1.float(), 1 + one_beta.float())
    b = torch.where(first, b_draw.float(), -b_draw.float())
    return PixMixDraws(
        start_aug=R.uniform(keys, s + "/start") < 0.5,
        rounds=R.randint(keys, s + "/rounds", k + 1),
        partner_aug=R.uniform(keys, s + "/partner", (k,)) < 0.5,
        mixing=R.randint(keys, s + "/mixing", len(MIXINGS), (k,)),
        a=a, b=b,
        picture=R.randint(keys, s + "/picture", n_pictures),
        crop=torch.stack([R.randint(keys, s + "/crop_y", crop_room[0] + 1),
                          R.randint(keys, s + "/crop_x", crop_room[1] + 1)], 1),
        aug_op=R.randint(keys, s + "/op", n_ops, (k + 1,)),
        aug_level=0.1 + (severity - 0.1) * R.uniform(keys, s + "/level", (k + 1,)),
        aug_negate=R.uniform(keys, s + "/sign", (k + 1,)) > 0.5,
    )  # fmt: skip


def _augmented_copies(x: torch.Tensor, d: PixMixDraws, names: Sequence[str]) -> torch.Tensor:
    """uint8 (B, k + 1, 3, H, W): the augmented copies the draws use (others left as x): one
    op each, one call per op over all (image, slot) pairs that need one."""
    bsz, slots = d.aug_op.shape
    k = slots - 1
    needed = torch.zeros(bsz, slots, dtype=torch.bool, device=x.device)
    needed[:, 0] = d.start_aug
    needed[:, 1:] = d.partner_aug & (torch.arange(k, device=x.device) < d.rounds[:, None])
    stack = x[:, None].expand(bsz, slots, *x.shape[1:]).reshape(bsz * slots, *x.shape[1:])
    value = augmix_op_values(names, d.aug_op, d.aug_level, d.aug_negate, x.shape[-1]).reshape(-1)
    out = apply_by_op(stack.contiguous(), d.aug_op.reshape(-1), value, names, O.TENSOR_OPS, skip=~needed.reshape(-1))
    return out.reshape(bsz, slots, *x.shape[1:])


def _pictures(mixing_set: torch.Tensor, d: PixMixDraws, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) uint8 mixing pictures, cropped at the drawn offsets."""
    h, w = size
    pics = mixing_set.index_select(0, d.picture.to(mixing_set.device)).to(d.picture.device)
    if pics.shape[-2:] == (h, w):
        return pics
    rows = d.crop[:, 0, None] + torch.arange(h, device=pics.device)  # (B, H)
    cols = d.crop[:, 1, None] + torch.arange(w, device=pics.device)
    bi = torch.arange(len(pics), device=pics.device)[:, None, None]
    return pics.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def pixmix_apply(x: torch.Tensor, copies: torch.Tensor, pictures: torch.Tensor, d: PixMixDraws) -> torch.Tensor:
    """The mixing loop on explicit inputs: x, copies (B, k + 1, 3, H, W) and pictures uint8 ->
    float32 (B, 3, H, W) in [0, 1]. Every image runs its own number of rounds."""
    orig = x.float().div(255)  # ToTensor
    aug = copies.float().div(255)
    pic = pictures.float().div(255)
    mixed = torch.where(d.start_aug[:, None, None, None], aug[:, 0], orig)
    per = (-1, 1, 1, 1)
    for r in range(d.a.shape[1]):
        active = d.rounds > r
        for m, mixing in enumerate((mix_add, mix_multiply)):
            rows = (active & (d.mixing[:, r] == m)).nonzero().flatten()  # each image's own op only
            if len(rows) == 0:
                continue
            partner = torch.where(d.partner_aug[rows, r].reshape(per), aug[rows, r + 1], pic[rows])
            out = mixing(mixed[rows], partner, d.a[rows, r].reshape(per), d.b[rows, r].reshape(per))
            mixed[rows] = torch.clip(out, 0, 1)
    return mixed


def pixmix_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    mixing_set: torch.Tensor,
    *,
    k: int = 4,
    beta: float = 3.0,
    aug_severity: float = 3.0,
    all_ops: bool = True,
    ops: Sequence[str] | None = None,
) -> torch.Tensor:
    """Per-sample PixMix of a flipped and cropped uint8 batch (B, 3, H, W) on any device, with
    mixing pictures from `mixing_set` uint8 (M, 3, H', W'), H' >= H, W' >= W (cropped at random
    when larger) -> float32 (B, 3, H, W) in [0, 1]. Defaults: the CIFAR recipe (module docstring).
    `ops` overrides the op names (keys of augmix.ops.TENSOR_OPS)."""
    keys = check_uint8_batch(x, keys, square=True)
    if mixing_set.dtype != torch.uint8 or mixing_set.dim() != 4 or mixing_set.shape[1] != 3 or len(mixing_set) == 0:
        raise ValueError(f"mixing_set must be a non-empty uint8 (M, 3, H, W) tensor, got "
                         f"{mixing_set.dtype} {tuple(mixing_set.shape)}")  # fmt: skip
    room = (mixing_set.shape[-2] - x.shape[-2], mixing_set.shape[-1] - x.shape[-1])
    if min(room) < 0:
        raise ValueError(f"mixing pictures {tuple(mixing_set.shape[-2:])} are smaller than the images "
                         f"{tuple(x.shape[-2:])}")
    if k < 0 or not beta > 0 or not 0.1 < aug_severity <= 10:
        raise ConfigError(f"PixMix needs k >= 0, beta > 0, 0.1 < aug_severity <= 10; got {k}, {beta}, {aug_severity}")
    names = check_names(ops if ops is not None else O.op_names(all_ops), O.TENSOR_OPS, "AugMix")
    d = pixmix_draws(keys, k=k, beta=beta, severity=aug_severity, n_ops=len(names),
                     n_pictures=len(mixing_set), crop_room=room)  # fmt: skip
    return pixmix_apply(x, _augmented_copies(x, d, names), _pictures(mixing_set, d, x.shape[-2:]), d)
