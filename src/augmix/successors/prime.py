"""PRIME (Modas, Rade, Ortiz-Jimenez, Moosavi-Dezfooli, Frossard, ECCV 2022), batched and keyed.

Reference: amodas/PRIME-augmentations at 0290f6b: `utils/prime.py` (mixing), `utils/diffeomorphism.py`,
`utils/color_jitter.py`, `utils/rand_filter.py`, CIFAR hyperparameters in `config/cifar10_cfg.py`
and `config/cifar100_cfg.py` (identical) and `train.py` (transform order, `stochastic=True`).

The three max-entropy primitives act on float images in [0, 1] (after ToTensor, crop and flip):

* diffeo (spatial): per call cut_max ~ U{cut_min+1..cut_max}, cut = int(B_cut (cut_max + 1 -
  cut_min) + cut_min), T = B_T (T2 - T1) + T1 with T1 = 1 / (pi n^2 ln c), T2 = max(T1,
  alpha 4 / (pi^3 c^2 ln c)), c = cut + 1e-6, B ~ Beta(s - s/(r+1), s/(r+1)) (Beta(1/2, 1/2) at
  the CIFAR s = r = 1). Two scalar fields u, v (n x n) = sum_{i,j <= cut} C_ij e_ij sin(pi x_x i)
  sin(pi x_y j), C ~ N(0, 1), e_ij = 1/sqrt(i^2 + j^2) inside the quarter disc sqrt(i^2 + j^2) <
  cut + 0.5, x = linspace(0, 1, n); displacement (dx, dy) = sqrt(T) n (u, v); the image is
  resampled at (x - dx, y - dy) clamped to the image, bilinearly (floor / ceil neighbours).
* color: per call cut ~ U{1..cut}, T ~ U(0, T); per image and channel coefficients c_k ~ N(0, T),
  k = 1..cut; x -> clamp(x + sum_k c_k sin(k pi x), 0, 1).
* filter: per call sigma ~ U(0, sigma); per image a k x k kernel sigma N(0, 1) + delta, the same
  for the three channels, zero-padded 'same' convolution (cross-correlation), clamp to [0, 1].
  Quirk: the delta sits at index ceil(k/2) = 2 of 0..2 for k = 3, the bottom-right tap, not the
  centre, so the identity part shifts the image by one pixel up and left; reproduced
  (`filter_centre=False`), `filter_centre=True` puts it at k // 2.

Mixing (GeneralizedPRIMEModule): per image w ~ Dirichlet(1, ..., 1) over `width` chains and
m ~ Beta(1, 1); every chain runs depth ~ U{1..max_depth} steps (min with `depth` when depth > 0,
the reference's depth mask), each step one transform uniform over the enabled ones; output
(1 - m) x + m sum_i w_i chain_i. The reference mixes after normalising, the same thing because
the weights are convex (outputs here are float32 in [0, 1]; models normalise inside).

Quirk of the reference, kept by default (`shared_draws=True`): each transform module is called
once per chain step on the whole (width x batch) stack, so its per-call draws (diffeo's cut, T
*and displacement field*, color's cut and T, filter's sigma) are shared by every image of the
batch that uses it at that step; only color's coefficients and filter's kernels are per image.
Here a shared draw comes from the batch's first key (so it depends on the batch composition).
`shared_draws=False` draws everything per image (batch-independent).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from augmix import rng as R
from augmix.errors import ConfigError
from augmix.successors._common import beta_ab, check_uint8_batch, normal

PRIME_TRANSFORMS: tuple[str, ...] = ("diffeo", "color", "filter")  # train.py's module order


@dataclass(frozen=True)
class PrimeConfig:
    """PRIME's hyperparameters; defaults are the CIFAR-10/100 configs (`config/cifar10_cfg.py`)."""

    width: int = 3  # augmix.mixture_width
    depth: int = -1  # augmix.mixture_depth (-1: U{1..max_depth})
    max_depth: int = 3  # GeneralizedPRIMEModule(max_depth=3) in train.py
    transforms: tuple[str, ...] = PRIME_TRANSFORMS  # enable_aug.*: all three
    diffeo_s_t: float = 1.0  # diffeo.sT
    diffeo_r_t: float = 1.0  # diffeo.rT
    diffeo_s_cut: float = 1.0  # diffeo.scut
    diffeo_r_cut: float = 1.0  # diffeo.rcut
    diffeo_cut_min: int = 2  # diffeo.cutmin
    diffeo_cut_max: int = 100  # diffeo.cutmax
    diffeo_alpha: float = 1.0  # diffeo.alpha
    color_cut: int = 100  # color_jit.cut
    color_t: float = 0.01  # color_jit.T
    filter_kernel_size: int = 3  # rand_filter.kernel_size
    filter_sigma: float = 4.0  # rand_filter.sigma
    filter_centre: bool = False  # False: the reference's off-centre delta (module docstring)
    shared_draws: bool = True  # True: the reference's per-call draws (module docstring)

    def check(self) -> None:
        if self.width < 1 or self.max_depth < 1:
            raise ConfigError(f"PRIME needs width >= 1 and max_depth >= 1, got {self.width}, {self.max_depth}")
        if self.depth == 0 or self.depth < -1 or self.depth > self.max_depth:
            raise ConfigError(f"PRIME depth must be -1 or in 1..max_depth={self.max_depth}, got {self.depth}")
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown or not self.transforms:
            raise KeyError(f"PRIME transforms must be a non-empty subset of {list(TRANSFORMS)}, got {self.transforms}")
        if not 1 <= self.diffeo_cut_min < self.diffeo_cut_max:
            raise ConfigError(f"need 1 <= diffeo_cut_min < diffeo_cut_max, got "
                             f"{self.diffeo_cut_min}, {self.diffeo_cut_max}")
        if self.color_cut < 1 or self.color_t < 0 or self.filter_sigma < 0:
            raise ConfigError("PRIME needs color_cut >= 1, color_t >= 0 and filter_sigma >= 0")
        if self.filter_kernel_size < 1 or self.filter_kernel_size % 2 == 0:
            raise ConfigError(f"filter_kernel_size must be odd ('same' padding), got {self.filter_kernel_size}")


# ----------------------------------------------------------------------------- the primitives
# Pure functions of the image and explicit draws (tests inject draws here).


def temperature_range(n: int, cut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """utils/diffeomorphism.py `temperature_range` for integer cuts (float64): T1, T2."""
    c = cut.double() + 1e-6
    log = torch.log(c)
    return 1.0 / (math.pi * n**2 * log), 4.0 / (math.pi**3 * c**2 * log)


def mode_energies(cut: torch.Tensor, size: int) -> torch.Tensor:
    """(rows, size, size) float32 e_ij = [sqrt(i^2 + j^2) < cut + 0.5] / sqrt(i^2 + j^2), i, j =
    1..size (size >= every cut; entries beyond a row's cut are 0)."""
    k = torch.arange(1, size + 1, dtype=torch.float32, device=cut.device)
    r = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    return (r < cut.float()[:, None, None] + 0.5) / r


def sine_modes(n: int, size: int, device) -> torch.Tensor:
    """(n, size) float32 sin(pi x k), x = linspace(0, 1, n), k = 1..size."""
    x = torch.linspace(0, 1, n, dtype=torch.float32, device=device)
    k = torch.arange(1, size + 1, dtype=torch.float32, device=device)
    return torch.sin(math.pi * x[:, None] * k[None, :])


def scalar_fields(coeff: torch.Tensor, energy: torch.Tensor, n: int) -> torch.Tensor:
    """(rows, F, n, n) fields[y, x] = sum_ij C_ij e_ij s[x, i] s[y, j] for coefficients (rows, F,
    g, g) and energies (rows, g, g) (broadcast over F)."""
    s = sine_modes(n, coeff.shape[-1], coeff.device)
    c = coeff * energy[:, None]
    return s @ c.transpose(-1, -2) @ s.T  # (S C^T S^T)[y, x]


def remap(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """utils/diffeomorphism.py `remap` ('linear'), batched: x float (rows, C, n, n) sampled at
    (col - dx, row - dy) clamped to [0, n - 1], from the floor / ceil neighbours; dx, dy (rows, n,
    n) or (1, n, n), one field for every row."""
    rows, c, h, w = x.shape
    yy = torch.arange(h, dtype=dx.dtype, device=x.device)[:, None]
    xx = torch.arange(w, dtype=dx.dtype, device=x.device)[None, :]
    xn = (xx - dx).clamp(0, w - 1).expand(rows, h, w)
    yn = (yy - dy).clamp(0, h - 1).expand(rows, h, w)
    xf, yf, xc, yc = xn.floor(), yn.floor(), xn.ceil(), yn.ceil()
    xv, yv = (xn - xf)[..., None], (yn - yf)[..., None]  # (rows, H, W, 1)
    # channels last, so each gathered index moves a pixel's C values together (measured faster
    # than a pixels-first layout even when one field serves every row)
    flat = x.permute(0, 2, 3, 1).reshape(rows * h * w, c)
    base = torch.arange(rows, device=x.device)[:, None, None] * (h * w)

    def at(yi, xi):
        return flat.index_select(0, (base + yi.long() * w + xi.long()).reshape(-1)).reshape(rows, h, w, c)

    out = ((1 - yv) * (1 - xv) * at(yf, xf) + (1 - yv) * xv * at(yf, xc)
           + yv * (1 - xv) * at(yc, xf) + yv * xv * at(yc, xc))  # fmt: skip
    return out.permute(0, 3, 1, 2).contiguous()


def diffeo_apply(x: torch.Tensor, fields: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Deform x (rows, C, n, n) with unit fields (rows or 1, 2, n, n) = (u, v) at temperatures
    (rows,) or (1,) alike: dx = sqrt(T) u n, dy = sqrt(T) v n."""
    n = x.shape[-1]
    scale = torch.sqrt(temperature.float())[:, None, None] * n
    return remap(x, fields[:, 0] * scale, fields[:, 1] * scale)


COLOR_CHUNK_ELEMENTS = 1 << 18  # rows per pass of smooth_color_apply: about this many values


def smooth_color_apply(x: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
    """clamp(x + sum_k coeff[k - 1] sin(k pi x), 0, 1) per image and channel; coeff (rows, C, K)
    already scaled by sqrt(T) and zero beyond each row's cut.

    sin(k pi x) by the recurrence s_{k+1} = 2 cos(pi x) s_k - s_{k-1} in float32 (the reference
    evaluates sin(x k pi) in float32: both are within ~1e-4 of exact, far below a grey level),
    two passes per k: the buffers hold +-s_k and the signs are tracked in Python. Rows are taken
    in cache-sized chunks ordered by their highest nonzero k, each chunk stopping there."""
    rows, c = x.shape[:2]
    out = torch.empty_like(x)
    if rows == 0:
        return out
    used = (coeff != 0).any(1)  # (rows, K)
    top = torch.where(used.any(1), coeff.shape[-1] - used.flip(1).int().argmax(1), 0)
    order = torch.argsort(top)
    top_sorted = top[order].tolist()
    chunk = max(1, COLOR_CHUNK_ELEMENTS // x[0].numel())
    for start in range(0, rows, chunk):
        sel = order[start : start + chunk]
        kmax = top_sorted[min(start + chunk, rows) - 1]
        xs = x[sel].reshape(len(sel), c, -1)
        acc = xs.clone()
        if kmax > 0:
            a = coeff[sel].float()
            theta = xs * math.pi
            twice_cos = 2.0 * torch.cos(theta)
            prev, cur = torch.zeros_like(xs), torch.sin(theta)  # s_0, s_1
            sign_prev, sign_cur = 1.0, 1.0  # prev holds sign_prev * s_{k-1}, cur sign_cur * s_k
            acc.addcmul_(a[:, :, 0, None], cur)
            for k in range(1, kmax):
                # prev + v 2 cos cur with v = -sign_prev sign_cur is -sign_prev s_{k+1}
                prev.addcmul_(twice_cos, cur, value=-sign_prev * sign_cur)
                sign_new = -sign_prev
                acc.addcmul_(a[:, :, k, None], prev, value=sign_new)
                prev, cur, sign_prev, sign_cur = cur, prev, sign_cur, sign_new
        out[sel] = acc.clamp_(0, 1).reshape(len(sel), *x.shape[1:])
    return out


def filter_apply(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per image k x k kernel (rows, k, k) on all channels, zero 'same' padding (cross-correlation,
    as conv2d), clamped to [0, 1]. (The reference also maps NaN to 1, which only mixed precision
    produces.)"""
    rows, c, h, w = x.shape
    k = kernels.shape[-1]
    weight = kernels.float().repeat_interleave(c, 0)[:, None]  # (rows * c, 1, k, k)
    out = F.conv2d(x.reshape(1, rows * c, h, w), weight, padding=k // 2, groups=rows * c)
    return out.reshape(rows, c, h, w).clamp_(0, 1)


# ----------------------------------------------------------------------------- draws


def _beta_params(s: float, r: float) -> tuple[float, float]:
    """The reference's Beta(s - s / (r + 1), s / (r + 1))."""
    return s - s / (r + 1), s / (r + 1)


def _per_row(keys: R.SampleKeys, rows: torch.Tensor, batch: int, stream: str, shared: bool,
             draw: Callable[[R.SampleKeys, str], dict]) -> dict:  # fmt: skip
    """Draws for chain rows (row = chain * batch + sample): each (sample, chain) from its own key
    and stream; with `shared`, one draw from the batch's first key for all rows."""
    if shared:
        d = draw(keys.subset(slice(0, 1)), stream + "/shared")
        return {k: v.expand(len(rows), *v.shape[1:]) for k, v in d.items()}
    chain, sample = rows // batch, rows % batch
    parts, where = [], []
    for c in torch.unique(chain).tolist():
        sel = (chain == c).nonzero().flatten()
        parts.append(draw(keys.subset(sample[sel]), f"{stream}/c{c}"))
        where.append(sel)
    inverse = torch.argsort(torch.cat(where))
    return {k: torch.cat([p[k] for p in parts])[inverse] for k in parts[0]}


def _bucket(cut: int) -> int:
    """Coefficient grid size for a cut: powers of two to 32, then multiples of 16 (less padding,
    few distinct sizes)."""
    return 1 << max(2, (cut - 1).bit_length()) if cut <= 32 else -(-cut // 16) * 16


def diffeo_params(keys: R.SampleKeys, stream: str, cfg: PrimeConfig, n: int) -> dict:
    """Diffeo's per-call scalars for each key: cut (int64) and temperature T (float64)."""
    a_cut, b_cut = _beta_params(cfg.diffeo_s_cut, cfg.diffeo_r_cut)
    a_t, b_t = _beta_params(cfg.diffeo_s_t, cfg.diffeo_r_t)
    # stochastic=True: cutmax ~ U{cut_min + 1 .. cut_max} first (Diffeo._sample_params)
    top = cfg.diffeo_cut_min + 1 + R.randint(keys, stream + "/cutmax", cfg.diffeo_cut_max - cfg.diffeo_cut_min)
    cut = (beta_ab(keys, stream + "/cut", a_cut, b_cut) * (top + 1 - cfg.diffeo_cut_min) + cfg.diffeo_cut_min).long()
    t1, t2 = temperature_range(n, cut)
    t2 = torch.maximum(t1, cfg.diffeo_alpha * t2)
    return {"cut": cut, "T": beta_ab(keys, stream + "/T", a_t, b_t) * (t2 - t1) + t1}


def color_params(keys: R.SampleKeys, stream: str, cfg: PrimeConfig) -> dict:
    """Color's per-call draws (RandomSmoothColor._sample_params): cut ~ U{1..cut}, T ~ U(0, T)."""
    return {"cut": 1 + R.randint(keys, stream + "/cut", cfg.color_cut),
            "T": cfg.color_t * R.uniform(keys, stream + "/T")}


def filter_params(keys: R.SampleKeys, stream: str, cfg: PrimeConfig) -> dict:
    """Filter's per-call draw (RandomFilter._sample_params): sigma ~ U(0, sigma); the kernel size
    is fixed (its candidate list holds only kernel_size)."""
    return {"sigma": cfg.filter_sigma * R.uniform(keys, stream + "/sigma")}


def filter_delta(k: int, centre: bool, device=None) -> torch.Tensor:
    """The identity part of the kernel: 1 at (c, c), c = ceil(k / 2) as the reference (off-centre,
    see the module docstring) or k // 2 with `centre`."""
    c = k // 2 if centre else min(math.ceil(k / 2), k - 1)  # k = 1 would put it outside the kernel
    delta = torch.zeros(k, k, device=device)
    delta[c, c] = 1.0
    return delta


def _diffeo(x, keys, rows, batch, stream, cfg: PrimeConfig):
    n = x.shape[-1]
    d = _per_row(keys, rows, batch, stream, cfg.shared_draws, lambda k, s: diffeo_params(k, s, cfg, n))
    if cfg.shared_draws:  # one field for the whole call
        g = int(d["cut"][0])
        coeff = normal(keys.subset(slice(0, 1)), stream + "/shared/field", (2, g, g))
        fields = scalar_fields(coeff, mode_energies(d["cut"][:1], g), n)
        return diffeo_apply(x, fields, d["T"][:1])
    fields = torch.empty(len(rows), 2, n, n, device=x.device)
    chain, sample = rows // batch, rows % batch
    size = torch.tensor([_bucket(c) for c in range(cfg.diffeo_cut_max + 1)], device=x.device)[d["cut"]]
    for c in torch.unique(chain).tolist():
        for g in torch.unique(size[chain == c]).tolist():
            sel = ((chain == c) & (size == g)).nonzero().flatten()
            # The normals of a (sample, chain) depend on its grid size g, itself a function of
            # its own cut: still a function of the sample's key alone.
            coeff = normal(keys.subset(sample[sel]), f"{stream}/c{c}/field{g}", (2, g, g))
            fields[sel] = scalar_fields(coeff, mode_energies(d["cut"][sel], g), n)
    return diffeo_apply(x, fields, d["T"])


def _color(x, keys, rows, batch, stream, cfg: PrimeConfig):
    p = _per_row(keys, rows, batch, stream, cfg.shared_draws, lambda k, s: color_params(k, s, cfg))
    z = _per_row(keys, rows, batch, stream, False, lambda k, s: {"z": normal(k, s + "/coeff", (3, cfg.color_cut))})
    keep = torch.arange(1, cfg.color_cut + 1, device=x.device) <= p["cut"][:, None]  # (rows, K)
    coeff = z["z"] * torch.sqrt(p["T"]).float()[:, None, None] * keep[:, None, :]
    return smooth_color_apply(x, coeff)


def _filter(x, keys, rows, batch, stream, cfg: PrimeConfig):
    k = cfg.filter_kernel_size
    p = _per_row(keys, rows, batch, stream, cfg.shared_draws, lambda kk, s: filter_params(kk, s, cfg))
    z = _per_row(keys, rows, batch, stream, False, lambda kk, s: {"z": normal(kk, s + "/kernel", (k, k))})
    return filter_apply(x, p["sigma"].float()[:, None, None] * z["z"] + filter_delta(k, cfg.filter_centre, x.device))


TRANSFORMS: dict[str, Callable] = {"diffeo": _diffeo, "color": _color, "filter": _filter}


# ----------------------------------------------------------------------------- mixing


def prime_mix(x: torch.Tensor, keys: R.SampleKeys, view: int, cfg: PrimeConfig) -> torch.Tensor:
    """One PRIME view of float images x (B, 3, H, W) in [0, 1] -> float32 (B, 3, H, W)."""
    b = x.shape[0]
    s = f"prime/v{view}"
    steps = cfg.depth if cfg.depth > 0 else cfg.max_depth
    weights = R.dirichlet(keys, s + "/w", 1.0, cfg.width).float()  # (B, width)
    m = R.beta(keys, s + "/m", 1.0).float()  # (B,)
    length = 1 + R.randint(keys, s + "/depth", cfg.max_depth, (cfg.width,))  # (B, width)
    pick = R.randint(keys, s + "/transform", len(cfg.transforms), (cfg.width, steps))
    # rows in (chain, sample) order, as the reference's '(m b)' stack
    length = length.T.reshape(-1)
    pick = pick.permute(1, 0, 2).reshape(-1, steps)
    chains = x.repeat(cfg.width, 1, 1, 1)
    for j in range(steps):
        for t, name in enumerate(cfg.transforms):
            rows = ((length > j) & (pick[:, j] == t)).nonzero().flatten()
            if len(rows):
                chains[rows] = TRANSFORMS[name](chains[rows], keys, rows, b, f"{s}/s{j}/{name}", cfg)
    mix = torch.einsum("bm,mbchw->bchw", weights, chains.reshape(cfg.width, *x.shape))
    return (1.0 - m)[:, None, None, None] * x + m[:, None, None, None] * mix


def prime_views(x: torch.Tensor, keys: R.SampleKeys, *, jsd: bool, **params) -> torch.Tensor:
    """PRIME training views of a flipped and cropped uint8 batch (B, 3, H, W), any device.

    jsd=True: float32 (3B, 3, H, W) = [clean; aug1; aug2] (the reference's default on CIFAR,
    `augmix.no_jsd = False`); jsd=False: float32 (B, 3, H, W) = [aug]. `params`: the fields of
    PrimeConfig (defaults: the CIFAR configs)."""
    keys = check_uint8_batch(x, keys, square=True)
    unknown = sorted(set(params) - set(PrimeConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown PRIME parameter(s) {unknown}; known: {sorted(PrimeConfig.__dataclass_fields__)}")
    cfg = PrimeConfig(**params)
    cfg.check()
    xf = x.float().div_(255.0)
    views = [prime_mix(xf, keys, v, cfg) for v in ((0, 1) if jsd else (0,))]
    return torch.cat(([xf] if jsd else []) + views, 0)
