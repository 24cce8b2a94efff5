"""Kernels and tables that both corruption backends use: the NumPy one (`functions`) and the torch
one (`torch_backend`). A leaf: it imports no other module of the package, so both backends import
it and neither imports the other's code for a shared piece.

What lives here is device-free setup arithmetic (operators as matrices, tap lists, lookup tables),
computed once with the library the reference used (SciPy, OpenCV, NumPy), so each backend applies
exactly the same numbers. Facts about the reference are collected in docs/corruptions.md.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage
from scipy.special import gammaln, xlogy

__all__ = [
    "HSV_PICK3",
    "PIL_PRECISION_BITS",
    "SHOT_BINS",
    "ZOOM_BLUR_FACTORS",
    "channel_means",
    "clipped_zoom_matrix",
    "cv_affine_from_points",
    "elastic_source_points",
    "pil_box_matrix",
    "scipy_zoom_matrix",
    "shot_level_tables",
    "torch_device_type",
    "zoom_factors",
    "zoom_taps",
]


def torch_device_type(device) -> str:
    """'cuda', 'cpu', ... of a device given as a string or torch.device (without importing torch
    for plain strings)."""
    if isinstance(device, str):
        return device.split(":")[0]
    return getattr(device, "type", str(device))


# ----------------------------------------------------------------------------------------------
# shot noise: the output level's exact distribution, for sampling by inversion

SHOT_BINS = 4096  # guide-table buckets per input value (a power of two: u * SHOT_BINS is exact)


@functools.lru_cache(maxsize=16)
def shot_level_tables(c: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF tables of the shot-noise output level for each input value.

    The output is L = uint8(clip(k / c, 0, 1) * 255) with k ~ Poisson(v / 255 * c), a function of
    the count alone, so for each input value v (0..255) the distribution of L over 0..255 is
    known in closed form. Returns (cdf, guide):

    * cdf: float64 (256, 256), cdf[v, l] = P(L <= l), with cdf[v, 255] = 1;
    * guide: int16 (256 * SHOT_BINS,), for u in bucket j = floor(u * M) the level
      min{l : cdf[v, l] > j / M} if no cdf value falls inside the bucket, else -(that level) - 1
      (then the level is found by a binary search of the cdf row).
    """
    k = np.arange(int(c))  # counts below c; k >= c saturates to level 255
    levels = (np.clip(k / c, 0, 1) * 255).astype(np.uint8)  # the reference's finish of counts / c
    lam = (np.arange(256) / 255.0) * c  # the reference's x * c
    with np.errstate(divide="ignore"):
        logp = xlogy(k[None, :], lam[:, None]) - lam[:, None] - gammaln(k + 1)[None, :]
    pmf = np.exp(logp)
    by_level = np.zeros((256, 256))
    np.add.at(by_level, (slice(None), levels), pmf)  # unbuffered: sums the counts of a level
    cdf = np.minimum(np.cumsum(by_level, axis=1), 1.0)
    cdf[:, 255] = 1.0
    m = SHOT_BINS
    edges = np.arange(m + 1) / m
    guide = np.empty((256, m), dtype=np.int16)
    for v in range(256):  # setup: 256 searchsorted calls, once per c
        lo = np.searchsorted(cdf[v], edges[:-1], side="right")
        hi = np.searchsorted(cdf[v], edges[1:], side="left")
        guide[v] = np.where(lo == hi, lo, -lo - 1)
    cdf.setflags(write=False)
    guide = guide.reshape(-1)
    guide.setflags(write=False)
    return cdf, guide


# ----------------------------------------------------------------------------------------------
# contrast: the per-channel means


def channel_means(images: np.ndarray) -> np.ndarray:
    """np.mean(images / 255.0, axis=(1, 2)) bit for bit, (N, 3) float64, about 4x faster.

    NumPy sums this strided reduction sequentially in pixel order; so does add.reduce over
    axis 0 of the pixel-major layout, which we get cheaply by transposing 3-byte pixels. The
    torch path uses these host means too: a device reduction sums in another order (torch's CPU
    sum cascades, CUDA's is a tree), which flipped a few output levels."""
    n, h, w, ch = images.shape
    pix = np.ascontiguousarray(images).reshape(n, h * w, ch).view(f"V{ch}")[..., 0]
    xt = np.ascontiguousarray(pix.T).view(np.uint8).reshape(h * w, n * ch) / 255.0
    return (np.add.reduce(xt, axis=0) / (h * w)).reshape(n, ch)


# ----------------------------------------------------------------------------------------------
# HSV (brightness, saturate)

# Hue sector -> (R, G, B) as indices into (v, m, p), where m = q in odd sectors and t in even ones:
# scikit-image hsv2rgb picks (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q) by sector.
HSV_PICK3 = ((0, 1, 2), (1, 0, 2), (2, 0, 1), (2, 1, 0), (1, 2, 0), (0, 2, 1))


# ----------------------------------------------------------------------------------------------
# clipped zoom (zoom blur, snow)


def scipy_zoom_matrix(size: int, factor: float) -> np.ndarray:
    """1-D operator of SciPy `ndimage.zoom(order=1)` (default grid_mode=False), built by zooming
    the identity, so it is SciPy's own arithmetic. Shape (round(size*factor), size)."""
    return ndimage.zoom(np.eye(size), (factor, 1), order=1)


def clipped_zoom_matrix(h: int, factor: float) -> np.ndarray:
    """The reference's clipped zoom (crop the centre ceil(h / factor) rows, zoom them by `factor`,
    trim the result back to h; hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py
    `clipped_zoom`) as an (h, h) matrix B: zoom(X) = B @ X @ B.T per channel."""
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    a = scipy_zoom_matrix(ch, factor)
    trim = (a.shape[0] - h) // 2
    b = np.zeros((h, h))
    b[:, top : top + ch] = a[trim : trim + h]
    return b


# (start, stop, step) of the float arange of zoom factors per severity
# (hendrycks/robustness make_cifar_c.py and make_imagenet_c.py, `zoom_blur`).
ZOOM_BLUR_FACTORS = {
    "cifar": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],
    "imagenet": [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)],
}


def zoom_factors(table: str, severity: int) -> np.ndarray:
    start, stop, step = ZOOM_BLUR_FACTORS[table][severity - 1]
    # Quirk: float arange, not linspace; CIFAR severity 1 includes its stop 1.06, and 1.0 is always
    # included so the clean image is counted twice (docs/corruptions.md, quirks).
    return np.arange(start, stop, step)


def zoom_taps(h: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The clipped zoom of an (h, h) image as 4 taps per output pixel: source pixel indices
    (h*h, 4) into the row-major image and weights (h*h, 4), in SciPy's order (row tap outer), each
    weight the product of the two axes' bilinear weights (zero-weight taps repeat a real index)."""
    b = clipped_zoom_matrix(h, factor)
    idx, w = np.zeros((h, 2), np.int64), np.zeros((h, 2))
    for i, row in enumerate(b):
        nz = np.flatnonzero(row)
        if not 1 <= len(nz) <= 2:  # a zoom in by >= 1 interpolates between at most 2 neighbours
            raise ValueError(f"zoom factor {factor}: output row {i} has {len(nz)} taps")
        idx[i], w[i, : len(nz)] = nz[[0, -1]], row[nz]
    taps = (idx[:, None, :, None] * h + idx[None, :, None, :]).reshape(h * h, 4)
    weights = (w[:, None, :, None] * w[None, :, None, :]).reshape(h * h, 4)
    return taps, weights


# ----------------------------------------------------------------------------------------------
# elastic transform: the random affine


def elastic_source_points(h: int, w: int) -> np.ndarray:
    """The three float32 points the reference's random affine moves (centre +- a third of the
    side; hendrycks/robustness make_cifar_c.py `elastic_transform`), shape (3, 2)."""
    center = np.float32([h, w]) // 2
    square = min(h, w) // 3
    return np.float32([center + square, [center[0] + square, center[1] - square], center - square])


def cv_affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """OpenCV getAffineTransform for batches: (N, 3, 2) float32 points -> (N, 2, 3) float64."""
    n = src.shape[0]
    a = np.zeros((n, 6, 6))
    b = np.zeros((n, 6))
    s = src.astype(np.float64)
    for i in range(3):
        a[:, 2 * i, 0:2] = s[:, i]
        a[:, 2 * i, 2] = 1
        a[:, 2 * i + 1, 3:5] = s[:, i]
        a[:, 2 * i + 1, 5] = 1
        b[:, 2 * i] = dst[:, i, 0]
        b[:, 2 * i + 1] = dst[:, i, 1]
    return np.linalg.solve(a, b[..., None])[..., 0].reshape(n, 2, 3)


# ----------------------------------------------------------------------------------------------
# pixelate: Pillow's BOX resampling

PIL_PRECISION_BITS = 32 - 8 - 2  # Pillow Resample.c PRECISION_BITS


def pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BOX resampling coefficients (Resample.c precompute_coeffs), in 8-bit fixed point,
    as an integer (out_size, in_size) matrix."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    out = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):  # tiny setup loop over output positions (<= 224)
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        pos = (np.arange(xmin, xmax) - center + 0.5) / filterscale
        k = ((pos > -0.5) & (pos <= 0.5)).astype(np.float64)
        if k.sum() != 0:
            k /= k.sum()
        out[xx, xmin:xmax] = (0.5 + k * (1 << PIL_PRECISION_BITS)).astype(np.int64)
    return out
