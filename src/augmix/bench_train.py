"""`augmix bench train`: training throughput for one arch x method, and where the step time goes.

Runs real training steps (the same step functions as `train.py`) on random CIFAR-sized uint8 data held
on the device, after warm-up, and times separately the augmentation alone (flip/crop + the method's
view construction) on the same batches, so the share of augmentation in the step is visible.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(*, arch: str = "wrn40_2", method: str = "augmix", batch_size: int = 128, steps: int = 20,
        warmup: int = 3, device: str | None = None, bf16: bool = True, channels_last: bool = True,
        compile: bool = False, quick: bool = False, epoch_samples: int = 50_000, epochs: int = 100) -> dict[str, Any]:
    from augmix import config
    from augmix.augment import base_transform_batch, make_views
    from augmix.models import build_model
    from augmix.rng import SampleKeys
    from augmix.training_methods import AUGMIX_METHODS, TrainBatch, all_methods, method_hparams

    if quick:
        arch, steps, warmup, batch_size = ("wrn16_1" if arch == "wrn40_2" else arch), 4, 1, 32
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    params = config.load("params.yaml") if __import__("os").path.exists("params.yaml") else None
    if params is None:
        raise FileNotFoundError("params.yaml not found: run from the repository root")
    hp = method_hparams(params, method, dev)
    if method in AUGMIX_METHODS:
        hp["backend"] = "tensor"  # the batched path is what the GPU trains with
    model = build_model(arch, 10).to(dev)
    if cuda and channels_last:
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen_data = torch.Generator().manual_seed(0)
    n = batch_size * 8
    x_all = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen_data).to(dev)
    y_all = torch.randint(0, 10, (n,), generator=gen_data).to(dev)
    step_fn = all_methods()[method]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and bf16 else contextlib.nullcontext()

    def batch(i: int) -> TrainBatch:
        idx = torch.arange(i * batch_size, (i + 1) * batch_size, device=dev) % n
        keys = SampleKeys(0, 0, idx)
        xb = base_transform_batch(x_all[idx], keys)
        return TrainBatch(x=xb.float().div(255), y=y_all[idx], num_classes=10, x_uint8=xb, keys=keys)

    def train_step(i: int) -> None:
        gen = torch.Generator(dev).manual_seed(i)
        with autocast:
            loss, _ = step_fn(fwd, batch(i), hp, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for i in range(warmup):
        train_step(i)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        train_step(warmup + i)
    _sync(dev)
    step_s = (time.perf_counter() - t0) / steps

    # Augmentation alone on the same batches.
    t0 = time.perf_counter()
    for i in range(steps):
        b = batch(warmup + i)
        if method in AUGMIX_METHODS:
            make_views(b.x_uint8, b.keys, jsd=method == "augmix", backend="tensor",
                       **{k: hp[k] for k in ("severity", "width", "depth", "alpha", "all_ops")})
    _sync(dev)
    aug_s = (time.perf_counter() - t0) / steps
    samples_per_s = batch_size / step_s
    return {
        "arch": arch, "method": method, "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "batch_size": batch_size, "steps": steps, "bf16": bool(cuda and bf16), "compile": compile,
        "step_ms": round(step_s * 1e3, 3), "samples_per_s": round(samples_per_s, 1),
        "augmentation_ms": round(aug_s * 1e3, 3), "augmentation_share": round(min(aug_s / step_s, 1.0), 4),
        "epoch_s_estimate": round(epoch_samples / samples_per_s, 2),
        f"{epochs}_epochs_min_estimate": round(epochs * epoch_samples / samples_per_s / 60, 2),
    }


def format_table(result: dict[str, Any]) -> str:
    width = max(map(len, result))
    return "\n".join(f"{k:<{width}}  {v}" for k, v in result.items())
