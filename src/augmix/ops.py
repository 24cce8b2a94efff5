"""The AugMix operations: PIL versions as the reference defines them, and batched tensor twins.

Reference: google-research/augmix `augmentations.py` (spec: `augmix.md` §2-§6). Each PIL op takes
(image, severity, rng, image_size), draws its own level l ~ U(0.1, severity) from the passed
NumPy generator, scales it, flips the sign with probability 0.5 where the reference does, and
calls Pillow with the reference's settings. The image size is an argument (the reference reads a
mutable module global, `IMAGE_SIZE`).

The tensor twins act on a uint8 batch (n, 3, H, W) with one parameter per image, vectorised:
the pixel ops reproduce Pillow's integer arithmetic exactly, translations (integer pixels) are
exact shifts, and rotate and the shears follow Pillow's output-to-input mapping with float32
bilinear weights, agreeing with Pillow up to one grey level (stated tolerance and checks in
tests/test_ops.py). Rotate uses `grid_sample`; on the CPU the shears use two gathers per
pixel (a shear moves whole rows or columns), elsewhere `grid_sample` too.

Fill: the area a geometric op uncovers is black (0), as in the committed reference. The code that
trained the released ImageNet ResNet-50 (REF-#3, augmix.md §6 and §9.3) passes `fillcolor=128` to
shear_x, shear_y, translate_x and translate_y; the ops in AFFINE_FILL_OPS therefore take that int
as `fill`, default 0. Quirk: Pillow reads an int colour on an RGB image as a packed value, red in
the low byte, so REF-#3's 128 fills dark red (128, 0, 0), not the mid-grey augmix.md §6 describes
(`fill_colour`). Rotate's fill in REF-#3 is unknown, so rotate always fills 0. Pillow gives an
output pixel whose source point falls outside the image the fill colour whole (no bilinear blend
with the fill at the border), and the tensor twins do the same.

CPU speed notes (measured with one thread; the reasons for the less obvious choices below):
uint8 and int16 elementwise ops are the cheapest, float comparisons and casts from float
straight to uint8 are several times dearer than arithmetic, and a gather costs about five
elementwise passes per element.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

PARAMETER_MAX = 10  # the severity scale runs 1..10 (REF augment_and_mix.py docstring)

# ----------------------------------------------------------------------------- scaling helpers


def sample_level(severity: float, rng: np.random.Generator) -> float:
    """l ~ U(0.1, severity), drawn afresh on every op call (REF `sample_level`)."""
    return float(rng.uniform(0.1, severity))


def int_parameter(level, maxval):
    """floor(level * maxval / 10); REF uses int(), equal to floor because level > 0."""
    if isinstance(level, torch.Tensor):
        return torch.trunc(level * maxval / PARAMETER_MAX)
    return int(level * maxval / PARAMETER_MAX)


def float_parameter(level, maxval):
    """level * maxval / 10 (REF `float_parameter`)."""
    return level * maxval / PARAMETER_MAX


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

GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
# The ops that take a fill for the area they uncover (REF-#3 passes 128 to exactly these four;
# rotate keeps 0, augmix.md §6).
AFFINE_FILL_OPS = ("shear_x", "shear_y", "translate_x", "translate_y")


def check_fill(fill) -> int:
    """An affine fill (the int passed to PIL as `fillcolor`) must be in 0..255; returns an int."""
    if isinstance(fill, bool) or not isinstance(fill, (int, np.integer)) or not 0 <= fill <= 255:
        raise ValueError(f"affine_fill must be an integer in 0..255 (PIL fillcolor), got {fill!r}")
    return int(fill)


def fill_colour(fill: int, channels: int = 3) -> tuple[int, ...]:
    """The colour Pillow paints for `fillcolor=fill` (an int, as REF-#3 passes it): on an RGB
    image a packed value with red in the low byte, so 0..255 gives (fill, 0, 0); a one-band image
    takes the int as its level."""
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
    # bilinear, fill 0 (augmix.md §3); REF-#3 passes the int fillcolor=128 (§6; see fill_colour).
    kw = {"fillcolor": fill} if fill else {}  # fill 0: the reference call, unchanged
    return img.transform(
        (image_size, image_size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
        **kw,
    )  # fmt: skip


def _signed_value(name: str, severity: float, rng: np.random.Generator, image_size: int):
    """Draw level, scale, then one more uniform for the sign: REF's draw order (§7.4)."""
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

        doc = " `fill`: PIL fillcolor int of the uncovered area (0: REF; 128: REF-#3, augmix.md §6)."
    else:

        def op(img: Image.Image, severity: float, rng: np.random.Generator, image_size: int):
            check_image(img, image_size)
            if PARAMS[name].scale is None:
                return PIL_APPLY[name](img, None, image_size)  # draws no random numbers (§2)
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
# the paper withholds them (augmix.md §4), so they are only in OPS_ALL (`--all-ops`).
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


def _check_batch(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"tensor ops expect uint8 (n, 3, H, W), got {x.dtype} {tuple(x.shape)}")


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


def affine_matrices(name: str, v: torch.Tensor, image_size: int) -> torch.Tensor:
    """(n, 6) float64 PIL affine data (a, b, c, d, e, f): output (x, y) -> input position."""
    v = v.double()
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    if name == "rotate":
        # Image.rotate: angle = -radians(deg) about the centre (w/2, h/2), no expand.
        ang = -v * (math.pi / 180.0)
        a, b = torch.cos(ang), torch.sin(ang)
        cx = cy = image_size / 2.0
        c = a * (-cx) + b * (-cy) + cx
        f = (-b) * (-cx) + a * (-cy) + cy
        return torch.stack([a, b, c, -b, a, f], 1)
    table = {
        "shear_x": (one, v, zero, zero, one, zero),
        "shear_y": (one, zero, zero, v, one, zero),
        "translate_x": (one, zero, v, zero, one, zero),
        "translate_y": (one, zero, zero, zero, one, v),
    }
    return torch.stack(table[name], 1)


GEOMETRIC_EPS = 1e-3  # nudge before truncation so exact-integer PIL results survive float32

# Rotate and the shears sample between pixels. PIL (libImaging Geometry.c, bilinear filter)
# maps output pixel (x, y) to the input point q = A (x + 0.5, y + 0.5) + t in float64; a point
# outside [0, W) x [0, H) is black (or the whole fill colour: no blend); otherwise, with q' = q - 0.5, the four pixels around
# floor(q') (coordinates clamped to the image) are mixed as lerp(lerp(p00, p01, dx),
# lerp(p10, p11, dx), dy) and truncated (augmix.md §3). The tensor versions interpolate in
# float32, so a value can differ from Pillow's by one grey level (tolerance in
# tests/test_ops.py).


def _trunc_uint8(v: torch.Tensor) -> torch.Tensor:
    """float32 values in [0, 255] -> uint8 by truncation, as Pillow's (UINT8) cast, after the
    GEOMETRIC_EPS nudge (in place on v). Through int32: torch's direct float -> uint8 cast is
    several times slower on CPU (measured)."""
    return v.add_(GEOMETRIC_EPS).to(torch.int32).to(torch.uint8)


def _grid_and_mask(mats: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For PIL matrices (u, 6) float64: grid_sample's normalised grid (u, H, W, 2) float32
    (align_corners=False has PIL's pixel-centre convention) and the inside mask (u, H, W)
    uint8, both from float64 input coordinates as PIL computes them."""
    dev = mats.device
    xs = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
    ys = torch.arange(h, device=dev, dtype=torch.float64) + 0.5
    grid = torch.empty(len(mats), h, w, 2, device=dev)
    inside = torch.ones(len(mats), h, w, device=dev)
    for k, size in enumerate((w, h)):
        p, q, r = mats[:, 3 * k], mats[:, 3 * k + 1], mats[:, 3 * k + 2]
        coord = (p[:, None] * xs)[:, None, :] + (q[:, None] * ys + r[:, None])[:, :, None]
        torch.mul(coord, 2.0 / size, out=grid[..., k]).sub_(1.0)
        # inside iff 0 <= floor(coord) <= size - 1, as 0/1 products: clamps are much cheaper
        # than float comparisons on CPU (measured)
        fl = coord.floor_().float()
        inside.mul_((fl + 1).clamp_(0, 1)).mul_((size - fl).clamp_(0, 1))
    return grid, inside.to(torch.uint8)


def _fill_outside(out: torch.Tensor, inside: torch.Tensor, fill) -> torch.Tensor:
    """Give the pixels where the uint8 0/1 mask `inside` (broadcast to out) is 0 the colour of
    `fill` (fill_colour of an int, or of a (n,) tensor: one per image), in place. out must already
    be 0 there, as PIL sets such a pixel to the fill colour whole. Fill 0 leaves out untouched."""
    if isinstance(fill, torch.Tensor):
        fill = _per(fill.to(out.device, torch.uint8))
    elif fill == 0:
        return out
    colour = _fill_planes(out.shape[1], out.device) * fill
    return out.add_((1 - inside) * colour)  # uint8: 0 or the colour, no overflow on top of 0


def _warp(x: torch.Tensor, grid: torch.Tensor, inside: torch.Tensor, fill=0) -> torch.Tensor:
    """Bilinear sampling of uint8 x (n, c, H, W) at grid (n, H, W, 2), `fill` (default black)
    where inside == 0. Border padding is PIL's clamp of the neighbours at the image edge."""
    out = F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return _fill_outside(_trunc_uint8(out).mul_(inside[:, None]), inside[:, None], fill)


def t_affine(x: torch.Tensor, mats: torch.Tensor, fill=0) -> torch.Tensor:
    """Batched PIL-style affine warp of square images: bilinear, same output size.
    mats (n, 6) holds PIL's (a, b, c, d, e, f) per image (affine_matrices). `fill`: PIL's
    `fillcolor` int for the uncovered area (colour: fill_colour), or a (n,) tensor, one per image."""
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"t_affine expects square images, got {h}x{w}")
    grid, inside = _grid_and_mask(mats.to(x.device, torch.float64).reshape(n, 6), h, w)
    return _warp(x, grid, inside, fill)


def t_rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """PIL Image.rotate(degrees, BILINEAR) per image. The angles are whole degrees, so a batch
    holds few distinct ones: the grid and mask are built once per distinct angle."""
    angles, which = torch.unique(degrees.to(x.device, torch.float64), return_inverse=True)
    grid, inside = _grid_and_mask(affine_matrices("rotate", angles, x.shape[-1]), *x.shape[-2:])
    return _warp(x, grid.index_select(0, which), inside.index_select(0, which))


def _edge_canvas(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """x (n, c, H, W) -> (n, c, (H + 2 pad_h) * (W + 2 pad_w)): each plane padded by repeating
    its edge pixels (PIL's clamp), then flattened."""
    n, c, h, w = x.shape
    out = x.new_empty(n, c, h + 2 * pad_h, w + 2 * pad_w)
    rows = slice(pad_h, pad_h + h)
    out[:, :, rows, pad_w : pad_w + w] = x
    if pad_w:
        out[:, :, rows, :pad_w] = x[..., :1]
        out[:, :, rows, pad_w + w :] = x[..., -1:]
    if pad_h:
        out[:, :, :pad_h] = out[:, :, pad_h : pad_h + 1]
        out[:, :, pad_h + h :] = out[:, :, pad_h + h - 1 : pad_h + h]
    return out.reshape(n, c, -1)


def t_shear(x: torch.Tensor, v: torch.Tensor, axis: str, fill: int = 0) -> torch.Tensor:
    """PIL shear_x (axis "x", data (1, v, 0, 0, 1, 0)) or shear_y (axis "y") per image; the
    uncovered area gets the colour of `fill` (0: REF; 128: REF-#3; fill_colour).

    shear_x samples output (x, y) at input (x + 0.5 + s_y, y + 0.5) with s_y = v (y + 0.5):
    each row is shifted by its own s_y while the other coordinate stays on a pixel centre,
    where PIL's bilinear weight is exactly 0. So every output is one lerp between two
    neighbours in the row with the row's constant weight frac(s_y): two gathers from the
    edge-padded image instead of grid_sample's four taps (CPU). shear_y: the same per column.
    """
    if x.device.type != "cpu":
        return t_affine(x, affine_matrices(f"shear_{axis}", v, x.shape[-1]), fill)
    n, c, h, w = x.shape
    along_x = axis == "x"
    size, lines = (w, h) if along_x else (h, w)

    def per_line(a: torch.Tensor) -> torch.Tensor:  # (n, lines) -> broadcast over (n, c, H, W)
        return a[:, None, :, None] if along_x else a[:, None, None, :]

    s = v.to(x.device, torch.float64)[:, None] * (torch.arange(lines, dtype=torch.float64) + 0.5)
    k = s.floor()
    pad = int(k.abs().max()) + 1 if n else 1  # the padding covers every tap
    # Inside iff 0 <= t + 0.5 + s < size at position t along the axis, i.e. lo <= t < hi;
    # the 0/1 mask is built from int16 clamps (cheaper than comparisons on CPU).
    lo = torch.ceil(-0.5 - s).to(torch.int16)
    hi = torch.ceil(size - 0.5 - s).to(torch.int16)
    t = torch.arange(size, dtype=torch.int16)
    t = t if along_x else t[:, None]
    mask = (t - per_line(lo) + 1).clamp_(0, 1).mul_((per_line(hi) - t).clamp_(0, 1))
    # Left (upper) tap t + k of each output in the flattened padded planes; the other tap is
    # one step further.
    canvas = _edge_canvas(x, 0, pad) if along_x else _edge_canvas(x, pad, 0)
    row = w + 2 * pad if along_x else w
    step = 1 if along_x else w
    grid = torch.arange(h)[:, None] * row + torch.arange(w)
    tap = (grid + per_line((k.long() + pad) * step)).reshape(n, 1, h * w).expand(n, c, h * w)
    p0 = torch.gather(canvas, 2, tap).float().reshape(n, c, h, w)
    p1 = torch.gather(canvas[..., step:], 2, tap).float().reshape(n, c, h, w)
    out = _trunc_uint8(torch.lerp(p0, p1, per_line((s - k).float())))
    mask = mask.to(torch.uint8)
    return _fill_outside(out.mul_(mask), mask, fill)


def t_translate(
    x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, fill: int = 0
) -> torch.Tensor:
    """Integer translation, PIL convention (output (x, y) reads input (x + dx, y + dy), the
    colour of `fill` outside: 0 in REF, 128 in REF-#3; fill_colour).

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
