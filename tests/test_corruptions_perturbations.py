"""CIFAR-10-P sequences against per-image restatements of ImageNet-P/create_p/make_cifar_p.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.transforms as trn
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import ndimage
from scipy.ndimage import zoom as scizoom
from torchvision.transforms import InterpolationMode

from augmix.corruptions import perturbations as P
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.functions import _spatter_water_mask, hsv_to_rgb, rgb_to_hsv
from augmix.corruptions.imagemagick import motion_blur_im

try:
    import cv2
except ImportError:
    cv2 = None


@pytest.fixture(scope="module")
def imgs():
    return synthetic_images(3, seed=8)


def test_lists_and_lengths(imgs):
    assert P.TEST_PERTURBATIONS == (
        "gaussian_noise",
        "shot_noise",
        "motion_blur",
        "zoom_blur",
        "snow",
        "brightness",
        "translate",
        "rotate",
        "tilt",
        "scale",
    )
    assert P.VALIDATION_PERTURBATIONS == (
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "shear",
    )
    assert (
        "spatter" in P.CIFAR_P_EVAL
        and "snow" not in P.CIFAR_P_EVAL
        and len(P.CIFAR_P_EVAL) == 10
    )
    for name, fn in P.PERTURBATIONS.items():
        if name in ("tilt", "spatter") and cv2 is None:
            continue
        seq = fn(imgs[:2], np.random.default_rng(0))
        assert seq.dtype == np.uint8 and seq.shape == (
            2,
            P.SEQUENCE_LENGTHS[name],
            32,
            32,
            3,
        ), name
    assert (
        P.SEQUENCE_LENGTHS["motion_blur"] == 21
        and P.SEQUENCE_LENGTHS["translate"] == 16
    )


def test_gaussian_noise(imgs):
    z = torch.randn((3, 30, 32, 32, 3), generator=torch.Generator().manual_seed(0))
    seq = P.gaussian_noise(imgs, None, draws={"z": z})
    for n, img in enumerate(imgs):
        x = torch.from_numpy(img).permute(2, 0, 1).float() / 255  # ToTensor
        assert np.array_equal(seq[n, 0], img)
        for i in range(1, 31):
            frame = torch.clamp(x + 0.02 * z[n, i - 1].permute(2, 0, 1), 0, 1)
            assert np.array_equal(
                seq[n, i], np.uint8(frame.numpy().transpose(1, 2, 0) * 255)
            )


def test_shot_and_speckle(imgs):
    rng = np.random.default_rng(1)
    counts = rng.poisson(
        np.broadcast_to(imgs[:, None] / 255.0 * 700, (3, 30, 32, 32, 3))
    )
    z = rng.standard_normal((3, 30, 32, 32, 3))
    shot = P.shot_noise(imgs, None, draws={"counts": counts})
    speck = P.speckle_noise(imgs, None, draws={"z": z})
    for n, img in enumerate(imgs):
        x = np.array(img, copy=True) / 255.0
        for i in range(1, 31):
            assert np.array_equal(
                shot[n, i], np.uint8(255 * np.clip(counts[n, i - 1] / 700.0, 0, 1))
            )
            assert np.array_equal(
                speck[n, i], np.uint8(255 * np.clip(x + x * (0.05 * z[n, i - 1]), 0, 1))
            )


def test_motion_blur_angles(imgs):
    seq = P.motion_blur(imgs)
    for i in (0, 7, 20):
        assert np.array_equal(
            seq[:, i], motion_blur_im(imgs, 6, 1.8, np.full(3, (i - 20) * 9.0))
        )


def test_translate_matches_torchvision(imgs):
    seq = P.translate(imgs)
    for n, img in enumerate(imgs):
        for i in range(16):
            z = TF.affine(
                Image.fromarray(img),
                angle=0,
                translate=[i - 7, 0],
                scale=1,
                shear=[0.0, 0.0],
            )
            assert np.array_equal(seq[n, i], np.array(z))


def test_zoom_blur_running_mean(imgs):
    seq = P.zoom_blur(imgs[:1])
    img = imgs[0]
    avg = trn.ToTensor()(img)
    assert np.array_equal(seq[0, 0], img)
    for i in range(1, 31):
        z = trn.CenterCrop(32)(
            TF.affine(
                Image.fromarray(img),
                angle=0,
                translate=[0, 0],
                scale=1 + 0.004 * i,
                shear=[0.0, 0.0],
                interpolation=InterpolationMode.BILINEAR,
                center=[16.5, 16.5],  # 2019 torchvision's centre (w/2 + 0.5)
            )
        )
        avg += trn.ToTensor()(z)
        assert np.array_equal(seq[0, i], np.array(trn.ToPILImage()(avg / (i + 1))))


@pytest.mark.parametrize("name, frame", [("rotate", {"angle": 7.0}), ("scale", {"scale": 0.8})])
def test_rotate_and_scale_use_the_2019_centre(imgs, name, frame):
    """Without shear the 2019 matrix is today's torchvision one about the old centre (w/2 + 0.5)."""
    seq = getattr(P, name)(imgs)
    key = "angle" if name == "rotate" else "scale"
    i = int(np.flatnonzero(np.isclose(P.PARAMS["cifar"][name][key], frame[key]))[0])
    for n, img in enumerate(imgs):
        z = TF.affine(Image.fromarray(img), angle=frame.get("angle", 0.0), translate=[0, 0],
                      scale=frame.get("scale", 1.0), shear=[0.0, 0.0],
                      interpolation=InterpolationMode.BILINEAR, center=[16.5, 16.5])
        assert np.array_equal(seq[n, i], np.array(z))


@pytest.mark.parametrize("angle, shear, scale", [(0.0, 15.0, 1.0), (0.0, -9.0, 1.0), (10.0, 5.0, 1.2)])
def test_affine_2019_matrix_is_the_old_rss_about_the_old_centre(angle, shear, scale):
    """The inverse of the matrix's linear part is RSS = [[cos a, -sin(a+s)], [sin a, cos(a+s)]] *
    scale (a shear that also squeezes y by cos s, unlike today's), and the centre is fixed."""
    a, s = np.radians(angle), np.radians(shear)
    m = np.array(P.affine_2019_matrix(32, 32, angle, (0, 0), scale, shear)).reshape(2, 3)
    rss = scale * np.array([[np.cos(a), -np.sin(a + s)], [np.sin(a), np.cos(a + s)]])
    np.testing.assert_allclose(np.linalg.inv(m[:, :2]), rss, atol=1e-12)
    np.testing.assert_allclose(m @ [16.5, 16.5, 1.0], [16.5, 16.5], atol=1e-12)
    shifted = np.array(P.affine_2019_matrix(32, 32, angle, (3, -2), scale, shear)).reshape(2, 3)
    np.testing.assert_allclose(shifted @ [19.5, 14.5, 1.0], [16.5, 16.5], atol=1e-12)  # T moves the centre


def test_shear_frames_are_the_2019_matrix(imgs):
    seq = P.shear(imgs[:1])
    img = Image.fromarray(imgs[0])
    for i in (0, 15, 30):
        m = P.affine_2019_matrix(32, 32, 0.0, (0, 0), 1.0, i - 15)
        assert np.array_equal(seq[0, i], np.array(img.transform((32, 32), Image.AFFINE, m, resample=Image.BILINEAR)))
    assert np.array_equal(seq[0, 15], imgs[0])  # shear 0 is the identity


def test_gaussian_blur_and_brightness(imgs):
    gb = P.gaussian_blur(imgs)
    br = P.brightness(imgs)

    for n, img in enumerate(imgs):
        for i in (0, 15, 30):
            s = 0.3 + 0.015 * i
            ref = np.uint8(
                255
                * ndimage.gaussian_filter(
                    np.array(img) / 255.0, (s, s, 0), mode="nearest", truncate=7.0
                )
            )
            assert np.array_equal(gb[n, i], ref)
            hsv = rgb_to_hsv(np.array(img) / 255.0)
            hsv[:, :, 2] = np.clip(hsv[:, :, 2] + (i - 15) * 1.5 / 100.0, 0, 1)
            assert np.array_equal(br[n, i], np.uint8(hsv_to_rgb(hsv) * 255))
    assert (
        np.array_equal(br[:, 15], imgs)
        or np.abs(br[:, 15].astype(int) - imgs).max() <= 1
    )


def test_snow(imgs):
    z = np.random.default_rng(2).standard_normal((3, 32, 32))
    seq = P.snow(imgs, None, draws={"z": z})
    for n, img in enumerate(imgs):
        x = np.array(img) / 255.0
        layer = 0.05 + 0.3 * z[n]
        ch = int(np.ceil(32 / 2))
        top = (32 - ch) // 2
        layer = scizoom(
            layer[..., None][top : top + ch, top : top + ch], (2, 2, 1), order=1
        )
        layer[layer < 0.5] = 0
        layer8 = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
        gray = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY)  # make_cifar_p.py snow
        base = 0.85 * x + (1 - 0.85) * np.maximum(
            x, gray.reshape(32, 32, 1) * 1.5 + 0.5
        )
        for i in (0, 30):
            s = motion_blur_im(layer8[None, :, :, None], 10, 2, i * 4 - 150)[0] / 255.0
            ref = np.uint8(np.clip(base + s + np.rot90(s, k=2), 0, 1) * 255)
            assert np.array_equal(seq[n, i], ref)


@pytest.mark.skipif(cv2 is None, reason="OpenCV not installed")
def test_spatter_runs_down(imgs):
    z = np.random.default_rng(3).standard_normal((1, 32, 32))
    seq = P.spatter(imgs[:1], None, draws={"z": z})
    liquid = ndimage.gaussian_filter(
        0.6 + 0.265 * z[0], 1.75, mode="nearest", truncate=4.0
    )
    liquid[liquid < 0.7] = 0
    for i in range(31):
        l8 = (liquid * 255).astype(np.uint8)
        if i in (0, 30):
            m = l8 * _spatter_water_mask(l8)
            m = m / m.max() * 0.6 if m.max() > 0 else m
            x = np.array(imgs[0], dtype=np.float32) / 255.0
            ref = np.uint8(
                np.clip(
                    x
                    + m[..., None]
                    * np.float32([175 / 255.0, 238 / 255.0, 238 / 255.0]),
                    0,
                    1,
                )
                * 255
            )
            d = np.abs(seq[0, i].astype(int) - ref)
            assert (d == 0).mean() > 0.99 and d.max() <= 1
        liquid = np.apply_along_axis(
            lambda mat: np.convolve(mat, np.array([0.2, 0.8]), mode="same"),
            axis=0,
            arr=liquid,
        )


@pytest.mark.skipif(cv2 is None, reason="OpenCV not installed")
def test_tilt_middle_frame_is_a_slight_shrink(imgs):
    # phi = theta = 0: the plane lifted at z = 1 and moved by f projects with scale f / (1 + f)
    f = np.sqrt(32**2 + 32**2)
    m = P.tilt_matrix(15)
    expect = np.array(
        [[f / (1 + f), 0, 16 / (1 + f)], [0, f / (1 + f), 16 / (1 + f)], [0, 0, 1]]
    )
    np.testing.assert_allclose(m / m[2, 2], expect, atol=1e-12)
    seq = P.tilt(imgs[:1])
    assert np.array_equal(seq[0, 15], cv2.warpPerspective(imgs[0], m, (32, 32)))
    assert not np.array_equal(seq[0, 0], seq[0, 30])


def test_build_p_set(imgs, tmp_path):
    res = P.build_p_set(
        imgs, tmp_path / "a", names=["gaussian_noise", "translate"], seed=5
    )
    P.build_p_set(imgs, tmp_path / "b", names=["gaussian_noise", "translate"], seed=5)
    arr = np.load(tmp_path / "a" / "gaussian_noise.npy")
    assert arr.shape == (3, 31, 32, 32, 3) and arr.dtype == np.uint8
    assert np.load(tmp_path / "a" / "translate.npy").shape == (3, 16, 32, 32, 3)
    assert (tmp_path / "a" / "gaussian_noise.npy").read_bytes() == (
        tmp_path / "b" / "gaussian_noise.npy"
    ).read_bytes()
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["seed"] == 5
    assert res["difficulty"] == 1
    with pytest.raises(KeyError, match="wobble"):
        P.build_p_set(imgs, tmp_path / "c", names=["wobble"], seed=0)
    # a harder noise set beside it keeps the difficulty-1 files: ImageNet-P's _2 / _3 names
    P.build_p_set(imgs, tmp_path / "a", names=["gaussian_noise", "translate"], seed=5, difficulty=3)
    hard = np.load(tmp_path / "a" / "gaussian_noise_3.npy")
    assert np.array_equal(np.load(tmp_path / "a" / "gaussian_noise.npy"), arr)
    assert np.abs(hard[:, 1:].astype(int) - hard[:, :1]).mean() > np.abs(arr[:, 1:].astype(int) - arr[:, :1]).mean()
    assert sorted(json.loads((tmp_path / "a" / "manifest.json").read_text())["files"]) == [
        "gaussian_noise_3.npy", "translate.npy"]
