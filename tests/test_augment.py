"""AugMix mixing: draws, determinism, batch independence, algebra, PIL-vs-batched parity."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from augmix import augment, memory, ops
from augmix import rng as R
from augmix.augment import (
    _apply_group,
    _run_chains,
    augment_and_mix_pil,
    augmix_batch,
    base_transform_batch,
    make_views,
    sample_draws,
)
from augmix.config import METHOD_PARAMS
from augmix.rng import SampleKeys
from augmix.training_methods import _augmix_kwargs

SIZE = 32


def smooth_batch(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = g.uniform(0.5, 3.0, (n, 3, 1, 1))
    ph = g.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    img = 0.5 + 0.25 * np.sin(2 * np.pi * f * xx + ph) + 0.25 * np.cos(2 * np.pi * f * yy - ph)
    img = img * g.uniform(120, 255, (n, 1, 1, 1)) + g.normal(0, 3, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def keys(n: int, seed: int = 0, epoch: int = 0, start: int = 0) -> R.SampleKeys:
    return R.SampleKeys.arange(seed, epoch, n, start)


# --------------------------------------------------------------------------- rng


def test_rng_depends_only_on_key_and_stream():
    k = keys(64)
    u = R.uniform(k, "a", (5,))
    assert torch.equal(u, R.uniform(k, "a", (5,)))
    assert not torch.equal(u, R.uniform(k, "b", (5,)))
    assert not torch.equal(u, R.uniform(keys(64, epoch=1), "a", (5,)))
    assert not torch.equal(u, R.uniform(keys(64, seed=1), "a", (5,)))
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(R.uniform(k.subset(perm), "a", (5,)), u[perm])
    assert ((u > 0) & (u < 1)).all()


def test_uniform_and_gamma_distributions():
    k = keys(20000)
    u = R.uniform(k, "u", (4,)).flatten().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    for alpha in (0.3, 1.0, 2.5):
        g = R.gamma(k, f"g{alpha}", alpha).numpy()
        assert stats.kstest(g, "gamma", args=(alpha,)).pvalue > 1e-3, alpha
    b = R.beta(k, "b", 1.0).numpy()
    assert stats.kstest(b, "uniform").pvalue > 1e-3
    d = R.dirichlet(k, "d", 0.5, 3).numpy()
    np.testing.assert_allclose(d.sum(1), 1.0, rtol=1e-12)
    assert stats.kstest(d[:, 0], "beta", args=(0.5, 1.0)).pvalue > 1e-3  # marginal Beta(a, 2a)


def test_numpy_generator_is_keyed():
    a = R.numpy_generator(1, 2, 3).uniform(size=4)
    np.testing.assert_array_equal(a, R.numpy_generator(1, 2, 3).uniform(size=4))
    assert not np.array_equal(a, R.numpy_generator(1, 2, 4).uniform(size=4))
    with pytest.raises(ValueError, match="index"):
        R.numpy_generator(1, 2, -1)


# --------------------------------------------------------------------------- draws


def test_mixing_draw_distributions():
    n = 6000
    d = sample_draws(keys(n), (0, 1), severity=3, width=3, depth=-1, alpha=1.0, n_ops=9)
    assert d.depth.shape == (n, 2, 3) and d.op.shape == (n, 2, 3, 3)
    # chain depth uniform on {1, 2, 3}, independently per chain
    counts = np.bincount(d.depth.flatten().numpy(), minlength=4)[1:]
    assert counts.sum() == n * 6
    assert stats.chisquare(counts).pvalue > 1e-3
    r = np.corrcoef(d.depth[:, 0, 0].numpy(), d.depth[:, 0, 1].numpy())[0, 1]
    assert abs(r) < 0.05
    # ops uniform over the table, with replacement
    counts = np.bincount(d.op.flatten().numpy(), minlength=9)
    assert len(counts) == 9 and stats.chisquare(counts).pvalue > 1e-3
    same = (d.op[..., 0] == d.op[..., 1]).float().mean().item()
    assert same == pytest.approx(1 / 9, abs=0.01)
    # levels U(0.1, s), signs fair
    lv = d.level.flatten().numpy()
    assert lv.min() >= 0.1 and lv.max() < 3
    assert stats.kstest(lv, "uniform", args=(0.1, 2.9)).pvalue > 1e-3
    assert d.negate.float().mean().item() == pytest.approx(0.5, abs=0.01)
    # Dirichlet(1, 1, 1) weights on the simplex (marginal Beta(1, 2)); Beta(1, 1) skip weight
    w = d.weights.double()
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w[..., 0]), atol=1e-6, rtol=0)
    assert (w >= 0).all()
    assert stats.kstest(w[..., 0].flatten().numpy(), "beta", args=(1, 2)).pvalue > 1e-3
    assert stats.kstest(d.skip.flatten().numpy(), "uniform").pvalue > 1e-3
    # the two views draw independently
    assert abs(np.corrcoef(d.skip[:, 0].numpy(), d.skip[:, 1].numpy())[0, 1]) < 0.05


def test_draws_13_ops_and_fixed_depth_and_alpha():
    d = sample_draws(keys(4000), (0,), severity=3, width=2, depth=2, alpha=0.5, n_ops=13)
    assert (d.depth == 2).all() and d.op.shape[-1] == 2
    counts = np.bincount(d.op.flatten().numpy(), minlength=13)
    assert len(counts) == 13 and stats.chisquare(counts).pvalue > 1e-3
    # Beta(0.5, 0.5): U-shaped, variance 1/8
    assert d.skip.double().var().item() == pytest.approx(1 / 8, abs=0.01)


def test_bad_parameters_raise():
    x = smooth_batch(2)
    for kw in ({"severity": 0}, {"width": 0}, {"depth": 0}, {"alpha": 0.0}):
        with pytest.raises(ValueError):
            augmix_batch(x, keys(2), **kw)
    with pytest.raises(KeyError, match="unknown AugMix backend"):
        make_views(x, keys(2), jsd=True, backend="gpu")
    with pytest.raises(KeyError, match="nope"):
        augmix_batch(x, keys(2), ops=("nope",))
    with pytest.raises(ValueError, match="keys"):
        augmix_batch(x, keys(3))


# --------------------------------------------------------------------------- batched path


def test_same_keys_same_output_and_epochs_differ():
    x = smooth_batch(16)
    a = augmix_batch(x, keys(16))
    assert torch.equal(a, augmix_batch(x, keys(16)))
    assert not torch.equal(a, augmix_batch(x, keys(16, epoch=1)))
    assert a.dtype == torch.float32 and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1


def test_batch_split_does_not_change_output():
    """Different worker counts / batch compositions give the same per-sample result."""
    x = smooth_batch(24)
    full = make_views(x, keys(24), jsd=True)
    parts = [make_views(x[s:e], keys(e - s, start=s), jsd=True).reshape(3, e - s, 3, SIZE, SIZE)
             for s, e in ((0, 5), (5, 17), (17, 24))]  # fmt: skip
    torch.testing.assert_close(torch.cat(parts, 1).reshape(full.shape), full, atol=1e-6, rtol=0)
    # shuffled batch: each sample keeps its own augmentation
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(3))
    shuffled = augmix_batch(x[perm], keys(24).subset(perm))
    torch.testing.assert_close(shuffled, augmix_batch(x, keys(24))[perm], atol=1e-6, rtol=0)


def test_cpu_blocks_do_not_change_output(monkeypatch):
    """The CPU path runs in blocks of samples; any block size gives the same views."""
    x = smooth_batch(20)
    whole = make_views(x, keys(20), jsd=True, all_ops=True)
    monkeypatch.setattr(augment, "CPU_BLOCK_BYTES", 7 * 3 * 2 * 3 * SIZE * SIZE)  # 7 samples
    assert len(augment._blocks(x, 2 * 3)) == 3
    assert torch.equal(make_views(x, keys(20), jsd=True, all_ops=True), whole)


def test_shared_warp_group_matches_per_op_warps(monkeypatch):
    """On CUDA rotate and the shears share one warp per step (_op_groups); run that grouping
    on the CPU: same draws, and both warps are Pillow's bit for bit, so the chains are equal."""
    x = smooth_batch(48)
    d = sample_draws(keys(48), (0,), severity=10, width=3, depth=-1, alpha=1.0, n_ops=9)
    names = ops.op_names(False)
    per_op = _run_chains(x.repeat_interleave(3, 0), d, names)
    cuda_groups = augment._op_groups(names, torch.device("cuda"))
    assert sorted(len(g) for g in cuda_groups) == [1] * 6 + [3]
    monkeypatch.setattr(augment, "_op_groups", lambda names, device: cuda_groups)
    shared = _run_chains(x.repeat_interleave(3, 0), d, names)
    assert torch.equal(per_op, shared)


def test_allocator_tuning_applies_on_glibc():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt tuning is glibc-only (a no-op elsewhere)")
    assert memory.keep_freed_memory() is True  # both mallopt calls accepted


def test_float_input_equals_uint8_input():
    x = smooth_batch(8)
    torch.testing.assert_close(
        augmix_batch(x.float() / 255, keys(8)), augmix_batch(x, keys(8)), atol=0, rtol=0
    )


def test_make_views_layout():
    x = smooth_batch(6)
    v = make_views(x, keys(6), jsd=True)
    assert v.shape == (18, 3, SIZE, SIZE) and v.dtype == torch.float32
    torch.testing.assert_close(v[:6], x.float() / 255)  # clean first
    torch.testing.assert_close(v[6:12], augmix_batch(x, keys(6), view=0))
    torch.testing.assert_close(v[12:], augmix_batch(x, keys(6), view=1))
    assert not torch.equal(v[6:12], v[12:])  # the two AugMix views differ
    one = make_views(x, keys(6), jsd=False)
    torch.testing.assert_close(one, v[6:12])
    p = make_views(x, keys(6), jsd=True, backend="pil")
    assert p.shape == v.shape
    torch.testing.assert_close(p[:6], v[:6])


def test_identity_chain_returns_input():
    x = smooth_batch(8)
    out = augmix_batch(x, keys(8), width=1, depth=1, ops=("identity",))
    torch.testing.assert_close(out, x.float() / 255, atol=1e-6, rtol=0)
    img = Image.fromarray(x[0].permute(1, 2, 0).numpy())
    out = augment_and_mix_pil(img, np.random.default_rng(0), width=1, depth=1,
                              ops={"identity": ops.identity}, image_size=SIZE)  # fmt: skip
    torch.testing.assert_close(out, x[0].float() / 255, atol=1e-6, rtol=0)


def test_batched_output_in_convex_hull_of_parts():
    x = smooth_batch(32)
    k = keys(32)
    out = augmix_batch(x, k, all_ops=True)
    d = sample_draws(k, (0,), severity=3, width=3, depth=-1, alpha=1.0, n_ops=13)
    chains = _run_chains(x.repeat_interleave(3, 0).clone(), d, ops.op_names(True))
    parts = torch.cat([x[:, None], chains.reshape(32, 3, 3, SIZE, SIZE)], 1).float() / 255
    assert (out >= parts.amin(1) - 1e-6).all() and (out <= parts.amax(1) + 1e-6).all()
    # and it is exactly REF's formula with these draws, (1 - m) on the original
    w = d.weights[:, 0, :, None, None, None]
    m = d.skip[:, 0, None, None, None]
    expect = (1 - m) * parts[:, 0] + m * (w * parts[:, 1:]).sum(1)
    torch.testing.assert_close(out, expect, atol=2e-6, rtol=0)


def test_base_transform_batch():
    x = smooth_batch(400)
    k = keys(400)
    out = base_transform_batch(x, k)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, base_transform_batch(x, k))
    flip = R.uniform(k, "base/flip") < 0.5
    dy, dx = R.randint(k, "base/crop_y", 9), R.randint(k, "base/crop_x", 9)
    for i in range(0, 400, 37):  # per-image restatement: flip, zero-pad 4, crop at (dy, dx)
        img = x[i].flip(-1) if flip[i] else x[i]
        padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
        ref = padded[:, dy[i] : dy[i] + SIZE, dx[i] : dx[i] + SIZE]
        assert torch.equal(out[i], ref)
    assert flip.float().mean().item() == pytest.approx(0.5, abs=0.06)
    assert stats.chisquare(np.bincount(dx.numpy(), minlength=9)).pvalue > 1e-3


# --------------------------------------------------------------------------- PIL path


def restated_reference(img: Image.Image, seed: int, severity: float, fill: int = 0) -> torch.Tensor:
    """REF `aug` re-stated with its own draws, mixed in normalised space (Normalize(0.5, 0.5));
    `fill` is the fillcolor int for shear and translate (0: the committed reference)."""
    g = np.random.default_rng(seed)

    def pre(im):
        return (torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 - 0.5) / 0.5

    ws = np.float32(g.dirichlet([1.0] * 3))
    m = np.float32(g.beta(1.0, 1.0))
    mix = torch.zeros(3, SIZE, SIZE)
    names = list(ops.OPS)
    for w in ws:
        im = img.copy()
        for _ in range(g.integers(1, 4)):
            name = names[g.integers(len(names))]
            kw = {"fill": fill} if fill and name in ops.AFFINE_FILL_OPS else {}
            im = ops.OPS[name](im, severity, g, SIZE, **kw)
        mix += float(w) * pre(im)
    return (1 - float(m)) * pre(img) + float(m) * mix


def test_pil_path_matches_restated_reference():
    """augment_and_mix_pil equals REF `aug` re-stated here, mixed in normalised space."""
    x = smooth_batch(6)
    for i in range(6):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        ours = augment_and_mix_pil(img, np.random.default_rng(i), image_size=SIZE)
        torch.testing.assert_close((ours - 0.5) / 0.5, restated_reference(img, i, 3), atol=1e-6, rtol=0)


def test_pil_path_rejects_wrong_size():
    img = Image.fromarray(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="32x32"):
        augment_and_mix_pil(img, np.random.default_rng(0), image_size=SIZE)


def _summaries(v: torch.Tensor, clean: torch.Tensor) -> dict[str, np.ndarray]:
    return {
        "mean": v.mean((1, 2, 3)).numpy(),
        "std": v.std((1, 2, 3)).numpy(),
        "dist_to_clean": (v - clean).abs().mean((1, 2, 3)).numpy(),
        "dark_fraction": (v < 0.02).float().mean((1, 2, 3)).numpy(),
    }


def test_batched_and_pil_paths_same_distribution():
    """Two-sample KS tests on per-image summaries of 2 x 300 AugMix images per path."""
    n = 300
    x = smooth_batch(n, seed=7)
    k = keys(n, seed=11)
    clean = (x.float() / 255).repeat(2, 1, 1, 1)
    tensor = make_views(x, k, jsd=True)[n:]
    pil = make_views(x, k, jsd=True, backend="pil")[n:]
    a, b = _summaries(tensor, clean), _summaries(pil, clean)
    for name in a:
        assert stats.ks_2samp(a[name], b[name]).pvalue > 1e-3, name
    # the test has power: severity 10 is told apart from severity 3
    strong = make_views(x, k, jsd=True, severity=10)[n:]
    c = _summaries(strong, clean)
    assert stats.ks_2samp(a["dist_to_clean"], c["dist_to_clean"]).pvalue < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = smooth_batch(64)
    cpu = make_views(x, keys(64), jsd=True, all_ops=True)
    gpu = make_views(x.cuda(), keys(64).to("cuda"), jsd=True, all_ops=True).cpu()
    # same draws; the extra ops' float blends may round differently on the device
    assert (cpu - gpu).abs().mean() < 2e-3
    # the paper's ops (warps included, in their shared CUDA warp) give equal chains
    d = sample_draws(keys(64), (0,), severity=10, width=3, depth=-1, alpha=1.0, n_ops=9)
    names = ops.op_names(False)
    chains = _run_chains(x.repeat_interleave(3, 0), d, names)
    d_gpu = sample_draws(keys(64).to("cuda"), (0,), severity=10, width=3, depth=-1, alpha=1.0, n_ops=9)
    assert torch.equal(_run_chains(x.cuda().repeat_interleave(3, 0), d_gpu, names).cpu(), chains)
    assert torch.equal(
        base_transform_batch(x, keys(64)), base_transform_batch(x.cuda(), keys(64).to("cuda")).cpu()
    )


@pytest.mark.parametrize("jsd", [True, False])
def test_make_views_into_a_given_buffer_equals_a_fresh_one(jsd):
    x = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    keys = SampleKeys.arange(4, 1, 12)
    fresh = make_views(x, keys, jsd=jsd)
    epoch = torch.full((3 if jsd else 1, 20, 3, 32, 32), -1.0)  # an epoch buffer; fill rows 5..16
    got = make_views(x, keys, jsd=jsd, out=epoch[:, 5:17])
    assert got.data_ptr() == epoch[:, 5:17].data_ptr()
    assert torch.equal(epoch[:, 5:17].reshape(-1, 3, 32, 32), fresh)
    assert (epoch[:, :5] == -1).all() and (epoch[:, 17:] == -1).all()
    with pytest.raises(ValueError, match="out must be float32"):
        make_views(x, keys, jsd=jsd, out=torch.empty(2, 12, 3, 32, 32, dtype=torch.float64))


# --------------------------------------------------------------------------- affine fill
# The released ImageNet weights' fillcolor=128 for shear and translate (docs/reference-facts.md,
# "AugMix fill").

AFFINE = ops.AFFINE_FILL_OPS


def test_fill_leaves_non_affine_ops_and_rotate_alone():
    """Without shear/translate in the op list the fill changes nothing, on both paths."""
    x = smooth_batch(16)
    k = keys(16)
    names = ("rotate", "autocontrast", "equalize", "posterize", "solarize")
    base = augmix_batch(x, k, severity=10, ops=names)
    assert torch.equal(augmix_batch(x, k, severity=10, ops=names, affine_fill=128), base)
    table = {n: ops.OPS[n] for n in names}
    img = Image.fromarray(x[0].permute(1, 2, 0).numpy())
    a = augment_and_mix_pil(img, np.random.default_rng(1), severity=10, ops=table, image_size=SIZE)
    b = augment_and_mix_pil(img, np.random.default_rng(1), severity=10, ops=table, image_size=SIZE,
                            affine_fill=128)  # fmt: skip
    assert torch.equal(a, b)


def test_fill_changes_exactly_the_uncovered_pixels():
    """Depth-1 chains of one affine op on a constant image: the chain pixels are the image's
    value (covered) or the fill colour (uncovered: (128, 0, 0)), and fill 128 differs from fill 0
    only there, in red."""
    x = torch.full((64, 3, SIZE, SIZE), 200, dtype=torch.uint8)
    k = keys(64)
    d = sample_draws(k, (0,), severity=10, width=3, depth=1, alpha=1.0, n_ops=len(AFFINE))
    black = _run_chains(x.repeat_interleave(3, 0).clone(), d, AFFINE)
    filled = _run_chains(x.repeat_interleave(3, 0).clone(), d, AFFINE, affine_fill=128)
    uncovered = black == 0
    assert uncovered.float().mean() > 0.02  # severity 10 uncovers a good part
    assert set(black.unique().tolist()) == {0, 200}
    red = torch.tensor(ops.fill_colour(128), dtype=torch.uint8).reshape(1, 3, 1, 1)
    assert torch.equal(filled, torch.where(uncovered, red, black))
    # mixed: the difference is m * w_i * 128 / 255 on a chain's uncovered area in red, else 0
    for name in AFFINE:
        a = augmix_batch(x, k, severity=10, width=1, depth=1, ops=(name,))
        b = augmix_batch(x, k, severity=10, width=1, depth=1, ops=(name,), affine_fill=128)
        m = sample_draws(k, (0,), severity=10, width=1, depth=1, alpha=1.0, n_ops=1).skip[:, 0]
        diff = b - a
        hole = diff.abs() > 1e-6
        assert hole.any(), name
        assert not hole[:, 1:].any(), name  # green and blue keep the black fill
        expect = (m[:, None, None, None] * 128 / 255).expand_as(diff)
        torch.testing.assert_close(diff[hole], expect[hole], atol=1e-5, rtol=0)
        # and the uncovered area of the clean-at-200 image is 128 in the chain's red: mean of
        # out = (1 - m) 200/255 + m * 128/255 there
        ref = ((1 - m[:, None, None, None]) * 200 + m[:, None, None, None] * 128) / 255
        torch.testing.assert_close(b[hole], ref.expand_as(b)[hole], atol=1e-5, rtol=0)


def test_shared_warp_group_fills_shears_but_not_rotate():
    """The CUDA route warps rotate and the shears in one t_affine call: per row, the shears get
    the fill and rotate keeps 0 (run here on the CPU)."""
    names = ("rotate", "shear_x", "shear_y")
    x = smooth_batch(12)
    op = torch.arange(12) % 3
    value = torch.tensor([20.0, 0.3, -0.3] * 4, dtype=torch.float64)
    out = _apply_group(x, names, (0, 1, 2), op, value, affine_fill=128)
    black = _apply_group(x, names, (0, 1, 2), op, value)
    for i in range(12):
        name = names[int(op[i])]
        expect = ops.t_affine(x[i : i + 1], ops.affine_matrices(name, value[i : i + 1], SIZE),
                              0 if name == "rotate" else 128)  # fmt: skip
        assert torch.equal(out[i : i + 1], expect), name
        uncovered = (black[i] == 0).all(0)
        assert uncovered.any()
        colour = torch.tensor(ops.fill_colour(0 if name == "rotate" else 128), dtype=torch.uint8)
        assert (out[i][:, uncovered] == colour[:, None]).all(), name


def test_pil_path_with_fill_matches_restated_reference():
    """augment_and_mix_pil(affine_fill=128): REF `aug` with fillcolor 128 for the four ops."""
    x = smooth_batch(6)
    for i in range(6):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        ours = augment_and_mix_pil(img, np.random.default_rng(i), severity=10, image_size=SIZE,
                                   affine_fill=128)  # fmt: skip
        ref = restated_reference(img, i, 10, fill=128)
        torch.testing.assert_close((ours - 0.5) / 0.5, ref, atol=1e-6, rtol=0)
        assert not torch.equal(ref, restated_reference(img, i, 10))  # the fill shows at severity 10


def test_make_views_fill_on_both_backends():
    x = smooth_batch(8)
    k = keys(8)
    for backend in ("tensor", "pil"):
        black = make_views(x, k, jsd=True, backend=backend, severity=10)
        assert torch.equal(make_views(x, k, jsd=True, backend=backend, severity=10, affine_fill=0), black)
        filled = make_views(x, k, jsd=True, backend=backend, severity=10, affine_fill=128)
        assert torch.equal(filled[:8], black[:8])  # the clean view
        assert not torch.equal(filled[8:], black[8:]), backend
    # the PIL backend hands the fill to augment_and_mix_pil with each sample's generator
    arr = x.permute(0, 2, 3, 1).numpy()
    pil = make_views(x, k, jsd=False, backend="pil", severity=10, affine_fill=128)
    for b in range(8):
        g = R.numpy_generator(0, 0, b, "augmix/pil")
        one = augment_and_mix_pil(Image.fromarray(arr[b]), g, severity=10, image_size=SIZE,
                                  affine_fill=128)  # fmt: skip
        assert torch.equal(pil[b], one)
    with pytest.raises(ValueError, match="affine_fill"):
        make_views(x, k, jsd=True, affine_fill=256)
    with pytest.raises(ValueError, match="affine_fill"):
        augmix_batch(x, k, affine_fill=-1)
    with pytest.raises(ValueError, match="affine_fill"):
        augment_and_mix_pil(Image.fromarray(arr[0]), np.random.default_rng(0), image_size=SIZE,
                            affine_fill=1.5)  # fmt: skip


def test_batched_and_pil_paths_same_distribution_with_fill():
    """As test_batched_and_pil_paths_same_distribution, with fill 128 on both paths."""
    n = 200
    x = smooth_batch(n, seed=8)
    k = keys(n, seed=12)
    clean = (x.float() / 255).repeat(2, 1, 1, 1)
    tensor = make_views(x, k, jsd=True, affine_fill=128)[n:]
    pil = make_views(x, k, jsd=True, backend="pil", affine_fill=128)[n:]
    a, b = _summaries(tensor, clean), _summaries(pil, clean)
    for name in a:
        assert stats.ks_2samp(a[name], b[name]).pvalue > 1e-3, name
    # power: the black fill has more dark pixels than the grey one
    c = _summaries(make_views(x, k, jsd=True)[n:], clean)
    assert c["dark_fraction"].mean() > a["dark_fraction"].mean()


def test_training_hp_passes_the_fill():
    hp = METHOD_PARAMS["augmix"](severity=3, width=3, depth=-1, alpha=1.0, all_ops=False, jsd_weight=12.0,
                                 backend="tensor", fill=0)
    assert _augmix_kwargs(hp) == {"severity": 3, "width": 3, "depth": -1, "alpha": 1.0, "all_ops": False,
                                  "affine_fill": 0}  # the committed reference's black
    assert _augmix_kwargs(hp.model_copy(update={"fill": 128}))["affine_fill"] == 128  # the released weights' code
