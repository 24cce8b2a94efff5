"""Per-sample, counter-based random numbers for batched augmentation.

Every draw is a pure function of (seed, epoch, sample index, stream name, draw number), so
an image gets the same augmentation whatever batch it lands in and however many data-loader
workers there are (house style rule 3; `augmix.md` §9.4 explains why the reference's global
NumPy generator does not have this property).

The generator is SplitMix64's output function used as a hash (Steele, Lea, Flood, "Fast
splittable pseudorandom number generators", OOPSLA 2014), evaluated with torch int64 ops so it
vectorises over samples and runs on any device. Integer multiplication wraps modulo 2**64 on
torch CPU and CUDA, which is what the hash needs.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
_ROOT = 0x5DEECE66D  # arbitrary fixed start of every key chain


def _signed(c: int) -> int:
    """Two's-complement view of a 64-bit constant, for torch int64 arithmetic."""
    c &= (1 << 64) - 1
    return c - (1 << 64) if c >= 1 << 63 else c


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic on negative values)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser: a bijective avalanche hash of int64 values."""
    z = (z ^ _srl(z, 30)) * _signed(_MUL1)
    z = (z ^ _srl(z, 27)) * _signed(_MUL2)
    return z ^ _srl(z, 31)


def _combine(h: torch.Tensor, v: torch.Tensor | int) -> torch.Tensor:
    """Fold one more integer into a running hash."""
    if isinstance(v, int):
        return mix64(h + _signed((v + 1) * _GOLDEN))
    return mix64(h + (v + 1) * _signed(_GOLDEN))


def stream_id(name: str) -> int:
    """Stable integer for a stream name (Python's hash() of str is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


@dataclass(frozen=True)
class SampleKeys:
    """Identity of each sample in a batch: the run seed, the epoch and the dataset index.

    `index` is a 1-D int64 tensor (B,); its device decides where random numbers are made.
    """

    seed: int
    epoch: int
    index: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.index, torch.Tensor) or self.index.dim() != 1:
            raise ValueError(f"SampleKeys.index must be a 1-D tensor, got {self.index!r}")
        if self.index.dtype != torch.int64:
            object.__setattr__(self, "index", self.index.to(torch.int64))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def device(self) -> torch.device:
        return self.index.device

    def subset(self, sel: torch.Tensor | slice) -> SampleKeys:
        return SampleKeys(self.seed, self.epoch, self.index[sel])

    def to(self, device: torch.device | str) -> SampleKeys:
        return SampleKeys(self.seed, self.epoch, self.index.to(device))

    @staticmethod
    def arange(seed: int, epoch: int, n: int, start: int = 0, device=None) -> SampleKeys:
        return SampleKeys(seed, epoch, torch.arange(start, start + n, device=device))


def sample_hash(keys: SampleKeys, stream: str) -> torch.Tensor:
    """(B,) int64 hash of (seed, epoch, index, stream)."""
    h = torch.full_like(keys.index, _signed(_ROOT))
    h = _combine(h, _signed(keys.seed))
    h = _combine(h, _signed(keys.epoch))
    h = _combine(h, keys.index)
    return _combine(h, stream_id(stream))


def uniform(
    keys: SampleKeys, stream: str, shape: tuple[int, ...] = (), dtype=torch.float64
) -> torch.Tensor:
    """Uniforms in the open interval (0, 1), shape (B, *shape), one counter per element.

    53 random bits, centred in their bin, so log(u) and log(1 - u) are always finite.
    """
    n = math.prod(shape)
    base = sample_hash(keys, stream)
    counter = torch.arange(n, device=keys.device, dtype=torch.int64)
    z = _combine(base[:, None], counter[None, :])
    u = (_srl(z, 11).to(torch.float64) + 0.5) * 2.0**-53
    return u.reshape(len(keys), *shape).to(dtype)


def randint(keys: SampleKeys, stream: str, high: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """Integers uniform on {0, ..., high - 1}, int64, shape (B, *shape)."""
    u = uniform(keys, stream, shape)
    return torch.clamp((u * high).floor().to(torch.int64), max=high - 1)


def _normal(keys: SampleKeys, stream: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normals by Box-Muller (exact in distribution)."""
    u1 = uniform(keys, stream + "/n1", shape)
    u2 = uniform(keys, stream + "/n2", shape)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


GAMMA_ROUNDS = 12  # Marsaglia-Tsang acceptance >= 0.95 per round, so 12 rounds fail w.p. < 1e-15


def gamma(keys: SampleKeys, stream: str, alpha: float, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """Gamma(alpha, 1) draws, float64, shape (B, *shape).

    alpha == 1 uses the exact exponential shortcut (the AugMix default). Otherwise
    Marsaglia and Tsang (2000), "A simple method for generating gamma variables", run for a
    fixed number of vectorised rounds; the first accepted candidate is kept. alpha < 1 uses
    their boost Gamma(alpha) = Gamma(alpha + 1) * U**(1/alpha).
    """
    if not alpha > 0:
        raise ValueError(f"gamma concentration must be > 0, got alpha={alpha}")
    if alpha == 1.0:
        return -torch.log(uniform(keys, stream + "/exp", shape))
    a = alpha if alpha >= 1.0 else alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = None
    done = None
    for r in range(GAMMA_ROUNDS):
        z = _normal(keys, f"{stream}/mt{r}", shape)
        u = uniform(keys, f"{stream}/mt{r}/u", shape)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        cand = d * v.clamp_min(0.0)
        if out is None:
            # Fallback if every round rejects (probability < 1e-15): keep round 0's candidate.
            out, done = cand, ok
        else:
            out = torch.where(done, out, torch.where(ok, cand, out))
            done = done | ok
    if alpha < 1.0:
        out = out * uniform(keys, stream + "/boost", shape) ** (1.0 / alpha)
    return out


def dirichlet(keys: SampleKeys, stream: str, alpha: float, k: int, lead: tuple[int, ...] = ()):
    """Dirichlet(alpha, ..., alpha) over the last axis, float64, shape (B, *lead, k)."""
    g = gamma(keys, stream, alpha, (*lead, k))
    return g / g.sum(-1, keepdim=True)


def beta(keys: SampleKeys, stream: str, alpha: float, lead: tuple[int, ...] = ()):
    """Beta(alpha, alpha) as G1 / (G1 + G2), float64, shape (B, *lead)."""
    g = gamma(keys, stream, alpha, (*lead, 2))
    return g[..., 0] / g.sum(-1)


def numpy_generator(seed: int, epoch: int, index: int, stream: str = "pil") -> np.random.Generator:
    """NumPy generator for one sample, derived from the same (seed, epoch, index) identity.

    Used by the PIL (reference-faithful) path; it draws from a different stream than the
    tensor path, so the two agree in distribution, not image by image.
    """
    for name, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0 for numpy_generator, got {v}")
    ss = np.random.SeedSequence([int(seed), int(epoch), int(index), stream_id(stream)])
    return np.random.default_rng(ss)
