"""torchvision's AutoAugment-family operations on uint8 batches, one magnitude per image.

What is reproduced: `torchvision.transforms.v2` (0.29, `_auto_augment.py`,
`_AutoAugmentBase._apply_image_or_video_transform`) maps an op name and a signed magnitude to a
functional call; the op spaces (magnitude bins per op) are in `SPACES`. The target backend is
PIL, i.e. what those transforms do to the PIL images a torchvision CIFAR/ImageFolder dataset hands
out (the classification references' default): the functional calls become Pillow calls, and the
twins here give Pillow's bytes exactly:

* pixel ops (brightness, color, contrast, sharpness, posterize, solarize, autocontrast,
  equalize) are `augmix.ops` twins, which reproduce ImageEnhance / ImageOps integer arithmetic;
  invert is 255 - x.
* the geometric ops use torchvision's default NEAREST interpolation. Pillow (libImaging
  `Geometry.c`, `ImagingTransformAffine`) runs a nearest affine in 16.16 fixed point when every
  corner maps inside +-32768 (always, for images below ~16k pixels): with A = floor(a * 65536 +
  0.5) for the inverse matrix (a0 .. a5) and the pixel-centre offsets folded into A2 and A5,
  output (x, y) reads input (floor((A2 + y A1 + x A0) / 2^16), floor((A5 + y A4 + x A3) / 2^16)),
  and the fill colour where that falls outside. Integer arithmetic, so exact here too.
  Translations (a1 == a3 == 0) go through `ImagingScaleAffine`; with integer offsets that is an
  exact shift. `Image.rotate` takes its own fast paths first: 0 degrees copies, 90/180/270
  transpose (TrivialAugment wide's bins reach 90).
* the matrices are torchvision's `_get_inverse_affine_matrix` (shears about the top-left corner,
  `center=[0, 0]`; translations about the centre) and Pillow's `Image.rotate` matrix (rounded to
  15 decimals), computed with Python floats once per distinct magnitude, as the originals are.

The torchvision tensor backend (uint8 tensors fed straight to the transforms) differs from PIL
(other grey weights, float rounding, grid_sample's pixel mapping) and is not reproduced.

Every op here: f(x uint8 (n, 3, H, W), magnitude (n,) float64 signed, fill) -> uint8 (n, 3, H, W),
where `magnitude` is exactly the float torchvision passes (a float32 bin value, sign applied).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from augmix import ops as O
from augmix.errors import ConfigError

Fill = int | Sequence[int]

# ----------------------------------------------------------------------------- op spaces
# Magnitude bins per op as torchvision builds them (float32 torch.linspace / arange; None: the
# op takes no magnitude) and whether the magnitude is negated with probability 1/2.


def _lin(hi: float | Callable[[int, int], float]):
    def bins(num_bins: int, height: int, width: int) -> torch.Tensor:
        top = hi(height, width) if callable(hi) else hi
        return torch.linspace(0.0, top, num_bins, dtype=torch.float32)

    return bins


def _posterize_bins(levels: int):
    # 8 - round(i / ((num_bins - 1) / levels)): 8 bits at bin 0 down to 8 - levels at the top
    def bins(num_bins: int, height: int, width: int) -> torch.Tensor:
        i = torch.arange(num_bins, dtype=torch.float32)
        return (8 - i / ((num_bins - 1) / levels)).round().int()

    return bins


def _solarize_bins(num_bins: int, height: int, width: int) -> torch.Tensor:
    return torch.linspace(1.0, 0.0, num_bins, dtype=torch.float32)  # x 255 at apply time


_NONE = (None, False)

SPACES: dict[str, dict[str, tuple[Callable | None, bool]]] = {
    # v2.RandAugment._AUGMENTATION_SPACE (Cubuk et al. 2020 as torchvision implements it)
    "randaugment": {
        "identity": _NONE,
        "shear_x": (_lin(0.3), True),
        "shear_y": (_lin(0.3), True),
        "translate_x": (_lin(lambda h, w: 150.0 / 331.0 * w), True),
        "translate_y": (_lin(lambda h, w: 150.0 / 331.0 * h), True),
        "rotate": (_lin(30.0), True),
        "brightness": (_lin(0.9), True),
        "color": (_lin(0.9), True),
        "contrast": (_lin(0.9), True),
        "sharpness": (_lin(0.9), True),
        "posterize": (_posterize_bins(4), False),
        "solarize": (_solarize_bins, False),
        "autocontrast": _NONE,
        "equalize": _NONE,
    },
    # v2.TrivialAugmentWide._AUGMENTATION_SPACE (Mueller & Hutter 2021, "wide" ranges)
    "trivialaugment_wide": {
        "identity": _NONE,
        "shear_x": (_lin(0.99), True),
        "shear_y": (_lin(0.99), True),
        "translate_x": (_lin(32.0), True),  # absolute pixels, whatever the image size
        "translate_y": (_lin(32.0), True),
        "rotate": (_lin(135.0), True),
        "brightness": (_lin(0.99), True),
        "color": (_lin(0.99), True),
        "contrast": (_lin(0.99), True),
        "sharpness": (_lin(0.99), True),
        "posterize": (_posterize_bins(6), False),
        "solarize": (_solarize_bins, False),
        "autocontrast": _NONE,
        "equalize": _NONE,
    },
}
# v2.AutoAugment._AUGMENTATION_SPACE: RandAugment's ranges (read with 10 bins) plus invert.
SPACES["autoaugment"] = {k: v for k, v in SPACES["randaugment"].items() if k != "identity"}
SPACES["autoaugment"]["invert"] = _NONE


def magnitude_table(space: str, name: str, num_bins: int, height: int, width: int):
    """float64 (num_bins,) magnitudes of op `name` in `space` (the float32 bin values), or None."""
    fn, _ = SPACES[space][name]
    if fn is None:
        return None
    return fn(num_bins, height, width).double()


def signed(space: str, name: str) -> bool:
    return SPACES[space][name][1]


# ----------------------------------------------------------------------------- matrices


def inverse_affine(center, angle, translate, shear) -> list[float]:
    """torchvision `_get_inverse_affine_matrix` (scale 1): the PIL data (a0..a5) mapping an
    output pixel to its input point, same float operations in the same order."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    cos_sy, tan_sx = math.cos(sy), math.tan(sx)
    a = math.cos(rot - sy) / cos_sy
    b = -(a * tan_sx + math.sin(rot))
    c = math.sin(rot - sy) / cos_sy
    d = math.cos(rot) - c * tan_sx
    m = [d / 1.0, -b / 1.0, 0.0, -c / 1.0, a / 1.0, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return m


def shear_matrix(magnitude: float, axis: int) -> list[float]:
    """ShearX / ShearY: shear angle degrees(atan(m)) about the top-left corner."""
    deg = math.degrees(math.atan(magnitude))
    shear = [deg, 0.0] if axis == 0 else [0.0, deg]
    return inverse_affine([0.0, 0.0], 0.0, [0, 0], shear)


def rotate_matrix(angle: float, width: int, height: int) -> list[float]:
    """Pillow `Image.rotate` (no expand, default centre): matrix entries rounded to 15 decimals."""
    a = -math.radians(angle % 360.0)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0,
         round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]  # fmt: skip
    cx, cy = width / 2, height / 2
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy
    return m


def fixed_point(m: Sequence[float], width: int, height: int) -> tuple[int, ...]:
    """Pillow's 16.16 coefficients (A0, A1, A2, A3, A4, A5) for a nearest affine."""
    for x, y in ((0, 0), (width, height), (0, height), (width, 0)):
        if not (abs(x * m[0] + y * m[1] + m[2]) < 32768.0 and abs(x * m[3] + y * m[4] + m[5]) < 32768.0):
            raise ValueError(f"image {width}x{height} too large for Pillow's fixed-point affine path")

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    return (fix(m[0]), fix(m[1]), fix(m[2] + m[0] * 0.5 + m[1] * 0.5),
            fix(m[3]), fix(m[4]), fix(m[5] + m[3] * 0.5 + m[4] * 0.5))  # fmt: skip


# ----------------------------------------------------------------------------- sampling


def _fill_tensor(fill: Fill, device) -> torch.Tensor:
    """(3,) uint8 fill colour. torchvision hands PIL a per-band tuple (None -> 0)."""
    vals = [fill] * 3 if isinstance(fill, int) else list(fill)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or any(not 0 <= int(v) <= 255 for v in vals):
        raise ConfigError(f"fill must be an int or 3 ints in 0..255, got {fill!r}")
    return torch.tensor([int(v) for v in vals], dtype=torch.uint8, device=device)


def _gather(x: torch.Tensor, src: torch.Tensor, fill: Fill) -> torch.Tensor:
    """out[i, :, p] = x[i, :, src[i, p]] for src (n, H*W) int64 flat input positions, the fill
    colour where src == H*W (one fill pixel appended to every plane)."""
    n, c, h, w = x.shape
    canvas = torch.cat([x.reshape(n, c, h * w), _fill_tensor(fill, x.device).reshape(1, c, 1).expand(n, c, 1)], 2)
    return torch.gather(canvas, 2, src[:, None, :].expand(n, c, h * w)).reshape(n, c, h, w)


def nearest_fixed(x: torch.Tensor, coeffs: torch.Tensor, fill: Fill = 0) -> torch.Tensor:
    """Pillow's fixed-point nearest affine with per-image int64 coefficients (n, 6)."""
    n, c, h, w = x.shape
    a0, a1, a2, a3, a4, a5 = (coeffs[:, k, None, None] for k in range(6))
    ys = torch.arange(h, device=x.device, dtype=torch.int64)[None, :, None]
    xs = torch.arange(w, device=x.device, dtype=torch.int64)[None, None, :]
    xin = (a2 + ys * a1 + xs * a0) >> 16  # arithmetic shift: floor, as C's >> on int
    yin = (a5 + ys * a4 + xs * a3) >> 16
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    src = torch.where(inside, yin * w + xin, h * w).reshape(n, h * w)
    return _gather(x, src, fill)


def _by_distinct(mag: torch.Tensor, make: Callable[[float], torch.Tensor]) -> torch.Tensor:
    """Evaluate make(m) once per distinct magnitude (a batch holds few: bins x signs) and index."""
    values, which = torch.unique(mag.detach().cpu(), return_inverse=True)
    table = torch.stack([make(float(v)) for v in values.tolist()])
    return table.to(mag.device)[which.to(mag.device)]


def t_shear(x: torch.Tensor, mag: torch.Tensor, axis: int, fill: Fill = 0) -> torch.Tensor:
    h, w = x.shape[-2:]
    coeffs = _by_distinct(mag, lambda m: torch.tensor(fixed_point(shear_matrix(m, axis), w, h)))
    return nearest_fixed(x, coeffs, fill)


def t_translate(x: torch.Tensor, mag: torch.Tensor, axis: int, fill: Fill = 0) -> torch.Tensor:
    """translate=[int(m), 0] (or [0, int(m)]): output (x, y) reads input (x - tx, y - ty)."""
    n, c, h, w = x.shape
    t = torch.trunc(mag.to(x.device)).long()[:, None, None]  # int(): toward zero
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    sx, sy = (xs - t, ys + 0 * t) if axis == 0 else (xs + 0 * t, ys - t)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    src = torch.where(inside, sy * w + sx, h * w).reshape(n, h * w)
    return _gather(x, src, fill)


def t_rotate(x: torch.Tensor, mag: torch.Tensor, fill: Fill = 0) -> torch.Tensor:
    """Pillow Image.rotate(angle, NEAREST, expand=False): fast paths first (angle % 360 of 0
    copies, 180 flips, 90 / 270 transpose square images), then the fixed-point affine."""
    n, c, h, w = x.shape
    mag = mag.to(x.device, torch.float64)
    angle = torch.remainder(mag, 360.0)  # Python's %, as Image.rotate
    out = x.clone()
    quarter = {90.0: 1, 180.0: 2, 270.0: 3} if h == w else {180.0: 2}
    general = angle != 0.0
    for deg, k in quarter.items():
        hit = angle == deg
        general &= ~hit
        if hit.any():
            out[hit] = torch.rot90(x[hit], k, dims=(-2, -1))  # counter-clockwise, as ROTATE_90
    rows = general.nonzero().flatten()
    if len(rows):
        coeffs = _by_distinct(mag[rows], lambda m: torch.tensor(fixed_point(rotate_matrix(m, w, h), w, h)))
        out[rows] = nearest_fixed(x[rows], coeffs, fill)
    return out


def _pixel(fn: Callable) -> Callable:
    """An ops.py twin taking a torchvision magnitude converted by `arg`; fill is ignored."""

    def op(x, mag, fill=0):
        return fn(x, mag)

    return op


def _factor(twin):  # brightness_factor = 1 + magnitude etc.
    return _pixel(lambda x, m: twin(x, 1.0 + m.double()))


def _solarize(x, m):
    # PIL ImageOps.solarize keeps i < threshold, threshold = 255.0 * m (a float); the twin flips
    # i >= an integer threshold, so pass ceil(255 * m).
    return O.t_solarize(x, torch.ceil(255.0 * m.double()))


TV_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "identity": lambda x, m, fill=0: x.clone(),
    "shear_x": lambda x, m, fill=0: t_shear(x, m, 0, fill),
    "shear_y": lambda x, m, fill=0: t_shear(x, m, 1, fill),
    "translate_x": lambda x, m, fill=0: t_translate(x, m, 0, fill),
    "translate_y": lambda x, m, fill=0: t_translate(x, m, 1, fill),
    "rotate": lambda x, m, fill=0: t_rotate(x, m, fill),
    "brightness": _factor(O.t_brightness),
    "color": _factor(O.t_color),  # F.adjust_saturation on PIL = ImageEnhance.Color
    "contrast": _factor(O.t_contrast),
    "sharpness": _factor(O.t_sharpness),
    "posterize": _pixel(lambda x, m: O.t_posterize(x, torch.trunc(m.double()))),  # bits=int(m)
    "solarize": _pixel(_solarize),
    "autocontrast": _pixel(lambda x, m: O.t_autocontrast(x)),
    "equalize": _pixel(lambda x, m: O.t_equalize(x)),
    "invert": _pixel(lambda x, m: 255 - x),
}

# torchvision's names for ours (tests compare op by op).
TORCHVISION_NAMES = {
    "identity": "Identity", "shear_x": "ShearX", "shear_y": "ShearY", "translate_x": "TranslateX",
    "translate_y": "TranslateY", "rotate": "Rotate", "brightness": "Brightness", "color": "Color",
    "contrast": "Contrast", "sharpness": "Sharpness", "posterize": "Posterize",
    "solarize": "Solarize", "autocontrast": "AutoContrast", "equalize": "Equalize",
    "invert": "Invert",
}  # fmt: skip
