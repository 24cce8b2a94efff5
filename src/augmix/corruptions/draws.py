"""The random draws of every corruption, keyed per image, written once for both backends.

A corruption's randomness is a dict of raw variates (the `draws` argument of the functions in
`functions.py`: standard normals, uniforms, integers). This module makes those dicts from per-image
keys with `augmix.rng`'s counter-based generator: an image's draws are a pure function of
(key, image index, stream name, element), so they do not depend on the batch the image is in, on
the device, or on which other corruptions are built. `NumpyDraws` makes them with the NumPy twins
in `augmix.rng` (the CPU path), `TorchDraws` with the torch functions on the keys' device; uniform
and integer draws are equal bit for bit between the two, normals up to the last bit of log/cos
(see docs/corruptions.md, "Randomness of our builds").

The keys of a build's batch are `corruption_keys(seed, name, severity, index)`: SampleKeys whose seed
folds (seed or dataset name, corruption name, severity) through `augmix.rng.derive_seed`, with the
image index as the sample index, so renaming, inserting or reordering other corruptions changes
nothing here.

Each spec below takes a draw source and the shape parameters it needs and returns the dict the
corruption reads; stream names are short because the key already names the corruption.
"""

from __future__ import annotations

import numpy as np
import torch

from augmix import rng as R

__all__ = [
    "DRAWS",
    "NumpyDraws",
    "TorchDraws",
    "corruption_keys",
    "fog_uniform_shapes",
    "keys_for",
    "numpy_draws",
    "torch_draws",
]


def corruption_keys(seed: int | str, name: str, severity: int, index, device=None) -> R.SampleKeys:
    """Per-image keys of a batch of one corruption: seed is the build's base seed (an int) or a
    dataset name; `index` the images' indices in the dataset (a range, array or tensor)."""
    if isinstance(seed, str):
        key = R.derive_seed(f"corrupt/{seed}/{name}", int(severity))
    else:
        key = R.derive_seed(f"corrupt/{name}", int(seed), int(severity))
    idx = torch.as_tensor(np.asarray(index, dtype=np.int64) if not torch.is_tensor(index) else index)
    return R.SampleKeys(key, 0, idx.to(device) if device is not None else idx)


def keys_for(rng, n: int, device=None) -> R.SampleKeys:
    """The keys of a batch of n images from what a corruption was given: SampleKeys (checked and
    moved to `device`), or a NumPy Generator (one fresh key drawn from it, images 0..n-1; handy for
    one-off calls). Randomness is never global: None raises."""
    if isinstance(rng, R.SampleKeys):
        if len(rng) != n:
            raise ValueError(f"keys for {len(rng)} images given for a batch of {n}")
        return rng if device is None else rng.to(device)
    if isinstance(rng, np.random.Generator):
        return R.SampleKeys(int(rng.integers(0, 2**63)), 0, torch.arange(n, device=device))
    raise ValueError(
        f"pass rng (augmix.rng.SampleKeys or a numpy Generator) or draws, got {rng!r}; "
        "randomness is never global"
    )


class NumpyDraws:
    """Draws of a batch as NumPy arrays (augmix.rng's NumPy twins; the keys live on the CPU)."""

    def __init__(self, keys: R.SampleKeys):
        self.keys = keys.to("cpu")
        self.n = len(keys)

    def uniform(self, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
        return R.numpy_uniform(self.keys, stream, shape)

    def normal(self, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
        return R.numpy_normal(self.keys, stream, shape)

    def randint(self, stream: str, high, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Integers uniform on 0..high-1 (int64); high an int or one bound per image (n,)."""
        high = np.asarray(high, dtype=np.int64).reshape((-1,) + (1,) * len(shape))
        u = self.uniform(stream, shape)
        u *= high
        return np.minimum(np.floor(u).astype(np.int64), high - 1)

    def asarray(self, x) -> np.ndarray:
        return np.asarray(x)


class TorchDraws:
    """The same draws as torch tensors on the keys' device (augmix.rng's torch functions)."""

    def __init__(self, keys: R.SampleKeys):
        self.keys = keys
        self.n = len(keys)

    def uniform(self, stream: str, shape: tuple[int, ...] = ()) -> torch.Tensor:
        return R.uniform(self.keys, stream, shape)

    def normal(self, stream: str, shape: tuple[int, ...] = ()) -> torch.Tensor:
        return R.normal(self.keys, stream, shape)

    def randint(self, stream: str, high, shape: tuple[int, ...] = ()) -> torch.Tensor:
        high = torch.as_tensor(high, dtype=torch.int64, device=self.keys.device)
        high = high.reshape((-1,) + (1,) * len(shape))
        u = self.uniform(stream, shape) * high
        return torch.minimum(u.floor().to(torch.int64), high - 1)

    def asarray(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=self.keys.device)


# ----------------------------------------------------------------------------------------------
# the draws of each corruption (shapes per image; the sources add the leading image axis)


def _noise_normals(src, h, w):
    return {"z": src.normal("z", (h, w, 3))}


def _shot_noise(src, h, w):
    return {"u": src.uniform("u", (h, w, 3))}


def _impulse_noise(src, h, w):
    return {"u_flip": src.uniform("flip", (h, w, 3)), "u_salt": src.uniform("salt", (h, w, 3))}


def _glass_blur(src, h, w, *, d: int, iterations: int):
    # the reference's randint(-d, d) excludes d: offsets in {-d, ..., d - 1}
    return {"offsets": src.randint("offsets", 2 * d, (iterations, h - 2 * d, w - 2 * d, 2)) - d}


def _angle(src, h, w):
    return {"u_angle": src.uniform("angle")}


def _snow(src, h, w):
    return {"z": src.normal("z", (h, w)), "u_angle": src.uniform("angle")}


def _frost(src, h, w, *, texture_shapes):
    # Quirk: randint(5) over the reference's six file names, so the sixth texture is never used;
    # the crop offsets exclude the last valid one (docs/corruptions.md, quirks).
    index = src.randint("texture", 5)
    sizes = src.asarray(np.array([s[:2] for s in texture_shapes], dtype=np.int64))[index]
    return {
        "index": index,
        "row": src.randint("row", sizes[:, 0] - h),
        "col": src.randint("col", sizes[:, 1] - w),
    }


def fog_uniform_shapes(n: int, mapsize: int) -> list:
    """Shapes of the uniform draws of the plasma fractal, in the reference's draw order: three
    (n, k, k) arrays per level, k = mapsize / step for step = mapsize, mapsize / 2, ..., 2."""
    shapes, step = [], mapsize
    while step >= 2:
        k = mapsize // step
        shapes += [(n, k, k)] * 3
        step //= 2
    return shapes


def _fog(src, h, w, *, mapsize: int):
    shapes = fog_uniform_shapes(src.n, mapsize)
    return {"uniforms": [src.uniform(f"plasma{i}", s[1:]) for i, s in enumerate(shapes)]}


def _elastic_transform(src, h, w, *, displace: bool):
    out = {"u_affine": src.uniform("affine", (3, 2))}
    if displace:  # alpha = 0 (CIFAR severity 1): no displacement field to draw
        out["u_dx"] = src.uniform("dx", (h, w))
        out["u_dy"] = src.uniform("dy", (h, w))
    return out


def _spatter(src, h, w):
    return {"z": src.normal("z", (h, w))}


# name -> spec(source, H, W, **shape parameters) -> draws dict; deterministic corruptions are absent
DRAWS = {
    "gaussian_noise": _noise_normals,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _noise_normals,
    "glass_blur": _glass_blur,
    "motion_blur": _angle,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "elastic_transform": _elastic_transform,
    "spatter": _spatter,
}


def numpy_draws(name: str, rng, images_shape, **params) -> dict:
    """The draws of corruption `name` for a NumPy batch of `images_shape` (N, H, W, 3)."""
    n, h, w = images_shape[:3]
    return DRAWS[name](NumpyDraws(keys_for(rng, n)), h, w, **params)


def torch_draws(name: str, rng, images_shape, device, **params) -> dict:
    """The same draws as tensors on `device`."""
    n, h, w = images_shape[:3]
    return DRAWS[name](TorchDraws(keys_for(rng, n, device)), h, w, **params)
