"""`augmix bench train`: training throughput for one arch x method, and where the time goes.

Runs what `train.py` runs, on random CIFAR-sized uint8 data held on the device: the epoch's
augmentation made up front in large chunks (`EpochViews`), then timed optimiser steps on batches of
the recipe's size. Reports samples/s, the estimated epoch and 100-epoch times, and the share of the
epoch spent in augmentation versus the network.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(*, arch: str = "wrn40_2", method: str = "augmix", batch_size: int = 128, steps: int = 50,
        warmup: int = 5, device: str | None = None, compile: bool = False, quick: bool = False,
        epoch_samples: int = 50_000, epochs: int = 100, params_file: str = "params.yaml") -> dict[str, Any]:
    from augmix import config
    from augmix.models import build_model
    from augmix.rng import SampleKeys
    from augmix.training_methods import AUGMIX_METHODS, EpochViews, TrainBatch, all_methods, method_hparams

    if quick:
        arch, steps, warmup, batch_size, epoch_samples = ("wrn16_1" if arch == "wrn40_2" else arch), 3, 1, 32, 256
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    if not Path(params_file).exists():
        raise FileNotFoundError(f"{params_file} not found: run from the repository root")
    params = config.load(params_file)
    hp = method_hparams(params, method, dev)
    if method in AUGMIX_METHODS:
        hp["backend"] = "tensor"  # the batched path is what the GPU trains with
    model = build_model(arch, 10).to(dev)
    if cuda and params.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model, mode=params.train.compile_mode) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          **({"fused": True} if cuda else {}))
    g = torch.Generator().manual_seed(0)
    x_all = torch.randint(0, 256, (epoch_samples, 3, 32, 32), dtype=torch.uint8, generator=g).to(dev)
    y_all = torch.randint(0, 10, (epoch_samples,), generator=g).to(dev)
    step_fn = all_methods()[method]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and params.train.bf16 else contextlib.nullcontext()

    _sync(dev)
    t0 = time.perf_counter()
    prepared = EpochViews(x_all, 0, 0, method, hp)
    _sync(dev)
    aug_epoch_s = time.perf_counter() - t0

    order = torch.randperm(epoch_samples, generator=g).to(dev)

    def train_step(i: int) -> None:
        idx = order[(i * batch_size) % epoch_samples:][:batch_size]
        xb = prepared.base[idx]
        batch = TrainBatch(x=xb.float().div(255), y=y_all[idx], num_classes=10, x_uint8=xb,
                           keys=SampleKeys(0, 0, idx), views=prepared.batch_views(idx))
        with autocast:
            loss, _ = step_fn(fwd, batch, hp, torch.Generator(dev).manual_seed(i))
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
    steps_per_epoch = -(-epoch_samples // batch_size)
    epoch_s = aug_epoch_s + steps_per_epoch * step_s
    return {
        "arch": arch, "method": method, "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": torch.__version__, "batch_size": batch_size, "timed_steps": steps,
        "bf16": bool(cuda and params.train.bf16), "channels_last": bool(cuda and params.train.channels_last),
        "compile": params.train.compile_mode if compile else False, "epoch_samples": epoch_samples,
        "step_ms": round(step_s * 1e3, 3), "samples_per_s": round(epoch_samples / epoch_s, 1),
        "augmentation_s_per_epoch": round(aug_epoch_s, 3), "augmentation_share": round(aug_epoch_s / epoch_s, 4),
        "epoch_s_estimate": round(epoch_s, 2), f"{epochs}_epochs_min_estimate": round(epochs * epoch_s / 60, 2),
    }


def format_table(result: dict[str, Any]) -> str:
    width = max(map(len, result))
    return "\n".join(f"{k:<{width}}  {v}" for k, v in result.items())
