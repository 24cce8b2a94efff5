"""The torch path (device=...) against the NumPy path with the same injected draws, on CPU torch
(and on CUDA where present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmix.corruptions import functions as F
from augmix.corruptions import torch_backend as T
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.build import corrupt_block
from augmix.corruptions.frost import load_frost_textures
from augmix.corruptions.torch_backend import _fma32_t, rgb_to_gray_cv2_t

from support.cuda_division import emulate_cuda_scalar_division

# "cpu-cuda-division": CPU torch dividing the way CUDA kernels do (support/cuda_division.py), so
# the exactness of the device path is checked against CUDA's arithmetic on a machine without a GPU.
DEVICES = ["cpu", "cpu-cuda-division"] + ([pytest.param("cuda", marks=pytest.mark.gpu)]
                                          if torch.cuda.is_available() else [])


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


def test_device_draws_are_the_numpy_paths(imgs, device):
    """Seeded blocks: the torch path draws what the NumPy path draws (the same per-image keys), so
    the blocks are equal (on CUDA: up to the summation order of the blurs, contrast and snow's zoom,
    and the last bit of the normals' log/cos)."""
    for name in F.DEVICE_CORRUPTIONS:
        a = corrupt_block(imgs, name, 3, seed=1, device=torch.device(device))
        assert a.dtype == np.uint8 and a.shape == imgs.shape, name
        ref = corrupt_block(imgs, name, 3, seed=1, device="cpu")
        if torch.device(device).type == "cpu":
            assert np.array_equal(a, ref), name
        else:
            _agree(a, ref)


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
    # the means are NumPy's (host), so every device gives the same bytes
    assert np.array_equal(F.contrast(imgs, s, device=device), F.contrast(imgs, s))
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


def _snow_images(size, kind):
    colour = synthetic_images(4 if size == 32 else 2, size=size, seed=size)
    if kind == "colour":
        return colour
    grey = colour.mean(axis=-1).astype(np.uint8)
    grey[0] = np.random.default_rng(size).integers(0, 256, (size, size), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize("kind", ["grey", "colour"])
@pytest.mark.parametrize("table, size", [("cifar", 32), ("imagenet", 224)])
@pytest.mark.parametrize("s", [1, 3, 4, 5])
def test_snow_same_draws(imgs, device, s, table, size, kind):
    images = _snow_images(size, kind)
    if size == 32 and kind == "colour":
        images = np.concatenate([images, imgs])
    rng = np.random.default_rng(s)
    d = {
        "z": rng.standard_normal((len(images), size, size)),
        "u_angle": rng.random(len(images)),
    }
    ours = F.snow(images, s, table=table, draws=d, device=device)
    ref = F.snow(images, s, table=table, draws=d)
    if device == "cpu":  # the same float operations, the grey by OpenCV's fused order
        assert np.array_equal(ours, ref)
    else:  # the layer's zoom is a float64 matrix product on cuBLAS (its summation order)
        _agree(ours, ref)


def _grey_cube():
    """Every RGB triple of grey levels k / 255 (float32), as a (4096, 4096, 3) image."""
    k = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(k, k, k, indexing="ij"), axis=-1)
    return rgb.reshape(4096, 4096, 3).astype(np.float32) / np.float32(255)


def _gray_t(x, device):
    return rgb_to_gray_cv2_t(*torch.from_numpy(x).to(device).unbind(-1)).cpu().numpy()


def test_snow_grey_is_opencv_rgb2gray(device):
    """The torch grey equals cv2.cvtColor(COLOR_RGB2GRAY) on 1/16 of all RGB triples k/255."""
    cv2 = pytest.importorskip("cv2")
    x = np.ascontiguousarray(_grey_cube()[::16])
    assert np.array_equal(_gray_t(x, device), cv2.cvtColor(x, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize(
    "ipp, optimized, order", [(False, True, "opencv_simd|sum"), (False, False, "sum")]
)
def test_snow_grey_follows_the_opencv_build(device, ipp, optimized, order):
    """OpenCV without IPP (its own FMA loop) and unoptimized (a plain sum) round otherwise; the
    probe picks the order the running cv2 uses, and the grey still equals it."""
    cv2 = pytest.importorskip("cv2")

    x = np.ascontiguousarray(_grey_cube()[::64])
    was = cv2.ipp.useIPP(), cv2.useOptimized()
    try:
        cv2.setUseOptimized(optimized)  # which sets IPP's flag too: IPP's after
        cv2.ipp.setUseIPP(ipp)
        T.cv2_gray_order.cache_clear()
        ref = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        assert T.cv2_gray_order() in order.split("|")  # its FMA loop needs a CPU with FMA3
        assert np.array_equal(_gray_t(x, device), ref)
    finally:
        cv2.setUseOptimized(was[1])
        cv2.ipp.setUseIPP(was[0])
        T.cv2_gray_order.cache_clear()


@pytest.mark.slow
def test_snow_grey_is_opencv_rgb2gray_on_every_triple(device):
    cv2 = pytest.importorskip("cv2")
    x = _grey_cube()
    assert np.array_equal(_gray_t(x, device), cv2.cvtColor(x, cv2.COLOR_RGB2GRAY))


def test_fma32_rounds_once(device):
    """a * b + c rounded once to float32, where rounding through a float64 sum would not:
    (1 + 2^-12)^2 is a float32 tie, and +-2^-80 puts the exact sum just above / below it."""
    def t(*v):
        return torch.tensor(v, dtype=torch.float32, device=device)

    a, c = t(1 + 2.0**-12, 1 + 2.0**-12, -(1 + 2.0**-12)), t(2.0**-80, -(2.0**-80), -(2.0**-80))
    tie_low, tie_high = 1 + 2.0**-11, 1 + 2.0**-11 + 2.0**-23  # the tie's float32 neighbours
    assert _fma32_t(a, a.abs(), c).cpu().tolist() == [tie_high, tie_low, -tie_high]
    plain = (a.double() * a.abs().double() + c.double()).float()
    assert plain[0].item() == tie_low  # the double rounding the fma avoids
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(10_000).astype(np.float32) for _ in range(3))
    exact = (a.astype(np.longdouble) * b + c).astype(np.float32)  # 64-bit significand: exact
    got = _fma32_t(*(torch.from_numpy(v).to(device) for v in (a, b, c))).cpu().numpy()
    assert np.array_equal(got, exact)


@pytest.mark.skipif(not _frost_ok(), reason="frost textures not installed")
@pytest.mark.parametrize("s", [1, 5])
def test_frost_same_draws(imgs, device, s):
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
        a = corrupt_block(imgs, name, 3, seed=1, device=torch.device("cpu"))
        b = corrupt_block(imgs, name, 3, seed=2, device=torch.device("cpu"))
        assert not np.array_equal(a, b), name
