"""The 19 common corruptions of CIFAR-10-C / ImageNet-C, batched and reference-faithful.

Source of the arithmetic: hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py` (CIFAR table)
and `make_imagenet_c.py` (ImageNet table); the reference's quirks we keep are listed in
docs/corruptions.md. Every function takes uint8 images (N, H, W, 3) and returns uint8 (N, H, W, 3),
truncating like the reference's `np.uint8` cast.

Signature of every corruption:
``f(images, severity, rng=None, *, table="cifar", draws=None, device=None)``.
Randomness is a dict ``draws`` of the raw random variates the reference would draw (standard
normals, uniforms in [0, 1), integers, Poisson counts), documented per function. Without it, the
draws are made from ``rng`` by the corruption's spec in `draws.py`: per-image keys
(``augmix.rng.SampleKeys``, what the builders pass) or a NumPy Generator (one key drawn from it).
The reference's ``uniform(lo, hi)`` is ``lo + (hi - lo) * u`` and its ``normal(loc, scale)`` is
``loc + scale * z``, so injected raw variates reproduce it exactly. One sampler differs from the
reference's while keeping its distribution: shot_noise draws each output level by inverting its
exact distribution (one uniform per element) instead of drawing Poisson counts, about 4x cheaper
(see `shot_levels`).

With ``device`` (a torch device), the corruptions in DEVICE_CORRUPTIONS run in `torch_backend`
with the same draws; the other corruptions ignore it.

Each severity table is the literal at the top of its function: key "cifar" (32x32) and "imagenet"
(224x224).
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from scipy import ndimage

from . import draws as D
from . import torch_backend as tb
from .draws import fog_uniform_shapes  # noqa: F401 - the draw layout, re-exported for fog's callers
from .frost import load_frost_textures
from .imagemagick import motion_blur_im
from .kernels import (
    HSV_PICK3,
    SHOT_BINS,
    channel_means,
    clipped_zoom_matrix,
    cv_affine_from_points,
    elastic_source_points,
    shot_level_tables,
    torch_device_type,
    zoom_factors,
    zoom_taps,  # noqa: F401 - re-exported with the other zoom kernels
)

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SCALES",
    "corrupt",
]

SCALES = {"cifar": 32, "imagenet": 224}


# ----------------------------------------------------------------------------------------------
# shared helpers


def _select(tables: dict, table: str, severity: int, images: np.ndarray):
    """Pick the severity's parameters and check the input against the table's image size."""
    if table not in tables:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(tables)}")
    if not (isinstance(severity, (int, np.integer)) and 1 <= severity <= 5):
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != 3
    ):
        raise ValueError(
            f"images must be a uint8 array (N, H, W, 3), got "
            f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}"
        )
    size = SCALES[table]
    # The reference hard-codes 32 (or 224) in several functions; we take the size from the input
    # and insist it equals the table's scale.
    if images.shape[1:3] != (size, size):
        raise ValueError(
            f"table {table!r} expects {size}x{size} images, got {images.shape[1]}x{images.shape[2]}"
        )
    return tables[table][severity - 1]


def _to_unit(images: np.ndarray, dtype=np.float64) -> np.ndarray:
    if dtype == np.float32:
        return images.astype(np.float32) / np.float32(255.0)
    return images / 255.0


def _finish(x: np.ndarray) -> np.ndarray:
    """clip(x, 0, 1) * 255, then NumPy's uint8 cast, which truncates (254.9 -> 254), as the reference."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _finish_temp(x: np.ndarray) -> np.ndarray:
    """_finish of a temporary float array, overwriting it (the same roundings, fewer copies)."""
    np.clip(x, 0, 1, out=x)
    x *= 255
    return x.astype(np.uint8)


def _gaussian(
    x: np.ndarray, sigma: float, spatial_axes=(1, 2), mode="nearest", truncate=4.0
) -> np.ndarray:
    """scikit-image `gaussian` restated: SciPy gaussian_filter over the spatial axes only."""
    if int(truncate * float(sigma) + 0.5) == 0:
        # SciPy's kernel has radius 0, i.e. the single weight 1.0: the filter is the identity.
        return np.array(x, copy=True)
    sig = [0.0] * x.ndim
    for a in spatial_axes:
        sig[a] = sigma
    return ndimage.gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


def _rgb_to_hsv_planes(r, g, b):
    """scikit-image `rgb2hsv` on contiguous float64 planes. Assignment order red, green, blue is
    kept: where two channels tie for the maximum the later one defines the hue.

    Restated with one division: the hue is off + num / delta with (off, num) chosen by the
    channel holding the maximum (blue over green over red), and `% 1.0` of a value in (-1, 1) is
    `+ 1.0` where negative; both give the same floats as skimage's three masked divisions."""
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)
    flat = delta == 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        s = delta / v
        s[flat] = 0.0
        is_b = b == v
        is_g = g == v
        num = np.where(is_b, r - g, np.where(is_g, b - r, g - b))
        h = num / delta
    h += np.where(is_b, 4.0, np.where(is_g, 2.0, 0.0))
    h /= 6.0
    h += h < 0  # (h / 6) % 1.0 for h / 6 in [-1/6, 5/6]
    h[flat] = 0.0
    return h, s, v


# sector -> (R, G, B) as indices into (v, t, p, q): (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
_HSV_PICK = np.array([[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]])


def _hsv_to_rgb_planes(h, s, v):
    """scikit-image `hsv2rgb` on planes. Each output channel is exactly one of v, t, p, q chosen by
    the hue sector."""
    hi = np.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = (hi % 6).astype(np.intp)
    return tuple(np.choose(_HSV_PICK[:, c][sector], (v, t, p, q)) for c in range(3))


_HSV_PICK3 = np.array(HSV_PICK3, dtype=np.uint8)  # sector -> (R, G, B) as indices into (v, m, p)


def _hsv_to_rgb_u8(h, s, v) -> np.ndarray:
    """_finish(hsv2rgb(h, s, v)) as uint8 (..., 3), the same bytes as finishing the channels of
    `_hsv_to_rgb_planes`: each output channel is one of v, p and q (odd sectors) or t (even
    sectors), so only those three planes are computed and finished, then picked per pixel."""
    h6 = h * 6
    hi = np.floor(h6)
    f = h6 - hi
    p = v * (1 - s)
    sector = hi.astype(np.int8)
    sector[sector >= 6] = 0  # hi % 6 (h in [0, 1), so hi is 0..6)
    odd = (sector & 1).astype(bool)
    m = v * (1 - np.where(odd, f, 1 - f) * s)  # q = v(1 - f s), t = v(1 - (1 - f) s)
    planes = (_finish(v), _finish_temp(m), _finish_temp(p))
    out = np.empty(v.shape + (3,), dtype=np.uint8)
    for c in range(3):
        pick = _HSV_PICK3[:, c].take(sector)
        out[..., c] = np.where(
            pick == 0, planes[0], np.where(pick == 1, planes[1], planes[2])
        )
    return out


def _unit_planes(images: np.ndarray):
    """The three channel planes of images / 255.0, each contiguous float64 (N, H, W)."""
    return tuple(images[..., c] / 255.0 for c in range(3))


def _planes(x: np.ndarray):
    return tuple(np.ascontiguousarray(x[..., c]) for c in range(3))


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """scikit-image `rgb2hsv` restated (float64, last axis RGB)."""
    return np.stack(_rgb_to_hsv_planes(*_planes(rgb)), axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """scikit-image `hsv2rgb` restated (float64, last axis HSV)."""
    return np.stack(_hsv_to_rgb_planes(*_planes(hsv)), axis=-1)


# ----------------------------------------------------------------------------------------------
# noise


def gaussian_noise(
    images, severity, rng=None, *, table="cifar", draws=None, device=None
):
    """out = clip(x + sigma * z). draws: {"z": standard normals (N, H, W, 3)}."""
    c = _select(
        {
            "cifar": [0.04, 0.06, 0.08, 0.09, 0.10],
            "imagenet": [0.08, 0.12, 0.18, 0.26, 0.38],
        },
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.gaussian_noise(images, c, rng, device, draws)
    z = (draws or D.numpy_draws("gaussian_noise", rng, images.shape))["z"]
    x = c * z
    x += _to_unit(images)  # x + c * z, in place
    return _finish_temp(x)


def shot_levels(images: np.ndarray, c: int, u: np.ndarray) -> np.ndarray:
    """Shot-noise output levels by inversion: the smallest level l with u < P(L <= l), for
    uniforms u in [0, 1) of the images' shape. Same distribution as the reference's
    uint8(clip(Poisson(x * c) / c, 0, 1) * 255), about 4x cheaper than drawing the counts."""
    cdf, guide = shot_level_tables(int(c))
    m = SHOT_BINS
    v = images.reshape(-1).astype(np.int32)
    uf = np.asarray(u, dtype=np.float64).reshape(-1)
    j = (uf * m).astype(np.int32)
    j += v * m
    out = guide.take(j)
    todo = np.flatnonzero(out < 0)
    if todo.size:  # about 1% of the elements: binary search of their cdf row
        lo = -(out[todo].astype(np.int32)) - 1
        hi = np.full_like(lo, 255)  # cdf[v, 255] = 1 > u
        row = v[todo] * 256
        ut = uf[todo]
        flat_cdf = cdf.reshape(-1)
        for _ in range(8):  # the answer min{l : u < cdf[l]} stays in [lo, hi]
            mid = (lo + hi) >> 1
            up = ut >= flat_cdf.take(row + mid)
            lo = np.where(up, mid + 1, lo)
            hi = np.where(up, hi, mid)
        out[todo] = lo
    return out.astype(np.uint8).reshape(images.shape)


def shot_noise(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """out = clip(Poisson(lam * x) / lam). draws: {"counts": the Poisson counts (N, H, W, 3)}
    (the reference arithmetic), or {"u": uniforms in [0, 1) (N, H, W, 3)} for the sampler we use
    with a generator: the output level drawn by inversion of its exact distribution
    (`shot_levels`), which is much cheaper than Poisson sampling."""
    c = _select(
        {"cifar": [500, 250, 100, 75, 50], "imagenet": [60, 25, 12, 5, 3]},
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.shot_noise(images, c, rng, device, draws)
    if draws is not None and "counts" in draws:
        return _finish(draws["counts"] / c)
    return shot_levels(images, c, (draws or D.numpy_draws("shot_noise", rng, images.shape))["u"])


def impulse_noise(
    images, severity, rng=None, *, table="cifar", draws=None, device=None
):
    """scikit-image `random_noise(mode='s&p')`: per channel element, flipped with probability
    `amount`, and a flipped element is salt (1) with probability 0.5, else pepper (0).
    draws: {"u_flip", "u_salt"}: uniforms in [0, 1) (N, H, W, 3); flipped = u_flip < amount."""
    c = _select(
        {
            "cifar": [0.01, 0.02, 0.03, 0.05, 0.07],
            "imagenet": [0.03, 0.06, 0.09, 0.17, 0.27],
        },
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.impulse_noise(images, c, rng, device, draws)
    draws = draws or D.numpy_draws("impulse_noise", rng, images.shape)
    x = _to_unit(images)
    flipped = draws["u_flip"] < c
    salted = draws["u_salt"] < 0.5
    x[flipped & salted] = 1.0
    x[flipped & ~salted] = 0.0
    return _finish_temp(x)


def speckle_noise(
    images, severity, rng=None, *, table="cifar", draws=None, device=None
):
    """out = clip(x + x * sigma * z). draws: {"z": standard normals (N, H, W, 3)}."""
    c = _select(
        {
            "cifar": [0.06, 0.1, 0.12, 0.16, 0.2],
            "imagenet": [0.15, 0.2, 0.35, 0.45, 0.6],
        },
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.speckle_noise(images, c, rng, device, draws)
    z = (draws or D.numpy_draws("speckle_noise", rng, images.shape))["z"]
    x = _to_unit(images)
    y = c * z
    y *= x
    y += x  # x + x * (c * z), in place
    return _finish_temp(y)


# ----------------------------------------------------------------------------------------------
# blur


def gaussian_blur(
    images, severity, rng=None, *, table="cifar", draws=None, device=None
):
    """Gaussian filter over the two spatial axes, mode nearest, truncate 4. Deterministic."""
    c = _select(
        {"cifar": [0.4, 0.6, 0.7, 0.8, 1], "imagenet": [1, 2, 3, 4, 6]},
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.gaussian_blur(images, c, device)
    return _finish_temp(_gaussian(_to_unit(images), c))


def _reflect101(idx: np.ndarray, n: int) -> np.ndarray:
    """OpenCV BORDER_REFLECT_101 index mapping (gfedcb|abcdefgh|gfedcba)."""
    if n == 1:
        return np.zeros_like(idx)
    out = (idx < 0) | (idx >= n)
    if not out.any():  # the common case: nothing to fold
        return idx
    period = 2 * n - 2
    folded = np.abs(idx[out]) % period
    idx = idx.copy()
    idx[out] = np.where(folded >= n, period - folded, folded)
    return idx


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel (make_cifar_c.py `disk`): a normalised disk indicator on a 17x17 grid (radius <= 8) or
    (2r+1)^2 grid, blurred by OpenCV GaussianBlur (window 3x3 or 5x5, sigma alias_blur), as the
    reference does: OpenCV's own float32 filter, so the kernel is the reference's bit for bit."""
    import cv2

    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    return cv2.GaussianBlur(disk, ksize=(ksize, ksize), sigmaX=alias_blur)


def defocus_blur(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """Correlate each channel with disk_kernel(r, a), reflect-101 border (OpenCV filter2D). Deterministic."""
    c = _select(
        {
            "cifar": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
            "imagenet": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        },
        table,
        severity,
        images,
    )
    k = disk_kernel(*c).astype(np.float64)
    # Trim all-zero outer rings (the 17x17 grid is mostly zeros at CIFAR radii); the kernel is
    # symmetric, so the centre stays the anchor.
    while (
        k.shape[0] > 1
        and not k[0].any()
        and not k[-1].any()
        and not k[:, 0].any()
        and not k[:, -1].any()
    ):
        k = k[1:-1, 1:-1]
    if device is not None:
        return tb.defocus_blur(images, k, device)
    out = ndimage.correlate(
        _to_unit(images), k[None, :, :, None], mode="mirror"
    )  # mirror == reflect-101
    return _finish_temp(out)


def _glass_sources(h: int, w: int, d: int, offsets: np.ndarray) -> np.ndarray:
    """Flat source index per pixel after one pass of the reference's pixel loop.

    The loop visits rows h = H-d .. d+1 and, inside, columns W-d .. d+1 (both descending) and
    copies pixel (h+dy, w+dx) into (h, w). A source already visited holds its new value, so the
    value is found by following sources through visited pixels; this is pointer jumping, vectorised
    over images. offsets: (N, nh, nw, 2) ints (dx, dy) in scan order.
    """
    n = offsets.shape[0]
    rows = np.arange(h - d, d, -1)
    cols = np.arange(w - d, d, -1)
    src = np.broadcast_to(np.arange(h * w), (n, h * w)).copy()
    sy = rows[None, :, None] + offsets[..., 1]
    sx = cols[None, None, :] + offsets[..., 0]
    target = (rows[:, None] * w + cols[None, :]).reshape(-1)
    src_flat = (sy * w + sx).reshape(n, -1)
    src[:, target] = src_flat
    # visited-before(p) <=> p in loop region and scan position earlier <=> flat index larger
    in_region = np.zeros(h * w, dtype=bool)
    in_region[target] = True
    follow = np.zeros((n, h * w), dtype=bool)
    follow[:, target] = in_region[src_flat] & (src_flat > target[None, :])
    if not follow.any():
        return src
    ar = np.arange(h * w)[None, :]
    jump = np.where(follow, src, ar)
    rix = np.arange(n)[:, None]
    while True:
        nxt = jump[rix, jump]
        if np.array_equal(nxt, jump):
            break
        jump = nxt
    return src[rix, jump]


def glass_blur(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """Gaussian blur, uint8 truncation, `iterations` passes of the one-way pixel copy, Gaussian blur.

    draws: {"offsets": ints (N, iterations, H-2d, W-2d, 2) as (dx, dy) in the reference's scan
    order, each uniform in {-d, ..., d-1}}.
    """
    c = _select(
        {
            "cifar": [
                (0.05, 1, 1),
                (0.25, 1, 1),
                (0.4, 1, 1),
                (0.25, 1, 2),
                (0.4, 1, 2),
            ],
            "imagenet": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
        },
        table,
        severity,
        images,
    )
    sigma, d, iters = c
    n, h, w, _ = images.shape
    if device is not None:
        return tb.glass_blur(images, sigma, d, iters, rng, device, draws)
    offsets = (draws or D.numpy_draws("glass_blur", rng, images.shape, d=d, iterations=iters))["offsets"]
    x = (_gaussian(_to_unit(images), sigma) * 255).astype(np.uint8)
    for it in range(iters):
        # Quirk: the reference's tuple "swap" of two NumPy views is a one-way copy, because the
        # second assignment writes back the value just copied (docs/corruptions.md, quirks).
        src = _glass_sources(h, w, d, offsets[:, it].astype(np.int64))
        flat_src = (src + (np.arange(n) * (h * w))[:, None]).reshape(-1)
        x = np.take(x.reshape(n * h * w, 3), flat_src, axis=0).reshape(n, h, w, 3)
    return _finish_temp(_gaussian(x / 255.0, sigma))


def motion_blur(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """ImageMagick motion blur (radius, sigma) at angle U(-45, 45) degrees, one per image.
    draws: {"u_angle": uniforms in [0, 1) (N,)}."""
    c = _select(
        {
            "cifar": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
            "imagenet": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
        },
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.motion_blur(images, c[0], c[1], rng, device, draws)
    u = (draws or D.numpy_draws("motion_blur", rng, images.shape))["u_angle"]
    angle = -45.0 + 90.0 * np.asarray(u, dtype=np.float64)
    return motion_blur_im(images, c[0], c[1], angle)


def zoom_blur(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """Mean of the image and its clipped zooms (factors from float arange). Deterministic.

    The reference's arithmetic: x in float32; each zoom is SciPy's order-1 zoom, computed in
    float64 (the 4 bilinear taps of each output pixel, weighted and summed in SciPy's order) and
    rounded to float32; the zooms are added one by one into a float32 sum; then (x + sum) / (n + 1)
    in float32. One implementation for every device (torch_backend.zoom_blur; the CPU when device
    is None), identical to the reference bit for bit on CPU.
    """
    _select({"cifar": [1, 2, 3, 4, 5], "imagenet": [1, 2, 3, 4, 5]}, table, severity, images)
    return tb.zoom_blur(images, zoom_factors(table, severity), "cpu" if device is None else device)


# ----------------------------------------------------------------------------------------------
# weather


def rgb_to_gray_cv2(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float32 RGB -> (N, H, W) grey by OpenCV's own COLOR_RGB2GRAY, as the reference's
    snow (hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py). Its rounding is not a NumPy
    sum's (fused multiply-adds, in an order that depends on the OpenCV build: one ulp apart on ~20%
    of pixels, which flips the final truncation now and then; torch_backend.cv2_gray_order). The
    images stacked as rows make it one call; OpenCV converts row by row, so this equals one call
    per image."""
    import cv2

    n, h, w, _ = x.shape
    rows = np.ascontiguousarray(x).reshape(n * h, w, 3)
    return cv2.cvtColor(rows, cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def snow(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """Snow layer N(loc, scale) -> clipped zoom -> threshold -> uint8 truncation -> ImageMagick
    motion blur at U(-135, -45) degrees; image brightened towards 1.5*gray + 0.5 and the layer
    added twice (itself and rotated by 180 degrees).
    draws: {"z": standard normals (N, H, W), "u_angle": uniforms in [0, 1) (N,)}."""
    c = _select(
        {
            "cifar": [
                (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
                (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
            ],
            "imagenet": [
                (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
                (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
            ],
        },
        table,
        severity,
        images,
    )
    loc, scale, zoom, thresh, radius, sigma, blend = c
    n, h, w, _ = images.shape
    if device is not None:
        return tb.snow(images, c, rng, device, draws)
    draws = draws or D.numpy_draws("snow", rng, images.shape)
    layer = loc + scale * draws["z"]
    b = clipped_zoom_matrix(h, zoom)
    layer = b @ layer @ b.T
    layer[layer < thresh] = 0
    # Quirk: the layer is quantised to uint8 by truncation before the blur (docs/corruptions.md).
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    angle = -135.0 + 90.0 * np.asarray(draws["u_angle"], dtype=np.float64)
    blurred = motion_blur_im(layer8[..., None], radius, sigma, angle)[..., 0] / 255.0
    rotated = np.ascontiguousarray(
        blurred[:, ::-1, ::-1]
    )  # the layer rotated by 180 degrees
    # Planar per-channel arithmetic (broadcasting over a size-3 last axis is slow in NumPy);
    # the additions keep the reference's order: (x' + layer) + rotated layer.
    x = _to_unit(images, np.float32)
    lift = rgb_to_gray_cv2(x) * 1.5 + 0.5
    r, g, b = _planes(x)
    return np.stack(
        [
            _finish_temp(
                blend * ch + (1 - blend) * np.maximum(ch, lift) + blurred + rotated
            )
            for ch in (r, g, b)
        ],
        axis=-1,
    )


def frost(
    images,
    severity,
    rng=None,
    *,
    table="cifar",
    draws=None,
    frost_folder=None,
    device=None,
):
    """clip(a * X + b * F, 0, 255) on 0..255 values, F a random crop of a random frost texture.
    draws: {"index": ints in 0..4 (N,), "row": ints (N,), "col": ints (N,)} with row uniform in
    [0, H_f - H) and col in [0, W_f - W) of the chosen (CIFAR: 0.2-scaled) texture."""
    c = _select(
        {
            "cifar": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
            "imagenet": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        },
        table,
        severity,
        images,
    )
    n, h, w, _ = images.shape
    textures = load_frost_textures(table, frost_folder)
    if device is not None:
        return tb.frost(images, c[0], c[1], textures, rng, device, draws)
    shapes = [t.shape for t in textures]
    draws = draws or D.numpy_draws("frost", rng, images.shape, texture_shapes=shapes)
    crops = np.empty_like(images)
    index = np.asarray(draws["index"]).tolist()
    rows = np.asarray(draws["row"]).tolist()
    cols = np.asarray(draws["col"]).tolist()
    for i in range(
        n
    ):  # one slice copy per image (cheaper than fancy indexing at 32x32)
        r0, c0 = rows[i], cols[i]
        crops[i] = textures[index[i]][r0 : r0 + h, c0 : c0 + w]
    # Quirk: the weights multiply 0..255 values, no division by 255 (docs/corruptions.md).
    # The output is a function of the (image, texture) value pair: a 256 x 256 table made with
    # the reference expression (same dtypes), then one gather.
    lut = _frost_table(c[0], c[1])
    idx = images.astype(np.int32)
    idx <<= 8
    idx |= crops
    return lut.take(idx)


@functools.lru_cache(maxsize=16)
def _frost_table(a, b) -> np.ndarray:
    x = np.arange(256, dtype=np.uint8)
    lut = np.clip(a * x[:, None] + b * x[None, :], 0, 255).astype(np.uint8).reshape(-1)
    lut.setflags(write=False)
    return lut


def plasma_fractal(n_images: int, mapsize: int, decay: float, uniforms) -> np.ndarray:
    """Diamond-square height maps (N, mapsize, mapsize) in [0, 1] (make_cifar_c.py
    `plasma_fractal`, toroidal), vectorised over images.

    uniforms: list of arrays in [0, 1), three per level in draw order (squares, diamonds a,
    diamonds b), each (N, k, k) with k = mapsize / step (draws.fog_uniform_shapes).
    """
    a = np.zeros((n_images, mapsize, mapsize))
    step = mapsize
    wibble = 100.0
    draw_i = 0

    def wibbled_mean(s):
        nonlocal draw_i
        u = uniforms[draw_i]
        draw_i += 1
        return s / 4 + wibble * (-wibble + (wibble - -wibble) * u)

    while step >= 2:
        half = step // 2
        corners = a[:, 0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        a[:, half::step, half::step] = wibbled_mean(sq)
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        a[:, 0::step, half::step] = wibbled_mean(
            dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        )
        a[:, half::step, 0::step] = wibbled_mean(
            dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        )
        step //= 2
        wibble /= decay
    a -= a.min(axis=(1, 2), keepdims=True)
    return a / a.max(axis=(1, 2), keepdims=True)


def fog(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """clip((x + a * F) * M / (M + a)), F a plasma fractal (32 map for CIFAR, 256 cropped to 224).
    draws: {"uniforms": list of arrays as in fog_uniform_shapes}."""
    c = _select(
        {
            "cifar": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
            "imagenet": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
        },
        table,
        severity,
        images,
    )
    n, h, w, _ = images.shape
    mapsize = {"cifar": 32, "imagenet": 256}[table]
    if device is not None:
        return tb.fog(images, c[0], c[1], mapsize, rng, device, draws)
    uniforms = (draws or D.numpy_draws("fog", rng, images.shape, mapsize=mapsize))["uniforms"]
    fmap = plasma_fractal(n, mapsize, c[1], uniforms)
    x = _to_unit(images)
    # Quirk: M is the whole-image maximum taken before the fog is added (docs/corruptions.md).
    m = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + c[0] * fmap[:, :h, :w, None]
    return _finish_temp(x * m / (m + c[0]))


def brightness(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """HSV value + c, clipped. Deterministic."""
    c = _select(
        {"cifar": [0.05, 0.1, 0.15, 0.2, 0.3], "imagenet": [0.1, 0.2, 0.3, 0.4, 0.5]},
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.brightness(images, c, device)
    h, s, v = _rgb_to_hsv_planes(*_unit_planes(images))
    v = np.clip(v + c, 0, 1)
    return _hsv_to_rgb_u8(h, s, v)


def saturate(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """HSV saturation * scale + offset, clipped. Deterministic."""
    c = _select(
        {
            "cifar": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
            "imagenet": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
        },
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.saturate(images, c[0], c[1], device)
    h, s, v = _rgb_to_hsv_planes(*_unit_planes(images))
    s = np.clip(s * c[0] + c[1], 0, 1)
    return _hsv_to_rgb_u8(h, s, v)


def _spatter_water_mask(liquid8: np.ndarray) -> np.ndarray:
    """Water-mode distance mask of one uint8 layer, with OpenCV as the reference does (Canny,
    L2 distance transform mask 5, truncation at 20, box blurs, histogram equalisation and a
    saturating 8-bit filter). Returns float32 (H, W)."""
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "spatter (water mode, severities 1-3 of both tables) needs OpenCV: "
            "pip install opencv-python-headless"
        ) from err
    dist = 255 - cv2.Canny(liquid8, 50, 150)
    dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv2.equalizeHist(dist)
    ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    dist = cv2.filter2D(dist, cv2.CV_8U, ker)
    return cv2.blur(dist, (3, 3)).astype(np.float32)


def spatter(images, severity, rng=None, *, table="cifar", draws=None):
    """Liquid layer N(loc, scale) smoothed and thresholded; water (mode 0) or mud (mode 1).
    draws: {"z": standard normals (N, H, W)}. Water mode needs OpenCV (per-image loop)."""
    c = _select(
        {
            "cifar": [
                (0.62, 0.1, 0.7, 0.7, 0.5, 0),
                (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                (0.65, 0.1, 0.5, 0.68, 0.6, 1),
            ],
            "imagenet": [
                (0.65, 0.3, 4, 0.69, 0.6, 0),
                (0.65, 0.3, 3, 0.68, 0.6, 0),
                (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1),
                (0.67, 0.4, 1, 0.65, 1.5, 1),
            ],
        },
        table,
        severity,
        images,
    )
    loc, scale, sigma, thresh, intensity, mode = c
    n, h, w, _ = images.shape
    z = (draws or D.numpy_draws("spatter", rng, images.shape))["z"]
    x = _to_unit(images, np.float32)
    liquid = _gaussian(loc + scale * z, sigma)
    liquid[liquid < thresh] = 0
    if mode == 0:
        # Quirk: uint8 cast of 255*liquid, values above 255 wrap around (docs/corruptions.md).
        liquid8 = ((liquid * 255).astype(np.int64) & 255).astype(np.uint8)
        dist = np.stack([_spatter_water_mask(l8) for l8 in liquid8])
        m = liquid8 * dist
        mx = m.max(axis=(1, 2), keepdims=True)
        # Guard: the reference divides by a zero maximum (NaN image) when no liquid survives.
        m = np.where(mx > 0, m / np.where(mx > 0, mx, 1), 0).astype(
            np.float32
        ) * np.float32(intensity)
        colour = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=np.float32)
        return _finish(x + m[..., None] * colour)
    m = _gaussian((liquid > thresh).astype(np.float32), intensity)
    m[m < 0.8] = 0
    colour = np.array([63 / 255.0, 42 / 255.0, 20 / 255.0], dtype=np.float32)
    return _finish(x * (1 - m[..., None]) + colour * m[..., None])


# ----------------------------------------------------------------------------------------------
# digital


def contrast(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """(x - m) * c + m with m the per-channel spatial mean. Deterministic."""
    c = _select(
        {"cifar": [0.75, 0.5, 0.4, 0.3, 0.15], "imagenet": [0.4, 0.3, 0.2, 0.1, 0.05]},
        table,
        severity,
        images,
    )
    if device is not None:
        return tb.contrast(images, c, device)
    n = images.shape[0]
    m = channel_means(images).reshape(n, 3, 1)
    # Each output value is a function of (image, channel, input value): a (N, 3, 256) table
    # computed with the reference arithmetic, then one gather.
    lut = _finish((_UNIT_VALUES - m) * c + m)
    return _lut_per_channel(images, lut)


_UNIT_VALUES = (
    np.arange(256) / 255.0
)  # v / 255.0, exactly the values of _to_unit(images)


def _lut_per_channel(images: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """out[i, y, x, c] = lut[i, c, images[i, y, x, c]] for a uint8 table lut (N, 3, 256)."""
    n = images.shape[0]
    idx = images.astype(np.int32)
    idx += (np.arange(n * 3, dtype=np.int32) * 256).reshape(n, 1, 1, 3)
    return lut.reshape(-1).take(idx)


def warp_affine_cv(img: np.ndarray, m: np.ndarray, coords: str = "fixed") -> np.ndarray:
    """OpenCV warpAffine (INTER_LINEAR, BORDER_REFLECT_101, forward matrix) for float32 (N, H, W, C).

    coords "fixed": the classic OpenCV (2.x-4.10, the one that made the 2019 files) sampling:
    coordinates in fixed point with 10 bits, rounded to 1/32 pixel, bilinear weights from the
    32x32 float table. coords "float": unquantised coordinates, as OpenCV 5.0 computes them
    (agrees with cv2 5.0 to ~3e-6).
    """
    if coords not in ("fixed", "float"):
        raise ValueError(f"coords must be 'fixed' or 'float', got {coords!r}")
    _, h, w, _ = img.shape
    m = m.astype(np.float64)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    det = np.where(det != 0, 1.0 / np.where(det != 0, det, 1), 0.0)
    i00 = m[:, 1, 1] * det
    i11 = m[:, 0, 0] * det
    i01 = -m[:, 0, 1] * det
    i10 = -m[:, 1, 0] * det
    i02 = -i00 * m[:, 0, 2] - i01 * m[:, 1, 2]
    i12 = -i10 * m[:, 0, 2] - i11 * m[:, 1, 2]
    scale, rdelta = (
        1024,
        16,
    )  # AB_SCALE = 1 << 10; round_delta = AB_SCALE / INTER_TAB_SIZE / 2
    xs = np.arange(w, dtype=np.float64)[None, None, :]
    ys = np.arange(h, dtype=np.float64)[None, :, None]
    adelta = np.rint(i00[:, None, None] * xs * scale).astype(np.int64)
    bdelta = np.rint(i10[:, None, None] * xs * scale).astype(np.int64)
    x0 = (
        np.rint((i01[:, None, None] * ys + i02[:, None, None]) * scale).astype(np.int64)
        + rdelta
    )
    y0 = (
        np.rint((i11[:, None, None] * ys + i12[:, None, None]) * scale).astype(np.int64)
        + rdelta
    )
    if coords == "fixed":
        xq = (x0 + adelta) >> 5
        yq = (y0 + bdelta) >> 5
        sx, fx = xq >> 5, (xq & 31).astype(np.float32) / np.float32(32)
        sy, fy = yq >> 5, (yq & 31).astype(np.float32) / np.float32(32)
    else:
        xf = i00[:, None, None] * xs + i01[:, None, None] * ys + i02[:, None, None]
        yf = i10[:, None, None] * xs + i11[:, None, None] * ys + i12[:, None, None]
        sx, sy = np.floor(xf).astype(np.int64), np.floor(yf).astype(np.int64)
        fx, fy = (xf - sx).astype(np.float32), (yf - sy).astype(np.float32)
    return _bilinear_reflect101(img, sx, sy, fx, fy)


def _bilinear_reflect101(img, sx, sy, fx, fy) -> np.ndarray:
    """Bilinear taps (sx, sy), (sx + 1, sy), ... of float32 images (N, H, W, C) with reflect-101
    borders and float32 weights from (fx, fy), summed as OpenCV's C loop:
    t00 * w00 + t01 * w01 + t10 * w10 + t11 * w11."""
    n, h, w, ch = img.shape
    x0i, x1i = _reflect101(sx, w), _reflect101(sx + 1, w)
    y0i, y1i = _reflect101(sy, h), _reflect101(sy + 1, h)
    # Planar layout (C, N*H*W): weights broadcast over long contiguous rows, not a size-3 axis.
    planes = np.ascontiguousarray(np.moveaxis(img, -1, 0)).reshape(ch, -1)
    # Flat index of the top-left tap; the other three differ by the (reflected) steps.
    i00 = np.empty((n, h, w), dtype=np.intp)
    np.multiply(y0i, w, out=i00, casting="unsafe")
    i00 += x0i
    i00 += (np.arange(n, dtype=np.intp) * (h * w))[:, None, None]
    i00 = i00.reshape(-1)
    step_x = (x1i - x0i).reshape(-1)
    step_y = ((y1i - y0i) * w).reshape(-1)
    one = np.float32(1)
    gx, gy = one - fx, one - fy
    w00 = (gy * gx).reshape(-1)
    w01 = (gy * fx).reshape(-1)
    w10 = (fy * gx).reshape(-1)
    w11 = (fy * fx).reshape(-1)
    out = planes.take(i00, axis=1)
    out *= w00
    i = i00 + step_x
    t = planes.take(i, axis=1)
    t *= w01
    out += t
    i00 += step_y
    t = planes.take(i00, axis=1)
    t *= w10
    out += t
    i00 += step_x
    t = planes.take(i00, axis=1)
    t *= w11
    out += t
    return np.moveaxis(out.reshape(ch, n, h, w), 0, -1)


def _scipy_reflect_coord(c: np.ndarray, n: int) -> np.ndarray:
    """Fold a coordinate into [-0.5, n - 0.5] the way SciPy's 'reflect' (half-sample symmetric) mode does."""
    out = (c < -0.5) | (c > n - 0.5)
    if not out.any():  # the common case: nothing to fold
        return c
    period = 2 * n
    folded = np.mod(c[out] + 0.5, period) - 0.5
    c = c.copy()
    c[out] = np.where(folded > n - 0.5, period - 1 - folded, folded)
    return c


def map_coordinates_reflect(
    img: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """SciPy map_coordinates(order=1, mode='reflect') over the two spatial axes, batched:
    img (N, H, W, C), rows/cols (N, H, W) float64; the channel coordinate is the integer channel."""
    n, h, w, _ = img.shape
    r = _scipy_reflect_coord(rows, h)
    c = _scipy_reflect_coord(cols, w)
    r0 = np.floor(r)
    c0 = np.floor(c)
    tr = (r - r0).reshape(-1)
    tc = (c - c0).reshape(-1)
    ur, uc = 1 - tr, 1 - tc
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    r0 = np.maximum(r0, 0)
    c0 = np.maximum(c0, 0)
    # Planar layout (C, N*H*W) so the weights broadcast over long contiguous rows.
    ch = img.shape[-1]
    planes = np.ascontiguousarray(np.moveaxis(img, -1, 0)).reshape(ch, -1)
    i00 = (r0 * w + c0).reshape(n, -1)
    i00 += (np.arange(n) * (h * w))[:, None]
    i00 = i00.reshape(-1)
    step_c = (c1 - c0).reshape(-1)
    step_r = ((r1 - r0) * w).reshape(-1)
    # ur * (uc * t00 + tc * t01) + tr * (uc * t10 + tc * t11), evaluated in that order with
    # float32 samples promoted by the float64 weights (in place, the same roundings).
    top = planes.take(i00, axis=1) * uc
    top += planes.take(i00 + step_c, axis=1) * tc
    top *= ur
    i00 += step_r
    bottom = planes.take(i00, axis=1) * uc
    i00 += step_c
    bottom += planes.take(i00, axis=1) * tc
    bottom *= tr
    top += bottom
    return np.moveaxis(top.astype(img.dtype).reshape(ch, n, h, w), 0, -1)


def elastic_transform(
    images, severity, rng=None, *, table="cifar", draws=None, warp="fixed", device=None
):
    """Random affine (OpenCV) then a smooth random displacement field resampled bilinearly.
    warp: "fixed" (1/32-pixel coordinates of the OpenCV that made the released files) or "float"
    (OpenCV >= 5 behaviour); see warp_affine_cv.
    draws: {"u_affine": uniforms in [0, 1) (N, 3, 2), "u_dx", "u_dy": uniforms (N, H, W)}."""
    c = _select(
        {
            "cifar": [
                (32 * 0, 32 * 0, 32 * 0.08),
                (32 * 0.05, 32 * 0.2, 32 * 0.07),
                (32 * 0.08, 32 * 0.06, 32 * 0.06),
                (32 * 0.1, 32 * 0.04, 32 * 0.05),
                (32 * 0.1, 32 * 0.03, 32 * 0.03),
            ],
            # Quirk: ImageNet constants use 244, not 224 (docs/corruptions.md); CIFAR severity 1 has
            # alpha = 0, i.e. the random affine alone.
            "imagenet": [
                (244 * 2, 244 * 0.7, 244 * 0.1),
                (244 * 2, 244 * 0.08, 244 * 0.2),
                (244 * 0.05, 244 * 0.01, 244 * 0.02),
                (244 * 0.07, 244 * 0.01, 244 * 0.02),
                (244 * 0.12, 244 * 0.01, 244 * 0.02),
            ],
        },
        table,
        severity,
        images,
    )
    alpha, sigma, amax = c
    n, h, w, _ = images.shape
    if warp not in ("fixed", "float"):
        raise ValueError(f"warp must be 'fixed' or 'float', got {warp!r}")
    if device is not None:
        return tb.elastic_transform(images, alpha, sigma, amax, rng, device, draws, warp)
    draws = draws or D.numpy_draws("elastic_transform", rng, images.shape, displace=alpha != 0)
    x = _to_unit(images, np.float32)
    pts1 = np.broadcast_to(elastic_source_points(h, w), (n, 3, 2))
    pts2 = pts1 + (-amax + 2 * amax * draws["u_affine"]).astype(np.float32)
    x = warp_affine_cv(x, cv_affine_from_points(pts1, pts2), warp)
    if alpha == 0:
        # Zero displacement (CIFAR severity 1): the bilinear resampling at integer coordinates
        # returns its input exactly (weights 1 and 0), so it is skipped.
        return _finish(x)
    dx = (
        ndimage.gaussian_filter(
            -1 + 2 * draws["u_dx"], (0, sigma, sigma), mode="reflect", truncate=3
        )
        * alpha
    ).astype(np.float32)
    dy = (
        ndimage.gaussian_filter(
            -1 + 2 * draws["u_dy"], (0, sigma, sigma), mode="reflect", truncate=3
        )
        * alpha
    ).astype(np.float32)
    rows = np.arange(h)[None, :, None] + dy.astype(np.float64)
    cols = np.arange(w)[None, None, :] + dx.astype(np.float64)
    return _finish_temp(map_coordinates_reflect(x, rows, cols))


def pixelate(images, severity, rng=None, *, table="cifar", draws=None, device=None):
    """Pillow BOX resize to floor(size * c), then BOX back. Deterministic."""
    c = _select(
        {
            "cifar": [0.95, 0.9, 0.85, 0.75, 0.65],
            "imagenet": [0.6, 0.5, 0.4, 0.3, 0.25],
        },
        table,
        severity,
        images,
    )
    size = images.shape[1]
    # Quirk: int() truncates the small size (docs/corruptions.md).
    if device is not None:
        return tb.pixelate(images, int(size * c), device)
    return pil_box_resize_batched(pil_box_resize_batched(images, int(size * c)), size)


def _pil_box_width(x: np.ndarray, size: int) -> np.ndarray:
    """Pillow's horizontal BOX pass of every image: one resize of the images stacked vertically
    (a horizontal pass never mixes rows, so this is exactly the per-image pass)."""
    n, h, w, ch = x.shape
    if size == w or n == 0:
        return x
    tall = Image.fromarray(np.ascontiguousarray(x).reshape(n * h, w, ch))
    return np.asarray(tall.resize((size, n * h), Image.BOX)).reshape(n, h, size, ch)


def _pil_box_height(x: np.ndarray, size: int) -> np.ndarray:
    """Pillow's vertical BOX pass of every image: one resize of the images side by side."""
    n, h, w, ch = x.shape
    if size == h or n == 0:
        return x
    wide = Image.fromarray(
        np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(h, n * w, ch)
    )
    out = np.asarray(wide.resize((n * w, size), Image.BOX)).reshape(size, n, w, ch)
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))


def pil_box_resize_batched(images: np.ndarray, size: int) -> np.ndarray:
    """Pillow `resize((size, size), BOX)` of every uint8 RGB image (horizontal pass, then vertical),
    computed by Pillow itself on two large images (~4x faster than one call per image)."""
    return _pil_box_height(_pil_box_width(images, size), size)


def _jpeg_pil(images: np.ndarray, quality: int) -> np.ndarray:
    out = np.empty_like(images)
    for i, img in enumerate(
        images
    ):  # the reference path: one Pillow round trip per image
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return out


def _jpeg_torchvision(images: np.ndarray, quality: int) -> np.ndarray:
    """torchvision's batched libjpeg round trip: same defaults as Pillow (4:2:0, standard tables,
    baseline), byte-identical encodings in our tests, about 3x faster."""
    import torch

    with (
        warnings.catch_warnings()
    ):  # torchvision 0.29 deprecates its image codecs (still present)
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import decode_jpeg, encode_jpeg

        tensors = [t for t in torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()]
        decoded = decode_jpeg(encode_jpeg(tensors, quality=quality))
    return torch.stack(decoded).permute(0, 2, 3, 1).numpy()


def _jpeg_cv2(images: np.ndarray, quality: int, threads: int = 1) -> np.ndarray:
    """OpenCV's libjpeg-turbo round trip, one image at a time: the same defaults as Pillow (4:2:0,
    standard tables, baseline, islow DCT, fancy upsampling), equal pixels in our tests, about 1.5x
    faster than torchvision's and without importing torchvision (~2-4 s). threads > 1 splits the
    images over a thread pool (OpenCV releases the GIL while it codes)."""
    import cv2

    out = np.empty_like(images)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]

    def code(lo: int, hi: int) -> None:
        for i in range(lo, hi):  # OpenCV speaks BGR: flip channels on the way in and out
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(images[i, ..., ::-1]), params)
            if not ok:  # pragma: no cover - OpenCV without a JPEG codec
                raise RuntimeError("cv2.imencode('.jpg') failed")
            out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]

    bounds = np.linspace(0, len(images), max(1, min(threads, len(images))) + 1).astype(int)
    if len(bounds) == 2:
        code(0, len(images))
        return out
    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        for done in [pool.submit(code, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]:
            done.result()
    return out


_JPEG_BACKENDS = {"pil": _jpeg_pil, "cv2": _jpeg_cv2, "torchvision": _jpeg_torchvision}


def jpeg_compression(
    images,
    severity,
    rng=None,
    *,
    table="cifar",
    draws=None,
    backend="auto",
    device=None,
):
    """JPEG save at the given quality (Pillow defaults: 4:2:0, standard tables) and reload.
    Deterministic. backend: "pil" (the reference), "cv2" (OpenCV, per image), "torchvision"
    (batched), "auto" (cv2, else torchvision, else Pillow, whichever imports first), or
    "nvjpeg" (CUDA only, opt-in: torchvision's nvJPEG codes 4:4:4, without the reference's chroma
    subsampling, so its output is milder). The CPU codecs serve every device; on a CUDA device
    build they run on a thread per CPU core."""
    c = _select(
        {"cifar": [80, 65, 58, 50, 40], "imagenet": [25, 18, 15, 10, 7]},
        table,
        severity,
        images,
    )
    if backend not in ("auto", "nvjpeg", *_JPEG_BACKENDS):
        raise ValueError(
            f"backend must be 'auto', 'pil', 'cv2', 'torchvision' or 'nvjpeg', got {backend!r}"
        )
    cuda = device is not None and torch_device_type(device) == "cuda"
    if backend == "nvjpeg":
        if not cuda:
            raise ValueError(f"backend 'nvjpeg' needs a CUDA device, got device={device!r}")
        return tb.jpeg_compression(images, c, device) if images.shape[0] else images.copy()
    return _jpeg_cpu(images, c, backend, threads=(os.cpu_count() or 1) if cuda else 1)


def _jpeg_cpu(images: np.ndarray, c: int, backend: str = "auto", threads: int = 1) -> np.ndarray:
    if backend == "pil" or images.shape[0] == 0:
        return _jpeg_pil(images, c)
    if backend in ("auto", "cv2"):
        try:
            return _jpeg_cv2(images, c, threads)
        except (ImportError, RuntimeError):  # no OpenCV, or one without a JPEG codec
            if backend == "cv2":
                raise
    if backend == "auto":
        try:
            return _jpeg_torchvision(images, c)
        except (ImportError, TypeError, RuntimeError):  # codec missing: Pillow
            return _jpeg_pil(images, c)
    return _JPEG_BACKENDS[backend](images, c)


# ----------------------------------------------------------------------------------------------
# tables

CorruptionFn = Callable[..., np.ndarray]

# Benchmark order of the released files and of the mCE tables (hendrycks/robustness
# make_cifar_c.py): the 15 benchmark corruptions, then the 4 extra (validation) ones.
CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
}
ALL_CORRUPTIONS = tuple(CORRUPTIONS)
BENCHMARK_CORRUPTIONS = ALL_CORRUPTIONS[:15]
EXTRA_CORRUPTIONS = ALL_CORRUPTIONS[15:]


# Corruptions with a torch path (device=...): the same draws (draws.py) and the same arithmetic.
# All but spatter (its water mode is OpenCV per image). jpeg_compression keeps the reference's CPU
# codec on every device (a thread per core on CUDA builds); nvJPEG is its opt-in backend.
DEVICE_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "saturate",
)


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    rng=None,
    *,
    table: str = "cifar",
    device=None,
) -> np.ndarray:
    """Apply the named corruption. rng: per-image keys (augmix.rng.SampleKeys) or a NumPy
    Generator, for the random corruptions. With `device`, the corruptions in DEVICE_CORRUPTIONS run
    through torch on that device with the same draws; the others ignore it."""
    if name not in CORRUPTIONS:
        raise KeyError(
            f"unknown corruption {name!r}; expected one of {list(CORRUPTIONS)}"
        )
    if device is not None and name in DEVICE_CORRUPTIONS:
        return CORRUPTIONS[name](images, severity, rng, table=table, device=device)
    return CORRUPTIONS[name](images, severity, rng, table=table)
