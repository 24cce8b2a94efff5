"""Frost textures: located in the `imagecorruptions` 1.1.2 package data, verified, cached.

The six images are not in our repository (their licence is unclear; docs/corruptions.md). They
are read from the installed wheel of `imagecorruptions` 1.1.2 (folder `imagecorruptions/frost/`,
byte-identical to hendrycks/robustness `ImageNet-C/create_c/`), located without importing the
package (its import fails on NumPy 2), and verified by SHA-256 before use.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "FROST_FILES",
    "FROST_SHA256",
    "FrostTexturesMissing",
    "frost_dir",
    "load_frost_textures",
]

# SHA-256 of the files in imagecorruptions 1.1.2 (byte-identical to hendrycks/robustness's copies).
FROST_SHA256 = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
    "frost6.jpg": "1f92b2f48408748085b68dd81d816ef239f42cef3029c25d041fcb6760fb4f25",
}
FROST_FILES = tuple(FROST_SHA256)

_FIX = (
    "Install them with `pip install --no-deps imagecorruptions==1.1.2` (the frost folder of that "
    "wheel is used; nothing is imported from it), or point AUGMIX_FROST_DIR at a folder holding "
    "frost1.png ... frost6.jpg."
)


class FrostTexturesMissing(FileNotFoundError):
    """Raised when the frost textures cannot be found or fail verification."""


def frost_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding the frost textures: explicit, $AUGMIX_FROST_DIR, or imagecorruptions'."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("AUGMIX_FROST_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec(
        "imagecorruptions"
    )  # locates without executing the package
    if spec is None or not spec.submodule_search_locations:
        raise FrostTexturesMissing(
            "frost textures not found: package imagecorruptions is not installed. "
            + _FIX
        )
    return Path(next(iter(spec.submodule_search_locations))) / "frost"


def _verified_bytes(folder: Path, name: str) -> bytes:
    path = folder / name
    if not path.is_file():
        raise FrostTexturesMissing(f"frost texture {path} is missing. " + _FIX)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FROST_SHA256[name]:
        raise FrostTexturesMissing(
            f"frost texture {path} has SHA-256 {digest}, expected {FROST_SHA256[name]}. "
            + _FIX
        )
    return data


def _decode_rgb(data: bytes) -> np.ndarray:
    # The reference reads with OpenCV imread (BGR, alpha dropped) and later flips to RGB; reading
    # RGB directly and dropping alpha gives the same pixels.
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _shrink_02(tex: np.ndarray) -> np.ndarray:
    """OpenCV `resize(fx=fy=0.2)`, bilinear: the source coordinate (i + 0.5) * 5 - 0.5 = 5i + 2 is
    an integer, so bilinear interpolation reduces to sampling every fifth pixel from offset 2; the
    output size is round(0.2 * size)."""
    h, w = tex.shape[:2]
    oh, ow = round(h * 0.2), round(w * 0.2)
    return np.ascontiguousarray(tex[2::5, 2::5][:oh, :ow])


@functools.lru_cache(maxsize=4)
def load_frost_textures(
    scale: str = "cifar", folder: str | None = None
) -> tuple[np.ndarray, ...]:
    """The five textures the reference can choose (frost1..frost5), RGB uint8, read once per process.

    scale "cifar" shrinks them by 0.2 as `make_cifar_c.py` does; "imagenet" keeps full size.
    frost6.jpg is verified too but never returned: the reference lists six names and draws
    randint(5), so it is never chosen.
    """
    if scale not in ("cifar", "imagenet"):
        raise KeyError(f"unknown frost scale {scale!r}; expected 'cifar' or 'imagenet'")
    root = frost_dir(folder)
    raw = [_verified_bytes(root, name) for name in FROST_FILES]
    textures = [_decode_rgb(b) for b in raw[:5]]
    if scale == "cifar":
        textures = [_shrink_02(t) for t in textures]
    for t in textures:
        t.setflags(write=False)
    return tuple(textures)
