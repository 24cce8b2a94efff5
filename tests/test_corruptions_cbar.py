"""CIFAR-10-C-bar corruptions against per-image restatements of the authors' definitions
(facebookresearch/augmentation-corruption at ba4d5a5, imagenet_c_bar/corrupt.py and
utils/image.py), with the same injected random draws. The restatements are written independently
of the package: pixel loops and SciPy calls as the authors make them, no shared helpers.

Two departures from running the authors' code today, both about their environment (NumPy 1.19):
* float32 image times a NumPy float64 scalar stayed float32 under NumPy 1.x's value-based casting
  (NumPy 2 computes it in float64); the restatements spell the float32 products out.
* the distance np.linalg.norm((dy, dx)) is a BLAS dot, which may fuse the multiply-add (FMA)
  depending on the machine; the restatements take sqrt(dy*dy + dx*dx) (where the offsets are
  integers, as in pinch_and_twirl and the noise spectra, both are exact).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import fftpack
from scipy.ndimage import rotate, spline_filter, zoom

from augmix.corruptions import CORRUPTIONS, build, build_c_set, corrupt, is_complete
from augmix.corruptions import cbar as C
from augmix.corruptions import functions as F
from augmix.corruptions.bench import synthetic_images

CSV_LEVELS = [  # imagenet_c_bar/cifar10_c_bar.csv, in file order
    ("blue_noise_sample", (0.7, 1.4, 2.1, 3.5, 4.2)),
    ("checkerboard_cutout", (1.0, 2.0, 3.0, 4.0, 5.0)),
    ("inverse_sparkles", (1.0, 1.5, 2.5, 4.5, 5.0)),
    ("pinch_and_twirl", (5.5, 6.0, 6.5, 8.5, 10.0)),
    ("ripple", (5.5, 6.0, 6.5, 7.5, 8.0)),
    ("brownish_noise", (2.5, 4.0, 5.5, 6.5, 7.0)),
    ("circular_motion_blur", (2.8, 3.6, 4.4, 5.2, 6.0)),
    ("lines", (0.5, 1.0, 1.5, 2.0, 2.5)),
    ("sparkles", (0.7, 3.5, 5.6, 6.3, 7.0)),
    ("transverse_chromatic_abberation", (1.0, 2.0, 5.0, 9.0, 10.0)),
]
NAMES = [n for n, _ in CSV_LEVELS]
S = 32


def fp(level, maxval):  # the authors' float_parameter
    return float(level) * maxval / 10.0


@pytest.fixture(scope="module")
def imgs():
    """Hand-made 32x32 images: smooth waves, a random one, a flat two-tone one."""
    rng = np.random.default_rng(11)
    out = list(synthetic_images(3, seed=5))
    out.append(rng.integers(0, 256, (S, S, 3), dtype=np.uint8))
    flat = np.zeros((S, S, 3), np.uint8)
    flat[:, :16] = 250
    flat[:, 16:, 2] = 90
    out.append(flat)
    return np.stack(out)


def draws_for(name, n, seed, severity=1):
    return C.make_draws(name, np.random.default_rng(seed), (n, S, S, 3),
                        **({"count": C._line_count(C.LEVELS["lines"][severity - 1], S)} if name == "lines" else {}))


def norm2(dy, dx):
    return math.sqrt(dy * dy + dx * dx)


# ----------------------------------------------------------------------------------------------
# table and registration


def test_names_levels_and_order():
    assert list(C.LEVELS.items()) == CSV_LEVELS
    assert list(C.CBAR_CORRUPTIONS) == NAMES


def test_registered_after_the_19_and_dispatched(imgs):
    names = list(CORRUPTIONS)
    assert names[:19] == list(F.ALL_CORRUPTIONS) and names[19:29] == NAMES
    for name in NAMES:
        assert CORRUPTIONS[name] is C.CBAR_CORRUPTIONS[name]
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(corrupt(imgs, "lines", 5, rng_a), C.lines(imgs, 5, rng_b))
    C.register(CORRUPTIONS)  # idempotent
    with pytest.raises(KeyError):
        C.register({"lines": lambda *a, **k: None})


def test_bad_input_raises(imgs):
    with pytest.raises(ValueError):
        C.ripple(imgs, 0, np.random.default_rng(0))
    with pytest.raises(KeyError):
        C.ripple(imgs, 1, np.random.default_rng(0), table="imagenet")
    with pytest.raises(ValueError):
        C.ripple(imgs[:, :16, :16], 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="never global"):
        C.ripple(imgs, 1)
    assert C.circular_motion_blur(imgs[:1], 1).shape == (1, S, S, 3)  # deterministic: no rng


# ----------------------------------------------------------------------------------------------
# restatements, one image at a time


def ref_spectrum_noise(u, power):
    phases = 0 + (2 * np.pi - 0) * u
    phases = np.concatenate((phases, phases[::-1, ::-1]), axis=1)
    spec = power * (np.cos(phases) + np.sin(phases) * 1j)
    spec = np.roll(np.roll(spec, S // 2, axis=0), S // 2, axis=1)
    noise = np.real(fftpack.ifft2(spec))
    return noise / np.std(noise)


def ref_power(kind):
    p = np.zeros((S, S))
    for y in range(S):
        for x in range(S):
            r = np.linalg.norm(np.array([x, y]) - S / 2)  # integer offsets: exact either way
            p[y, x] = r if kind == "blue" else 1 / (r**2 + 1)
    return p


def ref_blue_noise_sample(img, level, d):
    mask = ref_spectrum_noise(d["phases"], ref_power("blue")) > fp(level, 3.0) - 2.5
    return np.clip(img * mask.reshape(S, S, 1), 0, 255).astype(np.uint8)


def ref_brownish_noise(img, level, d):
    noise = np.stack([ref_spectrum_noise(d["phases"][c], ref_power("brown")) for c in range(3)], axis=2)
    return np.clip(img + fp(level, 64) * noise, 0, 255).astype(np.uint8)


def ref_checkerboard_cutout(img, level, d):
    angle = 0 + (2 * np.pi - 0) * float(d["angle"])
    scale = max((0.1 + (0.25 - 0.1) * float(d["scale"])) * S, 1)
    side = int(4 * S // scale)
    grid = d["grid"][:side, :side] < fp(level, 1.0)
    out = np.empty((S, S, 3), np.int64)
    for y in range(S):
        for x in range(S):
            nx = (np.cos(angle) * y + np.sin(angle) * x) / scale
            ny = (-np.sin(angle) * y + np.cos(angle) * x) / scale
            keep = int(nx % 2) != int(ny % 2) or not grid[int(nx), int(ny)]
            out[y, x] = img[y, x] if keep else (128, 128, 128)
    return np.clip(out, 0, 255).astype(np.uint8)


def ref_star(point, value, center, radius_unused, lengths, amount, color, inverse):
    rays = len(lengths)
    dy, dx = point[0] - center[0], point[1] - center[1]
    dist = norm2(dy, dx)
    d = (np.arctan2(dx, dy) + np.pi) / (2 * np.pi) * rays
    i = int(d)
    f = d - i
    length = lengths[i % rays] + f * (lengths[(i + 1) % rays] - lengths[i % rays])
    g = length**2 / (dist**2 + 1e-4)
    g = g ** ((100 - amount) / 50.0)
    f -= 0.5
    f = 1 - f**2
    f *= g
    f = np.clip(f, 0, 1)
    return color + f * (value - color) if inverse else value + f * (color - value)


def ref_inverse_sparkles(img, level, d):
    center = (0.25 + (0.75 - 0.25) * d["center"]) * S
    radius = 0.25 * S
    amount = 100 - fp(level, 65)
    rays = int(d["rays"])
    lengths = [radius + 25 / 100.0 * radius * d["z"][k] for k in range(rays)]
    color = np.array([255, 255, 255])
    out = np.array([[ref_star((y, x), img[y, x].astype(np.float32), center, radius, lengths, amount, color, True)
                     for x in range(S)] for y in range(S)])
    return np.clip(out, 0, 255).astype(np.uint8)


def ref_sparkles(img, level, d):
    centers = 0 + (S - 0) * d["centers"]
    radius = fp(level, 0.1) * S
    color = np.array([255, 255, 255])
    image = img
    for j in range(5):
        lengths = [max(1, radius + 25 / 100.0 * radius * d["z"][j, k]) for k in range(int(d["rays"][j]))]
        image = np.array([[ref_star((y, x), image[y, x].astype(np.float32), centers[j], radius, lengths, 50, color,
                                    False)
                           for x in range(S)] for y in range(S)])
    return np.clip(image, 0, 255).astype(np.uint8)


def ref_line_aa(r0, c0, r1, c1):
    """skimage 0.16.2 draw.line_aa, with its C float (float32) error term and length."""
    rr, cc, val = [], [], []
    dc, dr = abs(c0 - c1), abs(r0 - r1)
    err = np.float32(dc - dr)
    sign_c = 1 if c0 < c1 else -1
    sign_r = 1 if r0 < r1 else -1
    ed = np.float32(1) if dc + dr == 0 else np.float32(math.sqrt(dc * dc + dr * dr))
    c, r = c0, r0
    while True:
        cc.append(c)
        rr.append(r)
        val.append(abs(float(np.float32(err - dc + dr))) / float(ed))
        e, c_prev = err, c
        if 2 * e >= -dc:
            if c == c1:
                break
            if np.float32(e + dr) < ed:
                cc.append(c)
                rr.append(r + sign_r)
                val.append(abs(float(np.float32(e + dr))) / float(ed))
            err = np.float32(err - dr)
            c += sign_c
        if 2 * e <= dr:
            if r == r1:
                break
            if np.float32(dc - e) < ed:
                cc.append(c_prev + sign_c)
                rr.append(r)
                val.append(abs(float(np.float32(dc - e))) / float(ed))
            err = np.float32(err + dc)
            r += sign_r
    return np.array(rr), np.array(cc), 1.0 - np.array(val)


def ref_lines(img, level, d):
    count = int(fp(level, 1.0) * S)
    length = 1.0 * S
    angle = 0 + (2 * np.pi - 0) * float(d["angle"])
    variation = 0.1 + (1.0 - 0.1) * float(d["variation"])
    out = img.copy()
    for k in range(count):
        u0, u1, u2 = (float(v) for v in d["lines"][k])
        x, y = S * u0, S * u1
        a = angle + 2 * np.pi * variation * (u2 - 0.5)
        s, c = np.sin(a) * length, np.cos(a) * length
        rr, cc, vv = ref_line_aa(int(x - c), int(y - s), int(x + c), int(y + s))
        keep = [(r, q, v) for r, q, v in zip(rr, cc, vv) if 0 <= r < S and 0 <= q < S]
        if not keep:
            continue
        xc = np.array([t[0] for t in keep])
        yc = np.array([t[1] for t in keep])
        v = np.array([t[2] for t in keep]).reshape(-1, 1)
        out[xc, yc, :] = (1.0 - v) * out[xc, yc, :].astype(np.float32) + v * 128
    return out.astype(np.uint8)


def ref_bilinear(image, point, numpy1_float32):
    """utils/image.py bilinear_interpolation. numpy1_float32: the image is float32 and NumPy 1.x
    kept corner * weight in float32 (an outside corner, the int array [0, 0, 0], gave float64)."""
    l, u = int(np.floor(point[0])), int(np.floor(point[1]))
    r, dd = l + 1, u + 1

    def corner(a, b):
        return image[a, b, :] if 0 <= a < S and 0 <= b < S else None

    def times(v, w):
        if v is None:
            return np.zeros(3)  # int array * float64 scalar -> float64
        if numpy1_float32 and v.dtype == np.float32:
            return v * np.float32(w)  # float32 array * float64 scalar -> float32 (value-based)
        return v * w

    wu, wd = 1.0 - point[1] + u, 1.0 - dd + point[1]
    al = times(corner(l, u), wu) + times(corner(l, dd), wd)
    ar = times(corner(r, u), wu) + times(corner(r, dd), wd)
    return times(al, 1.0 - point[0] + l) + times(ar, 1.0 - r + point[0])


def ref_ripple(img, level, d):
    amp = np.array([fp(level, 0.025)] * 2) * S
    wl = (0.1 + (0.3 - 0.1) * d["wavelengths"]) * S
    ph = 0 + (2 * np.pi - 0) * d["phases"]
    out = np.array([[ref_bilinear(img, np.array([y, x]) + amp * np.sin(2 * np.pi * np.array([y, x]) / wl + ph), False)
                     for x in range(S)] for y in range(S)])
    return np.clip(out, 0, 255).astype(np.uint8)


def ref_pinch_and_twirl(img, level, d):
    cells = 3
    angles = np.array([(1 - 2 * int(d["signs"][i, j])) * fp(level, np.pi / 2)
                       for i in range(cells) for j in range(cells)])
    angles = angles.reshape(cells, cells)
    amount = fp(level, 0.4) + 0.1
    g = S // cells
    radius = g / 2

    def warp(point, center, angle):
        dy, dx = point[0] - center[0], point[1] - center[1]
        dist = norm2(dy, dx)
        if dist > radius or np.round(dist, 3) == 0.0:
            return point
        dd = dist / radius
        t = np.sin(np.pi * 0.5 * dd) ** (-amount)
        dy, dx = dy * t, dx * t
        a = angle * ((1 - dd) ** 2)
        return center + np.array([dy * np.cos(a) - dx * np.sin(a), dy * np.sin(a) + dx * np.cos(a)])

    out = img.astype(np.float32)
    for i in range(cells):
        for j in range(cells):
            l, r, u, dn = i * g, (i + 1) * g, j * g, (j + 1) * g
            center = np.array([u + radius, l + radius])
            cell = [[ref_bilinear(out, warp(np.array([y, x]), center, angles[i, j]), True) for x in range(l, r)]
                    for y in range(u, dn)]
            out[u:dn, l:r, :] = np.array(cell)
    return np.clip(out, 0, 255).astype(np.uint8)


def ref_transverse_chromatic_abberation(img, level, d):
    scale = fp(level, 0.5)
    scales = np.array([1.0, 1.0 + scale / 2, 1.0 + scale])[np.asarray(d["perm"])]
    out = img.copy()
    for c in range(3):
        zoomed = zoom(img[:, :, c], scales[c], prefilter=False)
        edge = (zoomed.shape[0] - S) // 2
        out[:, :, c] = zoomed[edge:edge + S, edge:edge + S]
    return out


def ref_circular_motion_blur(img, level, d):
    amount = fp(level, 15)
    image = img.astype(np.float32) / 255
    out = np.zeros_like(image)
    factors = []
    for i in range(21):
        angle = (2 * i / 20 - 1) * amount
        f = np.exp(-2 * (2 * i / 20 - 1) ** 2)
        factors.append(f)
        out += np.float32(f) * rotate(image, angle, reshape=False)  # NumPy 1.x: a float32 product
    out /= np.float32(sum(factors))
    return np.clip(out * 255, 0, 255).astype(np.uint8)


REFS = {
    "blue_noise_sample": ref_blue_noise_sample,
    "checkerboard_cutout": ref_checkerboard_cutout,
    "inverse_sparkles": ref_inverse_sparkles,
    "pinch_and_twirl": ref_pinch_and_twirl,
    "ripple": ref_ripple,
    "brownish_noise": ref_brownish_noise,
    "circular_motion_blur": ref_circular_motion_blur,
    "lines": ref_lines,
    "sparkles": ref_sparkles,
    "transverse_chromatic_abberation": ref_transverse_chromatic_abberation,
}


def _per_image(d, i):
    return {k: np.asarray(v)[i] for k, v in d.items()}


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", NAMES)
def test_exact_against_restatement(imgs, name, severity):
    level = C.LEVELS[name][severity - 1]
    d = draws_for(name, len(imgs), seed=100 + severity, severity=severity) if name in C.CBAR_DRAWS else {}
    ours = C.CBAR_CORRUPTIONS[name](imgs, severity, draws=d or None)
    for i, img in enumerate(imgs):
        ref = REFS[name](img, level, _per_image(d, i))
        diff = np.flatnonzero(ours[i] != ref)
        assert diff.size == 0, f"{name} s={severity} image {i}: {diff.size} values differ"


# ----------------------------------------------------------------------------------------------
# building blocks against their sources


def test_line_aa_batch_is_skimage_line_aa():
    rng = np.random.default_rng(0)
    ends = rng.integers(-40, 75, (400, 4))
    ends[:5] = [[3, 3, 3, 3], [0, 0, 0, 9], [0, 0, 9, 0], [5, 5, -5, -5], [2, 9, 9, 2]]
    line, rows, cols, val = C.line_aa_batch(*ends.T)
    for k, (r0, c0, r1, c1) in enumerate(ends):
        rr, cc, vv = ref_line_aa(int(r0), int(c0), int(r1), int(c1))
        m = line == k
        assert np.array_equal(rows[m], rr) and np.array_equal(cols[m], cc)
        assert np.array_equal(val[m], vv)


@pytest.mark.parametrize("factor", sorted({1.0 + fp(lv, 0.5) * k for lv in C.LEVELS["transverse_chromatic_abberation"]
                                           for k in (0, 0.5, 1)}))
def test_zoom_restatement_is_scipy_zoom(factor):
    planes = np.random.default_rng(1).integers(0, 256, (6, S, S), dtype=np.uint8)
    planes[0] = 255
    planes[1] = 0
    ours = C.zoom_cubic_noprefilter_u8(planes, factor)
    for p, o in zip(planes, ours):
        assert np.array_equal(o, zoom(p, factor, prefilter=False))


@pytest.mark.parametrize("angle", [-9.0, -0.84, 0.0, 3.3, 17.5])
def test_rotation_restatement_is_scipy_rotate(angle):
    planes = (np.random.default_rng(2).random((4, S, S)) * 255).astype(np.float32) / 255
    coeff = np.stack([spline_filter(p, 3, output=np.float64, mode="constant") for p in planes])
    cols = np.ascontiguousarray(coeff.reshape(4, -1).T)
    ours = C.rotate_cubic_f32(cols, S, angle).T.reshape(4, S, S)
    for p, o in zip(planes, ours):
        assert np.array_equal(o, rotate(p, angle, reshape=False))


def test_numpy1_bilinear_outside_corners():
    """The float32 sampler where corners fall outside (a float64 half-sum, then float64 on)."""
    img = (np.random.default_rng(6).random((1, S, S, 3)) * 255).astype(np.float32)
    pts = np.random.default_rng(7).uniform(-1.5, S + 0.5, (1, 3000, 2))
    pts[0, :4] = [[-0.25, 3.5], [31.5, 31.5], [10.0, 31.75], [-0.9, -0.9]]
    ours = C._bilinear32_numpy1(img, pts[..., 0], pts[..., 1])[0]
    ref = np.array([ref_bilinear(img[0], p, True) for p in pts[0]]).astype(np.float32)
    assert np.array_equal(ours, ref)
    ours64 = C._bilinear64(img.astype(np.uint8), pts[..., 0], pts[..., 1])[0]
    ref64 = np.array([ref_bilinear(img[0].astype(np.uint8), p, False) for p in pts[0]])
    assert np.array_equal(ours64, ref64)


def test_fourier_noise_batched_equals_single():
    u = np.random.default_rng(3).random((5, S, S // 2))
    power = ref_power("blue")
    batched = C._fourier_noise(u, C._radius_table(S))
    assert np.array_equal(C._radius_table(S), power)
    assert np.array_equal(C._brown_power(S), ref_power("brown"))
    for k in range(5):
        assert np.array_equal(batched[k], ref_spectrum_noise(u[k], power))


# ----------------------------------------------------------------------------------------------
# severities


# Mean absolute difference from the clean image, per severity, on 48 synthetic images with the
# same generator seed at every severity. Documented non-monotone: none at CIFAR size with these
# draws (see the report); the test pins that the mean difference grows with severity.
@pytest.mark.parametrize("name", NAMES)
def test_severity_grows(name):
    x = np.stack(list(synthetic_images(48, seed=9)))
    mad = [np.abs(C.CBAR_CORRUPTIONS[name](x, s, np.random.default_rng(4)).astype(int) - x).mean() for s in range(1, 6)]
    assert all(b > a for a, b in zip(mad, mad[1:])), (name, mad)


# ----------------------------------------------------------------------------------------------
# draws and seeding


def test_draw_shapes_and_ranges():
    n = 7
    for name in C.CBAR_DRAWS:
        d = draws_for(name, n, seed=1, severity=5)
        for key, v in d.items():
            assert np.asarray(v).shape[0] == n, (name, key)
    d = draws_for("inverse_sparkles", 5000, seed=2)
    assert d["rays"].min() >= 50 and d["rays"].max() <= 199
    perm = draws_for("transverse_chromatic_abberation", 6000, seed=3)["perm"]
    assert np.array_equal(np.sort(perm, axis=1), np.tile(np.arange(3), (6000, 1)))
    counts = np.unique(perm, axis=0, return_counts=True)[1]
    assert len(counts) == 6 and counts.min() > 850  # about uniform over the 6 permutations
    signs = draws_for("pinch_and_twirl", 4000, seed=4)["signs"]
    assert set(np.unique(signs)) == {0, 1} and abs(signs.mean() - 0.5) < 0.02
    assert draws_for("lines", 3, seed=5, severity=5)["lines"].shape == (3, 8, 3)


def test_empty_batch():
    x = np.zeros((0, S, S, 3), np.uint8)
    for name, fn in C.CBAR_CORRUPTIONS.items():
        y = fn(x, 5, np.random.default_rng(0))
        assert y.shape == x.shape and y.dtype == np.uint8, name


def test_generator_draws_are_reproducible(imgs):
    for name in C.CBAR_DRAWS:
        a = C.CBAR_CORRUPTIONS[name](imgs, 3, np.random.default_rng(8))
        b = C.CBAR_CORRUPTIONS[name](imgs, 3, np.random.default_rng(8))
        assert np.array_equal(a, b), name


def _build_keys_cbar() -> bool:
    """Whether the committed builder can seed a C-bar cell (build.cell_rng keyed by the index in
    functions.ALL_CORRUPTIONS, the 19 of -C, cannot)."""
    try:
        if hasattr(build, "cell_rng"):
            build.cell_rng(0, NAMES[0], 1, 0)
        return True
    except (ValueError, KeyError):
        return False


needs_keyed_builder = pytest.mark.xfail(
    not _build_keys_cbar(), raises=ValueError, strict=True,
    reason="build.cell_rng keys cells by ALL_CORRUPTIONS.index(name); C-bar names need a key by name",
)


@needs_keyed_builder
def test_build_c_set_layout_and_seeding(tmp_path):
    x = np.stack(list(synthetic_images(12, seed=2)))
    y = np.arange(12) % 10
    names = ["lines", "ripple", "circular_motion_blur"]
    info = build_c_set(x, y, tmp_path / "a", names=names, severities=(1, 3, 5), seed=7)
    out = tmp_path / "a"
    assert is_complete(out, deep=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["names"] == names and manifest["severities"] == [1, 3, 5]
    for name in names:
        arr = np.load(out / f"{name}.npy")
        assert arr.shape == (36, S, S, 3) and arr.dtype == np.uint8
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(y, 3))
    assert (out / "contact_sheet.png").is_file()
    # severity blocks are the corruption at that severity; deterministic ones need no seed
    arr = np.load(out / "circular_motion_blur.npy")
    assert np.array_equal(arr[24:], C.circular_motion_blur(x, 5))
    # same seed, subset or reordered names: same bytes; another seed: other bytes
    build_c_set(x, y, tmp_path / "b", names=["ripple"], severities=(1, 3, 5), seed=7)
    assert np.array_equal(np.load(tmp_path / "b" / "ripple.npy"), np.load(out / "ripple.npy"))
    build_c_set(x, y, tmp_path / "c", names=["ripple"], severities=(1, 3, 5), seed=8)
    assert not np.array_equal(np.load(tmp_path / "c" / "ripple.npy"), np.load(out / "ripple.npy"))
    assert info["n_images"] == 12


def test_per_image_keys_make_draws_batch_independent():
    """With per-image keys (what the keyed builder passes), an image's output does not depend on
    the batch it is corrupted in."""
    draws_mod = pytest.importorskip("augmix.corruptions.draws")
    if not hasattr(draws_mod, "corruption_keys"):
        pytest.skip("corruptions.draws has no per-image keys")
    x = np.stack(list(synthetic_images(10, seed=4)))
    for name in C.CBAR_DRAWS:
        whole = C.CBAR_CORRUPTIONS[name](x, 4, draws_mod.corruption_keys(7, name, 4, range(10)))
        head = C.CBAR_CORRUPTIONS[name](x[:3], 4, draws_mod.corruption_keys(7, name, 4, range(3)))
        tail = C.CBAR_CORRUPTIONS[name](x[3:], 4, draws_mod.corruption_keys(7, name, 4, range(3, 10)))
        assert np.array_equal(whole, np.concatenate([head, tail])), name
