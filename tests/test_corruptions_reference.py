"""Each corruption against a straightforward per-image restatement of the reference arithmetic
(hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py; docs/corruptions.md), with the same
injected random draws. The restatements below are written independently of the package: loops,
SciPy / Pillow calls as the reference makes them, no shared helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom

from augmix.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS
from augmix.corruptions import functions as F
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.draws import DRAWS, NumpyDraws, corruption_keys
from augmix.corruptions.frost import frost_dir
from augmix.corruptions.imagemagick import motion_blur_im

try:
    import cv2
except ImportError:  # the cv2 comparisons are optional
    cv2 = None

needs_cv2 = pytest.mark.skipif(cv2 is None, reason="OpenCV not installed")


def _frost_available():
    try:
        from augmix.corruptions.frost import load_frost_textures

        load_frost_textures("cifar")
        return True
    except (FileNotFoundError, OSError):
        return False


needs_frost = pytest.mark.skipif(
    not _frost_available(),
    reason="frost textures (imagecorruptions 1.1.2) not installed",
)


@pytest.fixture(scope="module")
def imgs():
    """Hand-made 32x32 images: smooth waves, a random one, flat and saturated ones."""
    rng = np.random.default_rng(7)
    out = list(synthetic_images(3, seed=3))
    out.append(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    flat = np.zeros((32, 32, 3), np.uint8)
    flat[:16] = 255
    flat[16:, :, 1] = 128
    out.append(flat)
    return np.stack(out)


def _u8(x):
    return np.uint8(x)


def _gauss_sk(x, sigma):
    """scikit-image gaussian(multichannel=True) == SciPy gaussian_filter (sigma, sigma, 0), nearest."""
    return ndimage.gaussian_filter(
        x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0
    )


def _clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(
        img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor, 1), order=1
    )
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


def _agree(ours, ref, frac=0.995, maxdiff=1):
    d = np.abs(ours.astype(int) - ref.astype(int))
    assert (d == 0).mean() >= frac, (d == 0).mean()
    assert d.max() <= maxdiff, d.max()


# ----------------------------------------------------------------------------------------------
# tables


def test_names_and_order():
    assert BENCHMARK_CORRUPTIONS == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    )
    assert EXTRA_CORRUPTIONS == (
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    )
    assert len(F.ALL_CORRUPTIONS) == 19  # CORRUPTIONS also holds C-bar's ten (cbar.py)


def test_zoom_factor_lists():
    counts = {"cifar": [7, 12, 16, 21, 26], "imagenet": [12, 16, 11, 13, 11]}
    last = {
        "cifar": [1.06, 1.11, 1.15, 1.20, 1.25],
        "imagenet": [1.11, 1.15, 1.20, 1.24, 1.30],
    }
    for table in counts:
        for s in range(1, 6):
            f = F.zoom_factors(table, s)
            assert len(f) == counts[table][s - 1] and f[0] == 1.0
            assert f[-1] == pytest.approx(last[table][s - 1])


@pytest.mark.parametrize("h, factor", [(32, 1.0), (32, 1.06), (32, 1.25), (224, 1.13), (224, 1.3)])
def test_zoom_taps_are_the_clipped_zoom(h, factor):
    """The 4 taps per pixel reproduce B @ X @ B.T, and each pixel's weights sum to 1."""
    taps, weights = F.zoom_taps(h, factor)
    img = np.random.default_rng(1).uniform(size=(h, h))
    b = F.clipped_zoom_matrix(h, factor)
    np.testing.assert_allclose((img.reshape(-1)[taps] * weights).sum(1), (b @ img @ b.T).reshape(-1), atol=1e-12)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-12)


def test_bad_input_raises(imgs):
    with pytest.raises(ValueError, match="severity"):
        F.contrast(imgs, 6)
    with pytest.raises(KeyError, match="nope"):
        F.contrast(imgs, 1, table="nope")
    with pytest.raises(ValueError, match="224"):
        F.contrast(imgs, 1, table="imagenet")
    with pytest.raises(ValueError, match="rng"):
        F.gaussian_noise(imgs, 1)
    with pytest.raises(ValueError, match="uint8"):
        F.contrast(imgs.astype(np.float32), 1)


# ----------------------------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("s", [1, 3, 5])
def test_gaussian_noise(imgs, s):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    z = np.random.default_rng(s).standard_normal(imgs.shape)
    ours = F.gaussian_noise(imgs, s, draws={"z": z})
    for i, img in enumerate(imgs):
        x = np.array(img) / 255.0
        ref = _u8(np.clip(x + (0.0 + c * z[i]), 0, 1) * 255)
        assert np.array_equal(ours[i], ref)


@pytest.mark.parametrize("s", [1, 5])
def test_shot_noise(imgs, s):
    c = [500, 250, 100, 75, 50][s - 1]
    counts = np.random.default_rng(s).poisson(imgs / 255.0 * c)
    ours = F.shot_noise(imgs, s, draws={"counts": counts})
    for i in range(len(imgs)):
        ref = _u8(np.clip(counts[i] / c, 0, 1) * 255)
        assert np.array_equal(ours[i], ref)


@pytest.mark.parametrize("s", [1, 5])
def test_impulse_noise(imgs, s):
    amount = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    rng = np.random.default_rng(s)
    uf, us = rng.random(imgs.shape), rng.random(imgs.shape)
    ours = F.impulse_noise(imgs, s, draws={"u_flip": uf, "u_salt": us})
    for i, img in enumerate(imgs):
        out = np.array(img) / 255.0
        for idx in np.ndindex(out.shape):  # per element: flip?, then salt or pepper
            if uf[i][idx] < amount:
                out[idx] = 1.0 if us[i][idx] < 0.5 else 0.0
        assert np.array_equal(ours[i], _u8(np.clip(out, 0, 1) * 255))


@pytest.mark.parametrize("s", [2, 5])
def test_speckle_noise(imgs, s):
    c = [0.06, 0.1, 0.12, 0.16, 0.2][s - 1]
    z = np.random.default_rng(s).standard_normal(imgs.shape)
    ours = F.speckle_noise(imgs, s, draws={"z": z})
    for i, img in enumerate(imgs):
        x = np.array(img) / 255.0
        assert np.array_equal(ours[i], _u8(np.clip(x + x * (c * z[i]), 0, 1) * 255))


# ----------------------------------------------------------------------------------------------
# blur


@pytest.mark.parametrize("s", [1, 3, 5])
def test_gaussian_blur(imgs, s):
    c = [0.4, 0.6, 0.7, 0.8, 1][s - 1]
    ours = F.gaussian_blur(imgs, s)
    for i, img in enumerate(imgs):
        assert np.array_equal(
            ours[i], _u8(np.clip(_gauss_sk(np.array(img) / 255.0, c), 0, 1) * 255)
        )


def test_disk_kernel_shapes():
    # At radii 0.3/0.4/0.5 the disk is the centre pixel alone, so the kernel is a 3x3 Gaussian with
    # sigma 0.4/0.5/0.6: centre weights 0.845/0.619/0.445
    for (r, a), centre in zip(
        [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6)], [0.845, 0.619, 0.445]
    ):
        k = F.disk_kernel(r, a)
        assert k.shape == (17, 17) and k.dtype == np.float32
        assert k[8, 8] == pytest.approx(centre, abs=5e-4)
        assert np.count_nonzero(k) == 9 and k.sum() == pytest.approx(1, abs=1e-6)
    assert F.disk_kernel(10, 0.5).shape == (21, 21)
    # radius 1 is a 5-pixel plus before the alias blur; alias 0.2 keeps it almost unchanged
    k = F.disk_kernel(1, 0.2)
    assert k[8, 8] > 0.19 and k[7, 8] > 0.19 and k[7, 7] < 0.01


ALL_DISKS = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1),  # CIFAR
             (3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]  # ImageNet


@needs_cv2
@pytest.mark.parametrize("r,a", ALL_DISKS)
def test_disk_kernel_is_the_reference_bit_for_bit(r, a):
    """make_cifar_c.py disk(): aliased disk on an arange grid, then cv2.GaussianBlur."""
    if r <= 8:
        L, ks = np.arange(-8, 8 + 1), (3, 3)
    else:
        L, ks = np.arange(-r, r + 1), (5, 5)
    xx, yy = np.meshgrid(L, L)
    d = np.array((xx**2 + yy**2) <= r**2, dtype=np.float32)
    d /= np.sum(d)
    assert np.array_equal(F.disk_kernel(r, a), cv2.GaussianBlur(d, ksize=ks, sigmaX=a))


@pytest.mark.parametrize("s", [1, 4, 5])
def test_defocus_blur(imgs, s):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    k = F.disk_kernel(*c).astype(np.float64)
    ours = F.defocus_blur(imgs, s)
    for i, img in enumerate(imgs):
        x = np.array(img) / 255.0
        if cv2 is not None:
            ch = [cv2.filter2D(x[:, :, d], -1, k) for d in range(3)]
        else:  # filter2D == correlation with a centred kernel, reflect-101 border
            ch = [ndimage.correlate(x[:, :, d], k, mode="mirror") for d in range(3)]
        ref = _u8(np.clip(np.array(ch).transpose((1, 2, 0)), 0, 1) * 255)
        assert np.array_equal(ours[i], ref)


@needs_cv2
@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_defocus_blur_imagenet_is_the_reference_bit_for_bit(s):
    """make_imagenet_c.py defocus_blur: cv2.filter2D per channel with the disk kernel."""
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][s - 1]
    batch = np.stack([synthetic_images(1, size=224, seed=9)[0],
                      np.random.default_rng(4).integers(0, 256, (224, 224, 3), dtype=np.uint8)])
    ours = F.defocus_blur(batch, s, table="imagenet")
    k = F.disk_kernel(*c)
    for i, img in enumerate(batch):
        x = np.array(img) / 255.0
        blurred = np.array([cv2.filter2D(x[:, :, d], -1, k) for d in range(3)]).transpose((1, 2, 0))
        ref = _u8(np.clip(blurred, 0, 1) * 255)
        assert np.array_equal(ours[i], ref), i


def _glass_reference(img, sigma, d, iters, offsets):
    """Literal restatement, including the tuple 'swap' of NumPy views (a one-way copy)."""
    size = img.shape[0]
    x = np.uint8(_gauss_sk(np.array(img) / 255.0, sigma) * 255)
    for it in range(iters):
        for ih, h in enumerate(range(size - d, d, -1)):
            for iw, w in enumerate(range(size - d, d, -1)):
                dx, dy = offsets[it, ih, iw]
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return _u8(np.clip(_gauss_sk(x / 255.0, sigma), 0, 1) * 255)


@pytest.mark.parametrize("s", [1, 4, 5])
def test_glass_blur_cifar(imgs, s):
    sigma, d, iters = [
        (0.05, 1, 1),
        (0.25, 1, 1),
        (0.4, 1, 1),
        (0.25, 1, 2),
        (0.4, 1, 2),
    ][s - 1]
    offs = np.random.default_rng(s).integers(
        -d, d, size=(len(imgs), iters, 32 - 2 * d, 32 - 2 * d, 2)
    )
    ours = F.glass_blur(imgs, s, draws={"offsets": offs})
    for i, img in enumerate(imgs):
        assert np.array_equal(ours[i], _glass_reference(img, sigma, d, iters, offs[i]))


def test_glass_blur_imagenet_chains():
    """d = 2: sources may be pixels already visited, so copies travel (pointer jumping)."""
    img = synthetic_images(1, size=224, seed=5)
    sigma, d, iters = (1, 2, 3)
    offs = np.random.default_rng(0).integers(
        -d, d, size=(1, iters, 224 - 2 * d, 224 - 2 * d, 2)
    )
    ours = F.glass_blur(img, 3, table="imagenet", draws={"offsets": offs})
    assert np.array_equal(ours[0], _glass_reference(img[0], sigma, d, iters, offs[0]))


def test_glass_blur_offsets_asymmetric():
    imgs = synthetic_images(4, seed=1)
    # keyed draws: offsets lie in {-d, ..., d - 1} (randint(-d, d)); the function draws exactly these
    keys = corruption_keys(3, "glass_blur", 2, range(4))
    for d, iterations in ((1, 1), (3, 2)):
        offs = DRAWS["glass_blur"](NumpyDraws(keys), 32, 32, d=d, iterations=iterations)["offsets"]
        assert offs.shape == (4, iterations, 32 - 2 * d, 32 - 2 * d, 2)
        assert set(np.unique(offs)) == set(range(-d, d))
    offs = DRAWS["glass_blur"](NumpyDraws(keys), 32, 32, d=1, iterations=1)["offsets"]
    r1 = F.glass_blur(imgs, 2, keys)
    assert np.array_equal(r1, F.glass_blur(imgs, 2, draws={"offsets": offs}))


@pytest.mark.parametrize("s", [1, 3, 5])
def test_motion_blur_angles(imgs, s):
    r, sig = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    u = np.random.default_rng(s).random(len(imgs))
    ours = F.motion_blur(imgs, s, draws={"u_angle": u})
    for i, img in enumerate(
        imgs
    ):  # the ImageMagick step itself is checked in test_corruptions_imagemagick
        ref = motion_blur_im(
            img[None],
            r,
            sig,
            np.random.default_rng(0).uniform(-45, 45) * 0 + (-45 + 90 * u[i]),
        )[0]
        assert np.array_equal(ours[i], ref)


def _zoom_blur_ref(img, c):
    """make_cifar_c.py zoom_blur: float32 x, each clipped zoom float32, summed with += into a float32 array."""
    x = (np.array(img) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for z in c:
        out += _clipped_zoom(x, z)
    return _u8(np.clip((x + out) / (len(c) + 1), 0, 1) * 255)


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_zoom_blur_cifar_is_the_reference_bit_for_bit(imgs, s):
    c = np.arange(1, [1.06, 1.11, 1.16, 1.21, 1.26][s - 1], 0.01)
    more = np.random.default_rng(s).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    batch = np.concatenate([imgs, more])
    ours = F.zoom_blur(batch, s)
    for i, img in enumerate(batch):
        assert np.array_equal(ours[i], _zoom_blur_ref(img, c)), i


@pytest.mark.parametrize("s", [1, 5])
def test_zoom_blur_imagenet_is_the_reference_bit_for_bit(s):
    c = np.arange(1, [1.11, 1.16, 1.21, 1.26, 1.31][s - 1], [0.01, 0.01, 0.02, 0.02, 0.03][s - 1])
    batch = np.stack([synthetic_images(1, size=224, seed=5)[0],
                      np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)])
    ours = F.zoom_blur(batch, s, table="imagenet")
    for i, img in enumerate(batch):
        assert np.array_equal(ours[i], _zoom_blur_ref(img, c)), i


# ----------------------------------------------------------------------------------------------
# weather


SNOW = {  # (loc, scale, zoom, threshold, blur radius, blur sigma, blend) per severity
    "cifar": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],
    "imagenet": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
}


def _snow_reference(img, c, z, u):
    """The reference's snow on one image: float32 image, OpenCV's RGB2GRAY in the blend."""
    h = img.shape[0]
    x = np.array(img, dtype=np.float32) / 255.0
    layer = c[0] + c[1] * z
    layer = _clipped_zoom(layer[..., np.newaxis], c[2])
    layer[layer < c[3]] = 0
    layer8 = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    blurred = motion_blur_im(layer8[None, :, :, None], c[4], c[5], -135 + 90 * u)[0] / 255.0
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray.reshape(h, h, 1) * 1.5 + 0.5)
    return _u8(np.clip(x + blurred + np.rot90(blurred, k=2), 0, 1) * 255)


def _snow_images(table, kind):
    """Colour: smooth waves (and at 32 px the fixture's random and flat ones). Grey: r = g = b, a
    random grey and smooth ones, where a one-ulp grey error flips the truncation most often."""
    size, n = {"cifar": (32, 12), "imagenet": (224, 2)}[table]
    rng = np.random.default_rng(size)
    colour = synthetic_images(n, size=size, seed=size)
    if kind == "colour":
        return colour
    grey = colour.mean(axis=-1).astype(np.uint8)
    grey[0] = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@needs_cv2
@pytest.mark.parametrize("kind", ["grey", "colour"])
@pytest.mark.parametrize("table", ["cifar", "imagenet"])
@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_snow_is_the_reference_bit_for_bit(imgs, table, kind, s):
    images = _snow_images(table, kind)
    if table == "cifar" and kind == "colour":
        images = np.concatenate([images, imgs])
    n, h = images.shape[:2]
    c = SNOW[table][s - 1]
    rng = np.random.default_rng(s)
    z, u = rng.standard_normal((n, h, h)), rng.random(n)
    ours = F.snow(images, s, table=table, draws={"z": z, "u_angle": u})
    for i, img in enumerate(images):
        assert np.array_equal(ours[i], _snow_reference(img, c, z[i], u[i])), i


@needs_frost
@pytest.mark.parametrize("s", [1, 5])
def test_frost(imgs, s):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    names = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"]
    rng = np.random.default_rng(s)
    idx = rng.integers(0, 5, len(imgs))
    smalls = []
    for name in names:
        if cv2 is not None:
            t = cv2.resize(cv2.imread(str(frost_dir() / name)), (0, 0), fx=0.2, fy=0.2)[
                ..., [2, 1, 0]
            ]
        else:
            t = np.asarray(Image.open(frost_dir() / name).convert("RGB"))[2::5, 2::5]
        smalls.append(t)
    rows = np.array([rng.integers(0, smalls[k].shape[0] - 32) for k in idx])
    cols = np.array([rng.integers(0, smalls[k].shape[1] - 32) for k in idx])
    ours = F.frost(imgs, s, draws={"index": idx, "row": rows, "col": cols})
    for i, img in enumerate(imgs):
        fr = smalls[idx[i]][rows[i] : rows[i] + 32, cols[i] : cols[i] + 32]
        ref = np.uint8(np.clip(c[0] * np.array(img) + c[1] * fr, 0, 255))
        assert np.array_equal(ours[i], ref)


def _plasma_reference(mapsize, wibbledecay, uniforms):
    """Literal diamond-square with the draws consumed in the reference's order."""
    draws = iter(uniforms)
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        u = next(draws)
        return array / 4 + wibble * (-wibble + (wibble - (-wibble)) * u)

    while stepsize >= 2:
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[
            stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize
        ] = wibbledmean(squareaccum)
        drgrid = maparray[
            stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize
        ]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = (
            drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        )
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(
            ltsum
        )
        ttsum = (
            drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        )
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(
            ttsum
        )
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


@pytest.mark.parametrize("s", [1, 5])
def test_fog(imgs, s):
    c = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    rng = np.random.default_rng(s)
    uniforms = [rng.random(shape) for shape in F.fog_uniform_shapes(len(imgs), 32)]
    ours = F.fog(imgs, s, draws={"uniforms": uniforms})
    for i, img in enumerate(imgs):
        x = np.array(img) / 255.0
        max_val = x.max()
        x += (
            c[0]
            * _plasma_reference(32, c[1], [u[i] for u in uniforms])[:32, :32][
                ..., np.newaxis
            ]
        )
        ref = _u8(np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255)
        assert np.array_equal(ours[i], ref)


def _rgb2hsv_sk(arr):
    """scikit-image rgb2hsv, restated with its masked assignments."""
    out = np.empty_like(arr)
    out_v = arr.max(-1)
    delta = arr.ptp(-1) if hasattr(arr, "ptp") else np.ptp(arr, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_s = delta / out_v
    out_s[delta == 0.0] = 0.0
    out_h = np.zeros_like(out_v)
    with np.errstate(invalid="ignore", divide="ignore"):
        idx = arr[..., 0] == out_v
        out_h[idx] = (arr[idx, 1] - arr[idx, 2]) / delta[idx]
        idx = arr[..., 1] == out_v
        out_h[idx] = 2.0 + (arr[idx, 2] - arr[idx, 0]) / delta[idx]
        idx = arr[..., 2] == out_v
        out_h[idx] = 4.0 + (arr[idx, 0] - arr[idx, 1]) / delta[idx]
    out_h = (out_h / 6.0) % 1.0
    out_h[delta == 0.0] = 0.0
    out[..., 0], out[..., 1], out[..., 2] = out_h, out_s, out_v
    return out


def _hsv2rgb_sk(hsv):
    hi = np.floor(hsv[..., 0] * 6)
    f = hsv[..., 0] * 6 - hi
    p = hsv[..., 2] * (1 - hsv[..., 1])
    q = hsv[..., 2] * (1 - f * hsv[..., 1])
    t = hsv[..., 2] * (1 - (1 - f) * hsv[..., 1])
    v = hsv[..., 2]
    hi = np.stack([hi, hi, hi], axis=-1).astype(np.uint8) % 6
    return np.choose(
        hi,
        np.stack(
            [
                np.stack((v, t, p), axis=-1),
                np.stack((q, v, p), axis=-1),
                np.stack((p, v, t), axis=-1),
                np.stack((p, q, v), axis=-1),
                np.stack((t, p, v), axis=-1),
                np.stack((v, p, q), axis=-1),
            ]
        ),
    )


@pytest.mark.parametrize("s", [1, 3, 5])
def test_brightness_and_saturate(imgs, s):
    cb = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    cs = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][s - 1]
    ob, os_ = F.brightness(imgs, s), F.saturate(imgs, s)
    for i, img in enumerate(imgs):
        x = _rgb2hsv_sk(np.array(img) / 255.0)
        x[:, :, 2] = np.clip(x[:, :, 2] + cb, 0, 1)
        assert np.array_equal(ob[i], _u8(np.clip(_hsv2rgb_sk(x), 0, 1) * 255))
        x = _rgb2hsv_sk(np.array(img) / 255.0)
        x[:, :, 1] = np.clip(x[:, :, 1] * cs[0] + cs[1], 0, 1)
        assert np.array_equal(os_[i], _u8(np.clip(_hsv2rgb_sk(x), 0, 1) * 255))


@needs_cv2
@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_spatter(imgs, s):
    c = [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ][s - 1]
    z = np.random.default_rng(s).standard_normal((len(imgs), 32, 32))
    ours = F.spatter(imgs, s, draws={"z": z})
    for i, img in enumerate(imgs):
        x = np.array(img, dtype=np.float32) / 255.0
        liquid_layer = c[0] + c[1] * z[i]
        liquid_layer = ndimage.gaussian_filter(
            liquid_layer, sigma=c[2], mode="nearest", truncate=4.0
        )
        liquid_layer[liquid_layer < c[3]] = 0
        if c[5] == 0:
            liquid_layer = (liquid_layer * 255).astype(np.uint8)
            dist = 255 - cv2.Canny(liquid_layer, 50, 150)
            dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
            dist = cv2.equalizeHist(dist)
            dist = cv2.filter2D(
                dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
            )
            dist = cv2.blur(dist, (3, 3)).astype(np.float32)
            m = cv2.cvtColor(liquid_layer * dist, cv2.COLOR_GRAY2BGRA)
            m /= np.max(m, axis=(0, 1))
            m *= c[4]
            color = np.concatenate(
                (
                    175 / 255.0 * np.ones_like(m[..., :1]),
                    238 / 255.0 * np.ones_like(m[..., :1]),
                    238 / 255.0 * np.ones_like(m[..., :1]),
                ),
                axis=2,
            )
            color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
            x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
            ref = _u8(
                cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
            )
        else:
            m = np.where(liquid_layer > c[3], 1, 0)
            m = ndimage.gaussian_filter(
                m.astype(np.float32), sigma=c[4], mode="nearest", truncate=4.0
            )
            m[m < 0.8] = 0
            color = np.concatenate(
                (
                    63 / 255.0 * np.ones_like(x[..., :1]),
                    42 / 255.0 * np.ones_like(x[..., :1]),
                    20 / 255.0 * np.ones_like(x[..., :1]),
                ),
                axis=2,
            )
            color *= m[..., np.newaxis]
            x *= 1 - m[..., np.newaxis]
            ref = _u8(np.clip(x + color, 0, 1) * 255)
        _agree(ours[i], ref)


# ----------------------------------------------------------------------------------------------
# digital


@pytest.mark.parametrize("s", [1, 5])
def test_contrast(imgs, s):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    ours = F.contrast(imgs, s)
    for i, img in enumerate(imgs):
        x = np.array(img) / 255.0
        means = np.mean(x, axis=(0, 1), keepdims=True)
        assert np.array_equal(
            ours[i], _u8(np.clip((x - means) * c + means, 0, 1) * 255)
        )


@pytest.mark.parametrize("s", [1, 3, 5])
def test_pixelate_and_jpeg(imgs, s):
    cp = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    cj = [80, 65, 58, 50, 40][s - 1]
    op, oj = F.pixelate(imgs, s), F.jpeg_compression(imgs, s)
    assert np.array_equal(oj, F.jpeg_compression(imgs, s, backend="pil"))
    for i, img in enumerate(imgs):
        x = (
            Image.fromarray(img)
            .resize((int(32 * cp), int(32 * cp)), Image.BOX)
            .resize((32, 32), Image.BOX)
        )
        assert np.array_equal(op[i], np.array(x))
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=cj)
        assert np.array_equal(oj[i], np.array(Image.open(buf)))


def _warp_affine_classic(img, m):
    """Classic OpenCV warpAffine (bilinear, reflect-101), restated per pixel: 1/32-pixel fixed point."""
    h, w = img.shape[:2]
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d
    a11, a22 = m[1, 1] * d, m[0, 0] * d
    m01, m10 = -m[0, 1] * d, -m[1, 0] * d
    b1 = -a11 * m[0, 2] - m01 * m[1, 2]
    b2 = -m10 * m[0, 2] - a22 * m[1, 2]
    out = np.zeros_like(img)

    def refl(i, n):
        while i < 0 or i >= n:
            i = -i if i < 0 else 2 * n - 2 - i
        return i

    for y in range(h):
        x0 = int(np.rint((m01 * y + b1) * 1024)) + 16
        y0 = int(np.rint((a22 * y + b2) * 1024)) + 16
        for x in range(w):
            xx = (x0 + int(np.rint(a11 * x * 1024))) >> 5
            yy = (y0 + int(np.rint(m10 * x * 1024))) >> 5
            sx, sy = xx >> 5, yy >> 5
            fx, fy = np.float32((xx & 31) / 32), np.float32((yy & 31) / 32)
            p = [
                [img[refl(sy + j, h), refl(sx + i, w)] for i in (0, 1)] for j in (0, 1)
            ]
            one = np.float32(1)
            out[y, x] = (
                p[0][0] * ((one - fy) * (one - fx))
                + p[0][1] * ((one - fy) * fx)
                + p[1][0] * (fy * (one - fx))
                + p[1][1] * (fy * fx)
            )
    return out


@pytest.mark.parametrize("s", [1, 2, 5])
def test_elastic_transform(imgs, s):
    c = [
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ][s - 1]
    rng = np.random.default_rng(s)
    n = len(imgs)
    draws = {
        "u_affine": rng.random((n, 3, 2)),
        "u_dx": rng.random((n, 32, 32)),
        "u_dy": rng.random((n, 32, 32)),
    }
    ours = F.elastic_transform(imgs, s, draws=draws)
    ours_float = F.elastic_transform(imgs, s, draws=draws, warp="float")
    for i, img in enumerate(imgs):
        image = np.array(img, dtype=np.float32) / 255.0
        pts1 = np.float32([[26, 26], [26, 6], [6, 6]])
        pts2 = pts1 + (-c[2] + 2 * c[2] * draws["u_affine"][i]).astype(np.float32)
        a = np.zeros((6, 6))
        b = np.zeros(6)
        for k in range(3):
            a[2 * k, :3] = [pts1[k, 0], pts1[k, 1], 1]
            a[2 * k + 1, 3:] = [pts1[k, 0], pts1[k, 1], 1]
            b[2 * k], b[2 * k + 1] = pts2[k]
        m = np.linalg.solve(a, b).reshape(2, 3)
        warped = _warp_affine_classic(image, m)
        dx = (
            ndimage.gaussian_filter(
                -1 + 2 * draws["u_dx"][i], c[1], mode="reflect", truncate=3
            )
            * c[0]
        ).astype(np.float32)
        dy = (
            ndimage.gaussian_filter(
                -1 + 2 * draws["u_dy"][i], c[1], mode="reflect", truncate=3
            )
            * c[0]
        ).astype(np.float32)
        dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
        x, y, z = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
        indices = (
            np.reshape(y + dy, (-1, 1)),
            np.reshape(x + dx, (-1, 1)),
            np.reshape(z, (-1, 1)),
        )
        ref = _u8(
            np.clip(
                map_coordinates(warped, indices, order=1, mode="reflect").reshape(
                    image.shape
                ),
                0,
                1,
            )
            * 255
        )
        _agree(ours[i], ref)
        if (
            cv2 is not None
        ):  # the "float" warp variant follows OpenCV >= 5 (to float rounding)
            wcv = cv2.warpAffine(
                image,
                cv2.getAffineTransform(pts1, pts2),
                (32, 32),
                borderMode=cv2.BORDER_REFLECT_101,
            )
            np.testing.assert_allclose(
                F.warp_affine_cv(image[None], m[None], "float")[0], wcv, atol=1e-5
            )
    # the two warp variants differ (1/32-pixel coordinates vs exact ones)
    assert not np.array_equal(ours, ours_float)


# ----------------------------------------------------------------------------------------------
# properties over all corruptions


@pytest.fixture(scope="module")
def severity_mad():
    images = synthetic_images(48, seed=11)
    out = {}
    for name, fn in CORRUPTIONS.items():
        if name == "frost" and not _frost_available():
            continue
        if name == "spatter" and cv2 is None:
            continue
        out[name] = [
            np.abs(
                fn(images, s, np.random.default_rng(s)).astype(float) - images
            ).mean()
            for s in range(1, 6)
        ]
    return out


# Where the reference's own parameter table is not monotone in mean absolute change: glass blur
# (severities 1-3 shuffle equally, 4-5 twice), frost (the image weight drops), elastic (the affine
# amplitude shrinks as the elastic part grows), spatter (water 1-3, then mud 4-5), saturate
# (desaturate 0.3, 0.1, then saturate 1.5, 2, 2.5).
PARTIAL_ORDERS = {
    "glass_blur": [(1, 4), (2, 4), (3, 4), (1, 5), (2, 5), (3, 5)],
    "frost": [(1, 2), (2, 3), (1, 5)],
    "elastic_transform": [(5, 4), (4, 3), (3, 2)],
    "spatter": [(1, 2), (2, 3), (4, 5)],
    "saturate": [(1, 2), (3, 4), (4, 5)],
    # C-bar levels 9 and 10 (channel scales 1.225/1.45 vs 1.25/1.5) tie within the spread of
    # which channel draws which scale; with the same draws they are ordered (test_corruptions_cbar)
    "transverse_chromatic_abberation": [(1, 2), (2, 3), (3, 4), (3, 5)],
}


def test_severity_monotone(severity_mad):
    for name, mad in severity_mad.items():
        assert all(m > 0 for m in mad), name
        if name in PARTIAL_ORDERS:
            for lo, hi in PARTIAL_ORDERS[name]:
                assert mad[lo - 1] < mad[hi - 1], (name, mad)
        else:
            assert all(np.diff(mad) > 0), (name, mad)


def test_outputs_uint8_and_seeded(imgs):
    for name, fn in CORRUPTIONS.items():
        if (name == "frost" and not _frost_available()) or (
            name == "spatter" and cv2 is None
        ):
            continue
        a = fn(imgs, 3, np.random.default_rng(5))
        b = fn(imgs, 3, np.random.default_rng(5))
        assert a.dtype == np.uint8 and a.shape == imgs.shape, name
        assert np.array_equal(a, b), name


def test_map_coordinates_reflect_far_coordinates():
    """Our batched bilinear 'reflect' sampler equals SciPy's map_coordinates, far outside too."""
    rng = np.random.default_rng(0)
    img = rng.random((2, 32, 32, 3))
    rows = rng.uniform(-70, 70, (2, 32, 32))
    cols = rng.uniform(-70, 70, (2, 32, 32))
    ours = F.map_coordinates_reflect(img, rows, cols)
    for i in range(2):
        for ch in range(3):
            ref = map_coordinates(
                img[i, :, :, ch],
                [rows[i].ravel(), cols[i].ravel()],
                order=1,
                mode="reflect",
            )
            np.testing.assert_allclose(ours[i, :, :, ch].ravel(), ref, atol=1e-12)


def test_reflect101_far_indices():
    idx = np.arange(-70, 70)
    expect = [i for i in idx]
    for k, i in enumerate(expect):
        while i < 0 or i >= 32:
            i = -i if i < 0 else 62 - i
        expect[k] = i
    assert np.array_equal(F._reflect101(idx, 32), expect)
