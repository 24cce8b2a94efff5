"""Torch implementations of the heavy, regular corruptions, for a GPU (or CPU torch) device.

Selected with ``device=...`` on the functions in `functions.py`, which keep the severity tables and
pass the chosen parameters here. The arithmetic is the reference's (float64 where it is float64),
so with the same injected draws the results equal the NumPy path up to float summation order in
the filters (rare one-level truncation flips). Random draws come from a ``torch.Generator`` on
the device, seeded from the caller's NumPy generator, so a build is reproducible for a given seed
and device type but is not byte-identical to the NumPy path (different streams).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "defocus_blur",
    "gaussian_blur",
    "gaussian_noise",
    "generator_for",
    "glass_blur",
    "impulse_noise",
    "motion_blur",
    "shot_noise",
    "speckle_noise",
    "to_device",
]


def to_device(images: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device)


def generator_for(rng, device) -> torch.Generator:
    """A torch generator on `device`, seeded from a NumPy generator (or passed through)."""
    if isinstance(rng, torch.Generator):
        return rng
    if rng is None:
        raise ValueError(
            "pass rng (a numpy Generator or torch.Generator) or draws; randomness is never global"
        )
    g = torch.Generator(device=device)
    g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return g


def _finish(x: torch.Tensor) -> np.ndarray:
    """clip to [0, 1], times 255, uint8 truncation (the reference's np.uint8 cast)."""
    return (x.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def _unit(images: np.ndarray, device) -> torch.Tensor:
    return to_device(images, device).to(torch.float64) / 255.0


def _draw(draws, key, shape, device, sample):
    if draws is not None:
        return torch.as_tensor(
            np.asarray(draws[key]) if not torch.is_tensor(draws[key]) else draws[key]
        ).to(device)
    return sample(shape)


def gaussian_noise(images, c, rng, device, draws=None):
    x = _unit(images, device)
    g = None if draws is not None else generator_for(rng, device)
    z = _draw(
        draws,
        "z",
        x.shape,
        device,
        lambda s: torch.randn(s, generator=g, device=device, dtype=torch.float64),
    )
    return _finish(x + c * z.to(torch.float64))


def speckle_noise(images, c, rng, device, draws=None):
    x = _unit(images, device)
    g = None if draws is not None else generator_for(rng, device)
    z = _draw(
        draws,
        "z",
        x.shape,
        device,
        lambda s: torch.randn(s, generator=g, device=device, dtype=torch.float64),
    )
    return _finish(x + x * (c * z.to(torch.float64)))


def shot_noise(images, c, rng, device, draws=None):
    x = _unit(images, device)
    g = None if draws is not None else generator_for(rng, device)
    counts = _draw(
        draws, "counts", x.shape, device, lambda s: torch.poisson(x * c, generator=g)
    )
    return _finish(counts.to(torch.float64) / c)


def impulse_noise(images, c, rng, device, draws=None):
    x = _unit(images, device)
    g = None if draws is not None else generator_for(rng, device)
    uf = _draw(
        draws,
        "u_flip",
        x.shape,
        device,
        lambda s: torch.rand(s, generator=g, device=device),
    )
    us = _draw(
        draws,
        "u_salt",
        x.shape,
        device,
        lambda s: torch.rand(s, generator=g, device=device),
    )
    flipped = uf < c
    salted = us < 0.5
    x = torch.where(flipped & salted, torch.ones_like(x), x)
    x = torch.where(flipped & ~salted, torch.zeros_like(x), x)
    return _finish(x)


def _gauss_taps(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """SciPy gaussian_filter1d weights (radius int(truncate*sigma + 0.5))."""
    radius = int(truncate * float(sigma) + 0.5)
    xs = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 / (sigma * sigma) * xs * xs)
    return torch.from_numpy(w / w.sum())


def _filter_axis(
    x: torch.Tensor, taps: torch.Tensor, dim: int, mode: str
) -> torch.Tensor:
    """1-D correlation along `dim` of (N, H, W, C) with 'nearest' (edge) or 'mirror' (reflect-101) borders."""
    r = (taps.numel() - 1) // 2
    n = x.shape[dim]
    idx = torch.arange(-r, n + r, device=x.device)
    if mode == "nearest":
        idx = idx.clamp(0, n - 1)
    else:  # mirror: reflect-101
        period = max(2 * n - 2, 1)
        idx = idx.abs() % period
        idx = torch.where(idx >= n, period - idx, idx)
    padded = x.index_select(dim, idx)
    taps = taps.to(x.device, x.dtype)
    # SciPy's correlate1d order for symmetric kernels: centre first, then the pairs
    # (left + right) * w from the outermost in, so the float sums round as SciPy's do.
    out = taps[r] * padded.narrow(dim, r, n)
    for j in range(r, 0, -1):  # a loop over the few filter taps, vectorised over images
        out = (
            out
            + (padded.narrow(dim, r - j, n) + padded.narrow(dim, r + j, n))
            * taps[r - j]
        )
    return out


def gaussian_blur(images, sigma, device, x=None):
    """skimage gaussian(multichannel): separable Gaussian over H and W, mode nearest, truncate 4."""
    x = _unit(images, device) if x is None else x
    taps = _gauss_taps(sigma)
    return _filter_axis(_filter_axis(x, taps, 1, "nearest"), taps, 2, "nearest")


def defocus_blur(images, kernel: np.ndarray, device):
    """Correlation with a 2-D kernel, reflect-101 border, as OpenCV filter2D; zero rows skipped."""
    x = _unit(images, device)
    kh, kw = kernel.shape
    _, h, w, _ = x.shape
    ry, rx = kh // 2, kw // 2
    pad_y = torch.arange(-ry, h + ry, device=x.device).abs() % max(2 * h - 2, 1)
    pad_y = torch.where(pad_y >= h, 2 * h - 2 - pad_y, pad_y)
    pad_x = torch.arange(-rx, w + rx, device=x.device).abs() % max(2 * w - 2, 1)
    pad_x = torch.where(pad_x >= w, 2 * w - 2 - pad_x, pad_x)
    padded = x.index_select(1, pad_y).index_select(2, pad_x)
    out = torch.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                out += float(kernel[i, j]) * padded[:, i : i + h, j : j + w]
    return _finish(out)


def glass_blur(images, sigma, d, iters, rng, device, draws=None):
    """Blur, uint8 truncation, the reference's one-way pixel copies (pointer jumping), blur."""
    n, h, w, _ = images.shape
    x = (gaussian_blur(images, sigma, device) * 255).to(torch.uint8)
    if draws is not None:
        offsets = (
            torch.as_tensor(np.asarray(draws["offsets"])).to(device).to(torch.int64)
        )
    else:
        g = generator_for(rng, device)
        offsets = torch.randint(
            -d, d, (n, iters, h - 2 * d, w - 2 * d, 2), generator=g, device=device
        )
    rows = torch.arange(h - d, d, -1, device=device)
    cols = torch.arange(w - d, d, -1, device=device)
    target = (rows[:, None] * w + cols[None, :]).reshape(-1)
    in_region = torch.zeros(h * w, dtype=torch.bool, device=device)
    in_region[target] = True
    ar = torch.arange(h * w, device=device).expand(n, h * w)
    for it in range(iters):
        off = offsets[:, it]
        src_flat = (
            (rows[None, :, None] + off[..., 1]) * w + cols[None, None, :] + off[..., 0]
        ).reshape(n, -1)
        src = ar.clone()
        src[:, target] = src_flat
        follow = torch.zeros((n, h * w), dtype=torch.bool, device=device)
        follow[:, target] = in_region[src_flat] & (src_flat > target[None, :])
        jump = torch.where(follow, src, ar)
        while True:  # pointer jumping: at most log2(chain length) rounds
            nxt = torch.gather(jump, 1, jump)
            if torch.equal(nxt, jump):
                break
            jump = nxt
        final = torch.gather(src, 1, jump)
        x = torch.gather(
            x.reshape(n, h * w, 3), 1, final[..., None].expand(n, h * w, 3)
        ).reshape(n, h, w, 3)
    return _finish(gaussian_blur(None, sigma, device, x=x.to(torch.float64) / 255.0))


def motion_blur(images, radius, sigma, angles_deg, device):
    """ImageMagick motion blur (see imagemagick.py) with per-image angles, Q16 + PNG quantisation."""
    from .imagemagick import motion_blur_kernel, motion_blur_offsets

    n, h, w, c = images.shape
    k = motion_blur_kernel(radius, sigma)
    dx, dy = motion_blur_offsets(
        np.asarray(angles_deg, dtype=np.float64).reshape(-1), k.size
    )
    x = to_device(images, device).to(torch.float64) * 257.0
    dx_t = torch.from_numpy(dx).to(device)
    dy_t = torch.from_numpy(dy).to(device)
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    flat = x.reshape(n, h * w, c)
    acc = torch.zeros_like(flat)
    for i in range(k.size):  # taps
        yy = (ys[None, :] + dy_t[:, i : i + 1]).clamp(0, h - 1)
        xx = (xs[None, :] + dx_t[:, i : i + 1]).clamp(0, w - 1)
        idx = (
            (yy[:, :, None] * w + xx[:, None, :])
            .reshape(n, h * w, 1)
            .expand(n, h * w, c)
        )
        acc += float(k[i]) * torch.gather(flat, 1, idx)
    q = torch.floor(acc + 0.5)
    return (
        torch.div(q, 257.0, rounding_mode="floor")
        .to(torch.uint8)
        .reshape(n, h, w, c)
        .cpu()
        .numpy()
    )


def angles_from(rng, n, lo, hi, draws, device):
    """Uniform angles in [lo, hi) degrees: from draws["u_angle"] or the torch generator."""
    if draws is not None:
        u = np.asarray(draws["u_angle"], dtype=np.float64)
    else:
        g = generator_for(rng, device)
        u = torch.rand(n, generator=g, device=device, dtype=torch.float64).cpu().numpy()
    return lo + (hi - lo) * u
