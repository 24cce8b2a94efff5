"""CIFAR-10-P / CIFAR-100-P and ImageNet-P perturbation sequences.

Restates the blocks of hendrycks/robustness `ImageNet-P/create_p/make_cifar_p.py` and
`make_imagenet_p.py` (all but one block is commented out in each and they were toggled by hand).
Each perturbation maps uint8 images (N, H, W, 3) to uint8 videos (N, T, h, w, 3), frames truncated
to uint8. The per-frame schedule of every perturbation is the literal table `PARAMS`, keyed by
table name: "cifar" (32x32 images) and "imagenet" (the validation image after Resize(256)).

Where the crop happens follows `make_imagenet_p.py`: the pixel-wise, blur and weather
perturbations act on CenterCrop(crop) of the image; the geometric ones (`FULL_IMAGE`) act on the
whole resized image and crop every frame. `crop=None` crops nothing (CIFAR: the reference's
CenterCrop(32) of a 32x32 frame is the identity). The ImageNet-P writer is in `imagenet_p`.

Geometric ones (translate, zoom_blur, rotate, scale, shear) are PIL affine transforms of one image
at a time with the matrix torchvision's `affine` computed when the sets were made
(`affine_2019_matrix`: its centre and shear conventions differ from today's). Tilt and spatter
need OpenCV.

Randomness: `rng` is one NumPy generator for the whole batch, or a sequence of one generator per
image (what the ImageNet-P build passes, so its bytes do not depend on how images are batched).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from augmix import io
from augmix.memory import keep_freed_memory
from augmix.rng import derive_seed

from .build import CHUNK, MANIFEST
from .functions import _spatter_water_mask, clipped_zoom_matrix, hsv_to_rgb, rgb_to_hsv
from .imagemagick import motion_blur_im

__all__ = [
    "CIFAR_P_EVAL",
    "FULL_IMAGE",
    "NOISE_PERTURBATIONS",
    "PARAMS",
    "PERTURBATIONS",
    "TEST_PERTURBATIONS",
    "VALIDATION_PERTURBATIONS",
    "build_p_set",
    "center_crop",
    "p_file_name",
    "perturb",
    "sequence_length",
]

# ----------------------------------------------------------------------------------------------
# parameter tables (make_cifar_p.py and make_imagenet_p.py, one block per perturbation)

# Per table and perturbation: "frames" is T; list-valued entries give one value per frame i = 0..T-1
# (zoom_blur: per frame 1..30, frame 0 is clean); noise entries map difficulty 1/2/3 (the released
# `_2`, `_3` variants) to the parameter, frames 1..30 noisy and frame 0 clean.
PARAMS: dict[str, dict[str, dict]] = {
    "cifar": {  # make_cifar_p.py, on the raw 32x32 image
        "gaussian_noise": {"frames": 31, "sigma": {1: 0.02, 2: 0.04, 3: 0.06}},
        "shot_noise": {"frames": 31, "lam": {1: 700, 2: 400, 3: 200}},
        "speckle_noise": {"frames": 31, "sigma": {1: 0.05, 2: 0.07, 3: 0.1}},
        "motion_blur": {
            "frames": 21,
            "radius": 6,
            "sigma": 1.8,
            "angle": [(i - 20) * 9.0 for i in range(21)],  # -180..0 degrees
        },
        "zoom_blur": {"frames": 31, "scale": [1 + 0.004 * i for i in range(1, 31)]},
        "snow": {
            "frames": 31,
            "loc": 0.05,
            "scale": 0.3,
            "zoom": 2,
            "threshold": 0.5,
            "radius": 10,
            "sigma": 2,
            "blend": 0.85,
            "angle": [i * 4.0 - 150 for i in range(31)],
        },
        "spatter": {
            "frames": 31,
            "loc": 0.6,
            "scale": 0.265,
            "sigma": 1.75,
            "threshold": 0.7,
            "intensity": 0.6,
            # run-down kernel: np.convolve(column, kernel, "same") after each frame
            "kernel": (0.2, 0.8),
        },
        "brightness": {
            "frames": 31,
            "offset": [(i - 15) * 1.5 / 100.0 for i in range(31)],
        },
        "gaussian_blur": {
            "frames": 31,
            "sigma": [0.3 + 0.015 * i for i in range(31)],
            "truncate": 7.0,
        },
        "translate": {"frames": 16, "shift": [i - 7 for i in range(16)]},  # -7..+8
        "rotate": {"frames": 31, "angle": [float(i - 15) for i in range(31)]},
        "tilt": {"frames": 31, "angle": [0.75 * (i - 15) for i in range(31)]},
        "scale": {"frames": 31, "scale": [(i * 2 + 70) / 100.0 for i in range(31)]},
        "shear": {"frames": 31, "shear": [i - 15 for i in range(31)]},
    },
    "imagenet": {  # make_imagenet_p.py, on Resize(256) of the validation image
        "gaussian_noise": {"frames": 31, "sigma": {1: 0.03, 2: 0.05, 3: 0.08}},
        "shot_noise": {"frames": 31, "lam": {1: 300, 2: 120, 3: 60}},
        "speckle_noise": {"frames": 31, "sigma": {1: 0.05, 2: 0.10, 3: 0.15}},
        "motion_blur": {
            "frames": 31,
            "radius": 10,
            "sigma": 3,
            "angle": [(i - 30) * 4.0 for i in range(31)],  # -120..0 degrees
        },
        "zoom_blur": {"frames": 31, "scale": [1 + 0.004 * i for i in range(1, 31)]},
        "snow": {
            "frames": 31,
            "loc": 0.05,
            "scale": 0.3,
            "zoom": 3,
            "threshold": 0.5,
            "radius": 14,
            "sigma": 4,
            "blend": 0.85,
            "angle": [i * 4.0 - 150 for i in range(31)],
        },
        "spatter": {
            "frames": 31,
            "loc": 0.65,
            "scale": 0.27,
            "sigma": 3.7,
            "threshold": 0.69,
            "intensity": 0.6,
            "kernel": (0.05, 0.1, 0.15, 0.7),
        },
        "brightness": {
            "frames": 31,
            "offset": [(i - 15) * 2 / 100.0 for i in range(31)],
        },
        "gaussian_blur": {
            "frames": 31,
            "sigma": [0.25 + 0.035 * i for i in range(31)],
            "truncate": 6.0,
        },
        "translate": {"frames": 41, "shift": [i - 20 for i in range(41)]},  # -20..+20
        "rotate": {"frames": 31, "angle": [float(i - 15) for i in range(31)]},
        # tilt: phi = theta = i - 15 degrees, on the whole image (CIFAR: 0.75 (i - 15))
        "tilt": {"frames": 31, "angle": [float(i - 15) for i in range(31)]},
        "scale": {"frames": 31, "scale": [(i * 2.5 + 40) / 100.0 for i in range(31)]},
        "shear": {"frames": 31, "shear": [i - 15 for i in range(31)]},
    },
}
# Input image size each table expects (None: any size, e.g. the Resize(256)'d ImageNet image).
_INPUT_SIZE = {"cifar": (32, 32), "imagenet": None}
NOISE_PERTURBATIONS = ("gaussian_noise", "shot_noise", "speckle_noise")
# Geometric perturbations act on the whole (resized) image; each frame is then centre-cropped.
FULL_IMAGE = frozenset({"zoom_blur", "translate", "rotate", "tilt", "scale", "shear"})


def _params(table: str, name: str) -> dict:
    if table not in PARAMS:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(PARAMS)}")
    return PARAMS[table][name]


def sequence_length(name: str, table: str = "cifar") -> int:
    """Number of frames T of a perturbation's videos in a table."""
    return _params(table, name)["frames"]


def center_crop(images: np.ndarray, size: int | None) -> np.ndarray:
    """torchvision CenterCrop(size) of (..., H, W, C) arrays: top = round((H - size) / 2) with
    Python's round (half to even), as `TF.center_crop`. size None: no crop."""
    if size is None:
        return images
    h, w = images.shape[-3:-1]
    if size > h or size > w:
        raise ValueError(f"cannot centre-crop {size}x{size} from {h}x{w}")
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return images[..., top : top + size, left : left + size, :]


def _check(images: np.ndarray, table: str = "cifar", crop: int | None = None) -> None:
    if table not in PARAMS:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(PARAMS)}")
    size = _INPUT_SIZE[table]
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != 3
        or (size is not None and images.shape[1:3] != size)
    ):
        want = f"(N, {size[0]}, {size[1]}, 3)" if size else "(N, H, W, 3)"
        raise ValueError(
            f"images must be uint8 {want}, got {getattr(images, 'dtype', None)} "
            f"{getattr(images, 'shape', None)}"
        )
    if crop is not None and (crop > images.shape[1] or crop > images.shape[2]):
        raise ValueError(f"crop {crop} is larger than the images {images.shape[1:3]}")


def _cropped(images, table, crop) -> np.ndarray:
    """Check, then CenterCrop(crop) before perturbing (the pixel-wise, blur and weather ones)."""
    _check(images, table, crop)
    return np.ascontiguousarray(center_crop(images, crop))


def _u8(x: np.ndarray) -> np.ndarray:
    """np.uint8(255 * clip(x)): truncation, as the reference stores frames."""
    return (255 * np.clip(x, 0, 1)).astype(np.uint8)


def _torch_generator(rng: np.random.Generator):
    import torch

    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return g


def _per_image(rng, n: int, draw: Callable):
    """draw(generator, sl) for the images `sl` of the batch: with one generator, once for the
    whole batch (sl = slice(None)); with a sequence of n generators, once per image
    (sl = slice(i, i + 1)), the parts concatenated."""
    if rng is None:
        raise ValueError(
            "this perturbation is random: pass a NumPy Generator (or one per image)"
        )
    if isinstance(rng, np.random.Generator):
        return draw(rng, slice(None))
    rngs = list(rng)
    if len(rngs) != n:
        raise ValueError(f"need one generator per image ({n}), got {len(rngs)}")
    if n == 0:
        return draw(np.random.Generator(np.random.PCG64(0)), slice(0, 0))
    parts = [draw(r, slice(i, i + 1)) for i, r in enumerate(rngs)]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)


# ----------------------------------------------------------------------------------------------
# noise


def gaussian_noise(
    images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None
):
    """Frame 0 clean; frames 1..30 clamp(x + sigma*n) with fresh torch normals, stored as
    uint8(255*value) in float32. draws: {"z": float32 normals (N, 30, h, w, 3)}."""
    sigma = _params(table, "gaussian_noise")["sigma"][difficulty]
    import torch

    images = _cropped(images, table, crop)
    x = torch.from_numpy(images).to(torch.float32) / 255.0  # ToTensor
    if draws is None:
        z = _per_image(
            rng,
            images.shape[0],
            lambda r, sl: torch.randn(
                (images[sl].shape[0], 30) + images.shape[1:],
                generator=_torch_generator(r),
            ),
        )
    else:
        z = torch.as_tensor(draws["z"], dtype=torch.float32)
    frames = (torch.clamp(x[:, None] + sigma * z, 0, 1).numpy() * 255).astype(np.uint8)
    return np.concatenate([images[:, None], frames], axis=1)


def shot_noise(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Frame 0 clean; uint8(255*clip(Poisson(lam*x)/lam)). draws: {"counts": (N, 30, h, w, 3)}."""
    lam = _params(table, "shot_noise")["lam"][difficulty]
    images = _cropped(images, table, crop)
    x = images / 255.0
    counts = (
        draws["counts"]
        if draws is not None
        else _per_image(
            rng,
            x.shape[0],
            lambda r, sl: r.poisson(
                np.broadcast_to(x[sl, None] * lam, (x[sl].shape[0], 30) + x.shape[1:])
            ),
        )
    )
    return np.concatenate([images[:, None], _u8(counts / lam)], axis=1)


def speckle_noise(
    images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None
):
    """Frame 0 clean; uint8(255*clip(x + x*N(0, sigma))). draws: {"z": normals (N, 30, h, w, 3)}."""
    sigma = _params(table, "speckle_noise")["sigma"][difficulty]
    images = _cropped(images, table, crop)
    x = images / 255.0
    z = (
        draws["z"]
        if draws is not None
        else _per_image(
            rng,
            x.shape[0],
            lambda r, sl: r.standard_normal((x[sl].shape[0], 30) + x.shape[1:]),
        )
    )
    return np.concatenate(
        [images[:, None], _u8(x[:, None] + x[:, None] * (sigma * z))], axis=1
    )


# ----------------------------------------------------------------------------------------------
# blur and weather


def motion_blur(
    images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None
):
    """ImageMagick motion blur with the table's radius and sigma, one angle per frame
    (CIFAR: radius 6, sigma 1.8, (i - 20) * 9 degrees; ImageNet: 10, 3, (i - 30) * 4)."""
    p = _params(table, "motion_blur")
    images = _cropped(images, table, crop)
    n = images.shape[0]
    return np.stack(
        [
            motion_blur_im(images, p["radius"], p["sigma"], np.full(n, a))
            for a in p["angle"]
        ],
        axis=1,
    )


def gaussian_blur(
    images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None
):
    """uint8(255 * gaussian(x, sigma_i, truncate)), mode nearest (CIFAR: sigma 0.3 + 0.015 i,
    truncate 7; ImageNet: 0.25 + 0.035 i, truncate 6)."""
    p = _params(table, "gaussian_blur")
    images = _cropped(images, table, crop)
    x = images / 255.0
    return np.stack(
        [
            (
                255
                * ndimage.gaussian_filter(
                    x, (0, s, s, 0), mode="nearest", truncate=p["truncate"]
                )
            ).astype(np.uint8)
            for s in p["sigma"]
        ],
        axis=1,
    )


def snow(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """One snow layer N(loc, scale) per image, clipped zoom, < threshold set to 0; frames of motion
    blur (radius, sigma, angle 4i - 150) added twice (itself and rotated by 180 degrees) to the
    image lifted towards 1.5 * gray + 0.5 with weight 1 - blend. draws: {"z": normals (N, h, w)}."""
    p = _params(table, "snow")
    images = _cropped(images, table, crop)
    n, h, w, _ = images.shape
    z = (
        draws["z"]
        if draws is not None
        else _per_image(
            rng, n, lambda r, sl: r.standard_normal((images[sl].shape[0], h, w))
        )
    )
    x = images / 255.0
    b = clipped_zoom_matrix(h, p["zoom"])
    bw = b if w == h else clipped_zoom_matrix(w, p["zoom"])
    layer = b @ (p["loc"] + p["scale"] * z) @ bw.T
    layer[layer < p["threshold"]] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)[..., None]
    import cv2

    xf = x.astype(np.float32)
    # OpenCV's own RGB2GRAY, as the reference (its rounding differs by an ulp from a NumPy sum);
    # stacking the images as rows makes it one call.
    gray = cv2.cvtColor(xf.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w)
    blend = p["blend"]
    base = blend * x + (1 - blend) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    frames = []
    for a in p["angle"]:
        s = motion_blur_im(layer8, p["radius"], p["sigma"], np.full(n, a)) / 255.0
        frames.append(_u8(base + s + s[:, ::-1, ::-1]))
    return np.stack(frames, axis=1)


def _run_down(layer: np.ndarray, kernel: Sequence[float]) -> np.ndarray:
    """np.convolve(column, kernel, mode="same") down every column of (N, H, W) layers, zero
    outside: out[j] = sum_m kernel[m] * layer[j + (len(kernel) - 1) // 2 - m]."""
    off = (len(kernel) - 1) // 2
    h = layer.shape[1]
    out = None
    for m, c in enumerate(kernel):
        s = m - off  # out[j] += c * layer[j - s]
        shifted = np.zeros_like(layer)
        if 0 <= s < h:
            shifted[:, s:] = layer[:, : h - s]
        elif -h < s < 0:
            shifted[:, :s] = layer[:, -s:]
        term = c * shifted
        out = term if out is None else out + term
    return out


def spatter(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Water spatter that runs down: liquid N(loc, scale), Gaussian sigma, < threshold set to 0;
    after each frame the layer is convolved down the rows with the table's kernel
    (np.convolve 'same'). draws: {"z": normals (N, h, w)}. Needs OpenCV (per-image water mask)."""
    p = _params(table, "spatter")
    images = _cropped(images, table, crop)
    n, h, w, _ = images.shape
    z = (
        draws["z"]
        if draws is not None
        else _per_image(
            rng, n, lambda r, sl: r.standard_normal((images[sl].shape[0], h, w))
        )
    )
    x = images.astype(np.float32) / np.float32(255)
    liquid = ndimage.gaussian_filter(
        p["loc"] + p["scale"] * z,
        (0, p["sigma"], p["sigma"]),
        mode="nearest",
        truncate=4.0,
    )
    liquid[liquid < p["threshold"]] = 0
    colour = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=np.float32)
    frames = []
    for _ in range(p["frames"]):
        l8 = ((liquid * 255).astype(np.int64) & 255).astype(
            np.uint8
        )  # uint8 cast wraps, as the reference
        dist = (
            np.stack([_spatter_water_mask(v) for v in l8])
            if n
            else l8.astype(np.float32)
        )
        m = l8 * dist
        mx = m.max(axis=(1, 2), keepdims=True) if n else m
        m = np.where(mx > 0, m / np.where(mx > 0, mx, 1), 0).astype(
            np.float32
        ) * np.float32(p["intensity"])
        frames.append(_u8(x + m[..., None] * colour))
        liquid = _run_down(liquid, p["kernel"])
    return np.stack(frames, axis=1)


def brightness(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """HSV value + offset_i (CIFAR (i - 15) * 1.5 / 100, ImageNet (i - 15) * 2 / 100), stored as
    uint8(255 * rgb) (no clip needed)."""
    p = _params(table, "brightness")
    images = _cropped(images, table, crop)
    hsv = rgb_to_hsv(images / 255.0)
    frames = []
    for off in p["offset"]:
        h = hsv.copy()
        h[..., 2] = np.clip(h[..., 2] + off, 0, 1)
        frames.append((hsv_to_rgb(h) * 255).astype(np.uint8))
    return np.stack(frames, axis=1)


# ----------------------------------------------------------------------------------------------
# geometric (on the whole image, every frame then centre-cropped)


def affine_2019_matrix(w: int, h: int, angle: float, translate, scale: float, shear: float) -> list[float]:
    """The inverse affine matrix (PIL `Image.transform` coefficients) that torchvision's PIL
    `affine` computed in 2018-19 (0.2-0.4), the version that made the -P sets. Quirk kept: today's
    torchvision centres at (w/2, h/2), not (w/2 + 0.5, h/2 + 0.5), and shears as [[1, -tan s],
    [0, 1]], where the old RSS(a, s) = [[cos a, -sin(a + s)], [sin a, cos(a + s)]] * scale also
    squeezes y by cos s. The float operations follow the old code's order."""
    cx, cy = w * 0.5 + 0.5, h * 0.5 + 0.5
    a, s = math.radians(angle), math.radians(shear)
    inv_scale = 1.0 / scale
    det = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    m = [inv_scale / det * v for v in (math.cos(a + s), math.sin(a + s), 0, -math.sin(a), math.cos(a), 0)]
    tx, ty = translate
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)  # RSS^-1 C^-1 T^-1 ...
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx  # ... then C
    m[5] += cy
    return m


def _tv_affine_frames(
    images, params: list, interpolation: str, crop: int | None
) -> np.ndarray:
    """Per image and frame (angle, translate, scale, shear): PIL's affine transform with the 2019
    torchvision matrix (black fill), then CenterCrop(crop)."""
    import torchvision.transforms.functional as TF

    resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[interpolation]
    h, w = images.shape[1:3]
    size = (h, w) if crop is None else (crop, crop)
    matrices = [affine_2019_matrix(w, h, *frame) for frame in params]
    out = np.empty((images.shape[0], len(params)) + size + (3,), dtype=np.uint8)
    for n, img in enumerate(images):  # reference path: PIL, per image
        pil = Image.fromarray(img)
        for t, matrix in enumerate(matrices):
            z = pil.transform((w, h), Image.AFFINE, matrix, resample=resample)
            if crop is not None:
                z = TF.center_crop(z, [crop, crop])
            out[n, t] = np.asarray(z)
    return out


def zoom_blur(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Frame 0 clean (cropped); frame i is the running mean of it and the cropped bilinear zooms
    of the whole image by 1 + 0.004 k (k = 1..i), stored through ToPILImage (truncation of
    255 * mean)."""
    import torch

    p = _params(table, "zoom_blur")
    _check(images, table, crop)
    zooms = _tv_affine_frames(
        images, [(0.0, (0, 0), s, 0) for s in p["scale"]], "bilinear", crop
    )
    first = np.ascontiguousarray(center_crop(images, crop))
    acc = torch.from_numpy(first).to(torch.float32) / 255.0
    frames = [first]
    for i in range(1, len(p["scale"]) + 1):
        acc = acc + torch.from_numpy(zooms[:, i - 1]).to(torch.float32) / 255.0
        frames.append((acc / (i + 1)).mul(255).to(torch.uint8).numpy())
    return np.stack(frames, axis=1)


def translate(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Horizontal shift of the whole image by shift_i pixels (CIFAR i - 7, ImageNet i - 20), zero
    fill, then CenterCrop (torchvision affine with integer translation and nearest interpolation,
    the reference's default, is an exact shift)."""
    p = _params(table, "translate")
    _check(images, table, crop)
    n, h, w, _ = images.shape
    out = np.zeros((n, len(p["shift"]), h, w, 3), dtype=np.uint8)
    for i, s in enumerate(p["shift"]):
        if 0 <= s < w:
            out[:, i, :, s:] = images[:, :, : w - s]
        elif -w < s < 0:
            out[:, i, :, : w + s] = images[:, :, -s:]
    return out if crop is None else np.ascontiguousarray(center_crop(out, crop))


def rotate(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Rotation of the whole image by i - 15 degrees, bilinear, black corners, then CenterCrop."""
    p = _params(table, "rotate")
    _check(images, table, crop)
    return _tv_affine_frames(
        images, [(a, (0, 0), 1.0, 0) for a in p["angle"]], "bilinear", crop
    )


def scale(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Scaling of the whole image (CIFAR (2i + 70) / 100, ImageNet (2.5i + 40) / 100), bilinear,
    then CenterCrop."""
    p = _params(table, "scale")
    _check(images, table, crop)
    return _tv_affine_frames(
        images, [(0.0, (0, 0), s, 0) for s in p["scale"]], "bilinear", crop
    )


def shear(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """Shear of the whole image by i - 15 degrees (x), bilinear, then CenterCrop."""
    p = _params(table, "shear")
    _check(images, table, crop)
    return _tv_affine_frames(
        images, [(0.0, (0, 0), 1.0, s) for s in p["shear"]], "bilinear", crop
    )


def tilt_homography(angle: float, w: int, h: int) -> np.ndarray:
    """Homography that lifts the w x h image plane to 3-D, rotates it about y (phi) then x
    (theta), phi = theta = angle degrees, moves it by f = sqrt(w^2 + h^2) along the optical axis
    and projects it back.

    Quirk: the plane is lifted at z = 1 (not 0) before the move, so even angle 0 is a shrink by
    f / (1 + f) about the centre; reproduced as is."""
    phi = theta = np.deg2rad(angle)
    f = np.sqrt(w**2 + h**2)
    lift = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    rx = np.array(
        [
            [1, 0, 0, 0],
            [0, np.cos(theta), -np.sin(theta), 0],
            [0, np.sin(theta), np.cos(theta), 0],
            [0, 0, 0, 1],
        ]
    )
    ry = np.array(
        [
            [np.cos(phi), 0, -np.sin(phi), 0],
            [0, 1, 0, 0],
            [np.sin(phi), 0, np.cos(phi), 0],
            [0, 0, 0, 1],
        ]
    )
    move = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    project = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    return project @ move @ rx @ ry @ lift


def tilt_matrix(i: int, w: int = 32, h: int = 32) -> np.ndarray:
    """The CIFAR homography of frame i: phi = theta = 0.75 (i - 15) degrees."""
    return tilt_homography(PARAMS["cifar"]["tilt"]["angle"][i], w, h)


def tilt(images, rng=None, *, difficulty=1, table="cifar", crop=None, draws=None):
    """OpenCV warpPerspective (bilinear, black border) of the whole image with
    tilt_homography(angle_i, w, h) (CIFAR 0.75 (i - 15), ImageNet i - 15 degrees), then
    CenterCrop. Needs OpenCV."""
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(
            "the tilt perturbation needs OpenCV: pip install opencv-python-headless"
        ) from err
    p = _params(table, "tilt")
    _check(images, table, crop)
    n, h, w, _ = images.shape
    mats = [tilt_homography(a, w, h) for a in p["angle"]]
    size = (h, w) if crop is None else (crop, crop)
    out = np.empty((n, len(mats)) + size + (3,), dtype=np.uint8)
    for k, img in enumerate(images):  # per-image OpenCV call (reference path)
        for i, m in enumerate(mats):
            out[k, i] = center_crop(cv2.warpPerspective(img, m, (w, h)), crop)
    return out


PERTURBATIONS: dict[str, Callable[..., np.ndarray]] = {
    # test perturbations (make_cifar_p.py / make_imagenet_p.py "Test Data")
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "brightness": brightness,
    "translate": translate,
    "rotate": rotate,
    "tilt": tilt,
    "scale": scale,
    # validation perturbations
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "shear": shear,
}
TEST_PERTURBATIONS = tuple(list(PERTURBATIONS)[:10])
VALIDATION_PERTURBATIONS = tuple(list(PERTURBATIONS)[10:])
# The CIFAR-10-P evaluation (ImageNet-P/cifar-p-eval.py) uses spatter in place of snow.
CIFAR_P_EVAL = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "spatter",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
SEQUENCE_LENGTHS = {name: sequence_length(name, "cifar") for name in PERTURBATIONS}
# 2: cells seeded by perturbation name (1 by position in PERTURBATIONS)
FORMAT_VERSION = 2
SEEDING = ("numpy default_rng(augmix.rng.derive_seed('cifar-p/<perturbation>', seed, difficulty, cell)) "
           "per cell of CHUNK images")


def perturb(
    images: np.ndarray,
    name: str,
    rng=None,
    *,
    difficulty: int = 1,
    table: str = "cifar",
    crop: int | None = None,
) -> np.ndarray:
    """Videos (N, T, h, w, 3) of one perturbation. table: "cifar" or "imagenet" (PARAMS); crop:
    CenterCrop size of the frames (None: none); rng: a Generator or one per image."""
    if name not in PERTURBATIONS:
        raise KeyError(
            f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}"
        )
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    return PERTURBATIONS[name](
        images, rng, difficulty=difficulty, table=table, crop=crop
    )


def p_file_name(name: str, difficulty: int) -> str:
    """`<name>.npy`; the harder noise variants get ImageNet-P's `_2` / `_3` suffix, so a set of
    each difficulty can share a folder (difficulty only changes the noise perturbations)."""
    return f"{name}_{difficulty}.npy" if difficulty > 1 and name in NOISE_PERTURBATIONS else f"{name}.npy"


def build_p_set(
    images: np.ndarray,
    out_dir,
    *,
    names: Iterable[str] = CIFAR_P_EVAL,
    seed: int,
    difficulty: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write `<perturbation>.npy` uint8 (N, T, 32, 32, 3) in the CIFAR-10-P layout (no labels, as
    released; harder noise variants named by `p_file_name`), seeded per (perturbation, chunk),
    atomically, with a manifest written last."""
    _check(images)
    names = list(names)
    for name in names:
        if name not in PERTURBATIONS:
            raise KeyError(
                f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}"
            )
    keep_freed_memory()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    t0 = time.perf_counter()
    files = {}
    for name in names:
        parts = []
        for k, start in enumerate(range(0, images.shape[0], CHUNK)):
            rng = np.random.default_rng(derive_seed(f"cifar-p/{name}", int(seed), int(difficulty), k))
            parts.append(
                PERTURBATIONS[name](
                    images[start : start + CHUNK], rng, difficulty=difficulty
                )
            )
        arr = (
            np.concatenate(parts)
            if parts
            else np.zeros((0, SEQUENCE_LENGTHS[name], 32, 32, 3), np.uint8)
        )
        file = p_file_name(name, difficulty)
        files[file] = {
            "sha256": io.write_npy_digest(out / file, arr),
            "shape": list(arr.shape),
            "dtype": "uint8",
        }
        if progress is not None:
            progress(name)
    manifest = {
        "format": "cifar-p",
        "format_version": FORMAT_VERSION,
        "seeding": SEEDING,
        "seed": int(seed),
        "chunk": CHUNK,
        "difficulty": int(difficulty),
        "names": names,
        "n_images": int(images.shape[0]),
        "files": files,
    }
    io.write_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return {**manifest, "out_dir": str(out), "seconds": time.perf_counter() - t0}
