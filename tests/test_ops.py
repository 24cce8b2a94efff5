"""AugMix ops: the PIL path against the reference definitions, the tensor twins against PIL."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from augmix import ops

from support.cuda_division import emulate_cuda_scalar_division

SIZE = 32
PAPER = ["autocontrast", "equalize", "posterize", "rotate", "solarize",
         "shear_x", "shear_y", "translate_x", "translate_y"]  # fmt: skip
EXTRA = ["color", "contrast", "brightness", "sharpness"]
PIXEL = ["autocontrast", "equalize", "posterize", "solarize", *EXTRA]
WARPS = ["rotate", "shear_x", "shear_y"]
SHIFTS = ["translate_x", "translate_y"]


def smooth_images(n: int, size: int = SIZE, seed: int = 0) -> list[np.ndarray]:
    """Natural-looking test images: smooth colour gradients and blobs plus mild noise."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        chans = []
        for _c in range(3):
            f, ph = g.uniform(0.5, 3, 2), g.uniform(0, 6, 2)
            chans.append(
                np.sin(2 * np.pi * f[0] * xx + ph[0]) + np.cos(2 * np.pi * f[1] * yy + ph[1])
            )
        a = (np.stack(chans, -1) + 2) / 4 * g.uniform(80, 255) + g.uniform(0, 40)
        out.append(np.clip(a + g.normal(0, 3, a.shape), 0, 255).astype(np.uint8))
    return out


def mixed_images(seed: int = 0) -> list[np.ndarray]:
    g = np.random.default_rng(seed + 1)
    return (
        smooth_images(24, seed=seed)
        + [g.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(8)]  # noise
        + [g.integers(50, 58, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(4)]  # low range
        + [np.full((SIZE, SIZE, 3), 7, np.uint8), np.full((SIZE, SIZE, 3), 255, np.uint8)]
        + [np.dstack([np.full((SIZE, SIZE), 0, np.uint8), g.integers(0, 256, (SIZE, SIZE),
                      dtype=np.uint8), np.full((SIZE, SIZE), 200, np.uint8)])]  # mixed flat
    )  # fmt: skip


def to_batch(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- op tables


def test_op_sets_exact():
    assert list(ops.OPS) == PAPER
    assert list(ops.OPS_ALL) == PAPER + EXTRA
    assert len(ops.OPS) == 9 and len(ops.OPS_ALL) == 13
    assert set(ops.OPS_ALL) - set(ops.OPS) == {"color", "contrast", "brightness", "sharpness"}
    assert set(ops.OPS) <= set(ops.OPS_ALL)
    assert ops.op_names(False) == tuple(PAPER) and ops.op_names(True) == tuple(PAPER + EXTRA)
    assert "identity" not in ops.OPS_ALL
    assert set(ops.OPS_ALL) <= set(ops.TENSOR_OPS)


# --------------------------------------------------------------------------- PIL path vs REF
# An independent re-statement of google-research/augmix augmentations.py, written here
# directly from the facts in docs/reference-facts.md, "AugMix operations" (levels from the passed
# generator instead of np.random).


def _ref_op(name, img, severity, g, size):
    bil = Image.Resampling.BILINEAR

    def level():
        return g.uniform(low=0.1, high=severity)

    def aff(data):
        return img.transform((size, size), Image.Transform.AFFINE, data, resample=bil)

    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "posterize":
        return ImageOps.posterize(img, 4 - int(level() * 4 / 10))
    if name == "solarize":
        return ImageOps.solarize(img, 256 - int(level() * 256 / 10))
    if name == "rotate":
        deg = int(level() * 30 / 10)
        return img.rotate(-deg if g.uniform() > 0.5 else deg, resample=bil)
    if name in ("shear_x", "shear_y"):
        v = float(level()) * 0.3 / 10.0
        v = -v if g.uniform() > 0.5 else v
        return aff((1, v, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, v, 1, 0))
    if name in ("translate_x", "translate_y"):
        v = int(level() * (size / 3) / 10)
        v = -v if g.random() > 0.5 else v
        return aff((1, 0, v, 0, 1, 0) if name == "translate_x" else (1, 0, 0, 0, 1, v))
    enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
                "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}[name]  # fmt: skip
    return enhancer(img).enhance(float(level()) * 1.8 / 10.0 + 0.1)


@pytest.mark.parametrize("name", PAPER + EXTRA)
@pytest.mark.parametrize("severity", [1, 3, 10])
def test_pil_op_matches_reference_restatement(name, severity):
    imgs = smooth_images(6, seed=severity)
    for seed in range(12):
        img = Image.fromarray(imgs[seed % len(imgs)])
        g_ours, g_ref = np.random.default_rng(seed), np.random.default_rng(seed)
        ours = ops.OPS_ALL[name](img, severity, g_ours, SIZE)
        ref = _ref_op(name, img, severity, g_ref, SIZE)
        assert ours.size == (SIZE, SIZE) and ours.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
        # Same number of random draws: the generators are still in step.
        assert g_ours.uniform() == g_ref.uniform()


def test_parameterless_ops_draw_nothing():
    img = Image.fromarray(smooth_images(1)[0])
    for name in ("autocontrast", "equalize"):
        g = np.random.default_rng(5)
        ops.OPS[name](img, 3, g, SIZE)
        assert g.uniform() == np.random.default_rng(5).uniform()


def test_ops_reject_wrong_size():
    img = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    for name in ops.OPS_ALL:
        with pytest.raises(ValueError, match="32x32"):
            ops.OPS_ALL[name](img, 3, np.random.default_rng(0), SIZE)


def test_affine_ops_fill_black_top_left_origin():
    img = Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8))
    # translate_x with v > 0 samples at x + v: content moves left, black enters on the right.
    out = np.asarray(ops.PIL_APPLY["translate_x"](img, 3, SIZE))
    assert (out[:, -3:] == 0).all() and (out[:, :-3] == 200).all()
    # shear_x is not centred: row 0 barely moves, the bottom rows shift the most.
    out = np.asarray(ops.PIL_APPLY["shear_x"](img, 0.3, SIZE))
    assert (out[0, :-1] == 200).all() and (out[-1, -8:] == 0).all()


# Realised parameter ranges (docs/reference-facts.md, "AugMix operations"), over 100,000 draws.
SPEC_RANGES = {
    1: {"rotate": (0, 2), "posterize": (4, 4), "solarize": (231, 254), "shear_x": (0.003, 0.03),
        "translate_x": (0, 1), "color": (0.118, 0.28)},
    3: {"rotate": (0, 8), "posterize": (3, 4), "solarize": (180, 254), "shear_x": (0.003, 0.09),
        "translate_x": (0, 3), "color": (0.118, 0.64)},
    10: {"rotate": (0, 29), "posterize": (1, 4), "solarize": (1, 254), "shear_x": (0.003, 0.3),
         "translate_x": (0, 10), "color": (0.118, 1.9)},
}  # fmt: skip


@pytest.mark.parametrize("severity", [1, 3, 10])
def test_realised_parameter_ranges(severity):
    g = np.random.default_rng(severity)
    level = torch.from_numpy(g.uniform(0.1, severity, 100_000))
    no_flip = torch.zeros_like(level, dtype=torch.bool)
    for name, (lo, hi) in SPEC_RANGES[severity].items():
        v = ops.tensor_parameters(name, level, no_flip, SIZE)
        assert v.min().item() == pytest.approx(lo, abs=2e-3), name
        assert v.max().item() == pytest.approx(hi, abs=2e-3), name
    # translate at 224: 0..7 / 0..22 / 0..74
    v = ops.tensor_parameters("translate_x", level, no_flip, 224)
    assert v.max().item() == {1: 7, 3: 22, 10: 74}[severity]
    # the scalar (PIL) and tensor scalings agree draw by draw
    for name in ops.OPS_ALL:
        if ops.PARAMS[name].scale is None:
            continue
        vt = ops.tensor_parameters(name, level[:200], no_flip[:200], SIZE)
        vs = [ops.PARAMS[name].scale(float(lv), SIZE) for lv in level[:200]]
        np.testing.assert_array_equal(vt.numpy(), np.array(vs, dtype=np.float64))


def test_signs_negate_signed_ops_only():
    level = torch.full((4,), 5.0, dtype=torch.float64)
    flip = torch.tensor([True, False, True, False])
    for name, spec in ops.PARAMS.items():
        v = ops.tensor_parameters(name, level, flip, SIZE)
        if spec.scale is None:
            assert v is None
        elif spec.signed:
            assert (v[flip] < 0).all() and (v[~flip] > 0).all()
        else:
            assert (v > 0).all()


# --------------------------------------------------------------------------- tensor twins


def _pil_apply(name, img: np.ndarray, v) -> np.ndarray:
    if v is not None and name in ("posterize", "solarize", "rotate", *SHIFTS):
        v = int(v)
    return np.asarray(ops.PIL_APPLY[name](Image.fromarray(img), v, img.shape[0]))


def _compare(name, imgs, levels, seed=0):
    """Tensor op on the whole batch (one parameter per image) vs PIL image by image."""
    x = to_batch(imgs)
    g = torch.Generator().manual_seed(seed)
    level = torch.as_tensor(levels, dtype=torch.float64)
    flip = torch.rand(len(imgs), generator=g) < 0.5
    v = ops.tensor_parameters(name, level, flip, x.shape[-1])
    out = ops.TENSOR_OPS[name](x, v)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    ref = np.stack([_pil_apply(name, im, None if v is None else v[i].item())
                    for i, im in enumerate(imgs)])  # fmt: skip
    return out.permute(0, 2, 3, 1).numpy().astype(int), ref.astype(int)


@pytest.mark.parametrize("name", PIXEL)
def test_tensor_pixel_ops_equal_pil(name):
    imgs = mixed_images()
    for levels in ([0.1] * len(imgs), np.linspace(0.1, 9.99, len(imgs)), [3.0] * len(imgs),
                   np.random.default_rng(1).uniform(0.1, 10, len(imgs))):  # fmt: skip
        ours, ref = _compare(name, imgs, levels)
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("name", SHIFTS)
def test_tensor_translations_equal_pil(name):
    imgs = mixed_images()
    ours, ref = _compare(name, imgs, np.linspace(0.1, 9.99, len(imgs)))
    np.testing.assert_array_equal(ours, ref)


# Rotate and the shears repeat Pillow's float64 bilinear arithmetic operation by operation
# (ops.py "warps"): they equal Pillow bit for bit, at every size, level and fill.


def _check_warp(ours: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_array_equal(ours, ref)


def warp_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth images, noise, and flat ones with hard edges (where a one-ulp error would show as a
    grey level at flat values)."""
    g = np.random.default_rng(seed + 2)
    out = smooth_images(n - n // 4 - n // 4, size=size, seed=seed)
    out += [g.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n // 4)]
    for _ in range(n // 4):
        flat = np.full((size, size, 3), g.integers(0, 256, 3), np.uint8)
        flat[size // 3 :, : size // 2] = 255
        flat[:, -3:] = g.integers(0, 256, 3)
        out.append(flat)
    return out


# every level the sampler can draw, ends and step edges included (l ~ U(0.1, severity <= 10))
LEVELS = np.concatenate([np.linspace(0.1, 9.9999, 40), [0.1, 1 / 3, 0.34, 2 / 3, 5.0, 9.99999]])


@pytest.mark.parametrize("name", WARPS)
@pytest.mark.parametrize("size", [32, 48, 224])
def test_tensor_warps_equal_pil(name, size):
    imgs = warp_images(len(LEVELS), size=size, seed=size)
    if size == 224:  # Pillow is slow there: every fourth level
        imgs, levels = imgs[::4], LEVELS[::4]
    else:
        levels = LEVELS
    _check_warp(*_compare(name, imgs, levels))


@pytest.mark.parametrize("size", [32, pytest.param(224, marks=pytest.mark.slow)])
def test_every_rotation_angle_equals_pil(size):
    """All whole degrees AugMix draws (|angle| <= 29) and beyond, Pillow's 90/180/270-degree
    transposes included, in one batch (one plan per angle)."""
    deg = list(range(-30, 31)) + [45, 90, -90, 180, 270, 359, 360, 720, 12.5, -7.25]
    img = warp_images(4, size=size, seed=size + 3)
    imgs = [img[i % 4] for i in range(len(deg))]
    out = ops.t_rotate(to_batch(imgs), torch.tensor(deg, dtype=torch.float64))
    for i, d in enumerate(deg):
        ref = np.asarray(Image.fromarray(imgs[i]).rotate(d, resample=Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(out[i].permute(1, 2, 0).numpy(), ref, err_msg=f"{d} degrees")


@pytest.mark.parametrize("name", ["shear_x", "shear_y"])
def test_shears_over_the_level_range_equal_pil(name):
    """200 levels over [0.1, 10), both signs, fills 0 and 128."""
    levels = np.linspace(0.1, 10, 200, endpoint=False)
    imgs = warp_images(8, SIZE, seed=9)
    imgs = [imgs[i % 8] for i in range(len(levels))]
    for fill in (0, FILL):
        ours, _, ref, _ = _compare_fill(name, imgs, levels, fill)
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("name", WARPS)
def test_generic_affine_warp_equals_pil(name):
    """t_affine (the shared warp of rotate and the shears on CUDA) on the warp matrices."""
    imgs = warp_images(32, SIZE, seed=5)
    level = torch.as_tensor(np.linspace(0.1, 9.99, len(imgs)), dtype=torch.float64)
    flip = torch.arange(len(imgs)) % 3 == 0
    v = ops.tensor_parameters(name, level, flip, SIZE)
    out = ops.t_affine(to_batch(imgs), ops.affine_matrices(name, v, SIZE))
    ref = np.stack([_pil_apply(name, im, v[i].item()) for i, im in enumerate(imgs)])
    _check_warp(out.permute(0, 2, 3, 1).numpy().astype(int), ref.astype(int))


def test_rotation_matrices_whole_degrees_are_pillows():
    """affine_matrices("rotate") (the vectorised one of the shared CUDA warp) is Pillow's matrix
    bit for bit for whole degrees; other angles (never drawn) use torch's cos and sin, a few ulp
    away; NaN (rows of other ops in the shared warp) stays NaN without failing."""
    deg = torch.arange(-360, 361, dtype=torch.float64)
    mats = ops.affine_matrices("rotate", deg, SIZE)
    for d, m in zip(deg.tolist(), mats):
        angle = -math.radians(d % 360.0)  # Image.rotate's own steps, restated
        a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
        e, f = round(-math.sin(angle), 15), round(math.cos(angle), 15)
        want = [a, b, a * -16.0 + b * -16.0 + 0.0 + 16.0, e, f, e * -16.0 + f * -16.0 + 0.0 + 16.0]
        assert m.tolist() == want, d
    odd = ops.affine_matrices("rotate", torch.tensor([12.5, float("nan")]), SIZE)
    assert torch.isnan(odd[1]).all()
    angle = -math.radians(12.5)
    assert odd[0, 0].item() == pytest.approx(math.cos(angle), abs=1e-15)


def test_warps_with_cuda_division_equal_pil(monkeypatch):
    """CUDA divides a tensor by a Python number as a reciprocal multiply: the parameters
    (level * maxval / 10) and so the warps must not depend on it. Run under that emulation."""
    g = np.random.default_rng(4)
    level = torch.from_numpy(g.uniform(0.1, 10, 20_000))
    flip = torch.from_numpy(g.random(20_000) < 0.5)
    plain = {n: ops.tensor_parameters(n, level, flip, SIZE) for n in ops.OPS_ALL}
    emulate_cuda_scalar_division(monkeypatch)
    lv = level.tolist()
    for name, v in plain.items():
        if v is None:
            continue
        assert torch.equal(ops.tensor_parameters(name, level, flip, SIZE), v), name
        # and they are the PIL path's Python-float parameters
        scale = ops.PARAMS[name].scale
        pil = [(-1 if f else 1) * scale(x, SIZE) if ops.PARAMS[name].signed else scale(x, SIZE)
               for x, f in zip(lv[:500], flip[:500].tolist())]  # fmt: skip
        assert v[:500].tolist() == [float(p) for p in pil], name
    imgs = warp_images(16, SIZE, seed=2)
    for name in WARPS:
        _check_warp(*_compare(name, imgs, np.linspace(0.1, 9.99, 16)))


def test_warps_keep_no_state_across_shapes_and_threads():
    """The warps cache only per-angle plans (ops._rotation_plan): calls on other shapes and
    batch sizes in between, and concurrent calls from threads, change no result."""
    small, big = to_batch(warp_images(8, SIZE, seed=1)), to_batch(warp_images(4, 48, seed=2))
    deg = torch.tensor([3.0, -7, 0, 29, -29, 12, 1, -1])
    shear = torch.linspace(-0.3, 0.3, 8, dtype=torch.float64)
    want = (ops.t_rotate(small, deg), ops.t_shear(small, shear, "x", 128))
    ops.t_rotate(big, deg[:4])
    ops.t_shear(big, shear[:4], "y")
    assert torch.equal(ops.t_rotate(small[:3], deg[:3]), want[0][:3])
    assert torch.equal(ops.t_shear(small, shear, "x", 128), want[1])
    results = {}

    def run(k):
        for _ in range(20):
            results[k] = (ops.t_rotate(small, deg), ops.t_shear(small, shear, "x", 128))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):
        assert torch.equal(results[k][0], want[0]) and torch.equal(results[k][1], want[1])


def test_rotation_with_repeated_angles_equals_one_by_one():
    """t_rotate builds one grid per distinct angle; images sharing an angle are unaffected."""
    x = to_batch(smooth_images(12))
    deg = torch.tensor([3.0, -5.0, 3.0, 0.0, 29.0, -5.0, 3.0, 1.0, 0.0, 29.0, -29.0, 3.0])
    batch = ops.t_rotate(x, deg)
    for i in range(len(deg)):
        assert torch.equal(batch[i : i + 1], ops.t_rotate(x[i : i + 1], deg[i : i + 1]))
    assert torch.equal(batch[3], x[3])  # 0 degrees is the identity, as in PIL


def test_rotation_direction_and_centre():
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[4:8, 14:18] = 255  # a block above the centre
    x = to_batch([img])
    out = ops.TENSOR_OPS["rotate"](x, torch.tensor([90.0]))[0, 0].numpy()
    ref = np.asarray(Image.fromarray(img).rotate(90, resample=Image.Resampling.BILINEAR))[..., 0]
    # counter-clockwise by 90 degrees about the centre: the block moves to the left side
    assert out[14:18, 4:8].min() == 255 and ref[14:18, 4:8].min() == 255


def test_tensor_ops_are_per_sample():
    """Each image uses its own parameter: the batch result equals one-at-a-time results."""
    imgs = smooth_images(8)
    x = to_batch(imgs)
    level = torch.linspace(0.5, 9.5, 8, dtype=torch.float64)
    flip = torch.tensor([True, False] * 4)
    for name in ops.OPS_ALL:
        v = ops.tensor_parameters(name, level, flip, SIZE)
        batch = ops.TENSOR_OPS[name](x, v)
        for i in range(8):
            one = ops.TENSOR_OPS[name](x[i : i + 1], None if v is None else v[i : i + 1])
            assert torch.equal(batch[i : i + 1], one), name
        if v is not None and name not in ("posterize",):
            assert not torch.equal(batch[0], ops.TENSOR_OPS[name](x[:1], v[-1:])[0]), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_tensor_ops_cuda_match_cpu():
    imgs = mixed_images()
    x = to_batch(imgs)
    level = torch.linspace(0.1, 9.99, len(imgs), dtype=torch.float64)
    flip = torch.arange(len(imgs)) % 2 == 0
    for name in ops.OPS_ALL:
        v = ops.tensor_parameters(name, level, flip, SIZE)
        cpu = ops.TENSOR_OPS[name](x, v).int()
        gpu = ops.TENSOR_OPS[name](x.cuda(), None if v is None else v.cuda()).cpu().int()
        assert torch.equal(cpu, gpu), name


def test_affine_warp_agrees_with_integer_translation_path():
    """t_affine (the generic warp) on translate matrices equals the exact shift path."""
    x = to_batch(smooth_images(16))
    v = torch.arange(-8, 8, dtype=torch.float64)
    for name in SHIFTS:
        warped = ops.t_affine(x, ops.affine_matrices(name, v, SIZE))
        assert torch.equal(warped, ops.TENSOR_OPS[name](x, v)), name


# --------------------------------------------------------------------------- affine fill
# The released ImageNet weights' fillcolor=128 for shear and translate (docs/reference-facts.md,
# "AugMix fill").

FILL = 128
FILLED = ["shear_x", "shear_y", "translate_x", "translate_y"]


def _pil_fillcolor(name, img: Image.Image, v, fill) -> np.ndarray:
    """Pillow itself called as the released weights' code calls it: Image.transform(..., fillcolor=fill),
    an int."""
    data = {"shear_x": (1, v, 0, 0, 1, 0), "shear_y": (1, 0, 0, v, 1, 0),
            "translate_x": (1, 0, v, 0, 1, 0), "translate_y": (1, 0, 0, 0, 1, v)}[name]  # fmt: skip
    size = img.size[0]
    return np.asarray(img.transform((size, size), Image.Transform.AFFINE, data,
                                    resample=Image.Resampling.BILINEAR, fillcolor=fill))  # fmt: skip


def test_affine_fill_ops_are_the_four_shears_and_translations():
    assert ops.AFFINE_FILL_OPS == tuple(FILLED)
    for bad in (-1, 256, 1.5, 128.0, True, "128", None):
        with pytest.raises(ValueError, match="0..255"):
            ops.check_fill(bad)
    assert ops.check_fill(np.uint8(128)) == 128 and ops.check_fill(0) == 0


def test_fill_colour_is_pillows_reading_of_an_int():
    """Pillow paints an int colour on an RGB image as a packed value, red in the low byte:
    fillcolor=128 is dark red, not grey; a one-band image takes the int as its level."""
    for fill in (0, 1, 37, 128, 255):
        assert Image.new("RGB", (1, 1), fill).getpixel((0, 0)) == ops.fill_colour(fill) == (fill, 0, 0)
        assert (Image.new("L", (1, 1), fill).getpixel((0, 0)),) == ops.fill_colour(fill, 1)


@pytest.mark.parametrize("name", FILLED)
def test_pil_fill_equals_pillow_fillcolor(name):
    """PIL path with fill 128 is Pillow's `fillcolor=128`, and Pillow gives an uncovered pixel the
    fill colour whole: fill 128 and fill 0 differ exactly there, by (128, 0, 0)."""
    imgs = smooth_images(6, seed=3)
    values = [-10, -4, -1, 1, 3, 10] if name in SHIFTS else [-0.3, -0.11, -0.04, 0.03, 0.17, 0.3]
    for arr, v in zip(imgs, values):
        img = Image.fromarray(arr)
        filled = np.asarray(ops.PIL_APPLY[name](img, v, SIZE, FILL))
        np.testing.assert_array_equal(filled, _pil_fillcolor(name, img, v, FILL))
        black = np.asarray(ops.PIL_APPLY[name](img, v, SIZE))
        np.testing.assert_array_equal(black, _pil_fillcolor(name, img, v, 0))
        changed = (filled != black).any(-1)
        assert changed.any()
        assert (filled[changed] == ops.fill_colour(FILL)).all() and (black[changed] == 0).all()


@pytest.mark.parametrize("name", FILLED)
def test_pil_op_with_fill_matches_restated_reference(name):
    """OPS[name](..., fill=128) equals the reference restatement with fillcolor, draw by draw."""
    imgs = smooth_images(6, seed=4)
    for seed in range(12):
        img = Image.fromarray(imgs[seed % len(imgs)])
        g_ours, g_ref = np.random.default_rng(seed), np.random.default_rng(seed)
        ours = np.asarray(ops.OPS[name](img, 10, g_ours, SIZE, fill=FILL))
        level = g_ref.uniform(low=0.1, high=10)
        if name in SHIFTS:
            v = int(level * (SIZE / 3) / 10)
            v = -v if g_ref.random() > 0.5 else v
        else:
            v = float(level) * 0.3 / 10.0
            v = -v if g_ref.uniform() > 0.5 else v
        np.testing.assert_array_equal(ours, _pil_fillcolor(name, img, v, FILL))
        assert g_ours.uniform() == g_ref.uniform()


def test_rotate_takes_no_fill():
    """Rotate's fill in the released weights' code is unknown, so rotate has no fill argument: it
    stays black."""
    img = Image.fromarray(smooth_images(1)[0])
    with pytest.raises(TypeError):
        ops.OPS["rotate"](img, 3, np.random.default_rng(0), SIZE, fill=FILL)
    with pytest.raises(TypeError):
        ops.TENSOR_OPS["rotate"](to_batch(smooth_images(1)), torch.tensor([10.0]), fill=FILL)


def _compare_fill(name, imgs, levels, fill, apply=None, seed=0):
    """Tensor op with `fill` vs PIL with fillcolor; also returns both fill-0 results."""
    x = to_batch(imgs)
    size = x.shape[-1]
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(imgs), generator=g) < 0.5
    v = ops.tensor_parameters(name, torch.as_tensor(levels, dtype=torch.float64), flip, size)
    apply = apply or (lambda x, v, fill: ops.TENSOR_OPS[name](x, v, fill=fill))
    ours = apply(x, v, fill).permute(0, 2, 3, 1).numpy().astype(int)
    ours0 = apply(x, v, 0).permute(0, 2, 3, 1).numpy().astype(int)
    pv = [int(t) if name in SHIFTS else t for t in v.tolist()]
    ref = np.stack([_pil_fillcolor(name, Image.fromarray(im), pv[i], fill) for i, im in enumerate(imgs)])
    ref0 = np.stack([_pil_fillcolor(name, Image.fromarray(im), pv[i], 0) for i, im in enumerate(imgs)])
    return ours, ours0, ref.astype(int), ref0.astype(int)


def _check_fill(ours, ours0, ref, ref0, fill):
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours0, ref0)
    # the fill lands on exactly Pillow's uncovered pixels, whole (no blend at the border), and
    # the covered pixels are those of fill 0
    uncovered, uncovered_ref = (ours != ours0).any(-1), (ref != ref0).any(-1)
    np.testing.assert_array_equal(uncovered, uncovered_ref)
    assert uncovered.any()
    assert (ours[uncovered] == ops.fill_colour(fill)).all() and (ours0[uncovered] == 0).all()


@pytest.mark.parametrize("name", FILLED)
@pytest.mark.parametrize("size", [32, 48, 224])
def test_tensor_fill_matches_pil_fillcolor(name, size):
    n = 8 if size == 224 else 32
    imgs = smooth_images(n, size=size, seed=size + 1)
    levels = np.random.default_rng(size).uniform(0.1, 10, n)
    _check_fill(*_compare_fill(name, imgs, levels, FILL), FILL)
    # another level: the fill is not special-cased to 128
    _check_fill(*_compare_fill(name, imgs, levels, 37, seed=1), 37)


@pytest.mark.parametrize("name", ["shear_x", "shear_y"])
def test_generic_affine_warp_fill_matches_pil(name):
    """t_affine (the shared warp of rotate and the shears on CUDA) with fill 128."""
    imgs = smooth_images(32, seed=6)
    levels = np.linspace(0.1, 9.99, len(imgs))

    def apply(x, v, fill):
        return ops.t_affine(x, ops.affine_matrices(name, v, x.shape[-1]), fill)

    _check_fill(*_compare_fill(name, imgs, levels, FILL, apply=apply), FILL)
    # per-image fill levels (the CUDA path's shared rotate + shear warp uses them)
    x = to_batch(imgs)
    v = ops.tensor_parameters(name, torch.as_tensor(levels), torch.zeros(len(imgs), dtype=torch.bool), SIZE)
    mats = ops.affine_matrices(name, v, SIZE)
    fills = torch.tensor([0, FILL] * 16, dtype=torch.uint8)
    mixed = ops.t_affine(x, mats, fills)
    assert torch.equal(mixed[0::2], ops.t_affine(x, mats)[0::2])
    assert torch.equal(mixed[1::2], ops.t_affine(x, mats, FILL)[1::2])


def test_translation_fill_agrees_with_affine_warp():
    x = to_batch(smooth_images(16))
    v = torch.arange(-8, 8, dtype=torch.float64)
    for name in SHIFTS:
        warped = ops.t_affine(x, ops.affine_matrices(name, v, SIZE), FILL)
        assert torch.equal(warped, ops.TENSOR_OPS[name](x, v, fill=FILL)), name


def test_tensor_fill_zero_is_the_default():
    x = to_batch(smooth_images(8))
    v = torch.linspace(-9, 9, 8, dtype=torch.float64)
    for name in FILLED:
        assert torch.equal(ops.TENSOR_OPS[name](x, v), ops.TENSOR_OPS[name](x, v, fill=0)), name
    assert torch.equal(ops.t_affine(x, ops.affine_matrices("shear_x", v / 30, SIZE)),
                       ops.t_affine(x, ops.affine_matrices("shear_x", v / 30, SIZE), 0))  # fmt: skip
