"""Successor augmentations: RandAugment / TrivialAugment wide against torchvision (PIL backend),
PRIME's primitives against their definitions, PixMix's mixing against the reference's loop, the
procedural fractals; draw distributions; batch independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from augmix import rng as R
from augmix.errors import ConfigError
from augmix.successors import fractals, pixmix, prime, tvops
from augmix.successors import randaugment as RA
from augmix.successors._common import beta_ab, normal

P_MIN = 1e-3  # p-value floor of the distribution tests (fixed seeds: deterministic outcomes)


def smooth_batch(n: int, size: int = 32, seed: int = 0, width: int | None = None) -> torch.Tensor:
    g = np.random.default_rng(seed)
    w = width or size
    yy, xx = np.mgrid[0:size, 0:w] / max(size, w)
    f = g.uniform(0.5, 3.0, (n, 3, 1, 1))
    ph = g.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    img = 0.5 + 0.25 * np.sin(2 * np.pi * f * xx + ph) + 0.25 * np.cos(2 * np.pi * f * yy - ph)
    img = img * g.uniform(120, 255, (n, 1, 1, 1)) + g.normal(0, 3, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def noise_batch(n: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8))


def keys(n: int, seed: int = 0, epoch: int = 0) -> R.SampleKeys:
    return R.SampleKeys.arange(seed, epoch, n)


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).numpy())


def from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


TV_CLASSES = {"randaugment": v2.RandAugment, "trivialaugment_wide": v2.TrivialAugmentWide,
              "autoaugment": v2.AutoAugment}  # fmt: skip


def torchvision_op(space: str, img: torch.Tensor, name: str, magnitude: float, fill=None) -> torch.Tensor:
    """torchvision's own op dispatch on a PIL image (its default nearest interpolation)."""
    tr = TV_CLASSES[space](fill=fill)
    out = tr._apply_image_or_video_transform(to_pil(img), tvops.TORCHVISION_NAMES[name], magnitude,
                                             interpolation=InterpolationMode.NEAREST, fill=tr._fill)  # fmt: skip
    return from_pil(out)


# --------------------------------------------------------------------------- torchvision ops


@pytest.mark.parametrize("space", ["randaugment", "trivialaugment_wide", "autoaugment"])
def test_every_op_and_bin_equals_torchvision_pil(space):
    """Exact: every op at every magnitude bin (both signs) on noise and smooth images."""
    x = torch.cat([noise_batch(2), smooth_batch(2)])
    num_bins = 10 if space == "autoaugment" else 31
    assert set(tvops.SPACES[space]) == {n for n, t in tvops.TORCHVISION_NAMES.items()
                                        if t in TV_CLASSES[space]._AUGMENTATION_SPACE}  # fmt: skip
    for name in tvops.SPACES[space]:
        table = tvops.magnitude_table(space, name, num_bins, 32, 32)
        tv_fn, tv_signed = TV_CLASSES[space]._AUGMENTATION_SPACE[tvops.TORCHVISION_NAMES[name]]
        tv_table = tv_fn(num_bins, 32, 32)
        assert tvops.signed(space, name) == tv_signed
        if table is None:
            assert tv_table is None
            mags = [0.0]
        else:
            assert torch.equal(table, tv_table.double())
            mags = sorted({s * float(v) for v in table for s in ((1, -1) if tv_signed else (1,))})
        for m in mags:
            ours = tvops.TV_OPS[name](x, torch.full((len(x),), m, dtype=torch.float64))
            for i in range(len(x)):
                assert torch.equal(ours[i], torchvision_op(space, x[i], name, m)), (name, m, i)


@pytest.mark.parametrize("shape", [(37, 45), (45, 37), (224, 224)])
def test_geometric_ops_exact_on_other_sizes_and_fills(shape):
    """Non-square images (no transpose fast path at 90 degrees) and a per-channel fill."""
    h, w = shape
    x = noise_batch(2, h, w, seed=h)
    fill = (10, 200, 30)
    for name in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        table = tvops.magnitude_table("trivialaugment_wide", name, 31, h, w)
        step = 10 if h * w > 10000 else 3  # fewer bins at 224 px keep the test quick
        for m in [float(v) * s for v in table[::step] for s in (1, -1)] + [90.0, -90.0]:
            ours = tvops.TV_OPS[name](x, torch.full((2,), m, dtype=torch.float64), fill=fill)
            for i in range(2):
                ref = torchvision_op("trivialaugment_wide", x[i], name, m, fill=list(fill))
                assert torch.equal(ours[i], ref), (shape, name, m)


def test_per_image_magnitudes_in_one_call():
    """One call with a different magnitude per image equals per-image calls."""
    x = noise_batch(8)
    mags = torch.tensor([0.0, 3.5, -3.5, 12.0, -27.0, 90.0, -90.0, 135.0], dtype=torch.float64)
    for name in ("rotate", "shear_x", "translate_y", "brightness", "solarize"):
        m = mags / 100 if name in ("shear_x", "brightness", "solarize") else mags
        m = m.abs() if name == "solarize" else m
        out = tvops.TV_OPS[name](x, m)
        for i in range(len(x)):
            assert torch.equal(out[i], tvops.TV_OPS[name](x[i : i + 1], m[i : i + 1])[0]), (name, i)


def _replay_torchvision_draws(transform, seed: int, height: int, width: int):
    """Consume the global torch generator exactly as torchvision's RandAugment /
    TrivialAugmentWide.forward do, and return the draws as PolicyDraws rows."""
    inv = {t: n for n, t in tvops.TORCHVISION_NAMES.items()}
    space = transform._AUGMENTATION_SPACE
    names = list(space)
    torch.manual_seed(seed)
    ops, bins, negs = [], [], []
    steps = transform.num_ops if isinstance(transform, v2.RandAugment) else 1
    for _ in range(steps):
        name = names[int(torch.randint(len(names), ()))]
        fn, signed = space[name]
        bin_, neg = 0, False
        if fn(transform.num_magnitude_bins, height, width) is not None:
            if isinstance(transform, v2.RandAugment):
                bin_ = transform.magnitude
            else:
                bin_ = int(torch.randint(transform.num_magnitude_bins, ()))
            neg = bool(signed and torch.rand(()) <= 0.5)
        ops.append(names.index(name))
        bins.append(bin_)
        negs.append(neg)
    return [inv[n] for n in names], ops, bins, negs


@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment_wide"])
def test_whole_transform_equals_torchvision_with_its_own_draws(kind):
    """Exact: torchvision's draws replayed into our batched application, 40 images at once."""
    x = smooth_batch(40, seed=3)
    transform = v2.RandAugment() if kind == "randaugment" else v2.TrivialAugmentWide()
    rows, expected = [], []
    for i in range(len(x)):
        names, ops, bins, negs = _replay_torchvision_draws(transform, 1000 + i, 32, 32)
        rows.append((ops, bins, negs))
        torch.manual_seed(1000 + i)
        expected.append(from_pil(transform(to_pil(x[i]))))
    assert tuple(names) == (RA.RANDAUGMENT_OPS if kind == "randaugment" else RA.TRIVIALAUGMENT_OPS)
    draws = RA.PolicyDraws(
        op=torch.tensor([r[0] for r in rows]), bin=torch.tensor([r[1] for r in rows]),
        negate=torch.tensor([r[2] for r in rows]), apply=torch.ones(len(x), len(rows[0][0]), dtype=torch.bool),
    )  # fmt: skip
    out = RA.apply_policy(x, draws, names, space=kind, num_bins=31)
    assert torch.equal(out, torch.stack(expected))


def test_randaugment_draws_are_uniform_and_signs_fair():
    k = keys(30000)
    d = RA.randaugment_draws(k, num_ops=2, magnitude=9, num_bins=31, n_ops=14)
    counts = torch.bincount(d.op.flatten(), minlength=14).numpy()
    assert stats.chisquare(counts).pvalue > P_MIN
    assert (d.bin == 9).all()
    neg = int(d.negate.sum())
    assert stats.binomtest(neg, d.negate.numel(), 0.5).pvalue > P_MIN
    # the two slots are independent: the joint op table is uniform over 14 x 14
    joint = torch.bincount(d.op[:, 0] * 14 + d.op[:, 1], minlength=196).numpy()
    assert stats.chisquare(joint).pvalue > P_MIN


def test_trivialaugment_draws_uniform_over_ops_and_bins():
    k = keys(30000, seed=5)
    d = RA.trivialaugment_draws(k, num_bins=31, n_ops=14)
    assert stats.chisquare(torch.bincount(d.op.flatten(), minlength=14).numpy()).pvalue > P_MIN
    assert stats.chisquare(torch.bincount(d.bin.flatten(), minlength=31).numpy()).pvalue > P_MIN
    assert abs(stats.pearsonr(d.op.flatten().numpy(), d.bin.flatten().numpy())[0]) < 0.03


@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment_wide"])
def test_batched_equal_in_distribution_to_torchvision_per_image(kind):
    """End to end: per-image torchvision (global generator) versus our keyed batch on the same
    images; two-sample KS on each image's mean absolute change and on its output mean."""
    n = 800
    x = smooth_batch(n, seed=11)
    transform = v2.RandAugment() if kind == "randaugment" else v2.TrivialAugmentWide()
    torch.manual_seed(0)
    ref = torch.stack([from_pil(transform(to_pil(img))) for img in x])
    fn = RA.randaugment_batch if kind == "randaugment" else RA.trivialaugment_batch
    ours = fn(x, keys(n, seed=21))
    for stat in (lambda y: (y.float() - x.float()).abs().mean((1, 2, 3)), lambda y: y.float().mean((1, 2, 3))):
        assert stats.ks_2samp(stat(ref).numpy(), stat(ours).numpy()).pvalue > P_MIN


@pytest.mark.parametrize("fn", [RA.randaugment_batch, RA.trivialaugment_batch])
def test_batch_independence_and_determinism(fn):
    x = smooth_batch(24, seed=2)
    k = keys(24, seed=3)
    out = fn(x, k)
    assert torch.equal(out, fn(x, k))
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fn(x[perm], k.subset(perm)), out[perm])
    for i in (0, 7, 23):
        assert torch.equal(fn(x[i : i + 1], k.subset(slice(i, i + 1)))[0], out[i])
    assert not torch.equal(out, fn(x, keys(24, seed=3, epoch=1)))


def test_no_overlap_sets_drop_exactly_the_overlapping_ops():
    assert set(RA.OVERLAPPING_OPS) == {"brightness", "color", "contrast", "sharpness"}
    for full, cut in ((RA.RANDAUGMENT_OPS, RA.RANDAUGMENT_NO_OVERLAP_OPS),
                      (RA.TRIVIALAUGMENT_OPS, RA.TRIVIALAUGMENT_NO_OVERLAP_OPS)):  # fmt: skip
        assert set(full) - set(cut) == set(RA.OVERLAPPING_OPS) and set(cut) < set(full)
    for op in RA.OVERLAPPING_OPS:  # each removal is explained in the module's table
        assert f"| {op} |" in RA.__doc__
    x = smooth_batch(16)
    out = RA.randaugment_batch(x, keys(16), ops=RA.RANDAUGMENT_NO_OVERLAP_OPS)
    assert out.shape == x.shape and out.dtype == torch.uint8
    with pytest.raises(KeyError):
        RA.randaugment_batch(x, keys(16), ops=("blur",))


def test_identity_only_and_magnitude_zero_leave_images_unchanged():
    x = smooth_batch(8)
    assert torch.equal(RA.randaugment_batch(x, keys(8), ops=("identity",)), x)
    geometric = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
    assert torch.equal(RA.randaugment_batch(x, keys(8), magnitude=0, ops=geometric), x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_randaugment_cuda_equals_cpu():
    x = smooth_batch(64)
    for fn in (RA.randaugment_batch, RA.trivialaugment_batch):
        cpu = fn(x, keys(64))
        gpu = fn(x.cuda(), keys(64).to("cuda"))
        assert torch.equal(gpu.cpu(), cpu)


# --------------------------------------------------------------------------- draws helpers


def test_normal_and_beta_helpers_have_their_distributions():
    k = keys(20000, seed=9)
    z = normal(k, "z", (3,)).flatten().double().numpy()
    assert stats.kstest(z, "norm").pvalue > P_MIN
    for a, b in ((3.0, 1.0), (1.0, 3.0), (0.5, 0.5), (2.0, 5.0)):
        v = beta_ab(k, f"b{a}{b}", a, b).numpy()
        assert stats.kstest(v, "beta", args=(a, b)).pvalue > P_MIN, (a, b)


# --------------------------------------------------------------------------- PRIME


def _field_by_definition(coeff: np.ndarray, cut: int, n: int) -> np.ndarray:
    """sum_{i,j} C_ij e_ij sin(pi x_x i) sin(pi x_y j), written as the sum it is (float64)."""
    g = coeff.shape[0]
    x = np.linspace(0, 1, n)
    out = np.zeros((n, n))
    for i in range(1, g + 1):
        for j in range(1, g + 1):
            r = math.hypot(i, j)
            if r < cut + 0.5:
                out += coeff[i - 1, j - 1] / r * np.outer(np.sin(np.pi * x * j), np.sin(np.pi * x * i))
    return out  # [y, x]


def _remap_by_definition(img: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    c, n, _ = img.shape
    out = np.zeros_like(img)
    for yi in range(n):
        for xi in range(n):
            xs = min(max(xi - dx[yi, xi], 0), n - 1)
            ys = min(max(yi - dy[yi, xi], 0), n - 1)
            x0, y0, x1, y1 = math.floor(xs), math.floor(ys), math.ceil(xs), math.ceil(ys)
            fx, fy = xs - x0, ys - y0
            out[:, yi, xi] = ((1 - fy) * (1 - fx) * img[:, y0, x0] + (1 - fy) * fx * img[:, y0, x1]
                              + fy * (1 - fx) * img[:, y1, x0] + fy * fx * img[:, y1, x1])  # fmt: skip
    return out


def test_prime_diffeo_matches_its_definition_on_injected_draws():
    n = 16
    x = smooth_batch(3, n).float() / 255
    g = np.random.default_rng(0)
    cuts = torch.tensor([2, 5, 9])
    coeff = torch.from_numpy(g.normal(size=(3, 2, 12, 12))).float()
    t1, t2 = prime.temperature_range(n, cuts)
    temp = (t1 + 0.7 * (t2 - t1)).float()
    fields = prime.scalar_fields(coeff, prime.mode_energies(cuts, 12), n)
    out = prime.diffeo_apply(x, fields, temp)
    for i in range(3):
        u = _field_by_definition(coeff[i, 0].double().numpy(), int(cuts[i]), n)
        v = _field_by_definition(coeff[i, 1].double().numpy(), int(cuts[i]), n)
        assert np.allclose(fields[i, 0].numpy(), u, atol=1e-4) and np.allclose(fields[i, 1].numpy(), v, atol=1e-4)
        scale = math.sqrt(float(temp[i])) * n
        ref = _remap_by_definition(x[i].double().numpy(), scale * u, scale * v)
        assert np.abs(out[i].numpy() - ref).max() < 1e-4  # float32 fields versus float64
    # one field shared by all rows (the reference's per-call field) equals it given per row
    shared = prime.diffeo_apply(x, fields[:1], temp[:1])
    assert torch.equal(shared, prime.diffeo_apply(x, fields[:1].expand(3, -1, -1, -1), temp[:1].expand(3)))
    # zero temperature: no displacement, the image comes back bit for bit
    assert torch.equal(prime.diffeo_apply(x, fields, torch.zeros(3)), x)
    # temperature_range as utils/diffeomorphism.py states it (cut + 1e-6 inside the logs)
    c = 5 + 1e-6
    assert math.isclose(float(t1[1]), 1 / (math.pi * n**2 * math.log(c)))
    assert math.isclose(float(t2[1]), 4 / (math.pi**3 * c**2 * math.log(c)))


def test_prime_color_matches_its_definition():
    x = smooth_batch(4, 16).float() / 255
    g = np.random.default_rng(1)
    coeff = torch.from_numpy(g.normal(0, 0.1, (4, 3, 100))).float()
    coeff[1, :, 37:] = 0  # a row with cut 37
    coeff[3] = 0  # and one with no coefficients at all
    out = prime.smooth_color_apply(x, coeff)
    xd = x.double().numpy()
    k = np.arange(1, 101)
    ref = xd + np.einsum("bck,bchwk->bchw", coeff.double().numpy(), np.sin(xd[..., None] * k * np.pi))
    assert np.abs(out.numpy() - np.clip(ref, 0, 1)).max() < 2e-4  # stated: recurrence in float32
    assert torch.equal(out[3], x[3])


def test_prime_filter_matches_its_definition_and_the_off_centre_delta():
    x = smooth_batch(3, 12).float() / 255
    g = np.random.default_rng(2)
    kern = torch.from_numpy(g.normal(0, 1, (3, 3, 3))).float()
    out = prime.filter_apply(x, kern)
    pad = np.pad(x.double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros(x.shape)
    for i in range(3):
        for a in range(3):
            for b in range(3):
                ref[i] += kern[i, a, b].item() * pad[i, :, a : a + 12, b : b + 12]
    assert np.abs(out.numpy() - np.clip(ref, 0, 1)).max() < 1e-6
    # The reference's delta (sigma = 0): index ceil(3/2) = 2, a shift by one pixel up and left
    shifted = prime.filter_apply(x, prime.filter_delta(3, centre=False).expand(3, 3, 3))
    assert torch.equal(shifted[..., :-1, :-1], x[..., 1:, 1:])
    assert (shifted[..., -1, :] == 0).all() and (shifted[..., :, -1] == 0).all()
    assert torch.equal(prime.filter_apply(x, prime.filter_delta(3, centre=True).expand(3, 3, 3)), x)


def test_prime_draw_distributions():
    cfg = prime.PrimeConfig()
    k = keys(40000, seed=4)
    n = 32
    d = prime.diffeo_params(k, "d", cfg, n)
    # reference: cutmax ~ U{3..100}, cut = int(Beta(1/2, 1/2) (cutmax - 1) + 2); simulated with NumPy
    g = np.random.default_rng(0)
    top = g.integers(3, 101, 200000)
    ref_cut = (g.beta(0.5, 0.5, 200000) * (top + 1 - 2) + 2).astype(int)
    ours = d["cut"].numpy()
    bins = np.arange(2, 102)
    h_ours, _ = np.histogram(ours, bins)
    h_ref, _ = np.histogram(ref_cut, bins)
    keep = h_ref > 0
    chi = stats.chisquare(h_ours[keep], h_ref[keep] / h_ref[keep].sum() * h_ours[keep].sum())
    assert chi.pvalue > P_MIN and ours.min() >= 2 and ours.max() <= 100
    t1, t2 = prime.temperature_range(n, d["cut"])
    wide = t2 > t1  # elsewhere T2 = max(T1, T2) = T1 and T is T1 itself
    assert torch.equal(d["T"][~wide], t1[~wide]) and wide.float().mean() > 0.5
    frac = ((d["T"] - t1) / (t2 - t1))[wide].numpy()
    assert stats.kstest(frac, "beta", args=(0.5, 0.5)).pvalue > P_MIN
    c = prime.color_params(k, "c", cfg)
    assert stats.chisquare(torch.bincount(c["cut"] - 1, minlength=100).numpy()).pvalue > P_MIN
    assert stats.kstest(c["T"].numpy() / cfg.color_t, "uniform").pvalue > P_MIN
    s = prime.filter_params(k, "f", cfg)["sigma"].numpy()
    assert stats.kstest(s / cfg.filter_sigma, "uniform").pvalue > P_MIN


def test_prime_views_layout_and_mixing():
    x = smooth_batch(12)
    k = keys(12)
    v = prime.prime_views(x, k, jsd=True)
    assert v.shape == (36, 3, 32, 32) and v.dtype == torch.float32
    assert torch.equal(v[:12], x.float() / 255)
    assert not torch.allclose(v[12:24], v[24:36])
    assert (v >= 0).all() and (v <= 1).all()
    one = prime.prime_views(x, k, jsd=False)
    assert one.shape == (12, 3, 32, 32) and torch.equal(one, v[12:24])  # view 0 is the same draw
    # Only an identity primitive (a centred delta filter with sigma 0): every chain returns its
    # input, so the convex mix (1 - m) x + m sum_i w_i x gives x back up to float32 rounding.
    same = prime.prime_views(x, k, jsd=False, transforms=("filter",), filter_sigma=0.0, filter_centre=True)
    assert (same - x.float() / 255).abs().max() < 1e-6


def test_prime_per_sample_draws_are_batch_independent_shared_are_not():
    x = smooth_batch(10, seed=4)
    k = keys(10, seed=1)
    out = prime.prime_views(x, k, jsd=False, shared_draws=False)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    permuted = prime.prime_views(x[perm], k.subset(perm), jsd=False, shared_draws=False)
    assert torch.allclose(permuted, out[perm], atol=1e-6)
    one = prime.prime_views(x[3:4], k.subset(slice(3, 4)), jsd=False, shared_draws=False)
    assert torch.allclose(one[0], out[3], atol=1e-6)
    shared = prime.prime_views(x, k, jsd=False)  # reference quirk: depends on the first key
    assert not torch.allclose(prime.prime_views(x[perm], k.subset(perm), jsd=False), shared[perm], atol=1e-6)


def test_prime_rejects_bad_config():
    x = smooth_batch(2)
    with pytest.raises(KeyError):
        prime.prime_views(x, keys(2), jsd=False, transforms=("blur",))
    with pytest.raises(ValueError):
        prime.prime_views(x, keys(2), jsd=False, depth=4)
    with pytest.raises(ConfigError, match="no_such_knob"):
        prime.prime_views(x, keys(2), jsd=False, no_such_knob=1)


# --------------------------------------------------------------------------- PixMix


def _pixmix_by_the_reference_loop(x, copies, pics, d, i):
    """One image through cifar.py's `pixmix` loop with the given draws (scalars, float32)."""
    orig = x[i].float() / 255
    aug = copies[i].float() / 255
    mixed = aug[0] if d.start_aug[i] else orig
    for r in range(int(d.rounds[i])):
        partner = aug[r + 1] if d.partner_aug[i, r] else pics[i].float() / 255
        a, b = np.float32(d.a[i, r]), np.float32(d.b[i, r])
        if d.mixing[i, r] == 0:  # pixmix_utils.add
            out = (a * (mixed * 2 - 1) + b * (partner * 2 - 1) + 1) / 2
        else:  # pixmix_utils.multiply
            out = ((mixed * 2) ** float(a)) * ((partner * 2).clip(1e-37) ** float(b)) / 2
        mixed = torch.clip(out, 0, 1)
    return mixed


def test_pixmix_mixing_arithmetic_on_injected_draws():
    n, k = 64, 4
    x = smooth_batch(n, seed=5)
    copies = torch.stack([smooth_batch(k + 1, seed=100 + i) for i in range(n)])
    pics = noise_batch(n, seed=6)
    d = pixmix.pixmix_draws(keys(n, seed=7), k=k, beta=3.0, severity=3.0, n_ops=13, n_pictures=1, crop_room=(0, 0))
    out = pixmix.pixmix_apply(x, copies, pics, d)
    add_only = (d.mixing[:, :] == 0) | (torch.arange(k) >= d.rounds[:, None])
    for i in range(n):
        ref = _pixmix_by_the_reference_loop(x, copies, pics, d, i)
        if add_only[i].all():
            assert torch.equal(out[i], ref), i  # the same float32 operations
        else:  # pow with a per-image tensor exponent may differ from the scalar pow by an ulp
            assert (out[i] - ref).abs().max() < 1e-6, i
    assert add_only.all(1).any() and not add_only.all(1).all()
    # the two mixings against their formulas
    u, w = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    a, b = torch.tensor(0.7), torch.tensor(-0.4)
    assert torch.allclose(pixmix.mix_add(u, w, a, b), (0.7 * (2 * u - 1) - 0.4 * (2 * w - 1) + 1) / 2, atol=1e-6)
    assert torch.allclose(pixmix.mix_multiply(u, w, a, b), (2 * u) ** 0.7 * (2 * w).clamp_min(1e-37) ** -0.4 / 2)


def test_pixmix_draw_distributions():
    n, k, beta = 40000, 4, 3.0
    d = pixmix.pixmix_draws(keys(n, seed=8), k=k, beta=beta, severity=3.0, n_ops=13, n_pictures=7, crop_room=(4, 4))
    assert stats.chisquare(torch.bincount(d.rounds, minlength=k + 1).numpy()).pvalue > P_MIN
    assert stats.chisquare(torch.bincount(d.picture, minlength=7).numpy()).pvalue > P_MIN
    assert stats.chisquare(torch.bincount(d.aug_op.flatten(), minlength=13).numpy()).pvalue > P_MIN
    assert stats.chisquare(torch.bincount(d.crop.flatten(), minlength=5).numpy()).pvalue > P_MIN
    for flags in (d.start_aug, d.partner_aug, d.mixing == 1):
        assert stats.binomtest(int(flags.sum()), flags.numel(), 0.5).pvalue > P_MIN
    first = d.b.flatten() > 0  # get_ab's first branch has b > 0, the second b < 0
    assert stats.binomtest(int(first.sum()), first.numel(), 0.5).pvalue > P_MIN
    a, b = d.a.flatten().double().numpy(), d.b.flatten().double().numpy()
    f = first.numpy()
    assert stats.kstest(a[f], "beta", args=(beta, 1)).pvalue > P_MIN
    assert stats.kstest(b[f], "beta", args=(1, beta)).pvalue > P_MIN
    assert stats.kstest(a[~f] - 1, "beta", args=(1, beta)).pvalue > P_MIN
    assert stats.kstest(-b[~f], "beta", args=(1, beta)).pvalue > P_MIN
    lv = d.aug_level.flatten().numpy()
    assert stats.kstest((lv - 0.1) / 2.9, "uniform").pvalue > P_MIN


def test_pixmix_batch_pictures_crops_and_independence():
    x = smooth_batch(16, seed=9)
    mixing_set = noise_batch(5, 36, 36, seed=10)
    k = keys(16, seed=2)
    out = pixmix.pixmix_batch(x, k, mixing_set)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    assert (out >= 0).all() and (out <= 1).all()
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(pixmix.pixmix_batch(x[perm], k.subset(perm), mixing_set), out[perm], atol=1e-6)
    d = pixmix.pixmix_draws(k, k=4, beta=3.0, severity=3.0, n_ops=13, n_pictures=5, crop_room=(4, 4))
    pics = pixmix._pictures(mixing_set, d, (32, 32))
    for i in range(16):
        t, left = d.crop[i].tolist()
        assert torch.equal(pics[i], mixing_set[d.picture[i], :, t : t + 32, left : left + 32])
    # identity op and no mixing rounds: k = 0 and an identity-only op list give x back
    same = pixmix.pixmix_batch(x, k, mixing_set, k=0, ops=("identity",))
    assert torch.equal(same, x.float() / 255)
    with pytest.raises(ValueError):
        pixmix.pixmix_batch(x, k, noise_batch(2, 16, 16))


# --------------------------------------------------------------------------- fractals


def test_fractals_are_seeded_procedural_pictures():
    pics = fractals.generate_fractals(12, 32, seed=3)
    assert pics.shape == (12, 32, 32, 3) and pics.dtype == np.uint8
    assert np.array_equal(fractals.generate_fractals(5, 32, seed=3), pics[:5])  # picture i alone
    assert not np.array_equal(fractals.generate_fractals(12, 32, seed=4), pics)
    lit = (pics.max(-1) > 0).mean((1, 2))
    assert (lit >= fractals.MIN_COVER).mean() >= 0.9 and (lit < 0.95).all()  # shapes, not floods
    assert len({p.tobytes() for p in pics}) == 12
    assert "NOT the PixMix paper's mixing set" in fractals.generate_fractals.__doc__


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prime_and_pixmix_cuda_match_cpu():
    """Same keys, same draws: CUDA equals CPU up to float32 rounding of the transcendental and
    matmul kernels (PRIME) and pow (PixMix); shapes and ranges alike."""
    x = smooth_batch(32, seed=12)
    k = keys(32, seed=13)
    for shared in (True, False):
        cpu = prime.prime_views(x, k, jsd=True, shared_draws=shared)
        gpu = prime.prime_views(x.cuda(), k.to("cuda"), jsd=True, shared_draws=shared).cpu()
        assert (cpu - gpu).abs().max() < 1e-3
    mixing_set = noise_batch(5, 36, 36, seed=14)
    cpu = pixmix.pixmix_batch(x, k, mixing_set)
    gpu = pixmix.pixmix_batch(x.cuda(), k.to("cuda"), mixing_set.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-4
