"""CIFAR-10-C-bar / CIFAR-100-C-bar: the ten corruptions of Mintun, Kirillov and Xie (NeurIPS 2021),
batched and reference-faithful.

Source of the arithmetic: facebookresearch/augmentation-corruption at ba4d5a5, `imagenet_c_bar/`:
`corrupt.py` (the transforms), `cifar10_c_bar.csv` (which corruptions, and the five levels each
severity passes), `make_cifar10_c_bar.py` (the writer), `utils/image.py` (bilinear sampling). The
authors give one table for CIFAR; CIFAR-100-C-bar is the same table run on the CIFAR-100 test set.

Signature as in `functions`: ``f(images, severity, rng=None, *, table="cifar", draws=None)``,
uint8 (N, 32, 32, 3) in and out. `draws` holds the raw variates the reference draws per image
(uniforms in [0, 1), standard normals, integers), documented per function; the reference's
``uniform(lo, hi)`` is ``lo + (hi - lo) * u``. Severity s picks level `LEVELS[name][s - 1]` on the
authors' 0-10 scale; `_fp(level, m)` is their `float_parameter` (level * m / 10).

Randomness in the reference: every transform samples its parameters per image from NumPy's global
generator, and most also draw a `seed` there for a per-image `RandomState` that makes the inner
variates (phases, grid, ray lengths, line positions). `make_cifar10_c_bar.py` parses `--seed` but
never uses it, and images are made in DataLoader workers: the released generator has no canonical
seed (its bytes depend on the PyTorch version's worker seeding and the worker count). Here every
variate comes from the `rng` the builder passes: per-image keys (`augmix.rng.SampleKeys`, read
through `corruptions.draws`), so an image's output depends only on (seed, name, severity, index),
or a NumPy Generator (variates in call order). `CBAR_DRAWS` lists each corruption's variates.
Deterministic: circular_motion_blur.

The authors ran NumPy 1.19 (`imagenet_c_bar/requirements.txt`); where its value-based casting kept
float32 arithmetic that NumPy 2 would do in float64 (pinch_and_twirl, circular_motion_blur) the
float32 steps are written out. SciPy resampling (transverse_chromatic_abberation: `zoom`,
circular_motion_blur: `rotate`) is restated from SciPy's ndimage and checked against the installed
SciPy; the authors used SciPy 1.5.2.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import fftpack, ndimage, special

from .draws import NumpyDraws, keys_for

__all__ = ["CBAR_CORRUPTIONS", "CBAR_DRAWS", "LEVELS", "make_draws", "register"]

# The level each severity passes to the transform: imagenet_c_bar/cifar10_c_bar.csv, in its order.
LEVELS: dict[str, tuple[float, ...]] = {
    "blue_noise_sample": (0.7, 1.4, 2.1, 3.5, 4.2),
    "checkerboard_cutout": (1.0, 2.0, 3.0, 4.0, 5.0),
    "inverse_sparkles": (1.0, 1.5, 2.5, 4.5, 5.0),
    "pinch_and_twirl": (5.5, 6.0, 6.5, 8.5, 10.0),
    "ripple": (5.5, 6.0, 6.5, 7.5, 8.0),
    "brownish_noise": (2.5, 4.0, 5.5, 6.5, 7.0),
    "circular_motion_blur": (2.8, 3.6, 4.4, 5.2, 6.0),
    "lines": (0.5, 1.0, 1.5, 2.0, 2.5),
    "sparkles": (0.7, 3.5, 5.6, 6.3, 7.0),
    "transverse_chromatic_abberation": (1.0, 2.0, 5.0, 9.0, 10.0),
}

TWO_PI = 2 * np.pi
SIZES = {"cifar": 32}  # the authors' CIFAR table is for 32 x 32 images


def _level(name: str, table: str, severity: int, images: np.ndarray) -> float:
    """Check the call and return the level of `severity` for corruption `name`."""
    if table not in SIZES:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(SIZES)}")
    if not (isinstance(severity, (int, np.integer)) and 1 <= severity <= 5):
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be a uint8 array (N, H, W, 3), got "
            f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}"
        )
    size = SIZES[table]
    if images.shape[1:3] != (size, size):
        raise ValueError(f"table {table!r} expects {size}x{size} images, got {images.shape[1]}x{images.shape[2]}")
    return LEVELS[name][severity - 1]


def _fp(level: float, maxval: float) -> float:
    """The authors' float_parameter: level on the 0-10 scale times maxval / 10, in that order."""
    return float(level) * maxval / 10.0


def _sq(x):
    """x * x. The reference squares NumPy scalars with ** (libm pow), which can differ from x * x
    in the last bit; the uint8 outputs agree (tests/test_corruptions_cbar.py)."""
    return x * x


# ----------------------------------------------------------------------------------------------
# randomness


class GeneratorDraws:
    """A draw source over one NumPy Generator for a batch of n images: the interface of the
    sources in `corruptions.draws` (uniform / normal / randint by stream name, shapes per image,
    leading image axis). The Generator ignores stream names: variates come in call order."""

    def __init__(self, rng: np.random.Generator, n: int):
        self.rng, self.n = rng, n

    def uniform(self, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
        return self.rng.random((self.n, *shape))

    def normal(self, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
        return self.rng.standard_normal((self.n, *shape))

    def randint(self, stream: str, high: int, shape: tuple[int, ...] = ()) -> np.ndarray:
        return self.rng.integers(0, high, (self.n, *shape))


def _source(rng, n: int):
    """The draw source for `rng`: a NumPy Generator, or per-image keys (augmix.rng.SampleKeys)
    through `corruptions.draws`. Randomness is never global."""
    if isinstance(rng, np.random.Generator):
        return GeneratorDraws(rng, n)
    if rng is not None:
        return NumpyDraws(keys_for(rng, n))
    raise ValueError(f"pass rng (a numpy Generator or per-image keys) or draws, got {rng!r}; "
                     "randomness is never global")


def make_draws(name: str, rng, images_shape, **params) -> dict:
    """The raw variates corruption `name` reads, for a batch of `images_shape` (N, H, W, 3)."""
    n, h, w = images_shape[:3]
    return CBAR_DRAWS[name](_source(rng, n), h, w, **params)


# ----------------------------------------------------------------------------------------------
# Fourier noises: blue_noise_sample, brownish_noise


@functools.lru_cache(maxsize=4)
def _radius_table(size: int) -> np.ndarray:
    """Distance of every (row, col) from (size/2, size/2): the integer squared distance, rooted."""
    d = np.arange(size) - size / 2
    r = np.sqrt(d[:, None] ** 2 + d[None, :] ** 2)
    r.setflags(write=False)
    return r


@functools.lru_cache(maxsize=4)
def _brown_power(size: int) -> np.ndarray:
    # The reference squares each NumPy-scalar distance with libm pow; Python's float ** is the same
    # pow, once per table entry (r * r differs in the last bit for a few entries).
    r2 = np.array([float(v) ** 2 for v in _radius_table(size).ravel()]).reshape(size, size)
    p = 1 / (r2 + 1)
    p.setflags(write=False)
    return p


def _fourier_noise(u: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Unit-std noise maps (..., S, S) from phase uniforms u (..., S, S//2) and an S x S power
    spectrum centred at (S/2, S/2): phases 2*pi*u, mirrored to (S, S) as [p, p[::-1, ::-1]] (not a
    Hermitian completion; the imaginary part of the transform is dropped), the spectrum rolled so
    its centre is frequency 0, real part of SciPy's fftpack ifft2, divided by its own std."""
    s = power.shape[0]
    if s % 2:
        raise ValueError("the Fourier noises are defined here for even image sizes only")
    phases = 0.0 + (TWO_PI - 0) * u
    full = np.concatenate((phases, phases[..., ::-1, ::-1]), axis=-1)
    spectrum = power * (np.cos(full) + np.sin(full) * 1j)
    spectrum = np.roll(spectrum, s // 2, axis=-2)
    spectrum = np.roll(spectrum, s // 2, axis=-1)
    noise = np.real(fftpack.ifft2(spectrum, axes=(-2, -1)))
    flat = noise.reshape(noise.shape[:-2] + (s * s,))
    return noise / np.std(flat, axis=-1)[..., None, None]


def blue_noise_sample(images, severity, rng=None, *, table="cifar", draws=None):
    """Black out the pixels where a blue-noise map (power ~ distance from the spectrum centre)
    is at or below threshold = 0.3 * level - 2.5. draws: {"phases": uniforms (N, S, S/2)}."""
    level = _level("blue_noise_sample", table, severity, images)
    s = images.shape[1]
    u = np.asarray((draws or make_draws("blue_noise_sample", rng, images.shape))["phases"])
    threshold = _fp(level, 3.0) - 2.5
    keep = _fourier_noise(u, _radius_table(s)) > threshold
    return images * keep[..., None]


def brownish_noise(images, severity, rng=None, *, table="cifar", draws=None):
    """x + 6.4 * level * n, one unit-std map per channel with power 1 / (r^2 + 1), clipped and
    truncated. draws: {"phases": uniforms (N, 3, S, S/2)}, channels in order."""
    level = _level("brownish_noise", table, severity, images)
    s = images.shape[1]
    u = np.asarray((draws or make_draws("brownish_noise", rng, images.shape))["phases"])
    noise = np.moveaxis(_fourier_noise(u, _brown_power(s)), 1, -1)
    out = images + _fp(level, 64) * noise
    return np.clip(out, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# checkerboard_cutout


def _grid_side(size: int) -> int:
    """Largest checker grid side the reference can make: int(4 * size // scale), scale >= 0.1 * size."""
    return int(4 * size // (0.1 * size)) + 1


def checkerboard_cutout(images, severity, rng=None, *, table="cifar", draws=None):
    """A rotated checkerboard of side `scale`; a square of one colour is painted grey 128 where
    its cell of a random grid is below fraction = level / 10.

    draws: {"angle": uniforms (N,) -> 2*pi*u, "scale": uniforms (N,) -> max(32 * (0.1 + 0.15 u), 1),
    "grid": uniforms (N, G, G) of which the top-left int(4*S // scale) square is the grid}.
    """
    level = _level("checkerboard_cutout", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    d = draws or make_draws("checkerboard_cutout", rng, images.shape)
    angle = 0.0 + (TWO_PI - 0) * np.asarray(d["angle"])
    u_scale, grid_u = np.asarray(d["scale"]), np.asarray(d["grid"])
    scale = np.maximum((0.1 + (0.25 - 0.1) * u_scale) * s, 1)
    side = np.floor_divide(4 * s, scale).astype(np.int64)  # the grid is side x side
    fraction = _fp(level, 1.0)
    y = np.arange(s, dtype=np.float64)[None, :, None]
    x = np.arange(s, dtype=np.float64)[None, None, :]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    sc = scale[:, None, None]
    nx = (cos * y + sin * x) / sc
    ny = (-sin * y + cos * x) / sc
    other_colour = np.remainder(nx, 2).astype(np.int64) != np.remainder(ny, 2).astype(np.int64)
    # int() truncates toward zero; a negative index counts from the end of the grid (Python's).
    gi, gj = nx.astype(np.int64), ny.astype(np.int64)
    side3 = side[:, None, None]
    gi = np.where(gi < 0, gi + side3, gi)
    gj = np.where(gj < 0, gj + side3, gj)
    cut = grid_u[np.arange(n)[:, None, None], gi, gj] < fraction
    keep = other_colour | ~cut
    return np.where(keep[..., None], images, np.uint8(128))


# ----------------------------------------------------------------------------------------------
# sparkles, inverse_sparkles


def _ray_factor(dy, dx, rays, lengths, exponent):
    """The star kernel's blend factor per pixel. dy, dx (N, P): offsets from the star centre
    (row, col); rays (N, 1) ray counts; lengths (N, R) ray lengths. The angle
    (atan2(dx, dy) + pi) / 2pi * rays picks two neighbouring rays, whose lengths are interpolated;
    g = (length^2 / (dist^2 + 1e-4)) ** exponent; f = clip((1 - (frac - 1/2)^2) * g, 0, 1)."""
    # the reference's np.linalg.norm((dy, dx)) is a BLAS dot, which may fuse the multiply-add on
    # some machines; the unfused form (equal outputs in the tests)
    dist = np.sqrt(dy * dy + dx * dx)
    d = (np.arctan2(dx, dy) + np.pi) / (2 * np.pi) * rays
    i = d.astype(np.int64)
    f = d - i
    l0 = np.take_along_axis(lengths, np.mod(i, rays), axis=1)
    l1 = np.take_along_axis(lengths, np.mod(i + 1, rays), axis=1)
    length = l0 + f * (l1 - l0)
    g = _sq(length) / (_sq(dist) + 1e-4)
    if exponent != 1.0:  # sparkles' exponent is (100 - 50) / 50 = 1: pow(g, 1) is g
        g = g**exponent
    f = f - 0.5
    f = 1 - _sq(f)
    f = f * g
    return np.clip(f, 0, 1)


def _offsets(size: int, centre: np.ndarray):
    """Row and col offsets (N, size*size) of every pixel from per-image centres (N, 2)."""
    rows = np.repeat(np.arange(size), size)[None, :]
    cols = np.tile(np.arange(size), size)[None, :]
    return rows - centre[:, :1], cols - centre[:, 1:]


def inverse_sparkles(images, severity, rng=None, *, table="cifar", draws=None):
    """Everything but a star of `rays` rays (radius S/4) fades to white: out = 255 + f * (x - 255),
    with f the star kernel at exponent (100 - amount) / 50, amount = 100 - 6.5 * level.

    draws: {"center": uniforms (N, 2) -> S * (0.25 + 0.5 u) as (row, col), "rays": ints (N,) in
    [50, 200), "z": standard normals (N, 199): ray k has length S/4 + S/16 * z[k], k < rays}."""
    level = _level("inverse_sparkles", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    d = draws or make_draws("inverse_sparkles", rng, images.shape)
    center = (0.25 + (0.75 - 0.25) * np.asarray(d["center"])) * s
    rays = np.asarray(d["rays"]).astype(np.int64)
    z = np.asarray(d["z"])
    radius = 0.25 * s
    amount = 100 - _fp(level, 65)
    lengths = radius + 25 / 100.0 * radius * z
    dy, dx = _offsets(s, center)
    f = _ray_factor(dy, dx, rays[:, None], lengths, (100 - amount) / 50.0).reshape(n, s, s)
    out = 255 + f[..., None] * (images.astype(np.float32).astype(np.float64) - 255)
    return np.clip(out, 0, 255).astype(np.uint8)


def sparkles(images, severity, rng=None, *, table="cifar", draws=None):
    """Five white stars, one after the other: out = x + f * (255 - x), f the star kernel at
    exponent 1, ray lengths max(1, r + r/4 * z), r = 0.01 * level * S. Between stars the image is
    rounded to float32 (the reference re-reads each pixel with astype(float32)).

    draws: {"centers": uniforms (N, 5, 2) -> S * u as (row, col), "rays": ints (N, 5) in [50, 200),
    "z": standard normals (N, 5, 199), star j's rays from z[j, :rays[j]]}."""
    level = _level("sparkles", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    d = draws or make_draws("sparkles", rng, images.shape)
    centers = 0.0 + (s - 0) * np.asarray(d["centers"])
    rays = np.asarray(d["rays"]).astype(np.int64)
    z = np.asarray(d["z"])
    radius = _fp(level, 0.1) * s
    lengths = np.maximum(1, radius + 25 / 100.0 * radius * z)
    x = images.astype(np.float64)
    for j in range(5):
        dy, dx = _offsets(s, centers[:, j])
        f = _ray_factor(dy, dx, rays[:, j, None], lengths[:, j], 1.0).reshape(n, s, s)
        v = x.astype(np.float32).astype(np.float64)
        x = v + f[..., None] * (255 - v)
    return np.clip(x, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# lines


def line_aa_batch(r0, c0, r1, c1):
    """scikit-image 0.16.2 `skimage.draw.line_aa` (Zingl's anti-aliased line) for many lines at
    once. Returns (line, rows, cols, val) in each line's emission order, lines in order.

    skimage keeps the error term and the length ed = sqrt(dc^2 + dr^2) in C float (float32); the
    error is a small integer, so only ed's rounding matters: each value is |k| / float32(ed) in
    double, reported as 1 - that."""
    r0, c0, r1, c1 = (np.asarray(v, dtype=np.int64) for v in (r0, c0, r1, c1))
    dc, dr = np.abs(c0 - c1), np.abs(r0 - r1)
    sign_c = np.where(c0 < c1, 1, -1)
    sign_r = np.where(r0 < r1, 1, -1)
    ed = np.where(dc + dr == 0, 1.0, np.sqrt((dc * dc + dr * dr).astype(np.float64)))
    ed = ed.astype(np.float32).astype(np.float64)
    err = dc - dr
    r, c = r0.copy(), c0.copy()
    live = np.arange(r0.shape[0])
    parts = []  # (line, seq, row, col, |k|, ed)
    step = 0
    while live.size:
        e, cc, rr = err[live], c[live], r[live]
        dcl, drl, edl = dc[live], dr[live], ed[live]
        parts.append((live, np.full(live.size, 3 * step), rr, cc, np.abs(e - dcl + drl), edl))
        first = 2 * e >= -dcl
        stop = first & (cc == c1[live])
        side = first & ~stop & (e + drl < edl)
        parts.append((live[side], np.full(side.sum(), 3 * step + 1), rr[side] + sign_r[live][side],
                      cc[side], np.abs(e[side] + drl[side]), edl[side]))
        move = first & ~stop
        err[live[move]] -= drl[move]
        c[live[move]] += sign_c[live][move]
        second = ~stop & (2 * e <= drl)
        stop2 = second & (rr == r1[live])
        side2 = second & ~stop2 & (dcl - e < edl)
        parts.append((live[side2], np.full(side2.sum(), 3 * step + 2), rr[side2],
                      cc[side2] + sign_c[live][side2], np.abs(dcl[side2] - e[side2]), edl[side2]))
        move2 = second & ~stop2
        err[live[move2]] += dcl[move2]
        r[live[move2]] += sign_r[live][move2]
        live = live[~(stop | stop2)]
        step += 1
    line, seq, rows, cols, k, eds = (np.concatenate(v) for v in zip(*parts))
    order = np.lexsort((seq, line))
    val = 1.0 - k[order] / eds[order]
    return line[order], rows[order], cols[order], val


def _line_count(level: float, size: int) -> int:
    return int(_fp(level, 1.0) * size)


def lines(images, severity, rng=None, *, table="cifar", draws=None):
    """int(level / 10 * S) grey anti-aliased lines of length 2S through random points, drawn one
    after the other: pixel = (1 - v) * pixel + v * 128, truncated. Line k of an image runs from
    (x - c, y - s) to (x + c, y + s) (row, col; int() truncation), c, s = S * (cos, sin) of
    angle + 2*pi*variation*(u - 1/2).

    draws: {"angle": uniforms (N,) -> 2*pi*u, "variation": uniforms (N,) -> 0.1 + 0.9 u,
    "lines": uniforms (N, L, 3) -> (x = S u0, y = S u1, u2)}."""
    level = _level("lines", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    count = _line_count(level, s)
    d = draws or make_draws("lines", rng, images.shape, count=count)
    angle = 0.0 + (TWO_PI - 0.0) * np.asarray(d["angle"])
    variation = 0.1 + (1.0 - 0.1) * np.asarray(d["variation"])
    u = np.asarray(d["lines"])
    out = images.copy()
    if count == 0 or n == 0:
        return out
    length = 1.0 * s
    x = s * u[..., 0]
    y = s * u[..., 1]
    a = angle[:, None] + 2 * np.pi * variation[:, None] * (u[..., 2] - 0.5)
    along_y, along_x = np.sin(a) * length, np.cos(a) * length
    # x is the row and y the column (skimage's line_aa(r0, c0, r1, c1)).
    line, rows, cols, val = line_aa_batch(
        (x - along_x).astype(np.int64).ravel(), (y - along_y).astype(np.int64).ravel(),
        (x + along_x).astype(np.int64).ravel(), (y + along_y).astype(np.int64).ravel(),
    )
    inside = (rows >= 0) & (cols >= 0) & (rows < s) & (cols < s)
    line, rows, cols, val = line[inside], rows[inside], cols[inside], val[inside]
    img, k = np.divmod(line, count)
    for j in range(count):
        m = k == j
        ii, rr, cc, vv = img[m], rows[m], cols[m], val[m][:, None]
        out[ii, rr, cc] = (1.0 - vv) * out[ii, rr, cc].astype(np.float32) + vv * 128
    return out


# ----------------------------------------------------------------------------------------------
# geometric warps with the authors' bilinear sampler: ripple, pinch_and_twirl


def _corners(img, rows, cols):
    """Four-neighbour gather of utils/image.py's bilinear_interpolation: corners outside the
    image read 0. img (N, S, S, 3); rows, cols (N, P) float. Returns the integer floors and the
    (value, inside) of the corners lu=(l,u), ld=(l,u+1), ru=(l+1,u), rd=(l+1,u+1)."""
    n, s = img.shape[0], img.shape[1]
    l = np.floor(rows).astype(np.int64)
    u = np.floor(cols).astype(np.int64)
    lead = np.arange(n)[:, None]
    out = {}
    for key, dr, dc in (("lu", 0, 0), ("ld", 0, 1), ("ru", 1, 0), ("rd", 1, 1)):
        rr, cc = l + dr, u + dc
        ok = (rr >= 0) & (rr < s) & (cc >= 0) & (cc < s)
        val = img[lead, np.clip(rr, 0, s - 1), np.clip(cc, 0, s - 1)]
        out[key] = (np.where(ok[..., None], val, 0), ok)
    return l, u, out


def _bilinear64(img, rows, cols):
    """bilinear_interpolation on a uint8 image: NumPy computes it in float64 (uint8 * float64)."""
    l, u, c = _corners(img, rows, cols)
    w_u = (1.0 - cols + u)[..., None]
    w_d = (1.0 - (u + 1) + cols)[..., None]
    al = c["lu"][0] * w_u + c["ld"][0] * w_d
    ar = c["ru"][0] * w_u + c["rd"][0] * w_d
    return al * (1.0 - rows + l)[..., None] + ar * (1.0 - (l + 1) + rows)[..., None]


def _bilinear32_numpy1(img, rows, cols):
    """bilinear_interpolation on a float32 image as NumPy 1.x computed it, rounded to float32.

    Quirk (value-based casting of NumPy 1.19, the authors'): float32 corner * float64 weight was a
    float32 product, while an outside corner (the int array [0, 0, 0]) made float64 zeros, so a
    half-sum with an outside corner, and everything after it, ran in float64."""
    l, u, c = _corners(img, rows, cols)
    f32 = np.float32
    w_u, w_d = (1.0 - cols + u), (1.0 - (u + 1) + cols)
    w_l, w_r = (1.0 - rows + l), (1.0 - (l + 1) + rows)

    def half(a, b, w_a, w_b):
        (va, oka), (vb, okb) = c[a], c[b]
        s32 = va * w_a.astype(f32)[..., None] + vb * w_b.astype(f32)[..., None]  # float32
        return s32, (oka & okb)[..., None]

    al, al32 = half("lu", "ld", w_u, w_d)
    ar, ar32 = half("ru", "rd", w_u, w_d)

    def scaled(h, is32, w):
        return np.where(is32, (h * w.astype(f32)[..., None]).astype(np.float64),
                        h.astype(np.float64) * w[..., None])

    pl, pr = scaled(al, al32, w_l), scaled(ar, ar32, w_r)
    both = al32 & ar32
    total = np.where(both, (pl.astype(f32) + pr.astype(f32)).astype(np.float64), pl + pr)
    return total.astype(f32)


def ripple(images, severity, rng=None, *, table="cifar", draws=None):
    """Sample at p + a * sin(2*pi*p / wavelength + phase) per axis (p = (row, col)), a = 0.0025 *
    level * S, bilinear with black outside, truncated.

    draws: {"wavelengths": uniforms (N, 2) -> S * (0.1 + 0.2 u), "phases": uniforms (N, 2) -> 2*pi*u}."""
    level = _level("ripple", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    d = draws or make_draws("ripple", rng, images.shape)
    wl = (0.1 + (0.3 - 0.1) * np.asarray(d["wavelengths"])) * s
    ph = 0.0 + (TWO_PI - 0) * np.asarray(d["phases"])
    amp = _fp(level, 0.025) * s
    pos = np.arange(s, dtype=np.float64)
    # rows vary along axis 1, cols along axis 2; each axis warps by its own wave
    rows = pos[None, :] + amp * np.sin(2 * np.pi * pos[None, :] / wl[:, :1] + ph[:, :1])
    cols = pos[None, :] + amp * np.sin(2 * np.pi * pos[None, :] / wl[:, 1:] + ph[:, 1:])
    r = np.broadcast_to(rows[:, :, None], (n, s, s)).reshape(n, s * s)
    c = np.broadcast_to(cols[:, None, :], (n, s, s)).reshape(n, s * s)
    out = _bilinear64(images, r, c).reshape(images.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _pinch_cells(size: int) -> int:
    return 5 if size == 224 else 3


@functools.lru_cache(maxsize=64)
def _pinch_sources(size: int, level: float, sign: int):
    """Source (row, col) of every pixel of every cell for one angle sign, computed pixel by pixel
    with NumPy scalars as the reference does (libm pow included): {(i, j): (rows, cols)}.
    Cell (i, j) covers cols [i g, (i+1) g) and rows [j g, (j+1) g), g = size // cells; its swirl
    has radius g/2, angle sign * level * pi/20, pinch amount level * 0.04 + 0.1."""
    cells = _pinch_cells(size)
    g = size // cells
    radius = g / 2
    angle = sign * _fp(level, np.pi / 2)
    amount = _fp(level, 0.4) + 0.1
    out = {}
    for i in range(cells):
        for j in range(cells):
            cy, cx = np.float64(j * g + radius), np.float64(i * g + radius)
            rows = np.empty((g, g))
            cols = np.empty((g, g))
            for a in range(g):
                for b in range(g):
                    y, x = j * g + a, i * g + b
                    ry, rx = float(y), float(x)
                    dy, dx = y - cy, x - cx
                    dist = np.sqrt(dy * dy + dx * dx)
                    if not (dist > radius or np.round(dist, 3) == 0.0):
                        d = dist / radius
                        t = np.sin(np.pi * 0.5 * d) ** (-amount)
                        dy, dx = dy * t, dx * t
                        turn = angle * ((1 - d) ** 2)
                        ry = cy + (dy * np.cos(turn) - dx * np.sin(turn))
                        rx = cx + (dy * np.sin(turn) + dx * np.cos(turn))
                    rows[a, b], cols[a, b] = ry, rx
            rows.setflags(write=False)
            cols.setflags(write=False)
            out[i, j] = (rows, cols)
    return out


def pinch_and_twirl(images, severity, rng=None, *, table="cifar", draws=None):
    """A grid of 3 x 3 swirls (5 x 5 at 224): each cell's disc is pinched and twisted by +-angle,
    sampled bilinearly (black outside) from the image as already warped by the earlier cells
    (cells in column-major order), in float32 as NumPy 1.x did; the last S mod 3 rows and cols
    are untouched. Truncated.

    draws: {"signs": ints (N, cells, cells) in {0, 1}: the index np.random.choice([1, -1]) drew,
    0 -> +1, in cell order (i = column block, j = row block)}."""
    level = _level("pinch_and_twirl", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    cells = _pinch_cells(s)
    g = s // cells
    signs = np.asarray((draws or make_draws("pinch_and_twirl", rng, images.shape))["signs"])
    out = images.astype(np.float32)
    plus = _pinch_sources(s, float(level), 1)
    minus = _pinch_sources(s, float(level), -1)
    for i in range(cells):
        for j in range(cells):
            neg = (signs[:, i, j] == 1)[:, None]
            rows = np.where(neg, minus[i, j][0].ravel()[None], plus[i, j][0].ravel()[None])
            cols = np.where(neg, minus[i, j][1].ravel()[None], plus[i, j][1].ravel()[None])
            cell = _bilinear32_numpy1(out, rows, cols)
            out[:, j * g:(j + 1) * g, i * g:(i + 1) * g] = cell.reshape(n, g, g, 3)
    return np.clip(out, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# SciPy cubic-spline resampling, restated: transverse_chromatic_abberation, circular_motion_blur


def cubic_weights(x: np.ndarray):
    """SciPy ndimage's order-3 B-spline weights (ni_splines.c get_spline_interpolation_weights)
    at coordinates x: the first tap floor(x) - 1 and the four weights, the last being 1 minus the
    others."""
    fl = np.floor(x)
    t = x - fl
    z = 1.0 - t
    w1 = (t * t * (t - 2.0) * 3.0 + 4.0) / 6.0
    w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0
    w0 = z * z * z / 6.0
    w3 = 1.0 - w0
    w3 = w3 - w1
    w3 = w3 - w2
    return fl.astype(np.int64) - 1, np.stack([w0, w1, w2, w3], axis=-1)


def _mirror_taps(start: np.ndarray, size: int) -> np.ndarray:
    """The four tap indices from `start`, reflected about the edge pixels (SciPy's edge taps for
    mode 'constant' inside the image, whole-sample mirror)."""
    idx = start[..., None] + np.arange(4)
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx >= size, 2 * size - 2 - idx, idx)


def _spline_sum(columns, size, rows_idx, rows_w, cols_idx, cols_w):
    """sum over taps (a, b), a slowest, of (coeff[row tap a, col tap b] * w_row[a]) * w_col[b],
    accumulated in float64 from 0 as SciPy's loop does. columns: the coefficients as (size*size,
    B), one column per plane (rows of the gather are then contiguous); rows_* and cols_* (P, 4)
    for P output points. Returns (P, B)."""
    t = np.zeros((rows_idx.shape[0], columns.shape[1]))
    v = np.empty_like(t)
    for a in range(4):
        base = rows_idx[:, a] * size
        wr = rows_w[:, a, None]
        for b in range(4):
            np.take(columns, base + cols_idx[:, b], axis=0, out=v)
            v *= wr
            v *= cols_w[:, b, None]
            t += v
    return t


def _as_columns(planes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(planes.reshape(planes.shape[0], planes.shape[1] * planes.shape[2]).T, dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _zoom_axis(size: int, factor: float):
    """SciPy zoom (grid_mode False) along one axis: output length round(size * factor), source
    coordinate k * (size - 1) / (out - 1), outside [0, size - 1] -> cval."""
    out_len = int(round(size * factor))
    step = np.divide(size - 1, out_len - 1) if out_len > 1 else 1.0
    cc = np.arange(out_len, dtype=np.float64) * step
    inside = (cc >= 0) & (cc <= size - 1)
    start, w = cubic_weights(np.where(inside, cc, 0.0))
    return out_len, _mirror_taps(start, size), w, inside


def zoom_cubic_noprefilter_u8(planes: np.ndarray, factor: float) -> np.ndarray:
    """scipy.ndimage.zoom(plane, factor, order=3, prefilter=False, mode='constant') of uint8
    planes (B, S, S) -> uint8 (B, M, M): the unfiltered samples as spline coefficients (a
    smoothing even at factor 1), written out as SciPy does: t + 0.5 truncated for t > 0, else 0,
    capped at 255."""
    size = planes.shape[1]
    m, idx, w, inside = _zoom_axis(size, float(factor))
    ri = np.repeat(idx, m, axis=0)
    rw = np.repeat(w, m, axis=0)
    ci = np.tile(idx, (m, 1))
    cw = np.tile(w, (m, 1))
    t = _spline_sum(_as_columns(planes), size, ri, rw, ci, cw)
    ok = (np.repeat(inside, m) & np.tile(inside, m))[:, None]
    t = np.where(ok, t, 0.0)
    t = np.where(t > 0, t + 0.5, 0.0)
    t = np.minimum(t, 255.0)
    return np.ascontiguousarray(t.astype(np.uint8).T).reshape(planes.shape[0], m, m)


def transverse_chromatic_abberation(images, severity, rng=None, *, table="cifar", draws=None):
    """Each channel zoomed about the centre (SciPy zoom, cubic, no prefilter) by one of 1,
    1 + k/2, 1 + k (k = level / 20, assigned by a random permutation) and centre-cropped.

    draws: {"perm": ints (N, 3), a permutation of 0..2 per image: channel c gets
    [1, 1 + k/2, 1 + k][perm[c]]}."""
    level = _level("transverse_chromatic_abberation", table, severity, images)
    s = images.shape[1]
    perm = np.asarray((draws or make_draws("transverse_chromatic_abberation", rng, images.shape))["perm"])
    scale = _fp(level, 0.5)
    factors = (1.0, 1.0 + scale / 2, 1.0 + scale)
    out = images.copy()
    for ch in range(3):
        for which, factor in enumerate(factors):
            sel = np.flatnonzero(perm[:, ch] == which)
            if sel.size == 0:
                continue
            zoomed = zoom_cubic_noprefilter_u8(np.ascontiguousarray(images[sel, :, :, ch]), factor)
            edge = (zoomed.shape[1] - s) // 2
            out[sel, :, :, ch] = zoomed[:, edge:edge + s, edge:edge + s]
    return out


@functools.lru_cache(maxsize=128)
def _rotation_taps(size: int, angle: float):
    """scipy.ndimage.rotate(..., reshape=False, order=3, mode='constant') of a size x size plane:
    source coordinate of output (o0, o1) = R @ o + offset with R = [[c, s], [-s, c]] (SciPy's
    cosdg / sindg of the angle in degrees), offset = centre - R @ centre; per output pixel the
    row and col taps and weights, and whether it lies inside [0, size - 1]^2 (else 0)."""
    c, s = special.cosdg(angle), special.sindg(angle)
    rot = np.array([[c, s], [-s, c]])
    centre = (np.asarray([size, size]) - 1) / 2
    offset = centre - rot @ centre
    o0 = np.repeat(np.arange(size, dtype=np.float64), size)
    o1 = np.tile(np.arange(size, dtype=np.float64), size)
    src0 = o0 * rot[0, 0]
    src0 = src0 + o1 * rot[0, 1]
    src0 = src0 + offset[0]
    src1 = o0 * rot[1, 0]
    src1 = src1 + o1 * rot[1, 1]
    src1 = src1 + offset[1]
    inside = (src0 >= 0) & (src0 <= size - 1) & (src1 >= 0) & (src1 <= size - 1)
    s0, w0 = cubic_weights(np.where(inside, src0, 0.0))
    s1, w1 = cubic_weights(np.where(inside, src1, 0.0))
    return _mirror_taps(s0, size), w0, _mirror_taps(s1, size), w1, inside


def rotate_cubic_f32(columns: np.ndarray, size: int, angle: float) -> np.ndarray:
    """One rotation of spline-filtered planes given as columns (size*size, B) float64 ->
    float32 (size*size, B)."""
    ri, rw, ci, cw, inside = _rotation_taps(size, float(angle))
    t = _spline_sum(columns, size, ri, rw, ci, cw)
    t[~inside] = 0.0
    return t.astype(np.float32)


CIRCULAR_STEPS = 21
_BLOCK = 96  # planes per column block: the working set of one rotation stays in cache


def _circular_accumulate(columns: np.ndarray, size: int, amount: float) -> np.ndarray:
    """The float32 weighted sum of the 21 rotations of one column block, divided by the weights'
    sum (NumPy 1.x: the float64 weights were rounded to float32 first)."""
    acc = np.zeros(columns.shape, np.float32)
    weights = []
    for i in range(CIRCULAR_STEPS):
        pos = 2 * i / (CIRCULAR_STEPS - 1) - 1
        weight = np.exp(-2 * pos**2)
        weights.append(weight)
        acc += np.float32(weight) * rotate_cubic_f32(columns, size, pos * amount)
    acc /= np.float32(sum(weights))
    return acc


def circular_motion_blur(images, severity, rng=None, *, table="cifar", draws=None):
    """Weighted mean of 21 rotations by (2i/20 - 1) * 1.5 * level degrees, weights
    exp(-2 (2i/20 - 1)^2), each a SciPy cubic rotate (spline prefilter, black outside) of the
    float32 image / 255, accumulated in float32 (NumPy 1.x: the float64 weight was rounded to
    float32 first); out * 255 clipped and truncated. Deterministic."""
    level = _level("circular_motion_blur", table, severity, images)
    n, s = images.shape[0], images.shape[1]
    amount = _fp(level, 15)
    x = images.astype(np.float32) / 255
    planes = np.moveaxis(x, -1, 1).reshape(n * 3, s, s)
    # spline_filter of each plane: along rows then along cols, float64, mirror start (SciPy)
    coeff = ndimage.spline_filter1d(planes, 3, axis=1, output=np.float64, mode="constant")
    coeff = ndimage.spline_filter1d(coeff, 3, axis=2, output=np.float64, mode="constant")
    columns = _as_columns(coeff)
    blocks = [np.ascontiguousarray(columns[:, k:k + _BLOCK]) for k in range(0, columns.shape[1], _BLOCK)]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(len(blocks), cpus)
    if workers > 1:  # column blocks are independent; NumPy releases the GIL in take/multiply/add
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda b: _circular_accumulate(b, s, amount), blocks))
    else:
        parts = [_circular_accumulate(b, s, amount) for b in blocks]
    acc = np.concatenate(parts, axis=1) if parts else np.zeros(columns.shape, np.float32)
    out = np.moveaxis(acc.T.reshape(n, 3, s, s), 1, -1)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# table

# The names and order of cifar10_c_bar.csv ("abberation" as the authors spell it, so file names
# match theirs).
CBAR_CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "blue_noise_sample": blue_noise_sample,
    "checkerboard_cutout": checkerboard_cutout,
    "inverse_sparkles": inverse_sparkles,
    "pinch_and_twirl": pinch_and_twirl,
    "ripple": ripple,
    "brownish_noise": brownish_noise,
    "circular_motion_blur": circular_motion_blur,
    "lines": lines,
    "sparkles": sparkles,
    "transverse_chromatic_abberation": transverse_chromatic_abberation,
}
assert tuple(CBAR_CORRUPTIONS) == tuple(LEVELS)


# The variates of each corruption per image (shapes per image; the source adds the image axis).
# Stream names follow corruptions.draws: short, the key already names the corruption.
def _phases(src, h, w):
    return {"phases": src.uniform("phases", (h, w // 2))}


def _phases3(src, h, w):
    return {"phases": src.uniform("phases", (3, h, w // 2))}


def _checkerboard(src, h, w):
    side = _grid_side(h)
    return {"angle": src.uniform("angle"), "scale": src.uniform("scale"), "grid": src.uniform("grid", (side, side))}


def _inverse_sparkles(src, h, w):
    # randint(50, 200): 50 + an integer below 150
    return {"center": src.uniform("center", (2,)), "rays": 50 + src.randint("rays", 150), "z": src.normal("z", (199,))}


def _sparkles(src, h, w):
    return {"centers": src.uniform("centers", (5, 2)), "rays": 50 + src.randint("rays", 150, (5,)),
            "z": src.normal("z", (5, 199))}


def _lines(src, h, w, *, count: int):
    return {"angle": src.uniform("angle"), "variation": src.uniform("variation"),
            "lines": src.uniform("lines", (count, 3))}


def _ripple(src, h, w):
    return {"wavelengths": src.uniform("wavelengths", (2,)), "phases": src.uniform("phases", (2,))}


def _pinch(src, h, w):
    cells = _pinch_cells(h)
    return {"signs": src.randint("signs", 2, (cells, cells))}


def _tca(src, h, w):
    # a uniformly random permutation of the three channel scales per image
    return {"perm": np.argsort(np.asarray(src.uniform("perm", (3,))), axis=-1, kind="stable")}


CBAR_DRAWS: dict[str, Callable[..., dict]] = {
    "blue_noise_sample": _phases,
    "checkerboard_cutout": _checkerboard,
    "inverse_sparkles": _inverse_sparkles,
    "pinch_and_twirl": _pinch,
    "ripple": _ripple,
    "brownish_noise": _phases3,
    "lines": _lines,
    "sparkles": _sparkles,
    "transverse_chromatic_abberation": _tca,
}


def register(table: dict) -> None:
    """Add the C-bar corruptions to a corruption table (functions.CORRUPTIONS), after the 19 of
    -C, so `corrupt`, `build_c_set` and the registry see them. Idempotent; a name clash is an error."""
    for name, fn in CBAR_CORRUPTIONS.items():
        if table.get(name, fn) is not fn:
            raise KeyError(f"corruption {name!r} is already registered")
        table[name] = fn
