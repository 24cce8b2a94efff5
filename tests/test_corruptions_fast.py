"""The fast paths of the CIFAR-10-C build (issue #4) against the straightforward arithmetic they
replace: the streamed build (augmix.io.NpyStream, tested in test_io.py), lookup tables, the
shot-noise sampler, batched Pillow resizes, the OpenCV JPEG round trip, the HSV restatement,
one-sided motion-blur padding, the end-to-end bench."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats

from augmix.corruptions import build as B
from augmix.corruptions import functions as F
from augmix.corruptions.bench import format_table, run, run_end_to_end, synthetic_images
from augmix.corruptions.draws import DRAWS, NumpyDraws, corruption_keys
from augmix.corruptions.imagemagick import (
    motion_blur_im,
    motion_blur_kernel,
    motion_blur_offsets,
)


@pytest.fixture(scope="module")
def imgs():
    """Smooth images, random ones, flat and saturated ones, ties between channels."""
    rng = np.random.default_rng(21)
    out = synthetic_images(40, seed=21)
    out[:12] = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    out[12] = 0
    out[13] = 255
    out[14, :16] = 255
    out[15] = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)  # gray: r == g == b
    out[16, ..., 1] = out[16, ..., 0]  # r == g ties
    out[17, ..., 2] = out[17, ..., 1]  # g == b ties
    return out


# ----------------------------------------------------------------------------------------------
# writing


def test_streamed_build_equals_np_save_of_blocks(tmp_path):
    images = synthetic_images(B.CHUNK + 5, seed=8)  # two chunks, the second short
    labels = np.arange(len(images)) % 10
    names = ["contrast", "shot_noise"]
    summary = B.build_c_set(
        images, labels, tmp_path, names=names, severities=(2, 5), seed=9, device="cpu"
    )
    for name in names:
        stacked = np.concatenate([B.corrupt_block(images, name, s, 9, device="cpu") for s in (2, 5)])
        buf = io.BytesIO()
        np.save(buf, stacked)
        data = (tmp_path / f"{name}.npy").read_bytes()
        assert data == buf.getvalue()
        assert (
            summary["files"][f"{name}.npy"]["sha256"]
            == hashlib.sha256(data).hexdigest()
        )
    assert B.is_complete(tmp_path, deep=True)


# ----------------------------------------------------------------------------------------------
# shot noise


@pytest.mark.parametrize("c", [500, 250, 100, 75, 50, 60, 25, 12, 5, 3])
def test_shot_levels_invert_the_poisson_cdf(c):
    """The sampler returns level(k) for k = the Poisson quantile of u: exactly the inversion
    method, so the output has the reference's distribution."""
    rng = np.random.default_rng(c)
    values = np.array([0, 1, 2, 7, 64, 128, 200, 254, 255], dtype=np.uint8)
    img = np.repeat(values, 4000).reshape(1, 1, -1, 1)
    u = rng.random(img.shape)
    ours = F.shot_levels(img, c, u).reshape(-1)
    k = stats.poisson.ppf(u.reshape(-1), np.repeat(values / 255.0 * c, 4000))
    ref = (np.clip(k / c, 0, 1) * 255).astype(np.uint8)
    assert np.mean(ours == ref) > 0.9999  # ties with scipy's cdf evaluation only


def test_shot_noise_distribution_matches_poisson():
    """Seeded shot noise against Poisson draws of the reference arithmetic: same level histogram
    (chi-square), for a mid-gray and a bright value at the strongest CIFAR severity."""
    for v in (90, 230):
        img = np.full((64, 32, 32, 3), v, np.uint8)
        ours = F.shot_noise(img, 5, np.random.default_rng(1)).reshape(-1)
        ref = F.shot_noise(
            img, 5, draws={"counts": np.random.default_rng(2).poisson(img / 255.0 * 50)}
        ).reshape(-1)
        levels = np.union1d(ours, ref)
        a = np.array([(ours == lv).sum() for lv in levels])
        b = np.array([(ref == lv).sum() for lv in levels])
        keep = (a + b) > 40
        _, p, _, _ = stats.chi2_contingency(np.stack([a[keep], b[keep]]))
        assert p > 1e-4, (v, p)


def test_shot_noise_draws(imgs):
    u = np.random.default_rng(3).random(imgs.shape)
    assert np.array_equal(
        F.shot_noise(imgs, 2, draws={"u": u}), F.shot_levels(imgs, 250, u)
    )
    a = F.shot_noise(imgs, 3, np.random.default_rng(4))
    assert np.array_equal(a, F.shot_noise(imgs, 3, np.random.default_rng(4)))


# ----------------------------------------------------------------------------------------------
# lookup tables and restatements


def test_channel_means_bit_exact(imgs):
    for x in (imgs, synthetic_images(3, size=224, seed=1)):
        assert np.array_equal(F.channel_means(x), np.mean(x / 255.0, axis=(1, 2)))


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_contrast_and_frost_tables(imgs, s):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    x = imgs / 255.0
    m = np.mean(x, axis=(1, 2), keepdims=True)
    assert np.array_equal(F.contrast(imgs, s), F._finish((x - m) * c + m))
    a, b = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    crops = np.random.default_rng(s).integers(0, 256, imgs.shape, dtype=np.uint8)
    lut = F._frost_table(a, b)
    idx = (imgs.astype(np.int32) << 8) | crops
    assert np.array_equal(
        lut.take(idx), np.clip(a * imgs + b * crops, 0, 255).astype(np.uint8)
    )


def _hsv_reference(images, severity, kind):
    """brightness / saturate through the plain planes and np.choose (the previous code path)."""
    planes = F._planes(images / 255.0)
    h, s, v = F._rgb_to_hsv_planes(*planes)
    if kind == "brightness":
        v = np.clip(v + [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1], 0, 1)
    else:
        a, b = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
        s = np.clip(s * a + b, 0, 1)
    return np.stack([F._finish(ch) for ch in F._hsv_to_rgb_planes(h, s, v)], axis=-1)


def test_hsv_restatement_matches_skimage_order():
    """rgb2hsv with one division equals skimage's three masked divisions (ties included)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (50_000, 3)).astype(np.uint8)
    x[:300, 1] = x[:300, 0]
    x[300:600, 2] = x[300:600, 1]
    x[600:900, 2] = x[600:900, 0]
    x[900:1000] = x[900:1000, :1]
    rgb = x / 255.0
    h, s, v = F._rgb_to_hsv_planes(*(np.ascontiguousarray(rgb[:, c]) for c in range(3)))
    r, g, b = rgb.T
    v_ref = rgb.max(-1)
    delta = v_ref - rgb.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h_ref = np.zeros(len(x))
        for mask, val in (
            (r == v_ref, (g - b) / delta),
            (g == v_ref, 2.0 + (b - r) / delta),
            (b == v_ref, 4.0 + (r - g) / delta),
        ):
            h_ref[mask] = val[mask]
        s_ref = delta / v_ref
    h_ref = (h_ref / 6.0) % 1.0
    h_ref[delta == 0] = 0
    s_ref[delta == 0] = 0
    assert (
        np.array_equal(h, h_ref)
        and np.array_equal(s, s_ref)
        and np.array_equal(v, v_ref)
    )


@pytest.mark.parametrize("s", [1, 3, 5])
def test_brightness_saturate_fast_path(s):
    rng = np.random.default_rng(s)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    images[:8] = images[:8, ..., :1]  # gray
    images[8:16, ..., 0] = images[8:16, ..., 2]  # r == b ties
    for kind in ("brightness", "saturate"):
        ours = getattr(F, kind)(images, s)
        assert np.array_equal(ours, _hsv_reference(images, s, kind)), kind


@pytest.mark.parametrize("table,size", [("cifar", 32), ("imagenet", 224)])
def test_pixelate_batched_equals_per_image_pillow(table, size):
    images = synthetic_images(3, size=size, seed=6)
    images[0] = np.random.default_rng(6).integers(
        0, 256, images[0].shape, dtype=np.uint8
    )
    cs = {
        "cifar": [0.95, 0.9, 0.85, 0.75, 0.65],
        "imagenet": [0.6, 0.5, 0.4, 0.3, 0.25],
    }
    for s, c in enumerate(cs[table], 1):
        ours = F.pixelate(images, s, table=table)
        small = int(size * c)
        for i, img in enumerate(images):
            ref = Image.fromarray(img).resize((small, small), Image.BOX)
            assert np.array_equal(
                ours[i], np.asarray(ref.resize((size, size), Image.BOX))
            )


@pytest.mark.parametrize("table", ["cifar", "imagenet"])
def test_jpeg_cv2_equals_pillow(imgs, table):
    cv2 = pytest.importorskip("cv2")
    del cv2
    images = imgs if table == "cifar" else synthetic_images(2, size=224, seed=7)
    for s in range(1, 6):
        ours = F.jpeg_compression(images, s, table=table, backend="cv2")
        assert np.array_equal(
            ours, F.jpeg_compression(images, s, table=table, backend="pil")
        )
    with pytest.raises(ValueError, match="backend"):
        F.jpeg_compression(images, 1, table=table, backend="libjpeg")


def test_gaussian_radius_zero_is_identity(imgs):
    x = imgs / 255.0
    ref = ndimage.gaussian_filter(x, (0, 0.05, 0.05, 0), mode="nearest", truncate=4.0)
    out = F._gaussian(x, 0.05)
    assert np.array_equal(out, ref) and out is not x


def test_elastic_severity1_skips_the_identity_resampling(imgs):
    rng = np.random.default_rng(8)
    n = len(imgs)
    draws = {"u_affine": rng.random((n, 3, 2)), "u_dx": rng.random((n, 32, 32))}
    draws["u_dy"] = rng.random((n, 32, 32))
    ours = F.elastic_transform(imgs, 1, draws=draws)
    pts1 = np.broadcast_to(np.float32([[26, 26], [26, 6], [6, 6]]), (n, 3, 2))
    pts2 = pts1 + (-2.56 + 2 * 2.56 * draws["u_affine"]).astype(np.float32)
    x = F.warp_affine_cv(
        F._to_unit(imgs, np.float32), F.cv_affine_from_points(pts1, pts2)
    )
    grid_r = np.broadcast_to(np.arange(32.0)[None, :, None], (n, 32, 32))
    grid_c = np.broadcast_to(np.arange(32.0)[None, None, :], (n, 32, 32))
    assert np.array_equal(ours, F._finish(F.map_coordinates_reflect(x, grid_r, grid_c)))
    # the keyed draws: each stream is its own, so the output is what drawing the (unused)
    # displacement fields as well would give
    keys = corruption_keys(9, "elastic_transform", 1, range(n))
    full = DRAWS["elastic_transform"](NumpyDraws(keys), 32, 32, displace=True)
    assert set(full) == {"u_affine", "u_dx", "u_dy"}
    assert np.array_equal(
        F.elastic_transform(imgs, 1, keys), F.elastic_transform(imgs, 1, draws=full)
    )


# ----------------------------------------------------------------------------------------------
# motion blur: one-sided padding, any angle


def _motion_blur_direct(img, radius, sigma, angle):
    """Per image, per pixel: clamped taps, sequential float64 sum of k_i * 257 v, round, / 257."""
    k = motion_blur_kernel(radius, sigma)
    dx, dy = motion_blur_offsets(np.array([angle]), k.size)
    h, w, c = img.shape
    acc = np.zeros((h, w, c))
    ys, xs = np.arange(h), np.arange(w)
    for i in range(k.size):
        yy = np.clip(ys + dy[0, i], 0, h - 1)
        xx = np.clip(xs + dx[0, i], 0, w - 1)
        acc += k[i] * (img[yy][:, xx].astype(np.float64) * 257.0)
    return (np.floor(acc + 0.5) // 257).astype(np.uint8)


@pytest.mark.parametrize("radius,sigma", [(6, 1), (9, 2.5), (14, 12)])
def test_motion_blur_any_angle_matches_direct_sum(imgs, radius, sigma):
    angles = np.random.default_rng(radius).uniform(-180, 180, 24)
    angles[:4] = [0.0, 90.0, -90.0, 180.0]
    x = imgs[:24]
    ours = motion_blur_im(x, radius, sigma, angles)
    for i in range(len(x)):
        assert np.array_equal(
            ours[i], _motion_blur_direct(x[i], radius, sigma, angles[i])
        )
    gray = np.ascontiguousarray(x[..., :1])
    ours = motion_blur_im(gray, radius, sigma, angles)
    for i in range(4):
        assert np.array_equal(
            ours[i], _motion_blur_direct(gray[i], radius, sigma, angles[i])
        )


# ----------------------------------------------------------------------------------------------
# bench


def test_bench_end_to_end_small(tmp_path):
    res = run_end_to_end(
        n=6,
        names=("contrast", "gaussian_noise"),
        severities=(1, 2),
        warmup=2,
        out_dir=tmp_path,
    )
    assert set(res["seconds_per_corruption"]) == {"contrast", "gaussian_noise"}
    assert res["projected_total_seconds"] > res["warmup_seconds"] > 0
    assert res["images_total"] == 2 * 2 * 10_000 and res["speedup_vs_reference"] is None
    assert B.is_complete(tmp_path / "build") and B.is_complete(tmp_path / "warmup")
    assert "end to end" in format_table(res)
    json.dumps(res)
    via_run = run(n=4, names=("contrast",), severities=(1,), end_to_end=True)
    assert via_run["mode"] == "end_to_end" and via_run["n"] == 4
