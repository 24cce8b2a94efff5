"""AugMix mixing (REF `cifar.py` `aug` / `AugMixDataset`; docs/reference-facts.md, "AugMix mixing"), two ways.

* `augment_and_mix_pil`: one PIL image at a time with the reference ops; the faithful option.
* `augmix_batch` / `make_views`: a whole uint8 batch on any device. Every sample draws its own
  Dirichlet weights, Beta skip weight, chain depths, ops, levels and signs; the loops run over
  chain steps and op groups, never over images (docs/reference-facts.md, "Benchmarks"):
  all (view, chain) images of the batch are stacked; at each step they are grouped by the op
  they drew, each op's tensor twin processes its group in one call with per-image
  parameters, and finished chains are skipped. On the CPU the batch runs in cache-sized
  blocks of samples; on CUDA rotate and the shears share one grid_sample per step.

Randomness comes from `SampleKeys` (seed, epoch, index), see `rng.py`, so a sample's views do
not depend on its batch or on the data-loader worker that built it.

Outputs are float32 in [0, 1]: the reference mixes after Normalize, which is the same thing
because Normalize is affine per channel and the weights are convex; our models normalise
inside. As in REF, the original gets (1 - m) and the chains m; nothing is re-quantised.

`affine_fill` (every entry point; default 0) is the PIL `fillcolor` int that shear_x, shear_y,
translate_x and translate_y paint the area they uncover with: 0 (black) as committed, 128 for the
released ImageNet weights (docs/reference-facts.md, "AugMix fill"; ops.fill_colour). Rotate always
fills 0. The fill changes no random draw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from augmix import rng as R
from augmix.memory import keep_freed_memory
from augmix.ops import (
    AFFINE_FILL_OPS,
    OPS,
    OPS_ALL,
    PARAMS,
    TENSOR_OPS,
    affine_matrices,
    check_fill,
    op_names,
    t_affine,
    tensor_parameters,
)

# Ops that need interpolation; on CUDA they share one grid_sample per step (see _op_groups).
WARP_OPS = ("rotate", "shear_x", "shear_y")
SHIFT_OPS = ("translate_x", "translate_y")
MAX_RANDOM_DEPTH = 3  # depth -1 means d ~ U{1, 2, 3} per chain (REF `np.random.randint(1, 4)`)
# On the CPU the batch is processed in blocks of samples whose chains take about this many
# bytes, so that the chains and the ops' temporaries stay in the caches. Measured with one
# thread (EPYC, 32 MiB L3): about 1.2x faster than one block at 224x224 (32 samples), no
# change at 32x32 (1024 samples: three blocks); much smaller blocks lose to per-call overhead.
CPU_BLOCK_BYTES = 8 << 20


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
    affine_fill: int = 0,
) -> torch.Tensor:
    """REF `aug` on one PIL image, returning float32 (3, H, W) in [0, 1].

    Draw order as REF: Dirichlet, Beta, then per chain the depth and per step the op (each op
    draws its own level and sign). `ops` overrides the op table (tests use it). `affine_fill`: PIL
    fillcolor int 0..255 of the area shear_x/shear_y/translate_x/translate_y uncover (module
    docstring); rotate fills 0 either way. With a nonzero fill, the table's ops of those four
    names are called with the keyword `fill`.
    """
    _check_params(severity, width, depth, alpha)
    fill = check_fill(affine_fill)
    table = ops if ops is not None else (OPS_ALL if all_ops else OPS)
    names = list(table)
    ws = np.float32(rng.dirichlet([alpha] * width))
    m = np.float32(rng.beta(alpha, alpha))
    mix = torch.zeros(3, image_size, image_size)
    for i in range(width):
        chain = img.copy()
        d = depth if depth > 0 else int(rng.integers(1, MAX_RANDOM_DEPTH + 1))
        for _ in range(d):
            name = names[int(rng.integers(len(names)))]
            if fill and name in AFFINE_FILL_OPS:
                chain = table[name](chain, severity, rng, image_size, fill=fill)
            else:
                chain = table[name](chain, severity, rng, image_size)
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


def _row_view(x: torch.Tensor) -> torch.Tensor:
    """Contiguous (N, ...) uint8 -> (N, k) view of each row as the widest integer dtype that
    divides it. Moving whole images as int64 words is about 50x faster than torch's per-byte
    index_select / index_copy_ on uint8 rows (measured on CPU); the bytes are untouched."""
    if not x.is_contiguous():
        raise ValueError("_row_view needs a contiguous tensor")
    row = x.shape[1:].numel()
    flat = x.view(len(x), row)
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if row % size == 0:
            return flat.view(dtype)
    return flat


def _op_groups(names: Sequence[str], device: torch.device) -> list[tuple[int, ...]]:
    """Op indices processed together, one call per group and step.

    On CUDA, rotate and the shears share one grid_sample warp (fewer kernel launches); on the
    CPU each has its own cheaper kernel (ops.py), so every op is its own group."""
    if device.type == "cpu":
        return [(i,) for i in range(len(names))]
    warp = tuple(i for i, n in enumerate(names) if n in WARP_OPS)
    groups = [(i,) for i, n in enumerate(names) if n not in WARP_OPS]
    return ([warp] if warp else []) + groups


def _step_values(
    names: Sequence[str], op: torch.Tensor, level: torch.Tensor, negate: torch.Tensor, size: int
) -> torch.Tensor:
    """(rows, steps) float64: the parameter of every drawn op, scaled and signed exactly as
    the PIL path does (ops.tensor_parameters); NaN where the op takes none."""
    value = torch.full_like(level, float("nan"), dtype=torch.float64)
    for i, name in enumerate(names):
        if PARAMS[name].scale is not None:
            value = torch.where(op == i, tensor_parameters(name, level, negate, size), value)
    return value


def _apply_group(
    x: torch.Tensor, names: Sequence[str], group: tuple[int, ...], op: torch.Tensor,
    value: torch.Tensor, affine_fill: int = 0,
) -> torch.Tensor:  # fmt: skip
    """One op group on its rows: x uint8 (n, 3, S, S), op and value (n,) for these rows.
    The AFFINE_FILL_OPS fill the area they uncover with the colour of `affine_fill`, the others 0."""
    if len(group) == 1:
        name = names[group[0]]
        v = value if PARAMS[name].scale is not None else None
        if affine_fill and name in AFFINE_FILL_OPS:
            return TENSOR_OPS[name](x, v, fill=affine_fill)
        return TENSOR_OPS[name](x, v)
    size = x.shape[-1]
    mats = torch.zeros(len(x), 6, dtype=torch.float64, device=x.device)
    fill = torch.zeros(len(x), dtype=torch.uint8, device=x.device) if affine_fill else 0
    for k in group:  # the shared warp: each row takes its own op's matrix and fill
        mats = torch.where((op == k)[:, None], affine_matrices(names[k], value, size), mats)
        if affine_fill and names[k] in AFFINE_FILL_OPS:
            fill.masked_fill_(op == k, affine_fill)
    return t_affine(x, mats, fill)


def _run_chains(
    chains: torch.Tensor, draws: MixDraws, names: Sequence[str], affine_fill: int = 0
) -> torch.Tensor:
    """Apply every chain's ops in order. chains: uint8 (V*B*width, 3, H, W) in (view, sample,
    chain) order; returns the chain outputs in the same order (chains is updated in place).
    `affine_fill`: fill of the area the AFFINE_FILL_OPS uncover (module docstring).

    At each step the rows are split by op group (one stable argsort), each group is gathered,
    processed by one call with per-row parameters and scattered back; finished chains and
    exact identities are not touched.
    """
    steps = draws.op.shape[-1]
    op = draws.op.transpose(0, 1).reshape(-1, steps)
    level = draws.level.transpose(0, 1).reshape(-1, steps)
    negate = draws.negate.transpose(0, 1).reshape(-1, steps)
    value = _step_values(names, op, level, negate, chains.shape[-1])
    run = torch.arange(steps, device=op.device) < draws.depth.transpose(0, 1).reshape(-1, 1)
    # Rotations by 0 degrees and translations by 0 pixels are exact identities in PIL (and
    # here, whatever the fill: they uncover nothing), so those rows skip the step like
    # finished chains.
    for i, name in enumerate(names):
        if name in ("rotate", *SHIFT_OPS):
            run &= ~((op == i) & (value == 0))
    groups = _op_groups(names, chains.device)
    group_of = torch.zeros(len(names), dtype=torch.int64)  # group 0: the row skips the step
    for g, members in enumerate(groups, 1):
        group_of[list(members)] = g
    group = torch.where(run, group_of.to(op.device)[op], 0)  # (rows, steps)
    rows_view = _row_view(chains)
    for j in range(steps):
        by_group = torch.argsort(group[:, j], stable=True)
        ends = torch.cumsum(torch.bincount(group[:, j], minlength=len(groups) + 1), 0).tolist()
        for g, members in enumerate(groups, 1):
            rows = by_group[ends[g - 1] : ends[g]]
            if len(rows) == 0:
                continue
            x = rows_view.index_select(0, rows).view(torch.uint8).reshape(-1, *chains.shape[1:])
            out = _apply_group(x, names, members, op[rows, j], value[rows, j], affine_fill)
            rows_view.index_copy_(0, rows, _row_view(out.contiguous()))
    return chains


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


def _blocks(x: torch.Tensor, chains_per_sample: int) -> list[slice]:
    """Sample ranges processed together: the whole batch on CUDA (fewest launches), blocks
    of about CPU_BLOCK_BYTES of chains on the CPU. Every sample's result is independent of
    its block, so blocking changes nothing but speed."""
    b = x.shape[0]
    if x.device.type != "cpu":
        return [slice(0, b)]
    sample_bytes = chains_per_sample * x.shape[1:].numel()
    n_blocks = max(1, -(-b * sample_bytes // CPU_BLOCK_BYTES))  # ceil
    step = max(1, -(-b // n_blocks))  # equal blocks
    return [slice(i, min(i + step, b)) for i in range(0, b, step)]


def _draws_slice(draws: MixDraws, s: slice) -> MixDraws:
    """The draws of samples s."""
    return MixDraws(**{k: getattr(draws, k)[s] for k in MixDraws.__dataclass_fields__})


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
    affine_fill: int = 0,
) -> torch.Tensor:
    """AugMix views of a uint8 batch into out (V, B, 3, H, W) float32 (allocated if None).
    `affine_fill`: fill of the area the affine ops uncover (module docstring)."""
    x = _as_uint8(x)
    affine_fill = check_fill(affine_fill)
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
    if x.device.type == "cpu":
        keep_freed_memory()  # reuse the heap for the temporaries (memory.py)
    if out is None:
        out = torch.empty(len(views), *x.shape, dtype=torch.float32, device=x.device)
    for s in _blocks(x, len(views) * width):
        # (V*b*width, 3, H, W) in (view, sample, chain) order
        chains = x[s].repeat_interleave(width, 0).repeat(len(views), 1, 1, 1)
        part = _draws_slice(draws, s)
        _mix(x[s], _run_chains(chains, part, names, affine_fill), part, out[:, s])
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
    affine_fill: int = 0,
) -> torch.Tensor:
    """Per-sample AugMix of a batch: uint8 or [0, 1] float (B, 3, H, W) on any device ->
    float32 (B, 3, H, W) in [0, 1]. `view` selects an independent draw for the same keys.
    `ops` overrides the op names (keys of ops.TENSOR_OPS, e.g. ("identity",) in tests).
    `affine_fill`: PIL fillcolor int 0..255 of the area shear_x/y and translate_x/y uncover
    (module docstring); rotate fills 0."""
    return _augmix_views(
        x, keys, (view,), severity=severity, width=width, depth=depth, alpha=alpha,
        all_ops=all_ops, ops=ops, affine_fill=affine_fill,
    )[0]  # fmt: skip


def _make_views_pil(x, keys, jsd, severity, width, depth, alpha, all_ops, affine_fill=0):
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
                all_ops=all_ops, image_size=size, affine_fill=affine_fill,
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
    out: torch.Tensor | None = None,
    affine_fill: int = 0,
) -> torch.Tensor:
    """Training views of an already flipped and cropped uint8 batch (B, 3, H, W).

    jsd=True: float32 (3B, 3, H, W) = [clean; aug1; aug2], all from the same flip and crop
    (REF AugMixDataset). jsd=False: float32 (B, 3, H, W) = [aug] (REF --no-jsd).
    backend "tensor" is batched (any device); "pil" loops over images with the PIL ops.
    out: an existing float32 (V, B, 3, H, W) tensor (V = 3 or 1), e.g. a slice of an epoch's
    views, filled in place and returned as given: no fresh buffer, no copy.
    affine_fill: PIL fillcolor int 0..255 that shear_x, shear_y, translate_x and translate_y paint
    the area they uncover with (module docstring; params `methods.augmix.fill`). Rotate fills 0
    either way; no random draw changes.
    """
    x = _as_uint8(x)
    if backend not in ("tensor", "pil"):
        raise KeyError(f"unknown AugMix backend {backend!r}; choose from ['pil', 'tensor']")
    kw = {"severity": severity, "width": width, "depth": depth, "alpha": alpha, "all_ops": all_ops,
          "affine_fill": check_fill(affine_fill)}  # fmt: skip
    views = (0, 1) if jsd else (0,)
    shape = (len(views) + int(jsd), *x.shape)
    given = out is not None
    if out is None:
        out = torch.empty(shape, dtype=torch.float32, device=x.device)
    elif tuple(out.shape) != shape or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {tuple(out.shape)}")
    if jsd:
        torch.div(x, 255.0, out=out[0])  # the clean view (one pass)
    augs = out[int(jsd) :]  # (V, B, 3, H, W)
    if backend == "tensor":
        _augmix_views(x, keys, views, **kw, out=augs)
    else:
        augs.copy_(_make_views_pil(x, keys, jsd, **kw))
    return out if given else out.reshape(-1, *x.shape[1:])


class EpochViews:
    """All of an epoch's flip/crop and a method's per-sample views, made in large chunks before the first step.

    Every draw depends only on (seed, epoch, sample index), so making the views for the whole
    epoch in chunks of `chunk` samples gives exactly the tensors the per-step path would make;
    on a GPU the batched AugMix runs at its large-batch rate instead of a latency-bound 128.
    `maker(x_uint8, keys, out=...)` writes `n_views` views per sample (None: no views up front).
    """

    def __init__(self, x: torch.Tensor, seed: int, epoch: int, maker=None, n_views: int = 0, chunk: int = 8192):
        n = len(x)
        self.base = torch.empty_like(x)
        self.views = torch.empty(n_views, *x.shape, device=x.device) if maker is not None else None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = torch.arange(start, stop, device=x.device)
            keys = R.SampleKeys(seed, epoch, idx)
            self.base[idx] = base_transform_batch(x[idx], keys)
            if maker is not None:  # written straight into the epoch's buffer
                maker(self.base[idx], keys, out=self.views[:, start:stop])

    def batch_views(self, idx: torch.Tensor) -> torch.Tensor | None:
        if self.views is None:
            return None
        v = self.views[:, idx]
        return v.reshape(-1, *v.shape[2:])  # [clean; aug1; aug2] blocks, as make_views returns
