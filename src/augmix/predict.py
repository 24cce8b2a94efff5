"""Model outputs for evaluation: logits of a uint8 image batch in eval mode, float32."""

from __future__ import annotations

import contextlib

import torch


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int, *, autocast: bool = False) -> torch.Tensor:
    """Logits (N, C) float32 for uint8 images (N, 3, H, W) on the model's device, in eval mode.
    Evaluation runs in float32 (autocast False), as the reference: bf16 logits would coarsen the
    confidences that calibration and top-5 distance read."""
    model.eval()
    out = []
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    for i in range(0, len(x), batch_size):
        with ctx:
            out.append(model(x[i : i + batch_size].float().div_(255)).float())
    return torch.cat(out)
