"""The AugMix training loss: clean cross-entropy plus the Jensen-Shannon consistency term.

Reference: google-research/augmix `cifar.py` `train` (docs/reference-facts.md, "JSD loss"). The caller runs ONE
forward pass over the concatenated [clean; aug1; aug2] batch and hands the logits over here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

JSD_WEIGHT = 12.0  # a literal in REF cifar.py and imagenet.py
MIXTURE_FLOOR = 1e-7  # REF clamps the mixture before the log to avoid a huge KL on underflow


def jsd_consistency(
    logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor
) -> torch.Tensor:
    """JS(p_c, p_1, p_2) = mean over the 3 views of batchmean KL(p || M), M = clamp(mean p).

    Nothing is detached: gradients flow through all three distributions and through M (REF).
    """
    probs = [F.softmax(z, dim=1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_mixture = torch.clamp((probs[0] + probs[1] + probs[2]) / 3.0, MIXTURE_FLOOR, 1.0).log()
    kl = [F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]
    return (kl[0] + kl[1] + kl[2]) / 3.0


def augmix_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, jsd_weight: float = JSD_WEIGHT
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REF loss on logits (3B, C) laid out [clean; aug1; aug2]: CE on the clean block only
    plus jsd_weight * JSD. Returns (loss, {"ce": ..., "jsd": ...}) with detached parts."""
    b = targets.shape[0]
    if logits.dim() != 2 or logits.shape[0] != 3 * b:
        raise ValueError(
            f"augmix_loss expects logits (3B, C) = (3*{b}, C) for [clean; aug1; aug2], "
            f"got {tuple(logits.shape)}"
        )
    clean, aug1, aug2 = torch.split(logits, b)
    ce = F.cross_entropy(clean, targets)
    jsd = jsd_consistency(clean, aug1, aug2)
    loss = ce + jsd_weight * jsd
    return loss, {"ce": ce.detach(), "jsd": jsd.detach()}
