"""Mixing pictures for PixMix: made by code (seeded fractals, cached in <data root>/mixing/) or read
from the user's own folder. The cache file is named by the set's parameters, and its contents depend
on nothing else, so it can be deleted at any time; it is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augmix import io
from augmix.errors import DataError
from augmix.successors.fractals import generate_fractals

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".webp")


def _fractals(spec, root: Path) -> np.ndarray:
    path = root / "mixing" / f"fractals-n{spec.n}-s{spec.size}-seed{spec.seed}.npy"
    if path.is_file():
        return np.load(path)
    print(f"[mixing] making {spec.n} fractal pictures of {spec.size} px into {path} (once)", flush=True)
    pictures = generate_fractals(spec.n, spec.size, spec.seed)
    with io.atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, pictures)
    return pictures


def _folder(spec, root: Path) -> np.ndarray:
    folder = Path(spec.path)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise DataError(f"methods.pixmix.mixing.path: no pictures ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    out = np.empty((len(files), spec.size, spec.size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                out[i] = np.asarray(img.convert("RGB").resize((spec.size, spec.size), Image.BILINEAR))
        except OSError as exc:
            raise DataError(f"methods.pixmix.mixing.path: {f} is not a readable image ({exc})") from None
    return out


SOURCES = {"fractals": _fractals, "folder": _folder}


def mixing_set(spec, root: str | Path, device: torch.device) -> torch.Tensor:
    """uint8 (M, 3, S, S) on `device` for a `methods.pixmix.mixing` section."""
    pictures = SOURCES[spec.source](spec, Path(root))
    return torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).contiguous().to(device)
