"""JSD consistency loss: the test vector of docs/reference-facts.md, "JSD loss", and the loss invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augmix.losses import augmix_loss, jsd_consistency

CLEAN = [[2.0, 0.0, 0.0], [0.5, 0.2, -1.0]]
AUG1 = [[0.0, 2.0, 0.0], [0.4, 0.3, -0.9]]
AUG2 = [[0.0, 0.0, 2.0], [0.6, 0.1, -1.2]]
TARGETS = [0, 0]


def _vector(dtype):
    logits = torch.tensor(CLEAN + AUG1 + AUG2, dtype=dtype)
    return logits, torch.tensor(TARGETS)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spec_test_vector(dtype):
    logits, y = _vector(dtype)
    loss, parts = augmix_loss(logits, y)
    assert parts["ce"].item() == pytest.approx(0.4572508, abs=1e-6)
    assert parts["jsd"].item() == pytest.approx(0.2184115, abs=1e-6)
    assert loss.item() == pytest.approx(3.0781885, abs=1e-5)


def _numpy_jsd(zc, z1, z2):
    """Independent re-statement: mean over views of (1/B) sum p (log p - log clamp(M))."""
    ps = [np.exp(z - z.max(1, keepdims=True)) for z in (zc, z1, z2)]
    ps = [p / p.sum(1, keepdims=True) for p in ps]
    mix = np.clip(sum(ps) / 3, 1e-7, 1)
    b = zc.shape[0]
    return np.mean([(p * (np.log(p) - np.log(mix))).sum() / b for p in ps])


def test_matches_numpy_restatement():
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(16, 10, generator=g, dtype=torch.float64) * 3 for _ in range(3)]
    ours = jsd_consistency(*z).item()
    assert ours == pytest.approx(_numpy_jsd(*[t.numpy() for t in z]), rel=1e-10)


def test_zero_when_views_agree_and_bounded():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 10, generator=g)
    assert jsd_consistency(z, z, z).abs().item() < 1e-7
    for _ in range(5):
        zs = [torch.randn(8, 10, generator=g) * 4 for _ in range(3)]
        js = jsd_consistency(*zs).item()
        assert 0.0 <= js <= math.log(3) + 1e-6
    # maximally different one-hot predictions approach log 3
    big = 50 * torch.eye(3)
    assert jsd_consistency(big[:1], big[1:2], big[2:]).item() == pytest.approx(
        math.log(3), abs=1e-5
    )


def test_permutation_invariant():
    g = torch.Generator().manual_seed(2)
    zs = [torch.randn(8, 10, generator=g, dtype=torch.float64) for _ in range(3)]
    ref = jsd_consistency(*zs)
    for perm in ([1, 0, 2], [2, 1, 0], [0, 2, 1], [1, 2, 0]):
        assert jsd_consistency(*[zs[i] for i in perm]).item() == pytest.approx(
            ref.item(), rel=1e-12
        )


def test_finite_gradient_at_saturation():
    # All three views give class 2 a probability ~1e-35 (float32, not yet zero): the mixture
    # falls below the 1e-7 floor, so the clamp is active, and loss and gradients stay finite.
    z = [torch.tensor([[40.0, 0.0, -40.0]]), torch.tensor([[0.0, 40.0, -40.0]]),
         torch.tensor([[40.0, 40.0, -40.0]])]  # fmt: skip
    z = [t.requires_grad_(True) for t in z]
    mixture = sum(F.softmax(t, 1) for t in z) / 3
    assert 0 < mixture[0, 2].item() < 1e-7
    loss, _ = augmix_loss(torch.cat(z), torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss)
    for t in z:
        assert torch.isfinite(t.grad).all()
    assert any(t.grad.abs().sum() > 0 for t in z)


def test_weight_zero_is_clean_cross_entropy():
    logits, y = _vector(torch.float64)
    loss, parts = augmix_loss(logits, y, jsd_weight=0.0)
    assert loss.item() == pytest.approx(F.cross_entropy(logits[:2], y).item(), rel=1e-12)
    assert parts["jsd"].item() > 0  # the JSD is still reported


def test_ce_uses_clean_block_only_and_gradients_reach_all_views():
    logits, y = _vector(torch.float64)
    logits = logits.clone().requires_grad_(True)
    loss, parts = augmix_loss(logits, y)
    shuffled = logits.detach().clone()
    shuffled[2:] = shuffled[2:].flip(0)  # change the augmented blocks only
    _, parts2 = augmix_loss(shuffled, y)
    assert parts2["ce"].item() == pytest.approx(parts["ce"].item(), rel=1e-12)
    loss.backward()
    assert (logits.grad[2:].abs().sum(1) > 0).all()  # nothing detached


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="3B"):
        augmix_loss(torch.zeros(5, 3), torch.zeros(2, dtype=torch.long))
