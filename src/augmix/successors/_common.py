"""Helpers shared by the successor augmentations: input checks, draws `augmix.rng` does not
offer directly (normals, Beta(a, b)), and one-op-per-row application grouped by op."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

from augmix import ops as O
from augmix import rng as R
from augmix.errors import ConfigError


def check_uint8_batch(x: torch.Tensor, keys: R.SampleKeys, square: bool = False) -> R.SampleKeys:
    """Validate a uint8 (B, 3, H, W) batch and its keys; returns the keys on x's device."""
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a uint8 (B, 3, H, W) batch, got {x.dtype} {tuple(x.shape)}")
    if len(keys) != x.shape[0]:
        raise ValueError(f"{len(keys)} keys for a batch of {x.shape[0]} images")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"square images expected, got {tuple(x.shape[-2:])}")
    return keys.to(x.device)


def check_names(names: Sequence[str], known: Mapping[str, object], what: str) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise ConfigError(f"{what}: the op set is empty")
    for n in names:
        if n not in known:
            raise KeyError(f"unknown {what} op {n!r}; known: {sorted(known)}")
    return names


def normal(keys: R.SampleKeys, stream: str, shape: tuple[int, ...] = (), dtype=torch.float32):
    """Standard normals (B, *shape) by Box-Muller, both outputs of each uniform pair used (the
    cosine half, then the sine half): independent N(0, 1), exact in distribution."""
    count = math.prod(shape)
    half = -(-count // 2)
    u1 = R.uniform(keys, stream + "/n1", (half,))
    u2 = R.uniform(keys, stream + "/n2", (half,))
    radius, angle = torch.sqrt(-2.0 * torch.log(u1)), 2.0 * math.pi * u2
    z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], 1)[:, :count]
    return z.reshape(len(keys), *shape).to(dtype)


def beta_ab(keys: R.SampleKeys, stream: str, a: float, b: float, shape: tuple[int, ...] = ()):
    """Beta(a, b) draws, float64 (B, *shape). Closed forms where they exist (inverse CDFs):
    Beta(a, 1) = U^(1/a), Beta(1, b) = 1 - U^(1/b), Beta(1/2, 1/2) = sin^2(pi U / 2) (arcsine);
    otherwise G_a / (G_a + G_b) from `rng.gamma`."""
    if not (a > 0 and b > 0):
        raise ValueError(f"Beta parameters must be > 0, got a={a}, b={b}")
    if b == 1.0:
        return R.uniform(keys, stream, shape) ** (1.0 / a)
    if a == 1.0:
        return 1.0 - R.uniform(keys, stream, shape) ** (1.0 / b)
    if a == b == 0.5:
        return torch.sin(0.5 * math.pi * R.uniform(keys, stream, shape)) ** 2
    ga = R.gamma(keys, stream + "/a", a, shape)
    return ga / (ga + R.gamma(keys, stream + "/b", b, shape))


def row_view(x: torch.Tensor) -> torch.Tensor:
    """Contiguous (N, ...) uint8 -> (N, k) view of each row in the widest integer dtype dividing
    it: torch moves whole rows of int64 words far faster than rows of bytes (augment.py measured
    about 50x for index_select / index_copy_ on CPU)."""
    flat = x.reshape(len(x), -1)
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if flat.shape[1] % size == 0:
            return flat.view(dtype)
    return flat


def apply_by_op(
    x: torch.Tensor,
    op: torch.Tensor,
    value: torch.Tensor,
    names: Sequence[str],
    table: Mapping[str, Callable[..., torch.Tensor]],
    skip: torch.Tensor | None = None,
    **kw,
) -> torch.Tensor:
    """Apply op names[op[i]] with parameter value[i] to image i, one call per op.

    x uint8 (n, 3, H, W) contiguous; op (n,) int64; value (n,) float64 (NaN where unused); skip
    (n,) bool rows left untouched. Rows are grouped with one stable argsort; "identity" rows are
    not touched. Returns a new tensor."""
    out = x.clone()
    if len(x) == 0:
        return out
    group = op.clone()
    if skip is not None:
        group = torch.where(skip, len(names), group)  # an extra group that is never processed
    order = torch.argsort(group, stable=True)
    ends = torch.cumsum(torch.bincount(group, minlength=len(names) + 1), 0).tolist()
    rows_in, rows_out = row_view(x.contiguous()), row_view(out)
    start = 0
    for i, name in enumerate(names):
        rows = order[start : ends[i]]
        start = ends[i]
        if len(rows) == 0 or name == "identity":
            continue
        part = rows_in.index_select(0, rows).view(torch.uint8).reshape(-1, *x.shape[1:])
        res = table[name](part, value[rows], **kw)
        rows_out.index_copy_(0, rows, row_view(res.contiguous()))
    return out


def augmix_op_values(names: Sequence[str], op: torch.Tensor, level: torch.Tensor, negate: torch.Tensor,
                     size: int) -> torch.Tensor:  # fmt: skip
    """Parameters of AugMix's ops (augmix.ops: google-research/augmix `augmentations.py` scaling) for drawn op indices,
    levels and signs, all shape alike; NaN where the op takes none."""
    value = torch.full_like(level, float("nan"), dtype=torch.float64)
    for i, name in enumerate(names):
        if O.PARAMS[name].scale is not None:
            value = torch.where(op == i, O.tensor_parameters(name, level, negate, size), value)
    return value
