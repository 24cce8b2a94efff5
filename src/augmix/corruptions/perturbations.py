"""CIFAR-10-P / CIFAR-100-P perturbation sequences (spec corruptions.md §8).

Restates the blocks of hendrycks/robustness `ImageNet-P/create_p/make_cifar_p.py` (all but the
Gaussian-noise block are commented out there and were toggled by hand). Each perturbation maps
uint8 images (N, 32, 32, 3) to uint8 videos (N, T, 32, 32, 3), frames truncated to uint8.

Geometric ones (zoom_blur, rotate, scale, shear) go through torchvision's functional `affine` on
PIL images, as the reference does, one image at a time (the reference path); modern torchvision
argument names (`interpolation`, shear as [s, 0]) are used. Tilt and spatter need OpenCV.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .build import CHUNK, MANIFEST, atomic_save_npy, atomic_write_bytes, tune_allocator
from .functions import _spatter_water_mask, clipped_zoom_matrix, hsv_to_rgb, rgb_to_hsv
from .imagemagick import motion_blur_im

__all__ = [
    "CIFAR_P_EVAL",
    "PERTURBATIONS",
    "TEST_PERTURBATIONS",
    "VALIDATION_PERTURBATIONS",
    "build_p_set",
    "perturb",
]


def _check(images: np.ndarray) -> None:
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[1:] != (32, 32, 3)
    ):
        raise ValueError(
            f"images must be uint8 (N, 32, 32, 3), got {getattr(images, 'dtype', None)} "
            f"{getattr(images, 'shape', None)}"
        )


def _u8(x: np.ndarray) -> np.ndarray:
    """np.uint8(255 * clip(x)): truncation, as the reference stores frames."""
    return (255 * np.clip(x, 0, 1)).astype(np.uint8)


def _torch_generator(rng: np.random.Generator):
    import torch

    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return g


# ----------------------------------------------------------------------------------------------
# noise


def gaussian_noise(images, rng, *, difficulty=1, draws=None):
    """Frame 0 clean; frames 1..30 clamp(x + sigma*n) with fresh torch normals, stored as
    uint8(255*value) in float32. draws: {"z": float32 normals (N, 30, 32, 32, 3)}."""
    sigma = {1: 0.02, 2: 0.04, 3: 0.06}[difficulty]
    import torch

    _check(images)
    x = torch.from_numpy(images).to(torch.float32) / 255.0  # ToTensor
    if draws is None:
        z = torch.randn(
            (images.shape[0], 30) + images.shape[1:], generator=_torch_generator(rng)
        )
    else:
        z = torch.as_tensor(draws["z"], dtype=torch.float32)
    frames = (torch.clamp(x[:, None] + sigma * z, 0, 1).numpy() * 255).astype(np.uint8)
    return np.concatenate([images[:, None], frames], axis=1)


def shot_noise(images, rng, *, difficulty=1, draws=None):
    """Frame 0 clean; uint8(255*clip(Poisson(lam*x)/lam)). draws: {"counts": (N, 30, 32, 32, 3)}."""
    lam = {1: 700, 2: 400, 3: 200}[difficulty]
    _check(images)
    x = images / 255.0
    counts = (
        draws["counts"]
        if draws is not None
        else rng.poisson(
            np.broadcast_to(x[:, None] * lam, (x.shape[0], 30) + x.shape[1:])
        )
    )
    return np.concatenate([images[:, None], _u8(counts / lam)], axis=1)


def speckle_noise(images, rng, *, difficulty=1, draws=None):
    """Frame 0 clean; uint8(255*clip(x + x*N(0, sigma))). draws: {"z": normals (N, 30, 32, 32, 3)}."""
    sigma = {1: 0.05, 2: 0.07, 3: 0.1}[difficulty]
    _check(images)
    x = images / 255.0
    z = (
        draws["z"]
        if draws is not None
        else rng.standard_normal((x.shape[0], 30) + x.shape[1:])
    )
    return np.concatenate(
        [images[:, None], _u8(x[:, None] + x[:, None] * (sigma * z))], axis=1
    )


# ----------------------------------------------------------------------------------------------
# blur and weather


def motion_blur(images, rng=None, *, difficulty=1, draws=None):
    """21 frames: ImageMagick motion blur radius 6, sigma 1.8, angle (i - 20) * 9 degrees."""
    _check(images)
    n = images.shape[0]
    return np.stack(
        [motion_blur_im(images, 6, 1.8, np.full(n, (i - 20) * 9.0)) for i in range(21)],
        axis=1,
    )


def gaussian_blur(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: uint8(255 * gaussian(x, sigma = 0.3 + 0.015 i, truncate 7)), mode nearest."""
    _check(images)
    x = images / 255.0
    return np.stack(
        [
            (
                255
                * ndimage.gaussian_filter(
                    x,
                    (0, 0.3 + 0.015 * i, 0.3 + 0.015 * i, 0),
                    mode="nearest",
                    truncate=7.0,
                )
            ).astype(np.uint8)
            for i in range(31)
        ],
        axis=1,
    )


def snow(images, rng, *, difficulty=1, draws=None):
    """One snow layer N(0.05, 0.3) per image, clipped zoom 2, < 0.5 set to 0; 31 frames of motion
    blur radius 10, sigma 2, angle 4i - 150, blend 0.85. draws: {"z": normals (N, 32, 32)}."""
    _check(images)
    n = images.shape[0]
    z = draws["z"] if draws is not None else rng.standard_normal((n, 32, 32))
    x = images / 255.0
    b = clipped_zoom_matrix(32, 2)
    layer = b @ (0.05 + 0.3 * z) @ b.T
    layer[layer < 0.5] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)[..., None]
    xf = x.astype(np.float32)
    gray = (
        xf[..., 0] * np.float32(0.299)
        + xf[..., 1] * np.float32(0.587)
        + xf[..., 2] * np.float32(0.114)
    )
    base = 0.85 * x + (1 - 0.85) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    frames = []
    for i in range(31):
        s = motion_blur_im(layer8, 10, 2, np.full(n, i * 4.0 - 150)) / 255.0
        frames.append(_u8(base + s + s[:, ::-1, ::-1]))
    return np.stack(frames, axis=1)


def spatter(images, rng, *, difficulty=1, draws=None):
    """Water spatter that runs down: liquid N(0.6, 0.265), Gaussian sigma 1.75, < 0.7 set to 0;
    after each frame the layer is convolved down the rows with (0.2, 0.8) (np.convolve 'same').
    draws: {"z": normals (N, 32, 32)}. Needs OpenCV (per-image water mask)."""
    _check(images)
    n = images.shape[0]
    z = draws["z"] if draws is not None else rng.standard_normal((n, 32, 32))
    x = images.astype(np.float32) / np.float32(255)
    liquid = ndimage.gaussian_filter(
        0.6 + 0.265 * z, (0, 1.75, 1.75), mode="nearest", truncate=4.0
    )
    liquid[liquid < 0.7] = 0
    colour = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=np.float32)
    frames = []
    for _ in range(31):
        l8 = ((liquid * 255).astype(np.int64) & 255).astype(
            np.uint8
        )  # uint8 cast wraps, as the reference
        dist = np.stack([_spatter_water_mask(v) for v in l8])
        m = l8 * dist
        mx = m.max(axis=(1, 2), keepdims=True)
        m = np.where(mx > 0, m / np.where(mx > 0, mx, 1), 0).astype(
            np.float32
        ) * np.float32(0.6)
        frames.append(_u8(x + m[..., None] * colour))
        shifted = np.zeros_like(liquid)
        shifted[:, 1:] = liquid[:, :-1]
        liquid = 0.2 * liquid + 0.8 * shifted
    return np.stack(frames, axis=1)


def brightness(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: HSV value + (i - 15) * 1.5 / 100, stored as uint8(255 * rgb) (no clip needed)."""
    _check(images)
    hsv = rgb_to_hsv(images / 255.0)
    frames = []
    for i in range(31):
        h = hsv.copy()
        h[..., 2] = np.clip(h[..., 2] + (i - 15) * 1.5 / 100.0, 0, 1)
        frames.append((hsv_to_rgb(h) * 255).astype(np.uint8))
    return np.stack(frames, axis=1)


# ----------------------------------------------------------------------------------------------
# geometric


def _tv_affine_frames(
    images, params: list, interpolation: str, crop: bool
) -> np.ndarray:
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    mode = {
        "bilinear": InterpolationMode.BILINEAR,
        "nearest": InterpolationMode.NEAREST,
    }[interpolation]
    out = np.empty((images.shape[0], len(params)) + images.shape[1:], dtype=np.uint8)
    for n, img in enumerate(
        images
    ):  # reference path: PIL through torchvision, per image
        pil = Image.fromarray(img)
        for t, (angle, translate, scale, shear) in enumerate(params):
            z = TF.affine(
                pil,
                angle=angle,
                translate=list(translate),
                scale=scale,
                shear=[float(shear), 0.0],
                interpolation=mode,
            )
            if crop:
                z = TF.center_crop(z, [32, 32])
            out[n, t] = np.asarray(z)
    return out


def zoom_blur(images, rng=None, *, difficulty=1, draws=None):
    """Frame 0 clean; frame i is the running mean of the clean image and the bilinear zooms by
    1 + 0.004 k (k = 1..i), stored through ToPILImage (truncation of 255 * mean)."""
    import torch

    _check(images)
    zooms = _tv_affine_frames(
        images,
        [(0.0, (0, 0), 1 + 0.004 * i, 0) for i in range(1, 31)],
        "bilinear",
        True,
    )
    acc = torch.from_numpy(images).to(torch.float32) / 255.0
    frames = [images]
    for i in range(1, 31):
        acc = acc + torch.from_numpy(zooms[:, i - 1]).to(torch.float32) / 255.0
        frames.append((acc / (i + 1)).mul(255).to(torch.uint8).numpy())
    return np.stack(frames, axis=1)


def translate(images, rng=None, *, difficulty=1, draws=None):
    """16 frames: horizontal shift by i - 7 pixels (-7..+8), zero fill (torchvision affine with
    integer translation and nearest interpolation is an exact shift)."""
    _check(images)
    out = np.zeros((images.shape[0], 16) + images.shape[1:], dtype=np.uint8)
    for i in range(16):
        s = i - 7
        if s >= 0:
            out[:, i, :, s:] = images[:, :, : 32 - s]
        else:
            out[:, i, :, : 32 + s] = images[:, :, -s:]
    return out


def rotate(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: rotation by i - 15 degrees, bilinear, black corners."""
    _check(images)
    return _tv_affine_frames(
        images, [(float(i - 15), (0, 0), 1.0, 0) for i in range(31)], "bilinear", False
    )


def scale(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: scale (2i + 70) / 100, bilinear, CenterCrop(32)."""
    _check(images)
    return _tv_affine_frames(
        images,
        [(0.0, (0, 0), (i * 2 + 70) / 100.0, 0) for i in range(31)],
        "bilinear",
        True,
    )


def shear(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: shear i - 15 degrees (x), bilinear, CenterCrop(32)."""
    _check(images)
    return _tv_affine_frames(
        images, [(0.0, (0, 0), 1.0, i - 15) for i in range(31)], "bilinear", True
    )


def tilt_matrix(i: int, w: int = 32, h: int = 32) -> np.ndarray:
    """Homography of frame i: lift the plane to 3-D, rotate about y (phi) then x (theta) by
    0.75 (i - 15) degrees, move by f = sqrt(w^2 + h^2) along the optical axis, project.

    Quirk: the plane is lifted at z = 1 (not 0) before the move, so even the middle frame is a
    shrink by f / (1 + f) about the centre; reproduced as is."""
    phi = theta = np.deg2rad(0.75 * (i - 15))
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


def tilt(images, rng=None, *, difficulty=1, draws=None):
    """31 frames: OpenCV warpPerspective (bilinear, black border) with tilt_matrix(i). Needs OpenCV."""
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError(
            "the tilt perturbation needs OpenCV: pip install opencv-python-headless"
        ) from err
    _check(images)
    mats = [tilt_matrix(i) for i in range(31)]
    out = np.empty((images.shape[0], 31) + images.shape[1:], dtype=np.uint8)
    for n, img in enumerate(images):  # per-image OpenCV call (reference path)
        for i, m in enumerate(mats):
            out[n, i] = cv2.warpPerspective(img, m, (32, 32))
    return out


PERTURBATIONS: dict[str, Callable[..., np.ndarray]] = {
    # test perturbations (make_cifar_p.py "Test Data")
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
SEQUENCE_LENGTHS = {
    name: (21 if name == "motion_blur" else 16 if name == "translate" else 31)
    for name in PERTURBATIONS
}
_INDEX = {name: i for i, name in enumerate(PERTURBATIONS)}


def perturb(
    images: np.ndarray, name: str, rng=None, *, difficulty: int = 1
) -> np.ndarray:
    if name not in PERTURBATIONS:
        raise KeyError(
            f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}"
        )
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    return PERTURBATIONS[name](images, rng, difficulty=difficulty)


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
    released), seeded per (perturbation, chunk), atomically, with a manifest written last."""
    _check(images)
    names = list(names)
    for name in names:
        if name not in PERTURBATIONS:
            raise KeyError(
                f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}"
            )
    tune_allocator()
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
            seq = np.random.SeedSequence(
                int(seed), spawn_key=(100 + _INDEX[name], int(difficulty), k)
            )
            rng = np.random.Generator(np.random.PCG64(seq))
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
        files[f"{name}.npy"] = {
            "sha256": atomic_save_npy(out / f"{name}.npy", arr),
            "shape": list(arr.shape),
            "dtype": "uint8",
        }
        if progress is not None:
            progress(name)
    manifest = {
        "format": "cifar-p",
        "format_version": 1,
        "seed": int(seed),
        "chunk": CHUNK,
        "difficulty": int(difficulty),
        "names": names,
        "n_images": int(images.shape[0]),
        "files": files,
    }
    atomic_write_bytes(
        manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
    )
    return {**manifest, "out_dir": str(out), "seconds": time.perf_counter() - t0}
