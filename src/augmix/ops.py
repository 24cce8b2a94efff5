"""The AugMix operations: PIL versions as the reference defines them, and batched tensor twins.

Reference: google-research/augmix `augmentations.py` (docs/reference-facts.md, "AugMix operations").
Each PIL op takes (image, severity, rng, image_size), draws its own level l ~ U(0.1, severity) from
the passed NumPy generator, scales it, flips the sign with probability 0.5 where the reference does,
and calls Pillow with the reference's settings. The image size is an argument (the reference reads a
mutable module global, `IMAGE_SIZE`).

The tensor twins act on a uint8 batch (n, 3, H, W) with one parameter per image, vectorised:
the pixel ops reproduce Pillow's integer arithmetic exactly, translations (integer pixels) are
exact shifts, and rotate and the shears repeat Pillow's float64 bilinear arithmetic operation by
operation (see "warps" below), so they equal Pillow bit for bit on every device (tests/test_ops.py
checks every angle and the shears over the whole level range).

Fill: the area a geometric op uncovers is black (0), as in the committed reference. The ops in
AFFINE_FILL_OPS take a `fill` int (default 0) for the released ImageNet weights' `fillcolor=128`,
which Pillow paints dark red, (128, 0, 0) (quirk: docs/reference-facts.md, "AugMix fill";
`fill_colour`); rotate always fills 0. An output pixel whose source point falls outside the image
gets the fill colour whole, in Pillow and in the tensor twins alike.

CPU speed notes (measured with one thread; the reasons for the less obvious choices below):
uint8 and int16 elementwise ops are the cheapest, float comparisons and casts from float
straight to uint8 are several times dearer than arithmetic, and a gather costs about five
elementwise passes per element.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

PARAMETER_MAX = 10  # the severity scale runs 1..10 (REF augment_and_mix.py docstring)

# ----------------------------------------------------------------------------- scaling helpers


def sample_level(severity: float, rng: np.random.Generator) -> float:
    """l ~ U(0.1, severity), drawn afresh on every op call (REF `sample_level`)."""
    return float(rng.uniform(0.1, severity))


def _per_ten(x):
    """x / 10 as Python divides. A tensor is divided by a tensor: CUDA divides a tensor by a
    Python number as a multiplication by its reciprocal (ATen BinaryDivTrueKernel.cu), which can
    land one ulp off, and int_parameter's truncation would then drop a whole step."""
    if isinstance(x, torch.Tensor):
        return x / torch.tensor(float(PARAMETER_MAX), dtype=x.dtype, device=x.device)
    return x / PARAMETER_MAX


def int_parameter(level, maxval):
    """floor(level * maxval / 10); REF uses int(), equal to floor because level > 0."""
    if isinstance(level, torch.Tensor):
        return torch.trunc(_per_ten(level * maxval))
    return int(_per_ten(level * maxval))


def float_parameter(level, maxval):
    """level * maxval / 10 (REF `float_parameter`)."""
    return _per_ten(level * maxval)


# Level -> op parameter (before the sign), shared by the PIL and tensor paths so the two use
# literally the same arithmetic. Works on Python floats and on float64 tensors.
def _posterize_bits(level, image_size):
    return 4 - int_parameter(level, 4)


def _rotate_degrees(level, image_size):
    return int_parameter(level, 30)


def _solarize_threshold(level, image_size):
    return 256 - int_parameter(level, 256)


def _shear(level, image_size):
    return float_parameter(level, 0.3)


def _translate_pixels(level, image_size):
    return int_parameter(level, image_size / 3)


def _enhance_factor(level, image_size):
    return float_parameter(level, 1.8) + 0.1


@dataclass(frozen=True)
class OpParam:
    """How an op turns its level into a parameter: the scaling and whether it has a sign."""

    scale: Callable | None  # None: the op draws no level (autocontrast, equalize)
    signed: bool


PARAMS: dict[str, OpParam] = {
    "autocontrast": OpParam(None, False),
    "equalize": OpParam(None, False),
    "posterize": OpParam(_posterize_bits, False),
    "rotate": OpParam(_rotate_degrees, True),
    "solarize": OpParam(_solarize_threshold, False),
    "shear_x": OpParam(_shear, True),
    "shear_y": OpParam(_shear, True),
    "translate_x": OpParam(_translate_pixels, True),
    "translate_y": OpParam(_translate_pixels, True),
    "color": OpParam(_enhance_factor, False),
    "contrast": OpParam(_enhance_factor, False),
    "brightness": OpParam(_enhance_factor, False),
    "sharpness": OpParam(_enhance_factor, False),
    "identity": OpParam(None, False),  # control op for tests; in neither OPS nor OPS_ALL
}

# The ops that take a fill for the area they uncover (docs/reference-facts.md, "AugMix fill").
AFFINE_FILL_OPS = ("shear_x", "shear_y", "translate_x", "translate_y")


def check_fill(fill) -> int:
    """An affine fill (the int passed to PIL as `fillcolor`) must be in 0..255; returns an int."""
    if isinstance(fill, bool) or not isinstance(fill, (int, np.integer)) or not 0 <= fill <= 255:
        raise ValueError(f"affine_fill must be an integer in 0..255 (PIL fillcolor), got {fill!r}")
    return int(fill)


def fill_colour(fill: int, channels: int = 3) -> tuple[int, ...]:
    """The colour Pillow paints for `fillcolor=fill` (an int): on an RGB image a packed value with
    red in the low byte, so 0..255 gives (fill, 0, 0); a one-band image takes the int as its level."""
    return (fill,) if channels == 1 else tuple((fill >> (8 * k)) & 255 for k in range(channels))


def _fill_planes(channels: int, device) -> torch.Tensor:
    """(1, c, 1, 1) uint8: 1 on the planes a fill level 0..255 lands on (fill_colour)."""
    return torch.tensor(fill_colour(1, channels), dtype=torch.uint8, device=device).reshape(1, channels, 1, 1)


# ----------------------------------------------------------------------------- PIL path


def check_image(img: Image.Image, image_size: int) -> None:
    """The affine ops always output image_size squares (REF), so inputs must be that size."""
    if img.size != (image_size, image_size):
        raise ValueError(
            f"AugMix input must be {image_size}x{image_size} (image_size), got {img.size[0]}x"
            f"{img.size[1]}; crop or resize before augmenting"
        )
    if img.mode != "RGB":
        raise ValueError(f"AugMix ops expect an RGB image, got mode {img.mode!r}")


def _affine(img: Image.Image, data, image_size: int, fill: int = 0) -> Image.Image:
    # PIL maps each output pixel to input (a x + b y + c, d x + e y + f), top-left origin,
    # bilinear; `fill` is the fillcolor int (docs/reference-facts.md, "AugMix fill").
    kw = {"fillcolor": fill} if fill else {}  # fill 0: the reference call, unchanged
    return img.transform(
        (image_size, image_size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
        **kw,
    )  # fmt: skip


def _signed_value(name: str, severity: float, rng: np.random.Generator, image_size: int):
    """Draw level, scale, then one more uniform for the sign: REF's draw order."""
    value = PARAMS[name].scale(sample_level(severity, rng), image_size)
    if PARAMS[name].signed and rng.uniform() > 0.5:
        value = -value
    return value


# Apply an op with an explicit parameter (tests use these to compare with the tensor twins).
# The AFFINE_FILL_OPS also take a fill (PIL fillcolor int) as a fourth argument (default 0).
PIL_APPLY: dict[str, Callable[[Image.Image, object, int], Image.Image]] = {
    "autocontrast": lambda img, v, s: ImageOps.autocontrast(img),
    "equalize": lambda img, v, s: ImageOps.equalize(img),
    "posterize": lambda img, v, s: ImageOps.posterize(img, int(v)),
    "rotate": lambda img, v, s: img.rotate(v, resample=Image.Resampling.BILINEAR),
    "solarize": lambda img, v, s: ImageOps.solarize(img, int(v)),
    "shear_x": lambda img, v, s, fill=0: _affine(img, (1, v, 0, 0, 1, 0), s, fill),
    "shear_y": lambda img, v, s, fill=0: _affine(img, (1, 0, 0, v, 1, 0), s, fill),
    "translate_x": lambda img, v, s, fill=0: _affine(img, (1, 0, v, 0, 1, 0), s, fill),
    "translate_y": lambda img, v, s, fill=0: _affine(img, (1, 0, 0, 0, 1, v), s, fill),
    "color": lambda img, v, s: ImageEnhance.Color(img).enhance(v),
    "contrast": lambda img, v, s: ImageEnhance.Contrast(img).enhance(v),
    "brightness": lambda img, v, s: ImageEnhance.Brightness(img).enhance(v),
    "sharpness": lambda img, v, s: ImageEnhance.Sharpness(img).enhance(v),
    "identity": lambda img, v, s: img.copy(),
}


def _make_pil_op(name: str):
    if name in AFFINE_FILL_OPS:

        def op(
            img: Image.Image, severity: float, rng: np.random.Generator, image_size: int,
            fill: int = 0,
        ):  # fmt: skip
            check_image(img, image_size)
            value = _signed_value(name, severity, rng, image_size)
            return PIL_APPLY[name](img, value, image_size, check_fill(fill))

        doc = " `fill`: PIL fillcolor int of the uncovered area (0: REF as committed)."
    else:

        def op(img: Image.Image, severity: float, rng: np.random.Generator, image_size: int):
            check_image(img, image_size)
            if PARAMS[name].scale is None:
                return PIL_APPLY[name](img, None, image_size)  # draws no random numbers, as in REF
            return PIL_APPLY[name](img, _signed_value(name, severity, rng, image_size), image_size)

        doc = ""
    op.__name__ = name
    op.__qualname__ = name
    op.__doc__ = f"REF `augmentations.{name}`: draw a level, scale it, apply with Pillow.{doc}"
    return op


_PAPER_OPS = (
    "autocontrast", "equalize", "posterize", "rotate", "solarize",
    "shear_x", "shear_y", "translate_x", "translate_y",
)  # fmt: skip
# The four extra ops carry REF's comment "operation that overlaps with ImageNet-C's test set";
# the paper withholds them, so they are only in OPS_ALL (`--all-ops`).
_EXTRA_OPS = ("color", "contrast", "brightness", "sharpness")

OPS: dict[str, Callable] = {name: _make_pil_op(name) for name in _PAPER_OPS}
OPS_ALL: dict[str, Callable] = {name: _make_pil_op(name) for name in _PAPER_OPS + _EXTRA_OPS}
identity = _make_pil_op("identity")  # control op: `ops={"identity": identity}` in tests


def op_names(all_ops: bool) -> tuple[str, ...]:
    """Op names in REF list order (`augmentations` or `augmentations_all`)."""
    return _PAPER_OPS + _EXTRA_OPS if all_ops else _PAPER_OPS


# ----------------------------------------------------------------------------- tensor path
# Shapes: x is uint8 (n, 3, H, W); a parameter tensor v is (n,) float64 (integer-valued where the
# reference uses an int). Every function returns a new uint8 (n, 3, H, W) tensor.


def _per(v: torch.Tensor) -> torch.Tensor:
    """(n,) -> (n, 1, 1, 1) for broadcasting over images."""
    return v.reshape(-1, 1, 1, 1)


def apply_lut(x: torch.Tensor, lut: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
    """Per image and channel lookup table: lut (n, 3, 256) of values 0..255. `idx` is
    x.reshape(n * 3, H * W).long() when the caller already has it."""
    n, c, h, w = x.shape
    if idx is None:
        idx = x.reshape(n * c, h * w).long()
    out = torch.gather(lut.reshape(n * c, 256).to(torch.int32).to(torch.uint8), 1, idx)
    return out.reshape(n, c, h, w)


def t_autocontrast(x: torch.Tensor, v=None) -> torch.Tensor:
    """PIL ImageOps.autocontrast(cutoff=0): per channel, lut = clip(int(i*scale - lo*scale))."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    lo = flat.amin(-1).double()
    hi = flat.amax(-1).double()
    # A true division: `255.0 / tensor` is computed as 255 * reciprocal(tensor) in torch,
    # which rounds differently from Python's 255.0 / (hi - lo).
    scale = torch.div(torch.full_like(lo, 255.0), (hi - lo).clamp_min(1.0))
    offset = -lo * scale
    flat_channel = hi == lo  # PIL keeps such a channel: scale 1, offset 0 is the identity
    scale = torch.where(flat_channel, 1.0, scale)
    offset = torch.where(flat_channel, 0.0, offset)
    i = torch.arange(256, device=x.device, dtype=torch.float64)
    # Two separate roundings (product, then sum), as Python evaluates `ix * scale + offset`;
    # int() truncates toward zero, as the int32 cast does.
    lut = (i * scale[..., None] + offset[..., None]).to(torch.int32).clamp_(0, 255)
    return apply_lut(x, lut)


def t_equalize(x: torch.Tensor, v=None) -> torch.Tensor:
    """PIL ImageOps.equalize: with h the channel histogram and h_last the count of its
    highest used value, step = (#pixels - h_last) // 255 and lut[i] = (step // 2 +
    #pixels below i) // step, clipped to 255; identity when one value is used or step == 0."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w)
    idx = flat.long()
    # int32 counts (images up to 2**31 pixels) halve the traffic of the LUT arithmetic
    hist = torch.zeros(n * c, 256, dtype=torch.int32, device=x.device)
    hist.scatter_add_(1, idx, torch.ones(1, 1, dtype=torch.int32, device=x.device).expand_as(idx))
    lo, hi = flat.amin(1), flat.amax(1)
    h_last = torch.gather(hist, 1, hi.long()[:, None])[:, 0]
    step = (h * w - h_last) // 255
    below = torch.cumsum(hist, 1, dtype=torch.int32) - hist
    # Floor division of integers below 2**31 done in float64, where floor(a / b) is exact
    # and vectorised (integer division is not, on CPU).
    lut = (below + (step // 2)[:, None]).double().div_(step.clamp_min(1)[:, None]).floor_()
    identity = (lo == hi) | (step == 0)
    ident = torch.arange(256, device=x.device, dtype=torch.float64)
    lut = torch.where(identity[:, None], ident, lut.clamp_(max=255))
    return apply_lut(x, lut.reshape(n, c, 256), idx)


def t_posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.posterize: keep the top `bits` bits, i & ~(2**(8 - bits) - 1)."""
    shift = (8 - bits.long()).clamp(0, 8)
    mask = (255 - ((1 << shift) - 1)).to(torch.uint8)
    return x & _per(mask)


def t_solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.solarize: values >= threshold become 255 - value."""
    t = threshold.to(x.device).long()
    flip = _per(torch.where(t <= 255, 255, 0).to(torch.uint8))  # t = 256 leaves x unchanged
    # x >= t as max(x, t) == x: a same-shape uint8 comparison, ~10x cheaper on CPU than
    # comparing with a broadcast threshold (measured); bool -> uint8 is a free view.
    hit = torch.maximum(x, _per(t.clamp(0, 255).to(torch.uint8))) == x
    return x ^ (hit.view(torch.uint8) * flip)  # 255 - x == x ^ 255 for uint8


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL Image.blend(degenerate, x, f) in float32 (libImaging Blend.c): trunc(d + f*(x - d)),
    clipped to 0..255 when f lies outside [0, 1]."""
    f = _per(factor.to(torch.float32).to(x.device))
    d = degenerate.to(torch.float32)
    out = d + f * (x.to(torch.float32) - d)
    return torch.trunc(out.clamp(0.0, 255.0)).to(torch.uint8)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """PIL convert('L') from RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, int32 (n,1,H,W)."""
    x32 = x.to(torch.int32)
    y = x32[:, 0:1] * 19595 + x32[:, 1:2] * 38470 + x32[:, 2:3] * 7471 + 0x8000
    return y >> 16


def t_color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Color: blend with the greyscale image."""
    return _blend(_luma(x).expand_as(x), x, factor)


def t_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Contrast: blend with a flat image at int(mean(L) + 0.5)."""
    luma = _luma(x)
    mean = luma.sum((1, 2, 3)).double() / luma[0].numel()
    grey = torch.floor(mean + 0.5)
    return _blend(_per(grey).expand_as(x), x, factor)


def t_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Brightness: blend with black."""
    return _blend(torch.zeros_like(x), x, factor)


_K1 = float(np.float32(1.0 / 13.0))
_K5 = float(np.float32(5.0 / 13.0))


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL ImageFilter.SMOOTH (3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13), libImaging Filter.c:
    float32 sums in Pillow's order starting from the +0.5 rounding offset, truncated and
    clipped; the one-pixel border keeps the input values."""
    xf = x.to(torch.float32)
    h, w = x.shape[-2:]
    if h < 3 or w < 3:
        return x.clone()

    def row(r: torch.Tensor, centre: float) -> torch.Tensor:
        return (r[..., 0 : w - 2] * _K1 + r[..., 1 : w - 1] * centre) + r[..., 2:w] * _K1

    ss = 0.5 + row(xf[..., 2:h, :], _K1)
    ss = ss + row(xf[..., 1 : h - 1, :], _K5)
    ss = ss + row(xf[..., 0 : h - 2, :], _K1)
    out = x.clone()
    out[..., 1 : h - 1, 1 : w - 1] = torch.trunc(ss.clamp(0.0, 255.0)).to(torch.uint8)
    return out


def t_sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image."""
    return _blend(_smooth(x), x, factor)


# ----------------------------------------------------------------------------- warps
# Rotate and the shears sample between pixels. Pillow sends a bilinear affine transform to its
# generic engine (python-pillow/Pillow src/libImaging/Geometry.c: ImagingTransformAffine ->
# ImagingGenericTransform with affine_transform and bilinear_filter32RGB), which computes, in
# double, for output pixel (x, y):
#   xin = a (x + 0.5) + b (y + 0.5) + c,  yin = d (x + 0.5) + e (y + 0.5) + f  (left to right);
#   a source point outside [0, W) x [0, H) gets the fill colour whole (no blend at the border);
#   else xin -= 0.5, yin -= 0.5, x0 = floor(xin), dx = xin - x0 (the same for y), and with the
#   four neighbours p00 p01 / p10 p11 of (x0, y0), coordinates clamped to the image,
#   v1 = p00 + (p01 - p00) dx,  v2 = p10 + (p11 - p10) dx,  v = v1 + (v2 - v1) dy,
#   truncated to uint8.
# The tensor warps repeat those float64 operations one by one in that order (separate multiplies
# and adds: torch.lerp and addcmul may fuse a multiply-add and round once), so they equal Pillow
# bit for bit on every device. The clamped neighbours and the fill are read from a canvas: the
# image with its edge pixels repeated around it, then a tail of fill colour that every tap of
# an outside pixel points at (no mask pass).


@functools.lru_cache(maxsize=8)
def _rotation_table(image_size: int) -> torch.Tensor:
    """(360, 6) float64: Image.rotate's matrix for each whole angle 0..359 (_pillow_rotation)."""
    return torch.tensor([_pillow_rotation(float(d), image_size) for d in range(360)], dtype=torch.float64)


def _pillow_rotation(degrees: float, image_size: int) -> tuple[float, ...]:
    """Image.rotate(degrees)'s affine data for a square image (PIL/Image.py rotate: no centre,
    translate or expand), in Python floats as Pillow computes it: the angle taken mod 360, cos and
    sin of -radians rounded to 15 decimals, the centre's offsets summed left to right."""
    angle = -math.radians(degrees % 360.0)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    centre = image_size / 2
    return (a, b, a * -centre + b * -centre + 0.0 + centre,
            d, e, d * -centre + e * -centre + 0.0 + centre)  # fmt: skip


def _rotation_matrices(v: torch.Tensor, image_size: int) -> torch.Tensor:
    """Whole degrees (every AugMix draw) take Pillow's matrix from _rotation_table, bit for bit.
    Other angles (and NaN, which the shared CUDA warp passes for rows of other ops) use torch's
    cos and sin without the decimal rounding: within a few ulp of Pillow's matrix, not equal."""
    whole = torch.isfinite(v) & (v == v.round())
    table = _rotation_table(image_size).to(v.device)
    exact = table[torch.where(whole, v, 0.0).remainder(360.0).long()]
    ang = v.remainder(360.0) * (-math.pi / 180.0)
    a, b = torch.cos(ang), torch.sin(ang)
    centre = image_size / 2
    c = a * -centre + b * -centre + centre
    f = (-b) * -centre + a * -centre + centre
    return torch.where(whole[:, None], exact, torch.stack([a, b, c, -b, a, f], 1))


def affine_matrices(name: str, v: torch.Tensor, image_size: int) -> torch.Tensor:
    """(n, 6) float64 PIL affine data (a, b, c, d, e, f): output (x, y) -> input position."""
    v = v.double()
    if name == "rotate":
        return _rotation_matrices(v, image_size)
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    table = {
        "shear_x": (one, v, zero, zero, one, zero),
        "shear_y": (one, zero, zero, v, one, zero),
        "translate_x": (one, zero, v, zero, one, zero),
        "translate_y": (one, zero, zero, zero, one, v),
    }
    return torch.stack(table[name], 1)


# Images per chunk of the warps: about this many values (channels x pixels) per chunk, so that
# the float64 temporaries stay in the caches on a CPU (measured in the batched AugMix with one
# thread, 32 and 224 px: 2^16 to 2^19 alike, 2^15 and 2^20 slower). Other devices take far
# larger chunks (2^24 values: 128 MiB per float64 temporary).
WARP_CHUNK_VALUES = {"cpu": 1 << 17}
WARP_CHUNK_VALUES_OTHER = 1 << 24


def _chunks(x: torch.Tensor) -> list[slice]:
    n, c, h, w = x.shape
    step = max(1, WARP_CHUNK_VALUES.get(x.device.type, WARP_CHUNK_VALUES_OTHER) // (c * h * w))
    return [slice(s, min(s + step, n)) for s in range(0, n, step)]


def _tail(h: int, w: int) -> int:
    """Where the fill tail of a canvas starts: (H + 2) (W + 2), the padded image's size."""
    return (h + 2) * (w + 2)


def _canvas(x: torch.Tensor, fill) -> torch.Tensor:
    """uint8 (n, c, (H + 2) (W + 2) + W + 4): each plane with its edge pixels repeated one pixel
    around it (Pillow's clamped neighbours), flattened, then W + 4 values of the fill colour
    (fill_colour of an int, or of a (n,) tensor: one per image), so that all four taps of an
    index _tail(H, W) read the fill."""
    n, c, h, w = x.shape
    canvas = x.new_empty(n, c, _tail(h, w) + w + 4)
    body = canvas[..., : _tail(h, w)].view(n, c, h + 2, w + 2)
    body[..., 1 : h + 1, 1 : w + 1] = x
    body[..., 1 : h + 1, 0] = x[..., 0]
    body[..., 1 : h + 1, w + 1] = x[..., w - 1]
    body[..., 0, :] = body[..., 1, :]
    body[..., h + 1, :] = body[..., h, :]
    if isinstance(fill, torch.Tensor):
        fill = fill.to(x.device, torch.uint8).reshape(-1, 1, 1)
    canvas[..., _tail(h, w) :] = _fill_planes(c, x.device).reshape(1, c, 1) * fill
    return canvas


def _floor_frac(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow's t -= 0.5; t0 = floor(t); dt = t - t0, float64 (t is overwritten with dt)."""
    t0 = t.sub_(0.5).floor()
    return t0, t.sub_(t0)


def _outside(t: torch.Tensor, size: int) -> torch.Tensor:
    """Pillow's test t < 0 || t >= size (before the half-pixel shift), bool."""
    return torch.lt(t, 0).logical_or_(t >= size)


def _plan_index(t0: torch.Tensor, outside: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Canvas index (float64 t0, small integers: exact) -> int64, _tail where outside."""
    return t0.masked_fill_(outside, float(_tail(h, w))).long()


def _bilinear_plan(mats: torch.Tensor, h: int, w: int):
    """For PIL matrices (u, 6): the canvas index of each output pixel's top-left neighbour (u, H*W)
    int64 (_tail for a source point outside the image) and the weights dx, dy (u, H*W) float64."""
    u = len(mats)
    xs = torch.arange(w, device=mats.device, dtype=torch.float64) + 0.5
    ys = torch.arange(h, device=mats.device, dtype=torch.float64)[:, None] + 0.5
    corner, weight, outside = [], [], None
    for k, size in ((0, w), (1, h)):
        p, q, r = (mats[:, 3 * k + i, None, None] for i in range(3))
        t = torch.add(p * xs, q * ys).add_(r).view(u, h * w)
        outside = _outside(t, size) if outside is None else outside.logical_or_(_outside(t, size))
        t0, dt = _floor_frac(t)
        corner.append(t0)
        weight.append(dt)
    index = corner[1].add_(1).mul_(w + 2).add_(corner[0]).add_(1)  # (y0 + 1)(W + 2) + x0 + 1
    return _plan_index(index, outside, h, w), *weight


def _bilinear(canvas, idx, dx, dy, h: int, w: int, out: torch.Tensor) -> None:
    """Pillow's bilinear filter on canvas taps, written into out (m, c, H, W) uint8: idx (m, H*W)
    the top-left neighbour, dx / dy (m, H*W) float64 weights, None where a weight is exactly 0
    (the shears: then v is v1, or the lerp of p00 and p10, bit for bit, so only two taps are
    read). The taps are gathered from a float64 copy of the canvas (measured faster than
    gathering bytes and converting each tap)."""
    m, c = canvas.shape[:2]
    at = idx[:, None].expand(m, c, h * w)
    canvas = canvas.double()

    def tap(offset: int) -> torch.Tensor:  # the canvas seen from `offset` on: no index sum
        return torch.gather(canvas[..., offset:], 2, at)

    def lerp(p0: torch.Tensor, p1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return p1.sub_(p0).mul_(t[:, None]).add_(p0)  # p0 + (p1 - p0) t, in this order

    row = w + 2
    if dy is None:
        v = lerp(tap(0), tap(1), dx)
    elif dx is None:
        v = lerp(tap(0), tap(row), dy)
    else:
        v = lerp(lerp(tap(0), tap(1), dx), lerp(tap(row), tap(row + 1), dx), dy)
    # C's (UINT8) cast truncates; through int32, as torch's float -> uint8 cast is slower
    out.view(m, c, h * w).copy_(v.to(torch.int32))


def t_affine(x: torch.Tensor, mats: torch.Tensor, fill=0) -> torch.Tensor:
    """Batched Pillow affine warp of square images: bilinear, same output size, bit for bit.
    mats (n, 6) holds PIL's (a, b, c, d, e, f) per image (affine_matrices). `fill`: PIL's
    `fillcolor` int for the uncovered area (colour: fill_colour), or a (n,) tensor, one per image."""
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"t_affine expects square images, got {h}x{w}")
    mats = mats.to(x.device, torch.float64).reshape(n, 6)
    canvas, out = _canvas(x, fill), torch.empty_like(x)
    idx, dx, dy = _bilinear_plan(mats, h, w)  # per pixel, not per channel: one pass for all
    for s in _chunks(x):
        _bilinear(canvas[s], idx[s], dx[s], dy[s], h, w, out[s])
    return out


@functools.lru_cache(maxsize=64)
def _rotation_plan(degrees: float, h: int, w: int, device: str) -> tuple[torch.Tensor, ...]:
    """_bilinear_plan of Image.rotate(degrees) for one angle (any angle: Pillow's matrix in Python
    floats): index, dx, dy, each (H*W,). Kept for the 64 angles last used (AugMix draws 59 whole
    degrees; 1.2 MB each at 224 px): a batch of a few images otherwise spends most of its time on
    the plans (measured)."""
    mats = torch.tensor([_pillow_rotation(degrees, w)], dtype=torch.float64, device=device)
    return tuple(t[0].clone() for t in _bilinear_plan(mats, h, w))


def t_rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """PIL Image.rotate(degrees, BILINEAR) per image, fill 0, bit for bit for any angle. AugMix's
    angles are whole degrees, so a batch holds few distinct ones: each image takes its angle's
    plan (_rotation_plan)."""
    n, _, h, w = x.shape
    angles = degrees.to(torch.float64).tolist()
    row_of = {a: k for k, a in enumerate(dict.fromkeys(angles))}  # distinct angles, in order
    plans = [torch.stack(t) for t in zip(*(_rotation_plan(a, h, w, str(x.device)) for a in row_of))]
    which = torch.tensor([row_of[a] for a in angles], dtype=torch.int64, device=x.device)
    canvas, out = _canvas(x, 0), torch.empty_like(x)
    for s in _chunks(x):
        _bilinear(canvas[s], *(t.index_select(0, which[s]) for t in plans), h, w, out[s])
    return out


def _shear_plan(v: torch.Tensor, h: int, w: int, along_x: bool):
    """_bilinear_plan of shear_x (data (1, v, 0, 0, 1, 0)) or shear_y ((1, 0, 0, v, 1, 0)) with
    only the sheared coordinate computed: the other is the pixel centre exactly (a product with
    1.0 and a sum with 0.0 are exact), so its weight is 0 and the other axis' index is the pixel's.
    Returns the index (m, H*W) int64 and the sheared axis' weight (m, H*W) float64."""
    m, dev = len(v), v.device
    xs = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
    ys = torch.arange(h, device=dev, dtype=torch.float64)[:, None] + 0.5
    if along_x:  # xin = (x + 0.5) + v (y + 0.5); index (y + 1)(W + 2) + x0 + 1
        t = torch.add(xs, v[:, None, None] * ys)
        size, other = w, (ys + 0.5) * (w + 2) + 1
    else:  # yin = v (x + 0.5) + (y + 0.5); index (y0 + 1)(W + 2) + x + 1
        t = torch.add(v[:, None, None] * xs, ys)
        size, other = h, xs + 0.5
    t = t.view(m, h * w)
    outside = _outside(t, size)
    t0, frac = _floor_frac(t)
    t0 = t0.view(m, h, w)
    (t0 if along_x else t0.add_(1).mul_(w + 2)).add_(other)
    return _plan_index(t0.view(m, h * w), outside, h, w), frac


def t_shear(x: torch.Tensor, v: torch.Tensor, axis: str, fill: int = 0) -> torch.Tensor:
    """PIL shear_x (axis "x", data (1, v, 0, 0, 1, 0)) or shear_y (axis "y") per image, bit for
    bit; the uncovered area gets the colour of `fill` (fill_colour).

    A shear moves whole rows (columns) while the other coordinate stays on a pixel centre, where
    Pillow's weight is exactly 0: every output is one lerp between two neighbours in its row
    (column), two taps instead of four."""
    n, c, h, w = x.shape
    along_x = axis == "x"
    v = v.to(x.device, torch.float64)
    canvas, out = _canvas(x, fill), torch.empty_like(x)
    idx, t = _shear_plan(v, h, w, along_x)  # per pixel, not per channel: one pass for all
    for s in _chunks(x):
        weights = (t[s], None) if along_x else (None, t[s])
        _bilinear(canvas[s], idx[s], *weights, h, w, out[s])
    return out


def t_translate(
    x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, fill: int = 0
) -> torch.Tensor:
    """Integer translation, PIL convention (output (x, y) reads input (x + dx, y + dy), the
    colour of `fill` outside; fill_colour).

    Exact for integer offsets (PIL's bilinear weights are then 0/1). One uint8 gather from the
    image with a fill row and column appended, which the source rows and columns that fall
    outside point at (so no mask pass)."""
    n, c, h, w = x.shape
    dev = x.device
    xs = torch.arange(w, device=dev) + dx.to(dev).long()[:, None]  # (n, W)
    ys = torch.arange(h, device=dev) + dy.to(dev).long()[:, None]  # (n, H)
    xs = torch.where((xs >= 0) & (xs < w), xs, w)  # column w and row h hold the fill
    ys = torch.where((ys >= 0) & (ys < h), ys, h)
    canvas = (_fill_planes(c, dev) * fill).expand(n, c, h + 1, w + 1).clone()
    canvas[:, :, :h, :w] = x
    src = ys[:, :, None] * (w + 1) + xs[:, None, :]  # (n, H, W)
    idx = src.reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(canvas.reshape(n, c, -1), 2, idx).reshape(n, c, h, w)


# The AFFINE_FILL_OPS also take a keyword `fill` (PIL fillcolor int of the uncovered area, default 0).
TENSOR_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    "autocontrast": t_autocontrast,
    "equalize": t_equalize,
    "posterize": t_posterize,
    "rotate": t_rotate,
    "solarize": t_solarize,
    "shear_x": lambda x, v, fill=0: t_shear(x, v, "x", fill),
    "shear_y": lambda x, v, fill=0: t_shear(x, v, "y", fill),
    "translate_x": lambda x, v, fill=0: t_translate(x, v, torch.zeros_like(v), fill),
    "translate_y": lambda x, v, fill=0: t_translate(x, torch.zeros_like(v), v, fill),
    "color": t_color,
    "contrast": t_contrast,
    "brightness": t_brightness,
    "sharpness": t_sharpness,
    "identity": lambda x, v=None: x.clone(),  # control op, not an AugMix op
}


def tensor_parameters(
    name: str, level: torch.Tensor, negate: torch.Tensor, image_size: int
) -> torch.Tensor | None:
    """Per-sample parameters from per-sample levels and sign flips (same scaling as PIL path)."""
    spec = PARAMS[name]
    if spec.scale is None:
        return None
    v = spec.scale(level.double(), image_size)
    if not isinstance(v, torch.Tensor):
        v = torch.full_like(level, float(v), dtype=torch.float64)
    if spec.signed:
        v = torch.where(negate, -v, v)
    return v
