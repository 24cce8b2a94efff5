"""The torch path (device=...) against the NumPy path with the same injected draws, on CPU torch
(and on CUDA where present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmix.corruptions import functions as F
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.build import corrupt_block

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def imgs():
    out = synthetic_images(6, seed=12)
    out[5, :16] = 255  # a flat saturated region
    return out


def _agree(a, b, frac=0.999):
    d = np.abs(a.astype(int) - b.astype(int))
    assert (d == 0).mean() >= frac and d.max() <= 1, ((d == 0).mean(), d.max())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("s", [1, 5])
def test_noise_same_draws(imgs, device, s):
    rng = np.random.default_rng(s)
    z = rng.standard_normal(imgs.shape)
    for fn in (F.gaussian_noise, F.speckle_noise):
        assert np.array_equal(
            fn(imgs, s, draws={"z": z}, device=device), fn(imgs, s, draws={"z": z})
        )
    counts = rng.poisson(imgs / 255.0 * 100)
    assert np.array_equal(
        F.shot_noise(imgs, s, draws={"counts": counts}, device=device),
        F.shot_noise(imgs, s, draws={"counts": counts}),
    )
    d = {"u_flip": rng.random(imgs.shape), "u_salt": rng.random(imgs.shape)}
    assert np.array_equal(
        F.impulse_noise(imgs, s, draws=d, device=device),
        F.impulse_noise(imgs, s, draws=d),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("s", [1, 3, 5])
def test_blurs(imgs, device, s):
    _agree(F.gaussian_blur(imgs, s, device=device), F.gaussian_blur(imgs, s))
    _agree(F.defocus_blur(imgs, s, device=device), F.defocus_blur(imgs, s))
    _agree(F.zoom_blur(imgs, s, device=device), F.zoom_blur(imgs, s))
    u = np.random.default_rng(s).random(len(imgs))
    assert np.array_equal(
        F.motion_blur(imgs, s, draws={"u_angle": u}, device=device),
        F.motion_blur(imgs, s, draws={"u_angle": u}),
    )
    _, d, iters = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][
        s - 1
    ]
    offs = np.random.default_rng(s).integers(-d, d, size=(len(imgs), iters, 30, 30, 2))
    _agree(
        F.glass_blur(imgs, s, draws={"offsets": offs}, device=device),
        F.glass_blur(imgs, s, draws={"offsets": offs}),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_glass_chains_imagenet(device):
    img = synthetic_images(1, size=224, seed=3)
    offs = np.random.default_rng(1).integers(-3, 3, size=(1, 2, 218, 218, 2))
    _agree(
        F.glass_blur(img, 4, table="imagenet", draws={"offsets": offs}, device=device),
        F.glass_blur(img, 4, table="imagenet", draws={"offsets": offs}),
    )


def test_device_streams_seeded(imgs):
    for name in F.DEVICE_CORRUPTIONS:
        a = corrupt_block(imgs, name, 3, seed=1, device="cpu")
        b = corrupt_block(imgs, name, 3, seed=1, device="cpu")
        assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == imgs.shape, (
            name
        )
