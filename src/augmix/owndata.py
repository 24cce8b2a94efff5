"""Your own data as a dataset: an image folder (`train/<class>/*`, `test/<class>/*`) or a `.npz` file of
arrays, stored by `augmix download` in CIFAR's on-disk format at 32x32, then corrupted, trained and
evaluated exactly like CIFAR (corruption error as the plain mean over corruptions and severities: there
is no AlexNet baseline to normalise by).

Every image is read as RGB and resized to 32x32 with Pillow's bilinear filter (with its antialias when
shrinking). Classes are the sorted class folder names, or 0..C-1 for arrays (with `classes` in the
file as their names when present). Problems stop with one line naming the file or folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from augmix.errors import DataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".webp", ".tif", ".tiff", ".gif")
SIZE = 32  # CIFAR's on-disk format and the -C severity tables (corruptions: table "cifar") are 32 px
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

Split = tuple[np.ndarray, np.ndarray]


def _image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def read_folder(root: Path, key: str, size: int = SIZE) -> tuple[Split, Split, list[str]]:
    """`root/train/<class>/*` and `root/test/<class>/*` as uint8 (N, size, size, 3) and int64 labels."""
    if not root.is_dir():
        raise DataError(f"{key}: folder {root} not found (expected {root}/train/<class>/* and {root}/test/<class>/*)")
    classes: list[str] | None = None
    out = []
    for split in ("train", "test"):
        folder = root / split
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not names:
            raise DataError(f"{key}: {folder} has no class folders (expected {folder}/<class>/<image>)")
        if classes is None:
            classes = names
        elif names != classes:
            raise DataError(f"{key}: the class folders of {folder} ({', '.join(names)}) differ from those of "
                            f"{root / 'train'} ({', '.join(classes)})")
        images, labels = [], []
        for label, name in enumerate(classes):
            files = sorted(p for p in (folder / name).iterdir() if p.is_file())
            pictures = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            if not pictures:
                raise DataError(f"{key}: class folder {folder / name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            images += [_image(p, size) for p in pictures]
            labels += [label] * len(pictures)
        out.append((np.stack(images), np.asarray(labels, dtype=np.int64)))
    return out[0], out[1], classes or []


def read_npz(path: Path, key: str, size: int = SIZE) -> tuple[Split, Split, list[str]]:
    """x_train, y_train, x_test, y_test: uint8 (N, H, W, 3) (or (N, H, W) grey) and integer labels."""
    if not path.is_file():
        raise DataError(f"{key}: file {path} not found (expected a .npz with {', '.join(NPZ_KEYS)})")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (found: {', '.join(arrays) or 'none'})")
    splits = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], np.asarray(arrays[f"y_{split}"])
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
            raise DataError(f"{path}: x_{split} must be uint8 (N, H, W, 3) or (N, H, W), got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise DataError(f"{path}: y_{split} must be {len(x)} non-negative integer labels, got {y.dtype} {y.shape}")
        if len(x) == 0:
            raise DataError(f"{path}: x_{split} is empty")
        if x.ndim == 3:
            x = np.repeat(x[..., None], 3, axis=-1)
        if x.shape[1:3] != (size, size):
            x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in x])
        splits.append((np.ascontiguousarray(x), y.astype(np.int64)))
    n_classes = int(max(splits[0][1].max(), splits[1][1].max())) + 1
    names = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(i) for i in range(n_classes)]
    if len(names) < n_classes:
        raise DataError(f"{path}: {len(names)} class names for labels up to {n_classes - 1}")
    empty = sorted(set(range(len(names))) - set(splits[0][1].tolist()))
    if empty:
        raise DataError(f"{path}: class(es) {', '.join(names[i] for i in empty)} have no training images")
    return splits[0], splits[1], names


READERS = {"folder": read_folder, "npz": read_npz}
