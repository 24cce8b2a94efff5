"""`augmix bench eval`: evaluation throughput (images/s) of one architecture, and the projected time
for a clean test set plus a full -C set (15 corruptions x 5 severities x 10,000 CIFAR images)."""

from __future__ import annotations

import time
from typing import Any

import torch

from augmix.bench_train import format_table  # the same key/value table
from augmix.models import build_model
from augmix.predict import predict_logits

__all__ = ["format_table", "run"]


def run(*, arch: str = "wrn40_2", batch_size: int = 1000, batches: int = 10, device: str | None = None,
        bf16: bool = True, quick: bool = False, test_images: int = 10_000) -> dict[str, Any]:
    if quick:
        arch, batch_size, batches = ("wrn16_1" if arch == "wrn40_2" else arch), 100, 2
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    model = build_model(arch, 10).to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (batch_size * batches, 3, 32, 32), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0)).to(dev)
    predict_logits(model, x[:batch_size], batch_size, autocast=cuda and bf16)  # warm-up
    if cuda:
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    predict_logits(model, x, batch_size, autocast=cuda and bf16)
    if cuda:
        torch.cuda.synchronize(dev)
    rate = len(x) / (time.perf_counter() - t0)
    total = test_images * (1 + 15 * 5)
    return {"arch": arch, "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
            "batch_size": batch_size, "bf16": bool(cuda and bf16), "images_per_s": round(rate, 1),
            "clean_plus_c_images": total, "clean_plus_c_s_estimate": round(total / rate, 1)}
