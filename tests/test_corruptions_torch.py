"""The torch path (device=...) against the NumPy path with the same injected draws, on CPU torch
(and on CUDA where present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmix.corruptions import functions as F
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.build import corrupt_block

# "cpu-cuda-division": CPU torch dividing the way CUDA kernels do (below), so the exactness of
# the device path is checked against CUDA's arithmetic on a machine without a GPU.
DEVICES = ["cpu", "cpu-cuda-division"] + (["cuda"] if torch.cuda.is_available() else [])


def emulate_cuda_scalar_division(monkeypatch):
    """CUDA's true division of a floating tensor by a Python number multiplies by the number's
    reciprocal (ATen BinaryDivTrueKernel.cu); CPU divides. Tensor divisors divide on both."""
    true_div, div = torch.Tensor.__truediv__, torch.Tensor.div

    def cuda_like(self, other):
        if self.is_floating_point() and isinstance(other, (int, float)):
            inverse = true_div(torch.ones((), dtype=self.dtype), torch.tensor(float(other), dtype=self.dtype))
            return self * inverse
        return true_div(self, other)

    def cuda_like_inplace(self, other):
        return self.copy_(cuda_like(self, other))

    monkeypatch.setattr(torch.Tensor, "__truediv__", cuda_like)
    monkeypatch.setattr(torch.Tensor, "__itruediv__", cuda_like_inplace)
    monkeypatch.setattr(torch.Tensor, "div", lambda self, other, **kw: div(self, other, **kw) if kw else cuda_like(self, other))


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    if request.param == "cpu-cuda-division":
        emulate_cuda_scalar_division(monkeypatch)
        return "cpu"
    return request.param


def test_the_emulation_rounds_like_cuda(monkeypatch):
    """Sanity of the emulation itself: a reciprocal multiply loses grey levels that a division keeps."""
    k = torch.arange(256, dtype=torch.float64)
    exact = (k / 255.0 * 255).to(torch.uint8)
    emulate_cuda_scalar_division(monkeypatch)
    assert torch.equal(exact, k.to(torch.uint8))
    assert (k / 255.0 * 255).to(torch.uint8).ne(k.to(torch.uint8)).sum() == 24


@pytest.fixture(scope="module")
def imgs():
    out = synthetic_images(6, seed=12)
    out[5, :16] = 255  # a flat saturated region
    return out


def _agree(a, b, frac=0.999):
    d = np.abs(a.astype(int) - b.astype(int))
    assert (d == 0).mean() >= frac and d.max() <= 1, ((d == 0).mean(), d.max())


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


@pytest.mark.parametrize("s", [1, 3, 5])
def test_blurs(imgs, device, s):
    _agree(F.gaussian_blur(imgs, s, device=device), F.gaussian_blur(imgs, s))
    _agree(F.defocus_blur(imgs, s, device=device), F.defocus_blur(imgs, s))
    assert np.array_equal(F.zoom_blur(imgs, s, device=device), F.zoom_blur(imgs, s))  # one code path
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


# ----------------------------------------------------------------------------------------------
# weather and digital corruptions (issue #4): the torch path with the NumPy path's draws


def _frost_ok():
    try:
        from augmix.corruptions.frost import load_frost_textures

        load_frost_textures("cifar")
        return True
    except (FileNotFoundError, OSError):
        return False


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_deterministic_digital(imgs, device, s):
    for fn in (F.brightness, F.saturate, F.pixelate):
        assert np.array_equal(fn(imgs, s, device=device), fn(imgs, s)), fn.__name__
    _agree(
        F.contrast(imgs, s, device=device), F.contrast(imgs, s)
    )  # torch's mean order
    # every device uses the CPU codec (equal to Pillow); CUDA builds code on a thread per core
    assert np.array_equal(F.jpeg_compression(imgs, s, device=device), F.jpeg_compression(imgs, s))


def test_jpeg_threads_and_nvjpeg_opt_in(imgs):
    many = np.concatenate([imgs] * 3)
    assert np.array_equal(F._jpeg_cv2(many, 50, threads=4), F._jpeg_cv2(many, 50))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="nvjpeg"):
            F.jpeg_compression(imgs, 1, backend="nvjpeg", device="cpu")
    else:  # nvJPEG codes 4:4:4: close to the reference, never claimed equal
        ours = F.jpeg_compression(imgs, 1, backend="nvjpeg", device="cuda")
        assert ours.shape == imgs.shape and np.abs(ours.astype(int) - F.jpeg_compression(imgs, 1)).mean() < 8


def test_deterministic_digital_imagenet(device):
    img = synthetic_images(2, size=224, seed=5)
    for s in (1, 5):
        for fn in (F.brightness, F.pixelate):
            assert np.array_equal(
                fn(img, s, table="imagenet", device=device),
                fn(img, s, table="imagenet"),
            )


@pytest.mark.parametrize("s", [1, 3, 5])
def test_fog_same_draws(imgs, device, s):
    rng = np.random.default_rng(s)
    uniforms = [rng.random(shape) for shape in F.fog_uniform_shapes(len(imgs), 32)]
    d = {"uniforms": uniforms}
    assert np.array_equal(
        F.fog(imgs, s, draws=d, device=device), F.fog(imgs, s, draws=d)
    )


@pytest.mark.parametrize("s", [1, 3, 4, 5])
def test_snow_same_draws(imgs, device, s):
    rng = np.random.default_rng(s)
    d = {
        "z": rng.standard_normal((len(imgs), 32, 32)),
        "u_angle": rng.random(len(imgs)),
    }
    # the layer's zoom is a float64 matrix product (summation order): rare one-level flips
    _agree(F.snow(imgs, s, draws=d, device=device), F.snow(imgs, s, draws=d))


@pytest.mark.skipif(not _frost_ok(), reason="frost textures not installed")
@pytest.mark.parametrize("s", [1, 5])
def test_frost_same_draws(imgs, device, s):
    from augmix.corruptions.frost import load_frost_textures

    tex = load_frost_textures("cifar")
    rng = np.random.default_rng(s)
    idx = rng.integers(0, 5, len(imgs))
    d = {
        "index": idx,
        "row": np.array([rng.integers(0, tex[k].shape[0] - 32) for k in idx]),
        "col": np.array([rng.integers(0, tex[k].shape[1] - 32) for k in idx]),
    }
    assert np.array_equal(
        F.frost(imgs, s, draws=d, device=device), F.frost(imgs, s, draws=d)
    )


@pytest.mark.parametrize("s", [1, 2, 3, 5])
@pytest.mark.parametrize("warp", ["fixed", "float"])
def test_elastic_same_draws(imgs, device, s, warp):
    rng = np.random.default_rng(s)
    n = len(imgs)
    d = {
        "u_affine": rng.random((n, 3, 2)),
        "u_dx": rng.random((n, 32, 32)),
        "u_dy": rng.random((n, 32, 32)),
    }
    ours = F.elastic_transform(imgs, s, draws=d, device=device, warp=warp)
    ref = F.elastic_transform(imgs, s, draws=d, warp=warp)
    if device == "cpu":  # the same float operations in the same order
        assert np.array_equal(ours, ref)
    else:
        _agree(ours, ref)


def test_elastic_imagenet_same_draws(device):
    img = synthetic_images(1, size=224, seed=8)
    rng = np.random.default_rng(0)
    d = {
        "u_affine": rng.random((1, 3, 2)),
        "u_dx": rng.random((1, 224, 224)),
        "u_dy": rng.random((1, 224, 224)),
    }
    for s in (1, 5):  # sigma up to 244 * 0.7: reflections beyond one period
        _agree(
            F.elastic_transform(img, s, table="imagenet", draws=d, device=device),
            F.elastic_transform(img, s, table="imagenet", draws=d),
        )


def test_new_device_streams_differ_by_seed(imgs):
    for name in ("snow", "fog", "elastic_transform"):
        a = corrupt_block(imgs, name, 3, seed=1, device="cpu")
        b = corrupt_block(imgs, name, 3, seed=2, device="cpu")
        assert not np.array_equal(a, b), name
