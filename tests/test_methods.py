"""Baseline training methods: one SGD step each, determinism, mixing algebra, masks, PGD bounds."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from augmix import config
from augmix import methods as M
from augmix.methods import BASELINES as METHODS
from augmix.methods import Batch
from augmix.models import build_model
from augmix.rng import SampleKeys
from augmix.training_methods import METHODS as ALL_METHODS
from augmix.training_methods import TrainBatch, method_hparams, section_for

REPO = Path(__file__).resolve().parents[1]
BUILTIN = ["standard", "cutout", "mixup", "cutmix", "autoaugment", "pgd", "fmix"]
RANDOM = [m for m in BUILTIN if m != "standard"]
# Forced-on variants so a different seed must change the loss.
ALWAYS = {"cutmix": {"prob": 1.0}}
PARAMS = config.load(REPO / "params.yaml")


def _hp(name: str, dataset: str = "cifar10", **override):
    """The method's typed section from params.yaml (its published values), with `override` applied."""
    return section_for(getattr(PARAMS.methods, name), dataset).model_copy(update=override)


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _batch(n: int = 8, seed: int = 0, device: str = "cpu") -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Batch(x.to(device), y.to(device), 10)


def _labelled_constant_batch(n: int = 6) -> Batch:
    """Image i is constant (i + 1) / 10 and has label i, so mixing partners can be read back."""
    x = ((torch.arange(n, dtype=torch.float32) + 1) / 10).view(n, 1, 1, 1).expand(n, 3, 32, 32).clone()
    return Batch(x, torch.arange(n), 10)


@pytest.fixture(scope="module")
def tiny():
    return build_model("wrn16_1", 10, seed=0)


def test_builtin_table_and_published_values():
    assert set(BUILTIN) == set(METHODS)
    assert _hp("pgd").eps == pytest.approx(8 / 255) and _hp("pgd").step_size == pytest.approx(2 / 255)
    assert _hp("cutout").length == 16 and _hp("mixup").alpha == 1.0 and _hp("cutmix").prob == 0.5


@pytest.mark.parametrize("name", BUILTIN)
def test_one_sgd_step_changes_weights(name, tiny):
    model = copy.deepcopy(tiny).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss, logs = METHODS[name](model, _batch(), _hp(name, **ALWAYS.get(name, {})), _gen(1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed)


@pytest.mark.parametrize("name", BUILTIN)
def test_same_seed_same_loss_and_global_rng_untouched(name, tiny):
    model = copy.deepcopy(tiny).eval()  # eval: BN running stats must not differ between calls
    hp = _hp(name, **ALWAYS.get(name, {}))
    cpu_state = torch.get_rng_state()
    with torch.no_grad() if name != "pgd" else torch.enable_grad():
        a, _ = METHODS[name](model, _batch(), hp, _gen(3))
        b, _ = METHODS[name](model, _batch(), hp, _gen(3))
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert a.item() == b.item()


@pytest.mark.parametrize("name", RANDOM)
def test_different_seed_different_loss(name, tiny):
    model = copy.deepcopy(tiny).eval()
    hp = _hp(name, **(ALWAYS.get(name, {}) | ({"steps": 2} if name == "pgd" else {})))
    losses = {round(METHODS[name](model, _batch(), hp, _gen(s))[0].item(), 7) for s in range(4)}
    assert len(losses) > 1


# --------------------------------------------------------------------------- label mixing


def test_soft_targets_sum_to_one_and_match_mixed_ce():
    g = _gen(0)
    y_a, y_b = torch.randint(0, 10, (16,), generator=g), torch.randint(0, 10, (16,), generator=g)
    t = M.soft_targets(y_a, y_b, 0.3, 10)
    torch.testing.assert_close(t.sum(1), torch.ones(16))
    logits = torch.randn(16, 10, generator=g)
    torch.testing.assert_close(F.cross_entropy(logits, t), M.mixed_cross_entropy(logits, y_a, y_b, 0.3))


def test_beta_sampling_uniform_for_alpha_one():
    g = _gen(0)
    lams = torch.tensor([M.sample_beta(1.0, g) for _ in range(2000)])
    assert lams.min() >= 0 and lams.max() <= 1
    assert lams.mean().item() == pytest.approx(0.5, abs=0.03)
    assert (lams < 0.1).float().mean().item() == pytest.approx(0.1, abs=0.03)  # Beta(1, 1) = U(0, 1)
    with pytest.raises(ValueError):
        M.sample_beta(0.0, g)


def test_mixup_is_convex_pairwise():
    b = _labelled_constant_batch()
    x, y_a, y_b, lam = M.mixup_batch(b.x, b.y, 1.0, _gen(2))
    assert torch.equal(y_a, b.y) and sorted(y_b.tolist()) == b.y.tolist()  # partners: a permutation
    expected = lam * b.x + (1 - lam) * b.x[y_b]
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(M.soft_targets(y_a, y_b, lam, 10).sum(1), torch.ones(6))


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_mask_binary_box_and_lam(seed):
    b = _labelled_constant_batch()
    x, y_a, y_b, lam, mask = M.cutmix_batch(b.x, b.y, 1.0, _gen(seed))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.mean().item() == pytest.approx(lam, abs=1e-7)  # lam recomputed from the clipped box
    hole = (mask == 0).nonzero()
    if len(hole):
        rows, cols = hole[:, 0], hole[:, 1]
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert area.item() == len(hole)  # one solid rectangle
    torch.testing.assert_close(x, mask * b.x + (1 - mask) * b.x[y_b])
    torch.testing.assert_close(M.soft_targets(y_a, y_b, lam, 10).sum(1), torch.ones(6))


def test_cutmix_prob_zero_is_standard(tiny):
    model = copy.deepcopy(tiny).eval()
    batch = _batch()
    loss, logs = METHODS["cutmix"](model, batch, _hp("cutmix", prob=0.0), _gen(0))
    assert logs["mixed"] == 0.0
    torch.testing.assert_close(loss, F.cross_entropy(model(batch.x), batch.y))


@pytest.mark.parametrize("reference_spectrum", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_fmix_mask_binary_mean_lam_low_frequency(seed, reference_spectrum):
    b = _labelled_constant_batch()
    x, y_a, y_b, lam, mask = M.fmix_batch(b.x, b.y, 1.0, 3.0, _gen(seed), reference_spectrum=reference_spectrum)
    n = mask.numel()
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.mean().item() - lam) <= 1.0 / n + 1e-7
    torch.testing.assert_close(x, mask * b.x + (1 - mask) * b.x[y_b])
    # Low-frequency: far fewer 0/1 edges between neighbours than a random mask of the same mean.
    edges = (mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:] != mask[:-1]).sum()
    shuffled = mask.flatten()[torch.randperm(n, generator=_gen(seed))].view_as(mask)
    edges_random = (shuffled[:, 1:] != shuffled[:, :-1]).sum() + (shuffled[1:] != shuffled[:-1]).sum()
    if 0.1 < lam < 0.9:
        assert edges < 0.5 * edges_random


def test_fmix_mask_exact_count():
    # FMix sets ceil(lam * N) or floor(lam * N) pixels to one, each with probability 1/2.
    counts = {M.fmix_mask(32, 32, 0.5004, 3.0, _gen(s)).sum().item() for s in range(20)}
    assert counts == {512.0, 513.0}
    assert M.fmix_mask(32, 32, 0.0, 3.0, _gen(0)).sum().item() == 0
    assert M.fmix_mask(32, 32, 1.0, 3.0, _gen(0)).sum().item() == 1024


# --------------------------------------------------------------------------- cutout


def test_cutout_one_clipped_hole_per_sample():
    mask = M.cutout_mask(2000, 32, 32, 16, _gen(0))
    assert mask.shape == (2000, 1, 32, 32) and set(mask.unique().tolist()) == {0.0, 1.0}
    holes = (mask == 0).sum(dim=(1, 2, 3))
    assert holes.max().item() == 256  # full 16x16 hole when the centre is far from the border
    assert holes.min().item() >= 64  # worst case: centre in a corner, an 8x8 quarter remains
    assert (holes < 256).float().mean().item() > 0.4  # centre uniform over the image: often clipped
    for m in mask[:50, 0]:  # each hole is one rectangle
        idx = (m == 0).nonzero()
        area = (idx[:, 0].max() - idx[:, 0].min() + 1) * (idx[:, 1].max() - idx[:, 1].min() + 1)
        assert area.item() == len(idx)


def test_cutout_fills_with_model_mean(tiny):
    seen = {}

    class Spy(torch.nn.Module):
        normalize = tiny.normalize

        def forward(self, x):
            seen["x"] = x
            return tiny(x)

    batch = Batch(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 10)
    METHODS["cutout"](Spy(), batch, _hp("cutout"), _gen(0))
    values = set(seen["x"].unique().tolist())
    assert values == {0.0, 0.5}  # 0.5 is zero after the model's 0.5/0.5 normalisation


@pytest.mark.parametrize("dataset, side", [("cifar10", 16), ("cifar100", 8), ("digits", 16)])
def test_cutout_hole_side_follows_the_dataset(dataset, side):
    """params.yaml's published sides (DeVries & Taylor: 16 on CIFAR-10, 8 on CIFAR-100) reach the
    method, and a hole away from the border is exactly side x side."""
    hp = method_hparams(PARAMS, "cutout", dataset)
    assert hp.length == side
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return torch.zeros(len(x), 10)

    batch = Batch(torch.ones(64, 3, 32, 32), torch.zeros(64, dtype=torch.long), 10)
    METHODS["cutout"](Spy(), batch, hp, _gen(3))
    holes = (seen["x"][:, 0] == 0).sum((1, 2))
    assert holes.max().item() == side * side

# --------------------------------------------------------------------------- autoaugment


@pytest.mark.parametrize("per_image", [False, True])
def test_autoaugment_per_sample_and_quantised(per_image):
    x = torch.rand(1, 3, 32, 32, generator=_gen(0)).mul(255).round().div(255).expand(32, 3, 32, 32).clone()
    out = M.autoaugment_batch(x, _gen(1), per_image=per_image)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out * 255, (out * 255).round())
    distinct = {tuple(o.flatten()[::97].tolist()) for o in out}
    assert len(distinct) > 8  # identical inputs, independent sub-policies per image
    torch.testing.assert_close(out, M.autoaugment_batch(x, _gen(1), per_image=per_image))
    with pytest.raises(KeyError, match="cifar11"):
        M.autoaugment_batch(x, _gen(1), "cifar11")


def test_autoaugment_ops_act_per_image_when_batched():
    """The grouped path applies each (op, magnitude) to a stack of images at once; that must equal
    applying it to each image alone (per-image statistics in autocontrast, equalize, contrast)."""
    t = M._autoaugment_transform("cifar10")
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=_gen(0), dtype=torch.uint8)
    images[1] //= 3  # different per-image ranges and histograms
    ops = {(op, mag) for sub in t._policies for op, _, mag in sub}
    for op, mag_idx in sorted(ops):
        magnitudes, _ = t._AUGMENTATION_SPACE[op]
        mags = magnitudes(10, 32, 32)
        magnitude = 0.0 if mags is None else float(mags[mag_idx])

        def apply(im, op=op, magnitude=magnitude):
            return t._apply_image_or_video_transform(im, op, magnitude, t.interpolation, t._fill)

        together = apply(images)
        alone = torch.stack([apply(im) for im in images])
        assert torch.equal(together, alone), op


@pytest.mark.slow  # distribution test
def test_autoaugment_grouped_matches_per_image_in_distribution():
    x = torch.rand(1, 3, 32, 32, generator=_gen(0)).expand(1500, 3, 32, 32).clone()
    base = (x * 255).round() / 255
    unchanged = {
        pi: (M.autoaugment_batch(x, _gen(5), per_image=pi) == base).flatten(1).all(1).float().mean().item()
        for pi in (False, True)
    }
    assert 0.02 < unchanged[False] < 0.6
    assert unchanged[False] == pytest.approx(unchanged[True], abs=0.06)  # ~3.5 standard errors


# --------------------------------------------------------------------------- pgd


@pytest.mark.slow
def test_pgd_stays_in_ball_and_raises_loss(tiny):
    model = copy.deepcopy(tiny).eval()
    batch = _batch(16)
    eps = 8 / 255
    x_adv = M.pgd_attack(model, batch.x, batch.y, _gen(0), eps=eps, step_size=2 / 255, steps=5)
    assert (x_adv - batch.x).abs().max().item() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        clean = F.cross_entropy(model(batch.x), batch.y)
        adv = F.cross_entropy(model(x_adv), batch.y)
    assert adv > clean
    assert all(p.grad is None for p in model.parameters())  # the attack leaves parameter grads alone
    same = M.pgd_attack(model, batch.x, batch.y, _gen(0), eps=eps, step_size=0.01, steps=0, random_start=False)
    assert torch.equal(same, batch.x)


# --------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", BUILTIN)
def test_methods_on_cuda_with_cuda_generator(name, monkeypatch):
    # deterministic kernels: an earlier train() may have switched cuDNN's algorithm timing on
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    model = build_model("wrn16_1", 10, seed=0).cuda().eval()
    batch = _batch(device="cuda")
    hp = _hp(name, **ALWAYS.get(name, {}))
    a, _ = METHODS[name](model, batch, hp, _gen(3, "cuda"))
    b, _ = METHODS[name](model, batch, hp, _gen(3, "cuda"))
    assert a.device.type == "cuda" and torch.isfinite(a)
    assert a.item() == b.item()


def test_fmix_reference_spectrum_quirk():
    """FMix's reshape gives real-only half-spectrum coefficients; the corrected variant is complex."""
    interior = slice(1, 16)  # rfft columns other than DC and Nyquist survive irfft2 -> rfft2 exactly
    ref = torch.fft.rfft2(M.fmix_low_freq_image(32, 32, 3.0, _gen(0), reference_spectrum=True))
    fixed = torch.fft.rfft2(M.fmix_low_freq_image(32, 32, 3.0, _gen(0), reference_spectrum=False))
    assert ref[:, interior].imag.abs().max() < 1e-4 * ref.abs().max()
    assert fixed[:, interior].imag.abs().max() > 0.1 * fixed.abs().max()


# --------------------------------------------------------------------------- the whole method table


@pytest.mark.parametrize("name", [m for m in ALL_METHODS if m not in BUILTIN])
def test_every_other_method_takes_one_step_that_changes_the_weights(name, tiny, tmp_path):
    """AugMix, the ablation rows and the successors: views made as training makes them (up front for
    the epoch when the method can), one SGD step, every parameter moves."""
    hp = method_hparams(PARAMS, name, "cifar10")
    if name == "pixmix":  # a small seeded mixing set, made and cached under tmp_path
        hp = hp.model_copy(update={"mixing": hp.mixing.model_copy(update={"n": 8})})
    method = ALL_METHODS[name]
    hp = method.setup(hp, tmp_path, torch.device("cpu"))
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=_gen(0))
    batch = TrainBatch(x=x.float() / 255, y=torch.arange(8) % 10, num_classes=10, x_uint8=x,
                       keys=SampleKeys(1, 0, torch.arange(8)))
    maker = method.epoch_views(hp)
    if maker is not None:
        batch.views = maker(x, batch.keys)
        assert batch.views.shape == (method.n_views * 8, 3, 32, 32)
    model = copy.deepcopy(tiny).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss, _ = method.step(model, batch, hp, _gen(1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
