"""Procedural fractal pictures: a stand-in mixing set for PixMix.

NOT the paper's mixing set. PixMix (andyzoujm/pixmix README) mixes with a downloaded set of fractals
and feature visualisations (about 1.6 GB); this module draws iterated-function-system (IFS) fractals
instead, so PixMix can run without that download. Results with it are not the paper's.

Each picture: 2..4 random contractive affine maps x -> A x + t (A = R(theta) diag(s1, s2) R(phi)
with a random reflection, singular values U(0.3, 0.9), t uniform in [-1, 1]^2), picked with
probability proportional to |det A|; the attractor is traced by a chaos game (many parallel
points, a burn-in, then every visited point counted), scaled to fill the picture with a margin,
and coloured: every map has a random saturated colour, a pixel shows the mean colour of the points
that landed on it, at brightness log(1 + count) / log(1 + max count). Background black. Every draw
comes from `augmix.rng` keyed by (seed, picture index), so picture i is the same for any n.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from augmix import rng as R

POINTS = 384  # parallel chaos-game points per picture
STEPS = 96  # steps per point; the first BURN_IN are not drawn
BURN_IN = 16
MIN_COVER = 0.08  # a picture must light at least this fraction of its pixels, else it is redrawn
ROUNDS = 8  # redraws at most (then the last round is kept)


def _maps(keys: R.SampleKeys, stream: str):
    """Per picture: up to 4 maps (B, 4, 2, 2) and shifts (B, 4, 2), map probabilities (B, 4)
    (zero for unused maps) and colours (B, 4, 3) in [0, 1]."""
    n_maps = 2 + R.randint(keys, stream + "/n_maps", 3)  # 2..4
    theta = 2 * math.pi * R.uniform(keys, stream + "/theta", (4,))
    phi = 2 * math.pi * R.uniform(keys, stream + "/phi", (4,))
    sv = 0.3 + 0.6 * R.uniform(keys, stream + "/sv", (4, 2))
    flip = torch.where(R.uniform(keys, stream + "/flip", (4,)) < 0.5, -1.0, 1.0)

    def rot(a):
        c, s = torch.cos(a), torch.sin(a)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    diag = torch.diag_embed(sv * torch.stack([flip, torch.ones_like(flip)], -1))
    mats = rot(theta) @ diag @ rot(phi)
    shift = 2 * R.uniform(keys, stream + "/shift", (4, 2)) - 1
    used = torch.arange(4, device=keys.device) < n_maps[:, None]
    weight = torch.abs(sv[..., 0] * sv[..., 1]) * used
    prob = weight / weight.sum(1, keepdim=True)
    hue = R.uniform(keys, stream + "/hue", (4,))
    colour = torch.stack([0.5 + 0.5 * torch.cos(2 * math.pi * (hue - j / 3)) for j in range(3)], -1)
    return mats, shift, prob, colour


def _render(keys: R.SampleKeys, stream: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, size, size, 3) float64 pictures in [0, 1] and their (B,) lit fraction."""
    b = len(keys)
    mats, shift, prob, colour = _maps(keys, stream)
    cdf = torch.cumsum(prob, 1)
    pick_u = R.uniform(keys, stream + "/pick", (STEPS, POINTS))
    choice = torch.searchsorted(cdf.contiguous(), pick_u.reshape(b, -1).contiguous()).clamp(max=3)
    choice = choice.reshape(b, STEPS, POINTS)
    pts = (2 * R.uniform(keys, stream + "/start", (POINTS, 2)) - 1).float()
    bi = torch.arange(b, device=keys.device)[:, None]
    visited, which = [], []
    # float32 is plenty for points drawn onto a pixel grid
    coef = torch.cat([mats.reshape(b, 4, 4), shift], 2).reshape(b * 4, 6).float()  # a00 a01 a10 a11 t0 t1
    for t in range(STEPS):
        m = coef.index_select(0, (bi * 4 + choice[:, t]).reshape(-1)).reshape(b, POINTS, 6)
        x, y = pts[..., 0], pts[..., 1]
        pts = torch.stack([m[..., 0] * x + m[..., 1] * y + m[..., 4], m[..., 2] * x + m[..., 3] * y + m[..., 5]], -1)
        if t >= BURN_IN:
            visited.append(pts)
            which.append(choice[:, t])
    p = torch.stack(visited, 1).reshape(b, -1, 2).double()  # (B, N, 2)
    w = torch.stack(which, 1).reshape(b, -1)
    lo, hi = p.amin(1, keepdim=True), p.amax(1, keepdim=True)
    scale = (hi - lo).amax(-1, keepdim=True).clamp_min(1e-9)  # keep the aspect ratio
    margin = 0.05 * size
    centre = (lo + hi) / 2
    pix = ((p - centre) / scale * (size - 2 * margin) + size / 2).floor().long().clamp(0, size - 1)
    flat = pix[..., 1] * size + pix[..., 0]
    count = torch.zeros(b, size * size, dtype=torch.float64, device=keys.device)
    count.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    rgb = torch.zeros(b, size * size, 3, dtype=torch.float64, device=keys.device)
    rgb.scatter_add_(1, flat[..., None].expand(-1, -1, 3), colour[bi, w])
    mean_colour = rgb / count.clamp_min(1)[..., None]
    bright = torch.log1p(count) / torch.log1p(count.amax(1, keepdim=True))
    pic = (mean_colour * bright[..., None]).reshape(b, size, size, 3)
    return pic, (count > 0).double().mean(1)


def generate_fractals(n: int, size: int, seed: int) -> np.ndarray:
    """n procedural IFS fractal pictures, uint8 (n, size, size, 3) RGB; picture i depends only on
    (seed, i, size). NOT the PixMix paper's mixing set (module docstring)."""
    if n < 0 or size < 4:
        raise ValueError(f"need n >= 0 and size >= 4, got n={n}, size={size}")
    keys = R.SampleKeys.arange(seed, 0, n)
    pics, cover = _render(keys, "fractal/r0", size)
    for r in range(1, ROUNDS):
        bad = (cover < MIN_COVER).nonzero().flatten()
        if len(bad) == 0:
            break
        redo, redo_cover = _render(keys.subset(bad), f"fractal/r{r}", size)
        pics[bad], cover[bad] = redo, redo_cover
    return (pics * 255).round().clamp(0, 255).to(torch.uint8).numpy()
