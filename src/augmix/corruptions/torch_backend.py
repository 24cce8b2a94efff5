"""Torch implementations of the corruptions, batched, for a GPU (or CPU torch) device.

Selected with ``device=...`` on the functions in `functions.py`, which keep the severity tables and
pass the chosen parameters here (all corruptions but spatter, whose water mode is OpenCV per
image). zoom_blur has only this implementation, which the NumPy path runs on the CPU. Shared
setup (operators, tap lists, tables) comes from `kernels`, the draws from `draws`; this module
imports neither `functions` nor anything that imports it.

The arithmetic is the reference's (float64 where it is float64, float32 where it is float32), and
the draws are the NumPy path's (the same per-image keys and streams), so the results equal the
NumPy path: bit for bit on CPU torch for every corruption here; on CUDA up to float summation order
in the filters and matrix products (the blurs, snow's zoom: rare one-level truncation flips) and up
to the last bit of the normals' log/cos. JPEG stays on the CPU
codec on every device (nvJPEG is opt-in: it does not subsample chroma as the reference does).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from . import draws as D
from .imagemagick import motion_blur_kernel, motion_blur_offsets
from .kernels import (
    HSV_PICK3,
    PIL_PRECISION_BITS,
    SHOT_BINS,
    channel_means,
    clipped_zoom_matrix,
    cv_affine_from_points,
    elastic_source_points,
    pil_box_matrix,
    shot_level_tables,
    zoom_taps,
)

__all__ = [
    "brightness",
    "contrast",
    "defocus_blur",
    "div",
    "elastic_transform",
    "fog",
    "frost",
    "gaussian_blur",
    "gaussian_noise",
    "glass_blur",
    "host_pieces",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "saturate",
    "shot_noise",
    "snow",
    "speckle_noise",
    "to_device",
    "zoom_blur",
]


def div(x: torch.Tensor, d: float) -> torch.Tensor:
    """x / d, rounded as a true division on every device. CUDA divides a floating tensor by a
    Python number (or a CPU scalar) as a multiplication by the number's reciprocal (ATen
    BinaryDivTrueKernel.cu, "may lose one bit"): 24 of the 256 grey levels k then give
    trunc(255 * k / 255) = k - 1. A divisor tensor on x's device keeps NumPy's quotient."""
    return x / torch.tensor(d, dtype=x.dtype, device=x.device)


def to_device(images: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device)


def _finish(x: torch.Tensor) -> np.ndarray:
    """clip to [0, 1], times 255, uint8 truncation (the reference's np.uint8 cast)."""
    return (x.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def _unit(images: np.ndarray, device) -> torch.Tensor:
    return div(to_device(images, device).to(torch.float64), 255.0)


def _drawn(name: str, rng, draws, images, device, **params) -> dict:
    """The corruption's draws: the given dict (arrays or tensors, e.g. a test's), else made from
    the per-image keys `rng` on `device` by its spec in draws.py."""
    if draws is not None:
        return draws
    return D.torch_draws(name, rng, images.shape, device, **params)


def _on(value, device, dtype=None) -> torch.Tensor:
    """One drawn value as a tensor on `device` (NumPy arrays and tensors alike)."""
    t = value if torch.is_tensor(value) else torch.from_numpy(np.asarray(value))
    return t.to(device=device, dtype=dtype)


def gaussian_noise(images, c, rng, device, draws=None):
    z = _on(_drawn("gaussian_noise", rng, draws, images, device)["z"], device, torch.float64)
    return _finish(_unit(images, device) + c * z)


def speckle_noise(images, c, rng, device, draws=None):
    z = _on(_drawn("speckle_noise", rng, draws, images, device)["z"], device, torch.float64)
    x = _unit(images, device)
    return _finish(x + x * (c * z))


def shot_noise(images, c, rng, device, draws=None):
    """functions.shot_noise: Poisson counts if given ("counts", the reference arithmetic), else the
    output levels by inversion of uniforms ("u"), as functions.shot_levels."""
    if draws is not None and "counts" in draws:
        return _finish(div(_on(draws["counts"], device, torch.float64), c))
    u = _on(_drawn("shot_noise", rng, draws, images, device)["u"], device, torch.float64)
    return shot_levels(to_device(images, device), c, u).cpu().numpy()


@functools.lru_cache(maxsize=16)
def _shot_tables(c: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    cdf, guide = shot_level_tables(c)
    return (torch.from_numpy(cdf.reshape(-1).copy()).to(device),
            torch.from_numpy(guide.astype(np.int64)).to(device))


def shot_levels(images: torch.Tensor, c: int, u: torch.Tensor) -> torch.Tensor:
    """functions.shot_levels on the device: the guide table's level, or for the buckets that hold a
    cdf step (about 1%) a binary search of the cdf row; the same comparisons, so the same levels."""
    cdf, guide = _shot_tables(int(c), str(images.device))
    v = images.reshape(-1).to(torch.int64)
    uf = u.reshape(-1)
    out = guide[(uf * SHOT_BINS).to(torch.int64) + v * SHOT_BINS]
    todo = torch.nonzero(out < 0).reshape(-1)
    if todo.numel():
        lo = -out[todo] - 1
        hi = torch.full_like(lo, 255)  # cdf[v, 255] = 1 > u
        row = v[todo] * 256
        ut = uf[todo]
        for _ in range(8):  # the answer min{l : u < cdf[l]} stays in [lo, hi]
            mid = (lo + hi) >> 1
            up = ut >= cdf[row + mid]
            lo = torch.where(up, mid + 1, lo)
            hi = torch.where(up, hi, mid)
        out[todo] = lo
    return out.to(torch.uint8).reshape(images.shape)


def impulse_noise(images, c, rng, device, draws=None):
    d = _drawn("impulse_noise", rng, draws, images, device)
    x = _unit(images, device)
    uf, us = _on(d["u_flip"], device), _on(d["u_salt"], device)
    flipped = uf < c
    salted = us < 0.5
    x = torch.where(flipped & salted, torch.ones_like(x), x)
    x = torch.where(flipped & ~salted, torch.zeros_like(x), x)
    return _finish(x)


def _gauss_taps(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """SciPy gaussian_filter1d weights (radius int(truncate*sigma + 0.5)), computed with SciPy's
    own expression (`_gaussian_kernel1d`), so they are the same floats."""
    radius = int(truncate * float(sigma) + 0.5)
    xs = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 / (sigma * sigma) * xs**2)
    return torch.from_numpy(w / w.sum())


def _filter_axis(
    x: torch.Tensor, taps: torch.Tensor, dim: int, mode: str
) -> torch.Tensor:
    """1-D correlation along `dim` of (N, H, W, C) with 'nearest' (edge), 'reflect' (SciPy's
    half-sample symmetric) or 'mirror' (reflect-101) borders."""
    r = (taps.numel() - 1) // 2
    n = x.shape[dim]
    idx = torch.arange(-r, n + r, device=x.device)
    if mode == "nearest":
        idx = idx.clamp(0, n - 1)
    elif (
        mode == "reflect"
    ):  # SciPy 'reflect': half-sample symmetric (d c b a | a b c d | d c b a)
        idx = torch.remainder(idx, 2 * n)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
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


def _gaussian_t(x: torch.Tensor, sigma) -> torch.Tensor:
    """skimage gaussian(multichannel): separable Gaussian over H and W, mode nearest, truncate 4."""
    taps = _gauss_taps(sigma)
    return _filter_axis(_filter_axis(x, taps, 1, "nearest"), taps, 2, "nearest")


def gaussian_blur(images, sigma, device):
    return _finish(_gaussian_t(_unit(images, device), sigma))


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
    x = (_gaussian_t(_unit(images, device), sigma) * 255).to(torch.uint8)
    d_ = _drawn("glass_blur", rng, draws, images, device, d=d, iterations=iters)
    offsets = _on(d_["offsets"], device, torch.int64)
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
    return _finish(_gaussian_t(div(x.to(torch.float64), 255.0), sigma))


def motion_blur(images, radius, sigma, rng, device, draws=None):
    """ImageMagick motion blur (see imagemagick.py) at angles U(-45, 45) degrees, one per image,
    Q16 + PNG quantisation."""
    u = _on(_drawn("motion_blur", rng, draws, images, device)["u_angle"], "cpu", torch.float64)
    angles = -45.0 + 90.0 * u.numpy()
    return _motion_blur_t(to_device(images, device), radius, sigma, angles).cpu().numpy()


def _motion_blur_t(x: torch.Tensor, radius, sigma, angles_deg) -> torch.Tensor:
    """motion_blur on a uint8 tensor (N, H, W, C) already on the device; returns uint8."""
    device = x.device
    n, h, w, c = x.shape
    k = motion_blur_kernel(radius, sigma)
    if torch.is_tensor(angles_deg):
        angles_deg = angles_deg.cpu().numpy()
    dx, dy = motion_blur_offsets(
        np.asarray(angles_deg, dtype=np.float64).reshape(-1), k.size
    )
    x = x.to(torch.float64) * 257.0
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
        torch.div(q, 257.0, rounding_mode="floor").to(torch.uint8).reshape(n, h, w, c)
    )


_ZOOM_TAPS: dict = {}
# Pixels per slice of the CPU zoom blur: ~1 MB of float64, so the gathers run in cache.
_ZOOM_SLICE_VALUES = 2**17


def zoom_blur(images, factors, device):
    """functions.zoom_blur, for every device (the NumPy path runs it on the CPU): x in float32;
    each clipped zoom as 4 bilinear taps per output pixel (kernels.zoom_taps), weighted and summed
    in float64 in SciPy's order, rounded to float32 and added to a float32 sum one by one; then
    (x + sum) / (len(factors) + 1) in float32."""
    n, h, w, _ = images.shape
    dev = torch.device(device)
    ops = []
    for z in factors:
        key = (h, float(z), str(dev))
        if key not in _ZOOM_TAPS:
            taps, weights = zoom_taps(h, float(z))
            identity = bool((weights[:, 0] == 1).all()) and np.array_equal(taps[:, 0], np.arange(h * w))
            # None: the zoom is the identity (factor 1, and 1.01 at 32 px), exactly x in float32
            _ZOOM_TAPS[key] = None if identity else (torch.from_numpy(taps.T.copy()).to(dev),
                                                     torch.from_numpy(weights.T.copy()).unsqueeze(-1).to(dev))
        ops.append(_ZOOM_TAPS[key])
    x = div(to_device(images, dev).to(torch.float32), 255.0)
    pixels = x.permute(1, 2, 0, 3).reshape(h * w, n * 3)  # (pixel, image x channel)
    step = pixels.shape[1] if dev.type == "cuda" else max(1, _ZOOM_SLICE_VALUES // (h * w))
    total = torch.empty_like(pixels)
    for c0 in range(0, pixels.shape[1], step):
        src = pixels[:, c0 : c0 + step].to(torch.float64)
        acc = torch.zeros(src.shape, dtype=torch.float32, device=dev)
        zoom, tap = torch.empty_like(src), torch.empty_like(src)
        for op in ops:
            if op is None:
                acc += pixels[:, c0 : c0 + step]
                continue
            taps, weights = op
            torch.index_select(src, 0, taps[0], out=zoom)
            zoom.mul_(weights[0])
            for k in range(1, 4):  # multiply, then add: no fused multiply-add, as SciPy
                torch.index_select(src, 0, taps[k], out=tap)
                zoom.add_(tap.mul_(weights[k]))
            acc += zoom.to(torch.float32)  # round each zoom to float32 before adding (the reference's +=)
        total[:, c0 : c0 + step] = acc
    y = div(x + total.reshape(h, w, n, 3).permute(2, 0, 1, 3), len(factors) + 1)
    return (y.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# helpers for the weather and digital corruptions


def _finish_t(x: torch.Tensor) -> torch.Tensor:
    """_finish without leaving the device: clip, times 255, uint8 truncation."""
    return (x.clamp(0, 1) * 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# digital


def contrast(images, c, device):
    """(x - m) * c + m, m the per-channel spatial mean in NumPy's summation order (computed on the
    host: kernels.channel_means), so every device gives the NumPy path's bytes."""
    x = _unit(images, device)
    m = torch.from_numpy(channel_means(images)).to(device)[:, None, None, :]
    return _finish((x - m) * c + m)


def _rgb_to_hsv(x: torch.Tensor):
    """functions._rgb_to_hsv_planes in torch: the same float operations, elementwise."""
    r, g, b = x.unbind(-1)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    flat = delta == 0
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    s = torch.where(flat, zero, delta / v)
    is_b = b == v
    is_g = g == v
    num = torch.where(is_b, r - g, torch.where(is_g, b - r, g - b))
    off = torch.where(
        is_b,
        torch.full((), 4.0, dtype=x.dtype, device=x.device),
        torch.where(is_g, torch.full((), 2.0, dtype=x.dtype, device=x.device), zero),
    )
    h = div(num / delta + off, 6.0)
    h = torch.where(h < 0, h + 1.0, h)  # % 1.0 for h in [-1/6, 5/6]
    h = torch.where(flat, zero, h)
    return h, s, v




def _hsv_to_rgb_u8(h, s, v) -> torch.Tensor:
    """functions._hsv_to_rgb_u8 in torch: finish v, m, p, then pick per pixel by hue sector."""
    h6 = h * 6
    hi = torch.floor(h6)
    f = h6 - hi
    p = v * (1 - s)
    sector = hi.to(torch.int64)
    sector = torch.where(sector >= 6, sector - 6, sector)
    odd = (sector % 2) == 1
    m = v * (1 - torch.where(odd, f, 1 - f) * s)
    planes = torch.stack([_finish_t(v), _finish_t(m), _finish_t(p)], dim=-1)
    pick = torch.tensor(HSV_PICK3, device=h.device)[sector]
    return torch.gather(planes, -1, pick)


def brightness(images, c, device):
    h, s, v = _rgb_to_hsv(_unit(images, device))
    return _hsv_to_rgb_u8(h, s, (v + c).clamp(0, 1)).cpu().numpy()


def saturate(images, scale, offset, device):
    h, s, v = _rgb_to_hsv(_unit(images, device))
    return _hsv_to_rgb_u8(h, (s * scale + offset).clamp(0, 1), v).cpu().numpy()


def _pil_box_pass(x: torch.Tensor, mat: np.ndarray, dim: int) -> torch.Tensor:
    """One Pillow BOX pass along `dim` of float64 (N, H, W, C) holding uint8 values: integer
    fixed-point arithmetic done exactly in float64 (all sums are integers below 2**53)."""
    bits = PIL_PRECISION_BITS
    m = torch.from_numpy(mat.astype(np.float64)).to(x.device)
    acc = torch.movedim(torch.movedim(x, dim, -1) @ m.T, -1, dim)
    acc = torch.floor((acc + (1 << (bits - 1))) / (1 << bits))
    return acc.clamp(0, 255)


def pixelate(images, small, device):
    """Pillow BOX resize to `small` and back (horizontal pass, then vertical, each rounded)."""
    x = to_device(images, device).to(torch.float64)
    size = x.shape[1]
    for a, b in ((size, small), (small, size)):
        if a != b:
            mat = pil_box_matrix(a, b)
            x = _pil_box_pass(_pil_box_pass(x, mat, 2), mat, 1)
    return x.to(torch.uint8).cpu().numpy()


def host_pieces(pieces: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 1-D tensors `pieces` on the host, copied in one transfer: one sync per batch instead of
    one per image (8192 at 32x32). The results are views of that one copy, equal to the pieces."""
    sizes = [int(p.numel()) for p in pieces]
    return list(torch.cat(pieces).cpu().split(sizes)) if pieces else []


def jpeg_compression(images, quality, device):
    """JPEG round trip with torchvision's nvJPEG encoder and decoder on a CUDA device, batched.
    Opt-in only (functions.jpeg_compression backend "nvjpeg"): it codes 4:4:4 where the reference's
    Pillow subsamples chroma 4:2:0, and its DCT and upsampling differ from libjpeg."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    dev = torch.device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        x = to_device(images, dev).permute(0, 3, 1, 2).contiguous()
        data = encode_jpeg(list(x), quality=int(quality))
        # decode_jpeg takes the encoded bytes on the host
        out = decode_jpeg(host_pieces(data), mode=ImageReadMode.RGB, device=dev)
    return torch.stack(out).permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# weather


def frost(images, a, b, textures, rng, device, draws=None):
    """clip(a * X + b * F, 0, 255), F a crop of one of the textures per image (gathered from a
    zero-padded stack of the five textures kept on the device)."""
    n, h, w, _ = images.shape
    key = (tuple(t.shape for t in textures), id(textures[0]), str(torch.device(device)))
    stack = _FROST_CACHE.get(key)
    if stack is None:
        hm = max(t.shape[0] for t in textures)
        wm = max(t.shape[1] for t in textures)
        pad = np.zeros((len(textures), hm, wm, 3), dtype=np.uint8)
        for i, t in enumerate(textures):
            pad[i, : t.shape[0], : t.shape[1]] = t
        sizes = torch.tensor([t.shape[:2] for t in textures], device=device)
        stack = (torch.from_numpy(pad).to(device), sizes)
        _FROST_CACHE.clear()
        _FROST_CACHE[key] = stack
    tex, sizes = stack
    d = _drawn("frost", rng, draws, images, device, texture_shapes=[t.shape for t in textures])
    index, row, col = (_on(d[k], device, torch.int64) for k in ("index", "row", "col"))
    ar_h = torch.arange(h, device=device)
    ar_w = torch.arange(w, device=device)
    crops = tex[
        index[:, None, None],
        row[:, None, None] + ar_h[None, :, None],
        col[:, None, None] + ar_w[None, None, :],
    ]
    x = to_device(images, device).to(torch.float64)
    out = (a * x + b * crops.to(torch.float64)).clamp(0, 255)
    return out.to(torch.uint8).cpu().numpy()


_FROST_CACHE: dict = {}


def plasma_fractal(n, mapsize, decay, uniforms, device) -> torch.Tensor:
    """functions.plasma_fractal in torch (same draws in the same order, same float operations)."""
    a = torch.zeros((n, mapsize, mapsize), dtype=torch.float64, device=device)
    step = mapsize
    wibble = 100.0
    draw_i = 0

    def wibbled_mean(sq):
        nonlocal draw_i
        u = _on(uniforms[draw_i], device, torch.float64)
        draw_i += 1
        return sq / 4 + wibble * (-wibble + (wibble - -wibble) * u)

    while step >= 2:
        half = step // 2
        corners = a[:, 0::step, 0::step]
        sq = corners + torch.roll(corners, -1, dims=1)
        sq = sq + torch.roll(sq, -1, dims=2)
        a[:, half::step, half::step] = wibbled_mean(sq)
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        a[:, 0::step, half::step] = wibbled_mean(
            dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        )
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        a[:, half::step, 0::step] = wibbled_mean(
            dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        )
        step //= 2
        wibble /= decay
    a = a - a.amin(dim=(1, 2), keepdim=True)
    return a / a.amax(dim=(1, 2), keepdim=True)


def fog(images, c0, decay, mapsize, rng, device, draws=None):
    n, h, w, _ = images.shape
    uniforms = _drawn("fog", rng, draws, images, device, mapsize=mapsize)["uniforms"]
    fmap = plasma_fractal(n, mapsize, decay, uniforms, device)
    x = _unit(images, device)
    m = x.amax(dim=(1, 2, 3), keepdim=True)  # before the fog is added (quirk)
    x = x + c0 * fmap[:, :h, :w, None]
    return _finish(x * m / (m + c0))


def _fma32_t(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """fl32(a * b + c) with one rounding (a fused multiply-add) for float32 tensors, on any device.
    a * b is exact in float64 (24 + 24 significant bits); the float64 sum is made round-to-odd
    (its error by TwoSum; an inexact even result steps to its odd neighbour towards the exact
    sum), and round-to-odd at 53 bits then rounded to 24 is the correctly rounded sum."""
    p = a.double() * b.double()
    c = c.double()
    s = p + c
    bv = s - p
    err = (p - (s - bv)) + (c - bv)
    even = (s.view(torch.int64) & 1) == 0
    inf = torch.full_like(s, float("inf"))
    towards = torch.where(err > 0, inf, -inf)
    s = torch.where((err != 0) & even, torch.nextafter(s, towards), s)
    return s.float()


def _gray_ipp(r, g, b, c):
    return _fma32_t(b, c[2], _fma32_t(r, c[0], g * c[1]))


def _gray_opencv_simd(r, g, b, c):
    return _fma32_t(b, c[2], _fma32_t(g, c[1], r * c[0]))


def _gray_sum(r, g, b, c):
    return r * c[0] + g * c[1] + b * c[2]


# How OpenCV's float32 COLOR_RGB2GRAY rounds depends on its build and the CPU (measured against
# cv2 at widths 32 and 224, IPP on and off): the IPP path (the opencv-python 5.1 wheel, AVX-512
# dispatch) fuses g*0.587 -> +r*0.299 -> +b*0.114; OpenCV's own vector loop with FMA3
# (opencv/opencv modules/imgproc/src/color_rgb.simd.hpp, RGB2Gray<float>) fuses r -> g -> b; its
# scalar loop and builds without FMA sum three rounded products. One ulp apart on ~20% of pixels.
_GRAY_ORDERS = {"ipp": _gray_ipp, "opencv_simd": _gray_opencv_simd, "sum": _gray_sum}


@functools.lru_cache(maxsize=1)
def cv2_gray_order() -> str:
    """The name in _GRAY_ORDERS that equals this machine's cv2.cvtColor(COLOR_RGB2GRAY) on a probe
    of 8192 random triples k/255 in rows 64 wide (the one with the fewest differences if none is
    equal, on a build not met yet; the tests against cv2 then fail and say so)."""
    import cv2

    probe = np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)
    x = probe.astype(np.float32) / np.float32(255.0)
    ref = torch.from_numpy(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY))
    planes = torch.from_numpy(x).unbind(-1)
    coeffs = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)
    misses = {k: int((f(*planes, coeffs) != ref).sum()) for k, f in _GRAY_ORDERS.items()}
    return min(misses, key=misses.get)


def rgb_to_gray_cv2_t(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """functions.rgb_to_gray_cv2 on float32 planes on any device: OpenCV's COLOR_RGB2GRAY in the
    rounding order this machine's cv2 uses (cv2_gray_order); bit for bit on rows whose width is a
    multiple of 8 (32 and 224; the IPP path rounds some tail columns of other widths otherwise)."""
    coeffs = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=r.device)
    return _GRAY_ORDERS[cv2_gray_order()](r, g, b, coeffs)


def snow(images, params, rng, device, draws=None):
    """Snow (functions.snow) in torch: the layer's clipped zoom as two float64 matrix products,
    the ImageMagick motion blur of the uint8 layer, the float32 blend of the reference."""
    loc, scale, zoom, thresh, radius, sigma, blend = params
    n, h, w, _ = images.shape
    d = _drawn("snow", rng, draws, images, device)
    z, u = _on(d["z"], device, torch.float64), _on(d["u_angle"], device, torch.float64)
    layer = loc + scale * z
    b = torch.from_numpy(clipped_zoom_matrix(h, zoom)).to(device)
    layer = b @ layer @ b.T
    layer = torch.where(layer < thresh, torch.zeros_like(layer), layer)
    layer8 = (layer.clamp(0, 1) * 255).to(torch.uint8)
    angle = -135.0 + 90.0 * u
    blurred = _motion_blur_t(layer8[..., None], radius, sigma, angle)[..., 0]
    blurred = div(blurred.to(torch.float64), 255.0)
    rotated = torch.flip(blurred, dims=(1, 2))
    x = div(to_device(images, device).to(torch.float32), 255.0)
    f32 = {"dtype": torch.float32, "device": device}
    r, gg, bb = x.unbind(-1)
    lift = rgb_to_gray_cv2_t(r, gg, bb) * torch.tensor(1.5, **f32) + torch.tensor(0.5, **f32)
    wb = torch.tensor(blend, **f32)
    wl = torch.tensor(1 - blend, **f32)
    out = [
        _finish_t(wb * ch + wl * torch.maximum(ch, lift) + blurred + rotated)
        for ch in (r, gg, bb)
    ]
    return torch.stack(out, dim=-1).cpu().numpy()


# ----------------------------------------------------------------------------------------------
# elastic transform


def _reflect101_t(idx: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n - 2
    folded = idx.abs() % period
    return torch.where(folded >= n, period - folded, folded)


def _bilinear_reflect101_t(img, sx, sy, fx, fy) -> torch.Tensor:
    """functions._bilinear_reflect101 in torch (float32 weights, the same sum order)."""
    n, h, w, ch = img.shape
    x0, x1 = _reflect101_t(sx, w), _reflect101_t(sx + 1, w)
    y0, y1 = _reflect101_t(sy, h), _reflect101_t(sy + 1, h)
    base = (torch.arange(n, device=img.device) * (h * w))[:, None, None]
    flat = img.reshape(n * h * w, ch)

    def tap(yi, xi):
        return flat[(base + yi * w + xi).reshape(-1)]

    one = torch.ones((), dtype=torch.float32, device=img.device)
    gx, gy = one - fx, one - fy
    out = tap(y0, x0) * (gy * gx).reshape(-1, 1)
    out = out + tap(y0, x1) * (gy * fx).reshape(-1, 1)
    out = out + tap(y1, x0) * (fy * gx).reshape(-1, 1)
    out = out + tap(y1, x1) * (fy * fx).reshape(-1, 1)
    return out.reshape(n, h, w, ch)


def warp_affine_cv(
    img: torch.Tensor, m: torch.Tensor, coords: str = "fixed"
) -> torch.Tensor:
    """functions.warp_affine_cv in torch: float32 images (N, H, W, C), forward matrices (N, 2, 3)
    float64; the classic fixed-point (1/32 pixel) coordinates or the unquantised ones."""
    _, h, w, _ = img.shape
    dev = img.device
    m = m.to(torch.float64)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    det = torch.where(
        det != 0, 1.0 / torch.where(det != 0, det, torch.ones_like(det)), 0.0
    )
    i00 = m[:, 1, 1] * det
    i11 = m[:, 0, 0] * det
    i01 = -m[:, 0, 1] * det
    i10 = -m[:, 1, 0] * det
    i02 = -i00 * m[:, 0, 2] - i01 * m[:, 1, 2]
    i12 = -i10 * m[:, 0, 2] - i11 * m[:, 1, 2]
    xs = torch.arange(w, dtype=torch.float64, device=dev)[None, None, :]
    ys = torch.arange(h, dtype=torch.float64, device=dev)[None, :, None]

    def col(t):
        return t[:, None, None]

    if coords == "fixed":
        scale, rdelta = 1024, 16
        adelta = torch.round(col(i00) * xs * scale).long()
        bdelta = torch.round(col(i10) * xs * scale).long()
        x0 = torch.round((col(i01) * ys + col(i02)) * scale).long() + rdelta
        y0 = torch.round((col(i11) * ys + col(i12)) * scale).long() + rdelta
        xq = (x0 + adelta) >> 5
        yq = (y0 + bdelta) >> 5
        thirty_two = torch.tensor(32.0, dtype=torch.float32, device=dev)
        sx, fx = xq >> 5, (xq & 31).to(torch.float32) / thirty_two
        sy, fy = yq >> 5, (yq & 31).to(torch.float32) / thirty_two
    elif coords == "float":
        xf = col(i00) * xs + col(i01) * ys + col(i02)
        yf = col(i10) * xs + col(i11) * ys + col(i12)
        sx, sy = torch.floor(xf).long(), torch.floor(yf).long()
        fx, fy = (xf - sx).to(torch.float32), (yf - sy).to(torch.float32)
    else:
        raise ValueError(f"coords must be 'fixed' or 'float', got {coords!r}")
    return _bilinear_reflect101_t(img, sx, sy, fx, fy)


def _scipy_reflect_coord_t(c: torch.Tensor, n: int) -> torch.Tensor:
    period = 2 * n
    folded = torch.fmod(c + 0.5, period)
    folded = torch.where(folded < 0, folded + period, folded) - 0.5
    folded = torch.where(folded > n - 0.5, period - 1 - folded, folded)
    return torch.where((c < -0.5) | (c > n - 0.5), folded, c)


def map_coordinates_reflect(img: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
    """functions.map_coordinates_reflect in torch (float64 weights, float32 taps)."""
    n, h, w, ch = img.shape
    r = _scipy_reflect_coord_t(rows, h)
    c = _scipy_reflect_coord_t(cols, w)
    r0f, c0f = torch.floor(r), torch.floor(c)
    tr = (r - r0f).reshape(-1, 1)
    tc = (c - c0f).reshape(-1, 1)
    ur, uc = 1 - tr, 1 - tc
    r0, c0 = r0f.long(), c0f.long()
    r1 = torch.clamp(r0 + 1, max=h - 1)
    c1 = torch.clamp(c0 + 1, max=w - 1)
    r0 = torch.clamp(r0, min=0)
    c0 = torch.clamp(c0, min=0)
    base = (torch.arange(n, device=img.device) * (h * w))[:, None, None]
    flat = img.reshape(n * h * w, ch)

    def tap(ri, ci):
        return flat[(base + ri * w + ci).reshape(-1)]

    out = ur * (uc * tap(r0, c0) + tc * tap(r0, c1)) + tr * (
        uc * tap(r1, c0) + tc * tap(r1, c1)
    )
    return out.to(img.dtype).reshape(n, h, w, ch)


def _gauss_reflect_2d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """SciPy gaussian_filter(x, (0, sigma, sigma), mode='reflect', truncate=3) of (N, H, W)."""
    if sigma <= 1e-15:  # SciPy skips such axes
        return x
    taps = _gauss_taps(sigma, truncate=3.0)
    y = _filter_axis(x[..., None], taps, 1, "reflect")
    return _filter_axis(y, taps, 2, "reflect")[..., 0]


def elastic_transform(
    images, alpha, sigma, amax, rng, device, draws=None, warp="fixed"
):
    """functions.elastic_transform in torch: OpenCV's affine warp (fixed-point coordinates),
    SciPy-ordered Gaussian smoothing of the displacement draws, bilinear resampling."""
    n, h, w, _ = images.shape
    d = _drawn("elastic_transform", rng, draws, images, device, displace=alpha != 0)
    u_aff = _on(d["u_affine"], device, torch.float64)
    x = div(to_device(images, device).to(torch.float32), 255.0)
    pts1 = elastic_source_points(h, w)
    pts1_t = torch.from_numpy(pts1).to(device)
    pts2 = pts1_t + (-amax + 2 * amax * u_aff).to(torch.float32)
    # the 6x6 solve per image is tiny: NumPy on the host, as the reference's getAffineTransform
    m = cv_affine_from_points(np.broadcast_to(pts1, (n, 3, 2)), pts2.cpu().numpy())
    x = warp_affine_cv(x, torch.from_numpy(m).to(device), warp)
    if (
        alpha == 0
    ):  # zero displacement: the resampling is the identity (see functions.py)
        return _finish(x)
    u_dx = _on(d["u_dx"], device, torch.float64)
    u_dy = _on(d["u_dy"], device, torch.float64)
    dx = (_gauss_reflect_2d(-1 + 2 * u_dx, sigma) * alpha).to(torch.float32)
    dy = (_gauss_reflect_2d(-1 + 2 * u_dy, sigma) * alpha).to(torch.float32)
    rows = torch.arange(h, device=device)[None, :, None] + dy.to(torch.float64)
    cols = torch.arange(w, device=device)[None, None, :] + dx.to(torch.float64)
    return _finish(map_coordinates_reflect(x, rows, cols))
