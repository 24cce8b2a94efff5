"""Training methods of the AugMix comparison grid (paper Table 1), keyed by name.

A method turns one base-transformed batch into a scalar training loss:

    method(model, batch, hp, gen) -> (loss, logs)

``batch.x`` holds float32 images in [0, 1], already flipped and cropped by the caller; models
normalise inside (augmix.models). ``hp`` is the method's own typed params section
(``config.METHOD_PARAMS[name]``, per-dataset values applied): its published values live in
params.yaml with their sources. ``gen`` is a ``torch.Generator`` on the batch's device, seeded by the
caller from (seed, epoch, step); every random draw here comes from it, never from a global generator.
``logs`` holds plain floats that cost no device synchronisation beyond what the method already needed.

The full method table, AugMix included, is ``augmix.training_methods.METHODS``.

Soft-label methods (mixup, cutmix, fmix) use ``lam * CE(y_a) + (1 - lam) * CE(y_b)``, which equals
CE against the soft target ``lam * onehot(y_a) + (1 - lam) * onehot(y_b)`` (``soft_targets``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2


@dataclass
class Batch:
    x: torch.Tensor  # float32 (B, 3, H, W) in [0, 1], base transform (flip, crop) already applied
    y: torch.Tensor  # int64 (B,)
    num_classes: int


Method = Callable[[nn.Module, Batch, Any, torch.Generator], tuple[torch.Tensor, dict[str, float]]]

# --------------------------------------------------------------------------- random draws


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=gen.device)


def _randint(gen: torch.Generator, high: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=gen, device=gen.device)


def _permutation(gen: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=gen, device=gen.device).to(device)


def sample_beta(alpha: float, gen: torch.Generator) -> float:
    """lam ~ Beta(alpha, alpha) as a Python float, drawn deterministically from ``gen``.

    torch.distributions cannot take a generator, so a NumPy generator is seeded from ``gen``.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    seed = int(_randint(gen, 2**62, 1).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


# --------------------------------------------------------------------------- losses


def soft_targets(y_a: torch.Tensor, y_b: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """lam * onehot(y_a) + (1 - lam) * onehot(y_b); each row sums to one."""
    return lam * F.one_hot(y_a, num_classes).float() + (1.0 - lam) * F.one_hot(y_b, num_classes).float()


def mixed_cross_entropy(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)


# --------------------------------------------------------------------------- batch transforms


def cutout_mask(batch: int, height: int, width: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) float mask, 0 inside one length x length hole per sample, 1 elsewhere.

    DeVries & Taylor: centre (cy, cx) uniform over all pixels; the hole spans
    [c - length // 2, c + length // 2) clipped to the image, so it shrinks near the border.
    """
    cy = _randint(gen, height, batch).view(batch, 1, 1)
    cx = _randint(gen, width, batch).view(batch, 1, 1)
    rows = torch.arange(height, device=gen.device).view(1, height, 1)
    cols = torch.arange(width, device=gen.device).view(1, 1, width)
    half = length // 2
    inside = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)
    return (~inside).float().unsqueeze(1)


def mixup_batch(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator):
    """Zhang et al.: one lam ~ Beta(alpha, alpha) per batch, partner = a random permutation.

    Returns (mixed x, y_a, y_b, lam).
    """
    lam = sample_beta(alpha, gen)
    perm = _permutation(gen, x.shape[0], x.device)
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def cutmix_box(height: int, width: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    """Yun et al.: box of side sqrt(1 - lam) times the image side, centre uniform, clipped.

    Returns (top, bottom, left, right), half-open. (Their rand_bbox calls dim 2 "W" and dim 3 "H";
    only non-square images would notice; here height is dim 2.)
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(_randint(gen, height, 1).item())
    cx = int(_randint(gen, width, 1).item())
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def cutmix_batch(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator):
    """Paste one box from a permuted partner into every image of the batch.

    Returns (mixed x, y_a, y_b, lam, mask) where mask (H, W) is 1 where the image keeps its own
    pixels and lam = mask.mean() (Yun et al. recompute lam from the clipped box area).
    """
    height, width = x.shape[-2:]
    lam0 = sample_beta(alpha, gen)
    perm = _permutation(gen, x.shape[0], x.device)
    top, bottom, left, right = cutmix_box(height, width, lam0, gen)
    mask = torch.ones(height, width, device=x.device, dtype=x.dtype)
    mask[top:bottom, left:right] = 0.0
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mask * x + (1.0 - mask) * x[perm], y, y[perm], lam, mask


def fmix_low_freq_image(
    height: int, width: int, decay_power: float, gen: torch.Generator, *, reference_spectrum: bool = True
) -> torch.Tensor:
    """A random (H, W) grey image whose Fourier amplitudes fall off as 1 / f**decay_power.

    Frequencies below 1 / max(H, W) are raised to it, as in ecs-vlc/FMix fmix.py.
    reference_spectrum=True reproduces an FMix quirk: the sampled (real, imag) pairs are reshaped
    into one real array, so the half-spectrum gets real coefficients only and column j carries the
    scale of frequency column j // 2 (the spectrum is stretched 2x along the width). False samples
    proper complex coefficients a + ib with a, b ~ N(0, 1) times the scale of their own frequency.
    """
    fy = torch.fft.fftfreq(height, device=gen.device).view(height, 1)
    n_cols = width // 2 + 1
    col_freq = torch.fft.rfftfreq(width, device=gen.device)
    if reference_spectrum:
        col_freq = col_freq[torch.arange(n_cols, device=gen.device) // 2]
    freq = torch.sqrt(fy * fy + col_freq.view(1, n_cols) ** 2)
    scale = 1.0 / torch.clamp(freq, min=1.0 / max(height, width)) ** decay_power
    if reference_spectrum:
        spectrum = torch.complex(torch.randn((height, n_cols), generator=gen, device=gen.device) * scale,
                                 torch.zeros((height, n_cols), device=gen.device))
    else:
        pair = torch.randn((2, height, n_cols), generator=gen, device=gen.device) * scale
        spectrum = torch.complex(pair[0], pair[1])
    return torch.fft.irfft2(spectrum, s=(height, width))


def fmix_mask(
    height: int, width: int, lam: float, decay_power: float, gen: torch.Generator, *, reference_spectrum: bool = True
) -> torch.Tensor:
    """Binary (H, W) mask: the ceil or floor of lam * H * W largest pixels of a low-frequency image set to 1.

    FMix rounds lam * N up or down with probability 1/2 each, so mask.mean() is within 1 / N of lam.
    """
    image = fmix_low_freq_image(height, width, decay_power, gen, reference_spectrum=reference_spectrum)
    n = height * width
    num = math.ceil(lam * n) if float(_rand(gen, 1).item()) > 0.5 else math.floor(lam * n)
    mask = torch.zeros(n, device=image.device)
    mask[torch.argsort(image.flatten(), descending=True)[:num]] = 1.0
    return mask.view(height, width)


def fmix_batch(x: torch.Tensor, y: torch.Tensor, alpha: float, decay_power: float, gen: torch.Generator,
               *, reference_spectrum: bool = True):
    """One FMix mask per batch (as the reference): x * mask + x[perm] * (1 - mask).

    Returns (mixed x, y_a, y_b, lam, mask); lam is the sampled Beta value, which FMix also uses in
    the loss (the realised mask mean differs from it by at most 1 / (H * W)).
    """
    height, width = x.shape[-2:]
    lam = sample_beta(alpha, gen)
    mask = fmix_mask(height, width, lam, decay_power, gen, reference_spectrum=reference_spectrum).to(x.device, x.dtype)
    perm = _permutation(gen, x.shape[0], x.device)
    return mask * x + (1.0 - mask) * x[perm], y, y[perm], lam, mask


def _autoaugment_policies() -> dict[str, Any]:
    return {
        "cifar10": v2.AutoAugmentPolicy.CIFAR10,
        "imagenet": v2.AutoAugmentPolicy.IMAGENET,
        "svhn": v2.AutoAugmentPolicy.SVHN,
    }


def _autoaugment_transform(policy: str):
    policies = _autoaugment_policies()
    if policy not in policies:
        raise KeyError(f"unknown AutoAugment policy {policy!r}; valid: {', '.join(sorted(policies))}")
    return v2.AutoAugment(policies[policy])


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    # AutoAugment works on 8-bit images, as the PIL pipelines of Cubuk et al. do.
    return (x.detach() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def autoaugment_batch(x: torch.Tensor, gen: torch.Generator, policy: str = "cifar10", *,
                      per_image: bool = False) -> torch.Tensor:
    """Apply an AutoAugment policy independently to every image (a fresh sub-policy per image).

    Sampling as torchvision.transforms.v2.AutoAugment does per call: a uniform sub-policy; each of
    its two ops applied with its probability; signed magnitudes negated with probability 1/2. The
    draws come from ``gen``; images that drew the same (op, magnitude, sign) in an op slot are then
    transformed together with torchvision's own op code, on x's device. This relies on
    torchvision's private ``_policies``, ``_AUGMENTATION_SPACE`` and
    ``_apply_image_or_video_transform``; without them, or with ``per_image=True``, the plain
    per-image loop runs instead (about 1 ms per 32x32 image on one CPU core, 110 ms per batch of
    128, versus a few ms grouped).
    """
    transform = _autoaugment_transform(policy)
    needed = ("_policies", "_AUGMENTATION_SPACE", "_apply_image_or_video_transform", "_fill", "interpolation")
    if per_image or not all(hasattr(transform, a) for a in needed):
        return _autoaugment_per_image(x, gen, transform)
    images = _to_uint8(x)
    n, height, width = images.shape[0], images.shape[-2], images.shape[-1]
    subpolicies = transform._policies
    chosen = _randint(gen, len(subpolicies), n).tolist()
    for slot in range(2):
        applied = (_rand(gen, n) <= torch.tensor([subpolicies[c][slot][1] for c in chosen], device=gen.device))
        negate = _rand(gen, n) <= 0.5
        groups: dict[tuple[str, int, bool], list[int]] = {}
        for i, (c, a, neg) in enumerate(zip(chosen, applied.tolist(), negate.tolist())):
            if a:
                op, _, mag_idx = subpolicies[c][slot]
                groups.setdefault((op, mag_idx, neg), []).append(i)
        for (op, mag_idx, neg), idx in groups.items():
            magnitudes_fn, signed = transform._AUGMENTATION_SPACE[op]
            magnitudes = magnitudes_fn(10, height, width)
            magnitude = 0.0 if magnitudes is None else float(magnitudes[mag_idx])
            if signed and neg:
                magnitude = -magnitude
            rows = torch.tensor(idx, device=images.device)
            images[rows] = transform._apply_image_or_video_transform(
                images[rows], op, magnitude, interpolation=transform.interpolation, fill=transform._fill
            )
    return images.to(dtype=x.dtype).div_(255.0)


def _autoaugment_per_image(x: torch.Tensor, gen: torch.Generator, transform) -> torch.Tensor:
    """The plain loop: torchvision draws from the global CPU generator, so each image runs under
    ``torch.random.fork_rng`` seeded from ``gen``; the global state is restored afterwards."""
    seeds = _randint(gen, 2**62, x.shape[0]).tolist()
    images = _to_uint8(x).cpu()
    out = torch.empty_like(images)
    with torch.random.fork_rng(devices=[]):
        for i, seed in enumerate(seeds):
            torch.manual_seed(seed)
            out[i] = transform(images[i])
    return out.to(device=x.device, dtype=x.dtype).div_(255.0)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, *,
               eps: float, step_size: float, steps: int, random_start: bool = True) -> torch.Tensor:
    """L-inf PGD on the cross-entropy (Madry et al. 2018), in [0, 1] pixel space.

    The model stays in its current mode (training mode during training, as in Madry et al.'s
    code), so BatchNorm sees the attack's forward passes too. Only the input gets gradients.
    """
    x = x.detach()
    if random_start:
        delta = (_rand(gen, *x.shape).to(x.device) * 2.0 - 1.0) * eps
        x_adv = (x + delta).clamp(0.0, 1.0)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


# --------------------------------------------------------------------------- methods


def standard(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    return F.cross_entropy(model(batch.x), batch.y), {}


def cutout(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """DeVries & Taylor 2017 (arXiv:1708.04552, uoguelph-mlrg/Cutout): one hole per image; its code
    zeroes pixels after Normalize, so the hole takes the model's normalisation mean here."""
    b, _, h, w = batch.x.shape
    mask = cutout_mask(b, h, w, int(hp.length), gen).to(batch.x.device, batch.x.dtype)
    norm = getattr(model, "normalize", None)
    fill = norm.mean if norm is not None else 0.0
    x = batch.x * mask + (1.0 - mask) * torch.as_tensor(fill, dtype=batch.x.dtype, device=batch.x.device)
    return F.cross_entropy(model(x), batch.y), {}


def mixup(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """Zhang et al. 2018 (facebookresearch/mixup-cifar10 train.py)."""
    x, y_a, y_b, lam = mixup_batch(batch.x, batch.y, float(hp.alpha), gen)
    return mixed_cross_entropy(model(x), y_a, y_b, lam), {"lam": lam}


def cutmix(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """Yun et al. 2019 (clovaai/CutMix-PyTorch train.py)."""
    # Yun et al. decide per batch whether to mix; an unmixed batch is plain cross-entropy.
    if float(_rand(gen, 1).item()) >= float(hp.prob):
        return F.cross_entropy(model(batch.x), batch.y), {"lam": 1.0, "mixed": 0.0}
    x, y_a, y_b, lam, _ = cutmix_batch(batch.x, batch.y, float(hp.alpha), gen)
    return mixed_cross_entropy(model(x), y_a, y_b, lam), {"lam": lam, "mixed": 1.0}


def fmix(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """Harris et al. 2020 (ecs-vlc/FMix fmix.py: hard masks, mask size = image size)."""
    x, y_a, y_b, lam, _ = fmix_batch(batch.x, batch.y, float(hp.alpha), float(hp.decay_power), gen,
                                     reference_spectrum=bool(hp.reference_spectrum))
    return mixed_cross_entropy(model(x), y_a, y_b, lam), {"lam": lam}


def autoaugment(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """Cubuk et al. 2019, the learned policy as torchvision ships it, after the shared flip and crop.
    Not Cubuk et al.'s own pipeline: theirs applies the policy before crop and flip and adds a 16x16
    Cutout; torchvision's magnitude bins reach each op's maximum at bin 9 (theirs 0.9 of it) and fill
    black."""
    x = autoaugment_batch(batch.x, gen, str(hp.policy))
    return F.cross_entropy(model(x), batch.y), {}


def pgd(model: nn.Module, batch: Batch, hp: Any, gen: torch.Generator):
    """Madry et al. 2018: L-inf PGD, eps 8/255, step 2/255, random start; their CIFAR-10 training
    adversary takes 7 steps (MadryLab/cifar10_challenge's config.json uses 10). The step count behind
    the AugMix paper's baseline is [unconfirmed]."""
    x_adv = pgd_attack(model, batch.x, batch.y, gen, eps=float(hp.eps), step_size=float(hp.step_size),
                       steps=int(hp.steps), random_start=bool(hp.random_start))
    # Madry et al. train on the adversarial examples only.
    return F.cross_entropy(model(x_adv), batch.y), {}


BASELINES: dict[str, Method] = {
    "standard": standard,
    "cutout": cutout,
    "mixup": mixup,
    "cutmix": cutmix,
    "autoaugment": autoaugment,
    "pgd": pgd,
    "fmix": fmix,
}
