"""Our NumPy motion blur against ImageMagick 6 Q16 itself: live through Wand where installed,
otherwise against fixtures made once with it (tests/fixtures/corruptions/make_fixtures.py)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augmix.corruptions.imagemagick import (
    motion_blur_im,
    motion_blur_kernel,
    motion_blur_offsets,
)

FIXTURE = Path(__file__).parent / "fixtures" / "corruptions" / "motion_blur_im6.npz"


def _wand_ok():
    if importlib.util.find_spec("wand") is None:
        return False
    try:
        import wand.image  # noqa: F401

        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def fx():
    return dict(np.load(FIXTURE))


def test_kernel_and_offsets():
    k = motion_blur_kernel(6, 2)
    assert (
        k.size == 13 and k.sum() == pytest.approx(1) and np.all(np.diff(k) < 0)
    )  # one-sided
    dx, dy = motion_blur_offsets(np.array([0.0, 90.0, -45.0]), 13)
    assert (
        np.array_equal(dx[0], np.arange(13)) and not dy[0].any()
    )  # 0 degrees: to the right
    assert (
        np.array_equal(dy[1], np.arange(13)) and not dx[1].any()
    )  # 90 degrees: downwards
    assert np.array_equal(dx[2], -dy[2])


@pytest.mark.parametrize("part", ["rgb", "big"])
def test_rgb_matches_imagemagick_fixture(fx, part):
    for img, (r, s, a), ref in zip(fx[part], fx[f"{part}_params"], fx[f"{part}_out"]):
        assert np.array_equal(motion_blur_im(img[None], r, s, a)[0], ref), (r, s, a)


def test_batched_angles_match_fixture(fx):
    ours = motion_blur_im(fx["rgb"][:5], 6, 1.5, fx["rgb_params"][:5, 2])
    for i in range(5):
        expect = motion_blur_im(fx["rgb"][i : i + 1], 6, 1.5, fx["rgb_params"][i, 2])
        assert np.array_equal(ours[i], expect[0])
    assert np.array_equal(
        motion_blur_im(fx["rgb"][[1, 6]], 6, 1.5, fx["rgb_params"][[1, 6], 2]),
        fx["rgb_out"][[1, 6]],
    )


def test_snow_layers_match_imagemagick_fixture(fx):
    for img, (r, s, a), ref in zip(fx["gray"], fx["gray_params"], fx["gray_out"]):
        assert np.array_equal(
            motion_blur_im(img[None, :, :, None], r, s, a)[0, :, :, 0], ref
        )


def test_quantisation_is_not_plain_truncation(fx):
    """Q16 rounding then /257: plain truncation of the float sum would miss some pixels."""
    img, (r, s, a), ref = fx["gray"][3], fx["gray_params"][3], fx["gray_out"][3]
    k = motion_blur_kernel(r, s)
    dx, dy = motion_blur_offsets(np.array([a]), k.size)
    h, w = img.shape
    acc = np.zeros((h, w))
    for i in range(k.size):
        yy = np.clip(np.arange(h)[:, None] + dy[0, i], 0, h - 1)
        xx = np.clip(np.arange(w)[None, :] + dx[0, i], 0, w - 1)
        acc += k[i] * img[yy, xx]
    assert np.array_equal(
        np.floor(np.floor(acc * 257 + 0.5) / 257).astype(np.uint8), ref
    )


@pytest.mark.skipif(
    not _wand_ok(), reason="Wand / ImageMagick not installed; fixtures cover this"
)
def test_live_wand():
    from wand.image import Image as WandImage

    rng = np.random.default_rng(99)
    imgs = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    imgs[2] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None]
    angles = rng.uniform(-180, 180, 4)
    for r, s in [(6, 1), (9, 2.5), (14, 12)]:
        ours = motion_blur_im(imgs, r, s, angles)
        for img, a, o in zip(imgs, angles, ours):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            with WandImage(blob=buf.getvalue()) as wimg:
                wimg.motion_blur(radius=r, sigma=s, angle=a)
                out = np.asarray(
                    Image.open(io.BytesIO(wimg.make_blob("png"))).convert("RGB")
                )
            assert np.array_equal(o, out), (r, s, a)
