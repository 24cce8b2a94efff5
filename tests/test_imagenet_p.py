"""ImageNet-P sequences and writer against per-image restatements of
ImageNet-P/create_p/make_imagenet_p.py (docs/reference-facts.md, "Perturbations (-P)"), on small images
(Resize 64, CenterCrop 56) so the suite runs in seconds on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as trn
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import ndimage
from scipy.ndimage import zoom as scizoom
from torchvision.transforms import InterpolationMode

from augmix.corruptions import imagenet_p as IP
from augmix.corruptions import perturbations as P
from augmix.corruptions.functions import _spatter_water_mask, hsv_to_rgb, rgb_to_hsv
from augmix.corruptions.imagemagick import motion_blur_im

cv2 = pytest.importorskip("cv2")

RESIZE, CROP = 64, 56


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colourful uint8 (h, w, 3) picture (low-frequency waves, mild noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        f, ph = rng.uniform(0.5, 3, 2), rng.uniform(0, 2 * np.pi, 2)
        c = rng.uniform(70, 180) + 50 * np.sin(2 * np.pi * f[0] * xx + ph[0])
        chans.append(
            c + 40 * np.sin(2 * np.pi * f[1] * yy + ph[1]) + rng.normal(0, 3, (h, w))
        )
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def resized():
    # Already "Resize(64)"'d: shorter side 64, landscape, portrait and odd widths.
    return [smooth_image(64, 85, 1), smooth_image(77, 64, 2), smooth_image(64, 64, 3)]


def rngs_for(variant, n, seed=0):
    name, d = IP.parse_variant(variant)
    return [IP.image_rng(seed, name, d, k) for k in range(n)]


# ----------------------------------------------------------------------------------------------
# tables


def test_imagenet_table_matches_make_imagenet_p():
    t = P.PARAMS["imagenet"]
    assert set(t) == set(P.PERTURBATIONS) == set(P.PARAMS["cifar"])
    assert t["gaussian_noise"]["sigma"] == {1: 0.03, 2: 0.05, 3: 0.08}
    assert t["shot_noise"]["lam"] == {1: 300, 2: 120, 3: 60}
    assert t["speckle_noise"]["sigma"] == {1: 0.05, 2: 0.10, 3: 0.15}

    def ends(name, key):
        v = t[name][key]
        assert len(v) == t[name]["frames"] - (name == "zoom_blur"), name
        return pytest.approx(v[0]), pytest.approx(v[-1])

    mb = t["motion_blur"]
    assert (mb["frames"], mb["radius"], mb["sigma"]) == (31, 10, 3)
    assert ends("motion_blur", "angle") == (-120, 0)
    assert ends("zoom_blur", "scale") == (1.004, 1.12)
    sn = t["snow"]
    assert (sn["loc"], sn["scale"], sn["zoom"], sn["threshold"]) == (0.05, 0.3, 3, 0.5)
    assert (sn["radius"], sn["sigma"], sn["blend"]) == (14, 4, 0.85)
    assert ends("snow", "angle") == (-150, -30)
    assert ends("brightness", "offset") == (-0.30, 0.30)
    assert t["translate"]["frames"] == 41 and ends("translate", "shift") == (-20, 20)
    assert ends("rotate", "angle") == (-15, 15)
    assert ends("tilt", "angle") == (
        -15,
        15,
    )  # phi = theta = i - 15 (CIFAR: 0.75 (i - 15))
    assert ends("scale", "scale") == (0.40, 1.15)
    assert (
        ends("gaussian_blur", "sigma") == (0.25, 1.30)
        and t["gaussian_blur"]["truncate"] == 6
    )
    sp = t["spatter"]
    assert (sp["loc"], sp["scale"], sp["sigma"], sp["threshold"]) == (
        0.65,
        0.27,
        3.7,
        0.69,
    )
    assert sp["kernel"] == (0.05, 0.1, 0.15, 0.7) and sp["intensity"] == 0.6
    assert ends("shear", "shear") == (-15, 15)
    lengths = {n: P.sequence_length(n, "imagenet") for n in P.PERTURBATIONS}
    assert lengths == {n: 41 if n == "translate" else 31 for n in P.PERTURBATIONS}
    # the CIFAR table keeps its own schedule
    assert (
        P.SEQUENCE_LENGTHS["motion_blur"] == 21
        and P.SEQUENCE_LENGTHS["translate"] == 16
    )
    assert P.PARAMS["cifar"]["tilt"]["angle"][0] == -11.25


def test_variants():
    assert len(IP.VARIANTS) == 20 and "speckle_noise_3" in IP.VARIANTS
    assert IP.parse_variant("shot_noise_2") == ("shot_noise", 2)
    assert IP.parse_variant("rotate") == ("rotate", 1)
    assert IP.variant_name("gaussian_noise", 3) == "gaussian_noise_3"
    with pytest.raises(ValueError, match="noise"):
        IP.variant_name("rotate", 2)
    with pytest.raises(KeyError, match="rotate_2"):
        IP.parse_variant("rotate_2")


# ----------------------------------------------------------------------------------------------
# resizing and cropping


def test_resize_and_center_crop_match_torchvision():
    for h, w in [(90, 120), (121, 83), (64, 64), (200, 65)]:
        pil = Image.fromarray(smooth_image(h, w, h + w))
        ref = np.asarray(trn.Resize(RESIZE)(pil).convert("RGB"))
        assert np.array_equal(IP.resize_shorter(pil, RESIZE), ref), (h, w)
    for h, w in [(64, 85), (77, 64), (65, 65), (64, 64), (67, 90)]:
        img = smooth_image(h, w, 0)
        ref = np.asarray(TF.center_crop(Image.fromarray(img), [CROP, CROP]))
        assert np.array_equal(P.center_crop(img, CROP), ref), (h, w)
    gray = Image.fromarray(
        smooth_image(80, 96, 5)[..., 0]
    )  # grayscale JPEGs exist in ImageNet
    assert IP.resize_shorter(gray, RESIZE).shape == (64, 76, 3)


# ----------------------------------------------------------------------------------------------
# sequences


def test_every_variant_shape(resized):
    for v in IP.VARIANTS:
        name, _ = IP.parse_variant(v)
        seq = IP.imagenet_p_sequences(resized, v, rngs_for(v, 3), crop=CROP)
        t = P.sequence_length(name, "imagenet")
        assert seq.dtype == np.uint8 and seq.shape == (3, t, CROP, CROP, 3), v
        assert not np.array_equal(seq[:, 0], seq[:, -1]), v


def test_noise_frame0_clean_and_difficulty(resized):
    crops = np.stack([P.center_crop(x, CROP) for x in resized])
    spread = {}
    for v in IP.VARIANTS:
        name, _ = IP.parse_variant(v)
        if name not in P.NOISE_PERTURBATIONS:
            continue
        seq = IP.imagenet_p_sequences(resized, v, rngs_for(v, 3), crop=CROP)
        assert np.array_equal(seq[:, 0], crops), v
        assert all(not np.array_equal(seq[:, i], crops) for i in range(1, 31)), v
        spread[v] = np.abs(seq[:, 1:].astype(int) - crops[:, None]).mean()
    for n in P.NOISE_PERTURBATIONS:
        assert spread[n] < spread[f"{n}_2"] < spread[f"{n}_3"], n


def test_gaussian_and_shot_noise_restated(resized):
    crops = np.stack([P.center_crop(x, CROP) for x in resized])
    z = torch.randn((3, 30, CROP, CROP, 3), generator=torch.Generator().manual_seed(0))
    seq = P.gaussian_noise(crops, None, table="imagenet", difficulty=2, draws={"z": z})
    x = torch.from_numpy(crops[0]).permute(2, 0, 1).float() / 255  # ToTensor
    frame = torch.clamp(
        x + 0.05 * z[0, 4].permute(2, 0, 1), 0, 1
    )  # ToPILImage truncates
    assert np.array_equal(seq[0, 5], np.uint8(frame.numpy().transpose(1, 2, 0) * 255))
    counts = np.random.default_rng(1).poisson(
        crops[:, None] / 255.0 * 300, (3, 30) + crops.shape[1:]
    )
    shot = P.shot_noise(crops, None, table="imagenet", draws={"counts": counts})
    assert np.array_equal(
        shot[1, 7], np.uint8(255 * np.clip(counts[1, 6] / 300.0, 0, 1))
    )


def test_pixel_perturbations_act_on_the_crop(resized):
    crops = np.stack([P.center_crop(x, CROP) for x in resized])
    mb = IP.imagenet_p_sequences(resized, "motion_blur", crop=CROP)
    gb = IP.imagenet_p_sequences(resized, "gaussian_blur", crop=CROP)
    br = IP.imagenet_p_sequences(resized, "brightness", crop=CROP)
    for i in (0, 12, 30):
        assert np.array_equal(
            mb[:, i], motion_blur_im(crops, 10, 3, np.full(3, (i - 30) * 4.0))
        )
        s = 0.25 + 0.035 * i
        for n in range(3):
            ref = ndimage.gaussian_filter(
                crops[n] / 255.0, (s, s, 0), mode="nearest", truncate=6.0
            )
            assert np.array_equal(gb[n, i], np.uint8(255 * ref))
            hsv = rgb_to_hsv(crops[n] / 255.0)
            hsv[:, :, 2] = np.clip(hsv[:, :, 2] + (i - 15) * 2 / 100.0, 0, 1)
            assert np.array_equal(br[n, i], np.uint8(hsv_to_rgb(hsv) * 255))


def test_snow_restated(resized):
    crop = np.ascontiguousarray(P.center_crop(resized[0], CROP))[None]
    z = np.random.default_rng(2).standard_normal((1, CROP, CROP))
    seq = P.snow(crop, None, table="imagenet", draws={"z": z})
    x = crop[0] / 255.0
    layer = (0.05 + 0.3 * z[0])[..., None]
    ch = int(np.ceil(CROP / 3))
    top = (CROP - ch) // 2
    layer = scizoom(layer[top : top + ch, top : top + ch], (3, 3, 1), order=1)
    trim = (layer.shape[0] - CROP) // 2
    layer = layer[trim : trim + CROP, trim : trim + CROP]
    layer[layer < 0.5] = 0
    layer8 = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    gray = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY)[..., None]
    base = 0.85 * x + (1 - 0.85) * np.maximum(x, gray * 1.5 + 0.5)
    for i in (0, 30):
        s = motion_blur_im(layer8[None, :, :, None], 14, 4, i * 4 - 150)[0] / 255.0
        ref = np.uint8(np.clip(base + s + np.rot90(s, k=2), 0, 1) * 255)
        d = np.abs(seq[0, i].astype(int) - ref)
        assert (d == 0).mean() > 0.995 and d.max() <= 1


def test_spatter_runs_down_with_the_imagenet_kernel(resized):
    layer = np.random.default_rng(4).random((2, 9, 5))
    for kernel in [(0.2, 0.8), (0.05, 0.1, 0.15, 0.7)]:
        k = np.array(kernel)
        ref = np.apply_along_axis(
            lambda c, k=k: np.convolve(c, k, mode="same"), 1, layer
        )
        np.testing.assert_allclose(P._run_down(layer, kernel), ref, rtol=0, atol=1e-15)
    crop = np.ascontiguousarray(P.center_crop(resized[1], CROP))[None]
    z = np.random.default_rng(3).standard_normal((1, CROP, CROP))
    seq = P.spatter(crop, None, table="imagenet", draws={"z": z})
    liquid = ndimage.gaussian_filter(
        0.65 + 0.27 * z[0], 3.7, mode="nearest", truncate=4.0
    )
    liquid[liquid < 0.69] = 0

    for i in range(31):
        if i in (0, 30):
            l8 = (liquid * 255).astype(np.uint8)
            m = l8 * _spatter_water_mask(l8)
            m = m / m.max() * 0.6 if m.max() > 0 else m
            x = crop[0].astype(np.float32) / 255.0
            colour = np.float32([175 / 255.0, 238 / 255.0, 238 / 255.0])
            ref = np.uint8(np.clip(x + m[..., None] * colour, 0, 1) * 255)
            d = np.abs(seq[0, i].astype(int) - ref)
            assert (d == 0).mean() > 0.99 and d.max() <= 1
        liquid = np.apply_along_axis(
            lambda c: np.convolve(c, np.array([0.05, 0.1, 0.15, 0.7]), mode="same"),
            0,
            liquid,
        )


def test_geometric_perturbations_act_on_the_whole_image(resized):
    bil = InterpolationMode.BILINEAR
    img = resized[0]  # 64 x 85: the crop sees pixels the crop-first order would not
    pil = Image.fromarray(img)

    def tv(**kw):  # about 2019 torchvision's centre (w/2 + 0.5, h/2 + 0.5)
        base = {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0], "center": [43.0, 32.5]}
        return np.asarray(
            TF.center_crop(TF.affine(pil, **{**base, **kw}), [CROP, CROP])
        )

    tr = IP.imagenet_p_sequences([img], "translate", crop=CROP)[0]
    ro = IP.imagenet_p_sequences([img], "rotate", crop=CROP)[0]
    sc = IP.imagenet_p_sequences([img], "scale", crop=CROP)[0]
    sh = IP.imagenet_p_sequences([img], "shear", crop=CROP)[0]
    zb = IP.imagenet_p_sequences([img], "zoom_blur", crop=CROP)[0]
    ti = IP.imagenet_p_sequences([img], "tilt", crop=CROP)[0]
    for i in (0, 7, 20, 33, 40):
        assert np.array_equal(tr[i], tv(translate=[i - 20, 0])), i
    for i in (0, 15, 30):
        assert np.array_equal(ro[i], tv(angle=float(i - 15), interpolation=bil))
        assert np.array_equal(
            sc[i], tv(scale=(i * 2.5 + 40) / 100.0, interpolation=bil)
        )
        old_shear = P.affine_2019_matrix(85, 64, 0.0, (0, 0), 1.0, i - 15)  # not today's shear form
        sheared = pil.transform((85, 64), Image.AFFINE, old_shear, resample=Image.BILINEAR)
        assert np.array_equal(sh[i], np.asarray(TF.center_crop(sheared, [CROP, CROP])))
        m = P.tilt_homography(i - 15, 85, 64)
        assert np.array_equal(
            ti[i], P.center_crop(cv2.warpPerspective(img, m, (85, 64)), CROP)
        )
    # zoom blur: running mean of the clean crop and the cropped zooms of the whole image
    avg = torch.from_numpy(P.center_crop(img, CROP).copy()).float() / 255
    assert np.array_equal(zb[0], P.center_crop(img, CROP))
    for i in range(1, 31):
        avg += (
            torch.from_numpy(tv(scale=1 + 0.004 * i, interpolation=bil).copy()).float()
            / 255
        )
        if i in (1, 30):
            assert np.array_equal(
                zb[i], (avg / (i + 1)).mul(255).to(torch.uint8).numpy()
            )
    # scale 0.40: the shrunk image shows black borders inside the crop
    assert (sc[0][:, :3] == 0).all() and (sc[30] > 0).any(axis=-1).all()


def test_seeding_is_per_image(resized):
    v = "speckle_noise_2"
    whole = IP.imagenet_p_sequences(resized, v, rngs_for(v, 3), crop=CROP)
    last = IP.imagenet_p_sequences(resized[2:], v, rngs_for(v, 3)[2:], crop=CROP)
    assert np.array_equal(whole[2:], last)
    with pytest.raises(ValueError, match="random"):
        IP.imagenet_p_sequences(resized, "snow", None, crop=CROP)


# ----------------------------------------------------------------------------------------------
# video files


def _smooth_video(t=31, h=CROP, w=CROP):
    img = smooth_image(h, w + t, 9)
    return np.stack([img[:, i : i + w] for i in range(t)])  # a slow pan


def test_npy_video_round_trip(tmp_path):
    v = _smooth_video()
    path = IP.write_video(tmp_path / "a", v, format="npy")
    assert path.name == "a.npy" and np.array_equal(IP.read_video(path), v)
    dotted = IP.write_video(tmp_path / "img.v2", v, format="npy")  # stems may hold dots
    assert (
        dotted.name == "img.v2.npy" and IP.write_video(dotted, v).name == "img.v2.npy"
    )


def test_mp4v_round_trip(tmp_path):
    v = _smooth_video()
    path = IP.write_video(tmp_path / "clip", v, format="mp4", encoder="mp4v")
    back = IP.read_video(path)
    assert path.suffix == ".mp4" and back.shape == v.shape and back.dtype == np.uint8
    err = np.abs(back.astype(int) - v).mean(axis=(1, 2, 3))
    assert err.max() < 8  # lossy, but the same picture (per-frame mean absolute error)
    assert np.abs(back[1:].astype(int) - v[:-1]).mean() > err.mean()  # frames in order


@pytest.mark.skipif(IP.find_ffmpeg() is None, reason="no ffmpeg with libx264")
def test_libx264_round_trip(tmp_path):
    v = _smooth_video()
    path = IP.write_video(tmp_path / "clip", v, format="mp4", encoder="libx264")
    back = IP.read_video(path)
    assert back.shape == v.shape and np.abs(back.astype(int) - v).mean() < 2
    noisy = IP.write_video(
        tmp_path / "noisy", v, format="mp4", encoder="libx264", noise=True
    )
    assert IP.read_video(noisy).shape == v.shape


def test_video_errors(tmp_path):
    with pytest.raises(ValueError, match="format"):
        IP.write_video(tmp_path / "a", _smooth_video(), format="avi")
    with pytest.raises(ValueError, match="encoder"):
        IP.write_video(tmp_path / "a", _smooth_video(), format="mp4", encoder="h265")
    with pytest.raises(ValueError, match="uint8"):
        IP.write_video(tmp_path / "a", _smooth_video().astype(float), format="npy")


# ----------------------------------------------------------------------------------------------
# the folder


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    sizes = {
        "n01440764": [(72, 96), (96, 80)],
        "n01443537": [(80, 80)],
        "n02102040": [(70, 99)],
    }
    k = 0
    for wnid, shapes in sizes.items():
        (root / wnid).mkdir()
        for h, w in shapes:
            k += 1
            Image.fromarray(smooth_image(h, w, k)).save(
                root / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", quality=95
            )
    return root


NAMES = ["gaussian_noise", "shot_noise_2", "rotate", "translate"]


def _build(src, out, **kw):
    kw = {"names": NAMES, "seed": 3, "resize": RESIZE, "crop": CROP, **kw}
    return IP.build_imagenet_p_folder(src, out, **kw)


def _files(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_build_layout_and_reruns(val_folder, tmp_path):
    calls = []
    res = _build(val_folder, tmp_path / "a", progress=lambda d, t: calls.append((d, t)))
    a = _files(tmp_path / "a")
    stems = [
        "n01440764/ILSVRC2012_val_00000001",
        "n01440764/ILSVRC2012_val_00000002",
        "n01443537/ILSVRC2012_val_00000003",
        "n02102040/ILSVRC2012_val_00000004",
    ]
    assert sorted(a) == sorted(f"{v}/{s}.npy" for v in NAMES for s in stems)
    for v in NAMES:
        seq = IP.read_video(tmp_path / "a" / v / f"{stems[0]}.npy")
        assert seq.shape == (
            P.sequence_length(IP.parse_variant(v)[0], "imagenet"),
            CROP,
            CROP,
            3,
        )
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert (
        manifest["seed"] == 3
        and manifest["video_format"] == "npy"
        and manifest["n_images"] == 4
    )
    assert manifest["frames"]["translate"] == 41 and (
        manifest["resize"],
        manifest["crop"],
    ) == (64, 56)
    assert res["names"] == NAMES and calls[-1] == (4, 4)
    # the clean frame of a noise video is CenterCrop(Resize(image))
    clean = P.center_crop(
        IP.resize_shorter(val_folder / f"{stems[2]}.JPEG", RESIZE), CROP
    )
    assert np.array_equal(
        np.load(tmp_path / "a" / "gaussian_noise" / f"{stems[2]}.npy")[0], clean
    )
    # byte-identical re-run; batching and the set of names built do not change any byte
    _build(val_folder, tmp_path / "b", batch=1)
    _build(val_folder, tmp_path / "c", batch=3, names=["translate", "shot_noise_2"])
    b, c = _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert c and all(c[k] == a[k] for k in c)
    # another seed changes the random videos only
    _build(val_folder, tmp_path / "d", seed=4, names=["shot_noise_2", "rotate"])
    d = _files(tmp_path / "d")
    assert all((d[k] == a[k]) == k.startswith("rotate") for k in d)
    # rebuilding over an existing folder replaces it and leaves no temporaries
    _build(val_folder, tmp_path / "a", names=["rotate"])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        NAMES + ["manifest.json"]
    )


def test_build_from_iterable_equals_folder(val_folder, tmp_path):
    items = IP.list_image_folder(val_folder)
    as_arrays = [(w, f, np.asarray(Image.open(p).convert("RGB"))) for w, f, p in items]
    _build(val_folder, tmp_path / "a", names=["shot_noise"])
    _build(as_arrays, tmp_path / "b", names=["shot_noise"])
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_build_mp4(val_folder, tmp_path):
    res = _build(
        val_folder,
        tmp_path / "m",
        names=["scale", "speckle_noise"],
        format="mp4",
        encoder="mp4v",
    )
    files = sorted((tmp_path / "m").rglob("*.mp4"))
    assert len(files) == 8 and res["encoding"]["encoder"] == "mp4v"
    _build(val_folder, tmp_path / "n", names=["scale"], format="npy")
    for f in files:
        if f.parts[-3] == "scale":
            ref = np.load(tmp_path / "n" / "scale" / f.parent.name / (f.stem + ".npy"))
            back = IP.read_video(f)
            assert back.shape == ref.shape == (31, CROP, CROP, 3)
            assert np.abs(back.astype(int) - ref).mean() < 8


def test_build_is_atomic(val_folder, tmp_path, monkeypatch):
    _build(val_folder, tmp_path / "a", names=["rotate"])
    before = _files(tmp_path / "a")
    calls = {"n": 0}
    real = IP.imagenet_p_sequences

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("boom")
        return real(*args, **kw)

    monkeypatch.setattr(IP, "imagenet_p_sequences", failing)
    with pytest.raises(RuntimeError, match="boom"):
        _build(val_folder, tmp_path / "a", names=["rotate", "translate"], batch=1)
    assert (
        _files(tmp_path / "a") == before
    )  # the old folder untouched, nothing half-written
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "rotate"
    ]  # manifest gone


def test_build_errors(val_folder, tmp_path):
    with pytest.raises(KeyError, match="rotate_2"):
        _build(val_folder, tmp_path / "x", names=["rotate_2"])
    with pytest.raises(ValueError, match="crop"):
        _build(val_folder, tmp_path / "x", crop=80)
    with pytest.raises(ValueError, match="same video"):
        img = smooth_image(64, 64, 0)
        _build([("n1", "a.JPEG", img), ("n1", "a.png", img)], tmp_path / "x")
