"""Per-sample, counter-based random numbers for batched augmentation.

Every draw is a pure function of (seed, epoch, sample index, stream name, draw number), so
an image gets the same augmentation whatever batch it lands in and however many data-loader
workers there are (docs/reference-facts.md, "Training recipes", explains why the reference's
global NumPy generator does not have this property).

The generator is SplitMix64's output function used as a hash (Steele, Lea, Flood, "Fast
splittable pseudorandom number generators", OOPSLA 2014), evaluated with torch int64 ops so it
vectorises over samples and runs on any device. Integer multiplication wraps modulo 2**64 on
torch CPU and CUDA, which is what the hash needs.
"""

from __future__ import annotations

import hashlib
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


def derive_seed(stream: str, *parts: int) -> int:
    """A 63-bit seed for a named stream and integers, e.g. ("shuffle", seed, epoch): independent
    streams for every (name, seed, epoch, step) tuple; a torch or NumPy generator is seeded with it
    where a library call takes a generator rather than our per-sample keys."""
    blob = np.asarray([stream_id(stream), *parts], dtype=np.int64).tobytes()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little") & ((1 << 63) - 1)


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


def normal(keys: SampleKeys, stream: str, shape: tuple[int, ...] = ()) -> torch.Tensor:
    """Standard normals, float64, shape (B, *shape) (Box-Muller of two uniform streams)."""
    return _normal(keys, stream, shape)


# ----------------------------------------------------------------------------------------------
# NumPy twins of the per-sample draws: the same 64-bit hashes computed with NumPy's uint64
# arithmetic (wrapping products, logical shifts), so a NumPy code path draws exactly the uniforms
# the torch functions draw on any device; the corruption builds key every image this way
# (augmix.corruptions.draws). About as fast as NumPy's own PCG64 per value.

_MASK64 = (1 << 64) - 1


def _mix64_numpy(z: np.ndarray) -> np.ndarray:
    """mix64 of a uint64 array, in place."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(_MUL1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MUL2)
    z ^= z >> np.uint64(31)
    return z


def _combine_int(h: int, v: int) -> int:
    """_combine of one running hash and one integer, on Python integers (unsigned 64-bit)."""
    z = (h + (v + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK64
    return z ^ (z >> 31)


def numpy_sample_hash(keys: SampleKeys, stream: str) -> np.ndarray:
    """sample_hash(keys, stream) as uint64 (B,) (the same 64 bits); keys on the CPU."""
    if keys.device.type != "cpu":
        raise ValueError(f"NumPy draws need keys on the CPU, got {keys.device}")
    h = _combine_int(_combine_int(_ROOT, keys.seed & _MASK64), keys.epoch & _MASK64)
    z = keys.index.numpy().astype(np.uint64)  # the int64 bits (two's complement)
    z += np.uint64(1)
    z *= np.uint64(_GOLDEN)
    z += np.uint64(h)
    _mix64_numpy(z)
    z += np.uint64(((stream_id(stream) + 1) * _GOLDEN) & _MASK64)
    return _mix64_numpy(z)


_COUNTER_TERMS: dict[int, np.ndarray] = {}


def _counter_terms(n: int) -> np.ndarray:
    """(counter + 1) * GOLDEN mod 2**64 for counters 0..n-1: the per-element half of _combine."""
    c = _COUNTER_TERMS.get(n)
    if c is None:
        c = np.arange(1, n + 1, dtype=np.uint64)
        c *= np.uint64(_GOLDEN)
        c.setflags(write=False)
        if len(_COUNTER_TERMS) < 64:
            _COUNTER_TERMS[n] = c
    return c


def numpy_uniform(keys: SampleKeys, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
    """uniform(keys, stream, shape) computed with NumPy: equal bit for bit, float64 (B, *shape)."""
    z = numpy_sample_hash(keys, stream)[:, None] + _counter_terms(math.prod(shape))[None, :]
    _mix64_numpy(z)
    z >>= np.uint64(11)
    u = z.view(np.int64).astype(np.float64)  # below 2**53 now; int64 converts ~8x faster than uint64
    u += 0.5
    u *= 2.0**-53
    return u.reshape(len(keys), *shape)


def numpy_normal(keys: SampleKeys, stream: str, shape: tuple[int, ...] = ()) -> np.ndarray:
    """normal(keys, stream, shape) for the NumPy path: NumPy's uniforms (bit for bit the torch
    ones), then the Box-Muller expression evaluated in place by torch's CPU kernels (NumPy's float64
    cos is ~5x slower). log, sqrt and cos may differ in the last bit between libraries and devices,
    so normals agree with other devices to an ulp, not always bit for bit."""
    r = torch.from_numpy(numpy_uniform(keys, stream + "/n1", shape))
    c = torch.from_numpy(numpy_uniform(keys, stream + "/n2", shape))
    r.log_().mul_(-2.0).sqrt_()
    c.mul_(2.0 * math.pi).cos_()
    return r.mul_(c).numpy()
