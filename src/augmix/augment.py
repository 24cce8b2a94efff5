"""AugMix mixing (REF `cifar.py` `aug` / `AugMixDataset`; spec `augmix.md` §7), two ways.

* `augment_and_mix_pil`: one PIL image at a time with the reference ops; the faithful option.
* `augmix_batch` / `make_views`: a whole uint8 batch on any device. Every sample draws its own
  Dirichlet weights, Beta skip weight, chain depths, ops, levels and signs; the loops run over
  chain steps and op groups, never over images (recipes 1, 3, 5 and 6 of `performance.md` §4):
  all (view, chain) images of the batch are stacked; at each step they are sorted by the op
  they drew, each op's tensor twin processes its contiguous slice with per-image parameters,
  rotate and the shears share one batched affine warp, and finished chains are skipped.

Randomness comes from `SampleKeys` (seed, epoch, index), see `rng.py`, so a sample's views do
not depend on its batch or on the data-loader worker that built it.

Outputs are float32 in [0, 1]: the reference mixes after Normalize, which is the same thing
because Normalize is affine per channel and the weights are convex (§7.1); our models normalise
inside. As in REF, the original gets (1 - m) and the chains m; nothing is re-quantised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from augmix import rng as R
from augmix.ops import (
    OPS,
    OPS_ALL,
    TENSOR_OPS,
    affine_matrices,
    op_names,
    t_affine,
    tensor_parameters,
)

# Ops that need interpolation share one grid_sample per step; translations are integer shifts
# and run as their own (exact, cheaper) group.
WARP_OPS = ("rotate", "shear_x", "shear_y")
SHIFT_OPS = ("translate_x", "translate_y")
MAX_RANDOM_DEPTH = 3  # depth -1 means d ~ U{1, 2, 3} per chain (REF `np.random.randint(1, 4)`)


def _check_params(severity: float, width: int, depth: int, alpha: float) -> None:
    if not 0.1 < severity <= 10:
        raise ValueError(f"severity must lie in (0.1, 10], got {severity}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if depth == 0 or depth < -1:
        raise ValueError(f"depth must be -1 (random 1..3) or >= 1, got {depth}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")


# ----------------------------------------------------------------------------- base transform


def base_transform_batch(x: torch.Tensor, keys: R.SampleKeys, pad: int = 4) -> torch.Tensor:
    """REF CIFAR base transform, per sample: RandomHorizontalFlip(0.5), then RandomCrop(H,
    padding=pad) with zero padding. uint8 (B, 3, H, W) -> uint8 (B, 3, H, W)."""
    b, _, h, w = x.shape
    if len(keys) != b:
        raise ValueError(f"{len(keys)} keys for a batch of {b} images")
    keys = keys.to(x.device)
    flip = R.uniform(keys, "base/flip") < 0.5
    dy = R.randint(keys, "base/crop_y", 2 * pad + 1)
    dx = R.randint(keys, "base/crop_x", 2 * pad + 1)
    padded = F.pad(x, (pad, pad, pad, pad))
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W) columns of the flipped image
    cols = torch.where(flip[:, None], w + 2 * pad - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- PIL path


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision ToTensor for an RGB uint8 image: float32 CHW in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)


def augment_and_mix_pil(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    severity: float = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = False,
    image_size: int = 32,
    ops: Mapping[str, Callable] | None = None,
) -> torch.Tensor:
    """REF `aug` on one PIL image, returning float32 (3, H, W) in [0, 1].

    Draw order as REF (§7.4): Dirichlet, Beta, then per chain the depth and per step the op
    (each op draws its own level and sign). `ops` overrides the op table (tests use it).
    """
    _check_params(severity, width, depth, alpha)
    table = ops if ops is not None else (OPS_ALL if all_ops else OPS)
    names = list(table)
    ws = np.float32(rng.dirichlet([alpha] * width))
    m = np.float32(rng.beta(alpha, alpha))
    mix = torch.zeros(3, image_size, image_size)
    for i in range(width):
        chain = img.copy()
        d = depth if depth > 0 else int(rng.integers(1, MAX_RANDOM_DEPTH + 1))
        for _ in range(d):
            op = table[names[int(rng.integers(len(names)))]]
            chain = op(chain, severity, rng, image_size)
        mix += float(ws[i]) * _to_tensor(chain)
    return (1.0 - float(m)) * _to_tensor(img) + float(m) * mix


# ----------------------------------------------------------------------------- batched draws


@dataclass
class MixDraws:
    """Every random choice of AugMix for B samples and V views (shapes in comments)."""

    weights: torch.Tensor  # (B, V, width) float32 on the simplex (Dirichlet(alpha))
    skip: torch.Tensor  # (B, V) float32 m ~ Beta(alpha, alpha); the chains get m
    depth: torch.Tensor  # (B, V, width) int64 in 1..max_depth
    op: torch.Tensor  # (B, V, width, max_depth) int64 index into op_names
    level: torch.Tensor  # (B, V, width, max_depth) float64 ~ U(0.1, severity)
    negate: torch.Tensor  # (B, V, width, max_depth) bool, the sign flip of signed ops


def sample_draws(
    keys: R.SampleKeys,
    views: Sequence[int],
    *,
    severity: float,
    width: int,
    depth: int,
    alpha: float,
    n_ops: int,
) -> MixDraws:
    """Per-sample draws; view v uses streams named 'augmix/v{v}/...'."""
    _check_params(severity, width, depth, alpha)
    steps = depth if depth > 0 else MAX_RANDOM_DEPTH
    parts = []
    for v in views:
        s = f"augmix/v{v}"
        if depth > 0:
            d = torch.full((len(keys), width), depth, dtype=torch.int64, device=keys.device)
        else:
            d = 1 + R.randint(keys, s + "/depth", MAX_RANDOM_DEPTH, (width,))
        parts.append(
            {
                "weights": R.dirichlet(keys, s + "/w", alpha, width).float(),
                "skip": R.beta(keys, s + "/m", alpha).float(),
                "depth": d,
                "op": R.randint(keys, s + "/op", n_ops, (width, steps)),
                "level": 0.1 + (severity - 0.1) * R.uniform(keys, s + "/level", (width, steps)),
                "negate": R.uniform(keys, s + "/sign", (width, steps)) > 0.5,
            }
        )
    return MixDraws(**{k: torch.stack([p[k] for p in parts], 1) for k in parts[0]})


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"expected uint8 or float images, got {x.dtype}")
    # Float input is taken as [0, 1]; round (not truncate as REF augment_and_mix.py does)
    # so that ToTensor output k/255 maps back to k exactly.
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def _run_chains(chains: torch.Tensor, draws: MixDraws, names: Sequence[str]) -> torch.Tensor:
    """Apply every chain's ops in order. chains: uint8 (V*B*width, 3, H, W) in (view, sample,
    chain) order; returns the chain outputs in the same order.

    At each step the rows are sorted by op group (one index_select), so every group is a
    contiguous slice that its op processes in one call with per-row parameters: rotate and the
    shears share one affine warp, every other op is its own group, finished chains skip.
    """
    size = chains.shape[-1]
    steps = draws.op.shape[-1]
    op = draws.op.transpose(0, 1).reshape(-1, steps)
    level = draws.level.transpose(0, 1).reshape(-1, steps)
    negate = draws.negate.transpose(0, 1).reshape(-1, steps)
    active = torch.arange(steps, device=op.device) < draws.depth.transpose(0, 1).reshape(-1, 1)
    # group id per op index: 0 = finished chain, 1 = warp, 2.. = the other ops
    warp = [i for i, n in enumerate(names) if n in WARP_OPS]
    others = [i for i, n in enumerate(names) if n not in WARP_OPS]
    group_of = torch.zeros(len(names), dtype=torch.int64)
    group_of[warp] = 1
    group_of[others] = torch.arange(2, 2 + len(others))
    group_of = group_of.to(op.device)
    n_groups = 2 + len(others)
    order = torch.arange(op.shape[0], device=op.device)  # original row of each current row
    # Rotations by 0 degrees and translations by 0 pixels are exact identities in PIL (and
    # here), so those rows skip the step like finished chains.
    may_vanish = [(i, n) for i, n in enumerate(names) if n in ("rotate", *SHIFT_OPS)]
    for j in range(steps):
        run = active[:, j].clone()
        for k, name in may_vanish:
            v = tensor_parameters(name, level[:, j], negate[:, j], size)
            run &= ~((op[:, j] == k) & (v == 0))
        group = torch.where(run, group_of[op[:, j]], 0)
        perm = torch.argsort(group[order], stable=True)
        order = order[perm]
        chains = chains.index_select(0, perm)
        ends = torch.cumsum(torch.bincount(group, minlength=n_groups), 0).tolist()
        for g in range(1, n_groups):
            start, end = ends[g - 1], ends[g]
            if start == end:
                continue
            rows = order[start:end]
            lv, ng = level[rows, j], negate[rows, j]
            if g == 1:
                mats = torch.zeros(end - start, 6, dtype=torch.float64, device=op.device)
                for k in warp:
                    sel = op[rows, j] == k
                    m_k = affine_matrices(names[k], tensor_parameters(names[k], lv, ng, size), size)
                    mats = torch.where(sel[:, None], m_k, mats)
                chains[start:end] = t_affine(chains[start:end], mats)
            else:
                name = names[others[g - 2]]
                v = tensor_parameters(name, lv, ng, size)
                chains[start:end] = TENSOR_OPS[name](chains[start:end], v)
    return chains.index_select(0, torch.argsort(order))


def _mix(x: torch.Tensor, chains: torch.Tensor, draws: MixDraws, out: torch.Tensor) -> None:
    """out[v] = ((1 - m) x + m sum_i w_i chain_i) / 255, float32; out is (V, B, 3, H, W).

    The coefficients (1 - m, m w_1, ..., m w_k) / 255 are folded first, so each uint8 part is
    read once (one multiply-add per part): the same convex combination as REF's
    ToTensor-then-mix, up to float32 rounding (checked in tests)."""
    b = x.shape[0]
    v, k = draws.weights.shape[1:]
    cv = chains.reshape(v, b, k, *x.shape[1:])
    m = draws.skip.to(x.device).transpose(0, 1)[..., None]  # (V, B, 1)
    w = draws.weights.to(x.device).transpose(0, 1)  # (V, B, k)
    coef = (torch.cat([1.0 - m, m * w], 2) / 255.0)[..., None, None, None]  # (V, B, 1+k, 1, 1, 1)
    for vi in range(v):
        torch.mul(x, coef[vi, :, 0], out=out[vi])  # (1 - m) on the original (REF)
        for i in range(k):
            out[vi].addcmul_(cv[vi, :, i], coef[vi, :, i + 1])


def _augmix_views(
    x: torch.Tensor,
    keys: R.SampleKeys,
    views: Sequence[int],
    *,
    severity: float,
    width: int,
    depth: int,
    alpha: float,
    all_ops: bool,
    ops: Sequence[str] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """AugMix views of a uint8 batch into out (V, B, 3, H, W) float32 (allocated if None)."""
    x = _as_uint8(x)
    if len(keys) != x.shape[0]:
        raise ValueError(f"{len(keys)} keys for a batch of {x.shape[0]} images")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"AugMix needs square images, got {tuple(x.shape[-2:])}")
    names = tuple(ops) if ops is not None else op_names(all_ops)
    for n in names:
        if n not in TENSOR_OPS:
            raise KeyError(f"unknown AugMix op {n!r}; known: {sorted(TENSOR_OPS)}")
    keys = keys.to(x.device)
    draws = sample_draws(
        keys, views, severity=severity, width=width, depth=depth, alpha=alpha, n_ops=len(names)
    )
    # (V*B*width, 3, H, W) in (view, sample, chain) order
    chains = x.repeat_interleave(width, 0).repeat(len(views), 1, 1, 1)
    chains = _run_chains(chains, draws, names)
    if out is None:
        out = torch.empty(len(views), *x.shape, dtype=torch.float32, device=x.device)
    _mix(x, chains, draws, out)
    return out


def augmix_batch(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    severity: float = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = False,
    view: int = 0,
    ops: Sequence[str] | None = None,
) -> torch.Tensor:
    """Per-sample AugMix of a batch: uint8 or [0, 1] float (B, 3, H, W) on any device ->
    float32 (B, 3, H, W) in [0, 1]. `view` selects an independent draw for the same keys.
    `ops` overrides the op names (keys of ops.TENSOR_OPS, e.g. ("identity",) in tests)."""
    return _augmix_views(
        x, keys, (view,), severity=severity, width=width, depth=depth, alpha=alpha,
        all_ops=all_ops, ops=ops,
    )[0]  # fmt: skip


def _make_views_pil(x, keys, jsd, severity, width, depth, alpha, all_ops):
    size = x.shape[-1]
    arr = x.permute(0, 2, 3, 1).cpu().numpy()
    idx = keys.index.cpu().tolist()
    n_aug = 2 if jsd else 1
    out = torch.empty(n_aug, x.shape[0], 3, x.shape[-2], size)
    for b, i in enumerate(idx):
        img = Image.fromarray(arr[b])
        g = R.numpy_generator(keys.seed, keys.epoch, i, "augmix/pil")
        for v in range(n_aug):
            out[v, b] = augment_and_mix_pil(
                img, g, severity=severity, width=width, depth=depth, alpha=alpha,
                all_ops=all_ops, image_size=size,
            )  # fmt: skip
    return out.to(x.device)


def make_views(
    x: torch.Tensor,
    keys: R.SampleKeys,
    *,
    jsd: bool,
    backend: str = "tensor",
    severity: float = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = False,
) -> torch.Tensor:
    """Training views of an already flipped and cropped uint8 batch (B, 3, H, W).

    jsd=True: float32 (3B, 3, H, W) = [clean; aug1; aug2], all from the same flip and crop
    (REF AugMixDataset). jsd=False: float32 (B, 3, H, W) = [aug] (REF --no-jsd).
    backend "tensor" is batched (any device); "pil" loops over images with the PIL ops.
    """
    x = _as_uint8(x)
    if backend not in ("tensor", "pil"):
        raise KeyError(f"unknown AugMix backend {backend!r}; choose from ['pil', 'tensor']")
    kw = {"severity": severity, "width": width, "depth": depth, "alpha": alpha, "all_ops": all_ops}
    views = (0, 1) if jsd else (0,)
    out = torch.empty(len(views) + int(jsd), *x.shape, dtype=torch.float32, device=x.device)
    if jsd:
        out[0].copy_(x).div_(255.0)  # the clean view
    augs = out[int(jsd) :]  # (V, B, 3, H, W)
    if backend == "tensor":
        _augmix_views(x, keys, views, **kw, out=augs)
    else:
        augs.copy_(_make_views_pil(x, keys, jsd, **kw))
    return out.reshape(-1, *x.shape[1:])
