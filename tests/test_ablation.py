"""The paper's ablation augmentations (Table 4): AutoAugment* and Random AutoAugment*."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import v2

from augmix import ablation as A
from augmix import ops as O
from augmix import rng as R
from augmix.successors import randaugment as RA
from augmix.successors import tvops

P_MIN = 1e-3


def smooth_batch(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = g.uniform(0.5, 3.0, (n, 3, 1, 1))
    ph = g.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    img = 0.5 + 0.25 * np.sin(2 * np.pi * f * xx + ph) + 0.25 * np.cos(2 * np.pi * f * yy - ph)
    img = img * g.uniform(120, 255, (n, 1, 1, 1)) + g.normal(0, 3, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def keys(n: int, seed: int = 0, epoch: int = 0) -> R.SampleKeys:
    return R.SampleKeys.arange(seed, epoch, n)


TV_POLICY = {"cifar10": v2.AutoAugmentPolicy.CIFAR10, "imagenet": v2.AutoAugmentPolicy.IMAGENET}


@pytest.mark.parametrize("policy", ["cifar10", "imagenet"])
def test_policies_are_torchvisions(policy):
    inv = {t: n for n, t in tvops.TORCHVISION_NAMES.items()}
    tv = v2.AutoAugment(TV_POLICY[policy])._policies
    assert tuple(tuple((inv[o], p, m) for o, p, m in sp) for sp in tv) == A.POLICIES[policy]
    assert set(A.AUTOAUGMENT_OPS) == {inv[o] for o in v2.AutoAugment._AUGMENTATION_SPACE}


def test_star_op_set_excludes_exactly_the_ops_the_docstring_names():
    assert set(A.AUTOAUGMENT_OPS) - set(A.AUTOAUGMENT_STAR_OPS) == set(A.AUTOAUGMENT_STAR_REMOVED)
    assert set(A.AUTOAUGMENT_STAR_REMOVED) == {"contrast", "color", "brightness", "sharpness"}
    named = re.search(r"Removed ops: ([a-z_, ]+)\.", A.__doc__).group(1)
    assert {o.strip() for o in named.split(",")} == set(A.AUTOAUGMENT_STAR_REMOVED)
    # drop="op": exactly the removed ops' slots lose their probability, nothing else changes
    star = A.star_policy("cifar10")
    for sp, orig in zip(star, A.POLICIES["cifar10"]):
        for (o, p, m), (o0, p0, m0) in zip(sp, orig):
            assert (o, m) == (o0, m0) and p == (0.0 if o in A.AUTOAUGMENT_STAR_REMOVED else p0)
    subs = A.star_policy("cifar10", drop="subpolicy")
    assert len(subs) == 15 and all(o not in A.AUTOAUGMENT_STAR_REMOVED for sp in subs for o, _, _ in sp)


def test_removed_ops_are_never_applied():
    k = keys(20000)
    for drop in ("op", "subpolicy"):
        d = A.autoaugment_draws(k, A.star_policy("cifar10", drop=drop))
        removed = torch.tensor([A.AUTOAUGMENT_OPS.index(o) for o in A.AUTOAUGMENT_STAR_REMOVED])
        assert not (torch.isin(d.op, removed) & d.apply).any()
        assert d.apply.any()


def _replay_autoaugment(transform, seed: int):
    """Consume the global generator as torchvision's AutoAugment.forward does."""
    torch.manual_seed(seed)
    chosen = int(torch.randint(len(transform._policies), ()))
    apply, neg = [], []
    for name, prob, _mag in transform._policies[chosen]:
        applied = bool(torch.rand(()) <= prob)
        n = False
        if applied:
            fn, signed = transform._AUGMENTATION_SPACE[name]
            if fn(10, 32, 32) is not None and signed:
                n = bool(torch.rand(()) <= 0.5)
        apply.append(applied)
        neg.append(n)
    return chosen, apply, neg


def test_plain_autoaugment_equals_torchvision_with_its_own_draws():
    """removed=() is torchvision's AutoAugment exactly (the `autoaugment` baseline's transform)."""
    x = smooth_batch(40, seed=1)
    transform = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    index = {n: i for i, n in enumerate(A.AUTOAUGMENT_OPS)}
    policy = A.star_policy("cifar10", removed=())
    ops, bins, negs, apps, expected = [], [], [], [], []
    for i in range(len(x)):
        chosen, apply, neg = _replay_autoaugment(transform, 500 + i)
        ops.append([index[o] for o, _, _ in policy[chosen]])
        bins.append([m or 0 for _, _, m in policy[chosen]])
        negs.append(neg)
        apps.append(apply)
        torch.manual_seed(500 + i)
        out = transform(Image.fromarray(x[i].permute(1, 2, 0).numpy()))
        expected.append(torch.from_numpy(np.array(out)).permute(2, 0, 1))
    draws = RA.PolicyDraws(op=torch.tensor(ops), bin=torch.tensor(bins), negate=torch.tensor(negs),
                           apply=torch.tensor(apps))  # fmt: skip
    got = RA.apply_policy(x, draws, A.AUTOAUGMENT_OPS, space="autoaugment", num_bins=10)
    assert torch.equal(got, torch.stack(expected))


def test_autoaugment_draws_follow_the_policy():
    k = keys(50000, seed=2)
    policy = A.star_policy("cifar10", removed=())
    d = A.autoaugment_draws(k, policy)
    ops = torch.tensor([[A.AUTOAUGMENT_OPS.index(o) for o, _, _ in sp] for sp in policy])
    # the sub-policy is recoverable from the slot ops only up to duplicates; test slot-0 rates instead
    prob = torch.tensor([[p for _, p, _ in sp] for sp in policy])
    for slot in range(2):
        expected = torch.zeros(len(A.AUTOAUGMENT_OPS), dtype=torch.float64)
        for s in range(len(policy)):
            expected[ops[s, slot]] += prob[s, slot] / len(policy)
        observed = torch.bincount(d.op[:, slot][d.apply[:, slot]], minlength=len(A.AUTOAUGMENT_OPS)).double()
        assert (observed.sum() / len(k) - expected.sum()).abs() < 0.01
        used = expected > 0
        chi = stats.chisquare(observed[used].numpy(), (expected[used] / expected.sum() * observed.sum()).numpy())
        assert chi.pvalue > P_MIN


@pytest.mark.parametrize("space", ["augmix", "autoaugment"])
def test_random_star_draws_ops_uniformly(space):
    n_ops = len(O.op_names(False)) if space == "augmix" else len(A.AUTOAUGMENT_STAR_OPS)
    d = A._chain_draws(keys(30000, seed=3), "t", -1, n_ops)
    assert stats.chisquare(torch.bincount(d["op"].flatten(), minlength=n_ops).numpy()).pvalue > P_MIN
    assert stats.chisquare(torch.bincount(d["length"] - 1, minlength=3).numpy()).pvalue > P_MIN
    assert stats.kstest(d["u"].flatten().numpy(), "uniform").pvalue > P_MIN
    assert stats.binomtest(int(d["negate"].sum()), d["negate"].numel(), 0.5).pvalue > P_MIN


def test_random_star_chain_equals_its_ops_applied_in_order():
    """space="augmix": a chain of AugMix tensor ops with the drawn levels, no mixing."""
    x = smooth_batch(32, seed=4)
    k = keys(32, seed=5)
    out = A.random_autoaugment_star_batch(x, k)
    names = O.op_names(False)
    d = A._chain_draws(k, "random_autoaugment_star/v0", -1, len(names))
    level = 0.1 + 2.9 * d["u"]
    for i in (0, 5, 17, 31):
        y = x[i : i + 1]
        for j in range(int(d["length"][i])):
            name = names[int(d["op"][i, j])]
            v = O.tensor_parameters(name, level[i : i + 1, j], d["negate"][i : i + 1, j], 32)
            y = O.TENSOR_OPS[name](y, v)
        assert torch.equal(out[i], y[0]), i


def test_random_star_views_layout_and_independence():
    x = smooth_batch(16, seed=6)
    k = keys(16, seed=7)
    v = A.random_autoaugment_star_views(x, k, jsd=True)
    assert v.shape == (48, 3, 32, 32) and v.dtype == torch.float32
    assert torch.equal(v[:16], x.float() / 255)
    assert not torch.equal(v[16:32], v[32:])
    assert torch.equal(A.random_autoaugment_star_views(x, k, jsd=False), v[16:32])
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    for space in A.RANDOM_SPACES:
        out = A.random_autoaugment_star_batch(x, k, space=space)
        assert torch.equal(A.random_autoaugment_star_batch(x[perm], k.subset(perm), space=space), out[perm])
    for fn in (A.autoaugment_star_batch,):
        out = fn(x, k)
        assert torch.equal(fn(x[perm], k.subset(perm)), out[perm])
    with pytest.raises(KeyError):
        A.random_autoaugment_star_batch(x, k, space="policy")
    assert torch.equal(A.random_autoaugment_star_batch(x, k, ops=("identity",)), x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ablation_cuda_matches_cpu():
    x = smooth_batch(64, seed=8)
    k = keys(64, seed=9)
    assert torch.equal(A.autoaugment_star_batch(x.cuda(), k.to("cuda")).cpu(), A.autoaugment_star_batch(x, k))
    for space in A.RANDOM_SPACES:
        cpu = A.random_autoaugment_star_batch(x, k, space=space)
        gpu = A.random_autoaugment_star_batch(x.cuda(), k.to("cuda"), space=space).cpu()
        # AugMix's bilinear rotate / shear twins may differ by a grey level between devices (and
        # a later op such as equalize can move such a pixel further): few pixels differ
        assert (cpu != gpu).float().mean() < 0.01
