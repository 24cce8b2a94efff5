"""The AugMix operations: PIL versions as the reference defines them, and batched tensor twins.

Reference: google-research/augmix `augmentations.py` (spec: `augmix.md` §2-§6). Each PIL op takes
(image, severity, rng, image_size), draws its own level l ~ U(0.1, severity) from the passed
NumPy generator, scales it, flips the sign with probability 0.5 where the reference does, and
calls Pillow with the reference's settings. The image size is an argument (the reference reads a
mutable module global, `IMAGE_SIZE`).

The tensor twins act on a uint8 batch (n, 3, H, W) with one parameter per image, vectorised:
the pixel ops reproduce Pillow's integer arithmetic exactly, translations (integer pixels) are
exact shifts, and rotate and the shears use one batched `grid_sample` that follows Pillow's
output-to-input mapping, agreeing with Pillow up to float32 rounding of the bilinear weights
(at most one grey level; stated tolerance and checks in tests/test_ops.py).
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


def _affine(img: Image.Image, data, image_size: int) -> Image.Image:
    # PIL maps each output pixel to input (a x + b y + c, d x + e y + f), top-left origin,
    # bilinear, fill 0 (augmix.md §3).
    return img.transform(
        (image_size, image_size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
    )


def _signed_value(name: str, severity: float, rng: np.random.Generator, image_size: int):
    """Draw level, scale, then one more uniform for the sign: REF's draw order (§7.4)."""
    value = PARAMS[name].scale(sample_level(severity, rng), image_size)
    if PARAMS[name].signed and rng.uniform() > 0.5:
        value = -value
    return value


# Apply an op with an explicit parameter (tests use these to compare with the tensor twins).
PIL_APPLY: dict[str, Callable[[Image.Image, object, int], Image.Image]] = {
    "autocontrast": lambda img, v, s: ImageOps.autocontrast(img),
    "equalize": lambda img, v, s: ImageOps.equalize(img),
    "posterize": lambda img, v, s: ImageOps.posterize(img, int(v)),
    "rotate": lambda img, v, s: img.rotate(v, resample=Image.Resampling.BILINEAR),
    "solarize": lambda img, v, s: ImageOps.solarize(img, int(v)),
    "shear_x": lambda img, v, s: _affine(img, (1, v, 0, 0, 1, 0), s),
    "shear_y": lambda img, v, s: _affine(img, (1, 0, 0, v, 1, 0), s),
    "translate_x": lambda img, v, s: _affine(img, (1, 0, v, 0, 1, 0), s),
    "translate_y": lambda img, v, s: _affine(img, (1, 0, 0, 0, 1, v), s),
    "color": lambda img, v, s: ImageEnhance.Color(img).enhance(v),
    "contrast": lambda img, v, s: ImageEnhance.Contrast(img).enhance(v),
    "brightness": lambda img, v, s: ImageEnhance.Brightness(img).enhance(v),
    "sharpness": lambda img, v, s: ImageEnhance.Sharpness(img).enhance(v),
    "identity": lambda img, v, s: img.copy(),
}


def _make_pil_op(name: str):
    def op(img: Image.Image, severity: float, rng: np.random.Generator, image_size: int):
        check_image(img, image_size)
        if PARAMS[name].scale is None:
            return PIL_APPLY[name](img, None, image_size)  # draws no random numbers (§2)
        return PIL_APPLY[name](img, _signed_value(name, severity, rng, image_size), image_size)

    op.__name__ = name
    op.__qualname__ = name
    op.__doc__ = f"REF `augmentations.{name}`: draw a level, scale it, apply with Pillow."
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
    out = torch.gather(lut.reshape(n * c, 256).to(torch.uint8), 1, idx)
    return out.reshape(n, c, h, w)


def t_autocontrast(x: torch.Tensor, v=None) -> torch.Tensor:
    """PIL ImageOps.autocontrast(cutoff=0): per channel, lut = clip(int(i*scale - lo*scale))."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    lo = flat.amin(-1).double()
    hi = flat.amax(-1).double()
    span = (hi - lo).clamp_min(1.0)
    # A true division: `255.0 / tensor` is computed as 255 * reciprocal(tensor) in torch,
    # which rounds differently from Python's 255.0 / (hi - lo).
    scale = torch.div(torch.full_like(span, 255.0), span)
    offset = -lo * scale
    i = torch.arange(256, device=x.device, dtype=torch.float64)
    # Two separate roundings (product, then sum), as Python evaluates `ix * scale + offset`.
    lut = torch.trunc(i * scale[..., None] + offset[..., None]).clamp(0, 255)
    lut = torch.where((hi > lo)[..., None], lut, i)  # flat channel: identity
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
    lut = (step[:, None] // 2 + below) // step.clamp_min(1)[:, None]
    identity = (lo == hi) | (step == 0)
    ident = torch.arange(256, device=x.device, dtype=torch.int32)
    lut = torch.where(identity[:, None], ident, lut.clamp(max=255))
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
    hit = (x >= _per(t.clamp(0, 255).to(torch.uint8))).to(torch.uint8)
    return x ^ (hit * flip)  # 255 - x == x ^ 255 for uint8; much cheaper than torch.where


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


def t_affine(x: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Batched PIL-style affine warp of square images: bilinear, fill 0, same output size.

    PIL (libImaging Geometry.c) samples at A (x + 0.5, y + 0.5) + t in continuous pixel
    coordinates, returns 0 outside [0, W) x [0, H), clamps neighbours at the edge and truncates.
    The PIL matrix is rewritten for normalised coordinates and fed to grid_sample with
    align_corners=False (the same pixel-centre convention); border padding is PIL's edge clamp
    and the inside test is done on the normalised grid. float32 throughout, so results can
    differ from Pillow's float64 by one grey level (tolerance in tests/test_ops.py).
    """
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"t_affine expects square images, got {h}x{w}")
    dev = x.device
    m = mats.to(dev, torch.float64).reshape(n, 2, 3)
    # In normalised coordinates (u, v in [-1, 1]): u_in = a u + b v + (a + b - 1 + 2 c / S).
    shift = m[:, :, 0] + m[:, :, 1] - 1.0 + 2.0 * m[:, :, 2] / w
    theta = torch.cat([m[:, :, :2], shift[:, :, None]], 2).to(torch.float32)
    u = (torch.arange(w, device=dev, dtype=torch.float32) * 2.0 + 1.0) / w - 1.0
    grid = torch.empty(n, h, w, 2, device=dev, dtype=torch.float32)
    for k in range(2):  # separable: (column term) + (row term), one broadcast add each
        col = theta[:, k, 0:1] * u + theta[:, k, 2:3]  # (n, W)
        row = theta[:, k, 1:2] * u  # (n, H)
        torch.add(col[:, None, :], row[:, :, None], out=grid[..., k])
    inside = (grid[..., 0] >= -1.0) & (grid[..., 0] < 1.0)
    inside &= (grid[..., 1] >= -1.0) & (grid[..., 1] < 1.0)
    out = F.grid_sample(
        x.to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    # float -> uint8 conversion truncates, as PIL's (UINT8) cast does.
    return out.add_(GEOMETRIC_EPS).mul_(inside[:, None]).to(torch.uint8)


def t_translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Integer translation, PIL convention (output (x, y) reads input (x + dx, y + dy), fill 0).

    Exact for integer offsets (PIL's bilinear weights are then 0/1), and a uint8 gather is far
    cheaper than grid_sample, so the translate ops take this path."""
    n, c, h, w = x.shape
    dev = x.device
    xs = torch.arange(w, device=dev) + dx.to(dev).long()[:, None]  # (n, W)
    ys = torch.arange(h, device=dev) + dy.to(dev).long()[:, None]  # (n, H)
    valid = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    src = ys.clamp(0, h - 1)[:, :, None] * w + xs.clamp(0, w - 1)[:, None, :]  # (n, H, W)
    out = torch.gather(x.reshape(n, c, h * w), 2, src.reshape(n, 1, h * w).expand(n, c, h * w))
    return out.reshape(n, c, h, w) * valid[:, None]


def _geometric(name: str):
    def op(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return t_affine(x, affine_matrices(name, v, x.shape[-1]))

    op.__name__ = f"t_{name}"
    return op


TENSOR_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    "autocontrast": t_autocontrast,
    "equalize": t_equalize,
    "posterize": t_posterize,
    "rotate": _geometric("rotate"),
    "solarize": t_solarize,
    "shear_x": _geometric("shear_x"),
    "shear_y": _geometric("shear_y"),
    "translate_x": lambda x, v: t_translate(x, v, torch.zeros_like(v)),
    "translate_y": lambda x, v: t_translate(x, torch.zeros_like(v), v),
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
