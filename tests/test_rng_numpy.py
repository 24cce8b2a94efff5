"""augmix.rng's NumPy twins draw what the torch functions draw: the same 64-bit hashes, so the same
uniforms bit for bit, and the same normals on the CPU (the corruption builds rely on both)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from augmix import rng as R

SEEDS = [0, 5, 2**63 + 7, 2**64 - 1, -3, 123456789]  # beyond int64 and negative: the 64-bit pattern


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(), (3,), (4, 5, 3), (17,)])
def test_uniform_and_hash_bit_for_bit(seed, shape):
    keys = R.SampleKeys(seed, 3, torch.tensor([0, 1, 7, 2**40, -5, 9]))
    assert np.array_equal(R.numpy_sample_hash(keys, "z"), R.sample_hash(keys, "z").numpy().view(np.uint64))
    ours = R.numpy_uniform(keys, "z", shape)
    assert ours.dtype == np.float64 and ours.shape == (6, *shape)
    assert np.array_equal(ours, R.uniform(keys, "z", shape).numpy())


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_equals_torch_on_the_cpu(seed):
    keys = R.SampleKeys(seed, 0, torch.arange(130))
    for shape in [(), (32, 32, 3)]:
        assert np.array_equal(R.numpy_normal(keys, "n", shape), R.normal(keys, "n", shape).numpy())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_twins_need_cpu_keys():
    with pytest.raises(ValueError, match="CPU"):
        R.numpy_uniform(R.SampleKeys.arange(0, 0, 4, device="cuda"), "z")


def test_distributions():
    keys = R.SampleKeys.arange(11, 0, 200)
    u = R.numpy_uniform(keys, "u", (500,)).reshape(-1)
    z = R.numpy_normal(keys, "z", (500,)).reshape(-1)
    assert 0 < u.min() and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # streams, samples and seeds are independent of each other
    assert abs(np.corrcoef(u, R.numpy_uniform(keys, "v", (500,)).reshape(-1))[0, 1]) < 0.02
    other = R.numpy_uniform(R.SampleKeys.arange(12, 0, 200), "u", (500,)).reshape(-1)
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.02
