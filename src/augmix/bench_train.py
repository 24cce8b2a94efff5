"""`augmix bench train`: training throughput for one arch x method, and where the time goes.

Runs the training loop's own parts (`train.TensorSource`, `train.train_epoch`, the same optimiser,
schedule, autocast and compile settings) on random CIFAR-sized uint8 data held on the device:

1. warm-up steps (compilation, cuDNN autotuning, CUDA graph capture);
2. the epoch's augmentation, made up front as training makes it (`EpochViews`), timed alone;
3. `steps` timed optimiser steps, giving step time and the estimated epoch and 100-epoch times;
4. with `full_epoch`, one whole real epoch: views, every step of the epoch, and the test-error pass
   over `test_samples` images, timed end to end (what `augmix train` logs as an epoch's seconds,
   less the checkpoint write).
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import torch

from augmix import config
from augmix.device import pick_device
from augmix.models import build_model
from augmix.sources import Run, Split, TensorSource
from augmix.train import CompiledFirstShape, Forward, bf16_autocast, train_epoch
from augmix.training_methods import METHODS, method_hparams


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> _Timer:
        _sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        _sync(self.device)
        self.seconds = time.perf_counter() - self.t0


def run(*, arch: str = "wrn40_2", method: str = "augmix", batch_size: int = 128, steps: int = 50,
        warmup: int = 5, device: str | None = None, compile: bool = False, quick: bool = False,
        full_epoch: bool | None = None, epoch_samples: int = 50_000, test_samples: int = 10_000,
        epochs: int = 100, params_file: str = "params.yaml") -> dict[str, Any]:
    if quick:
        arch, steps, warmup, batch_size = ("wrn16_1" if arch == "wrn40_2" else arch), 3, 1, 32
        epoch_samples, test_samples = 256, 64
    if not Path(params_file).exists():
        raise FileNotFoundError(f"{params_file} not found: run from the repository root")
    params = config.load(params_file)
    dev = pick_device(device or "auto")
    cuda = dev.type == "cuda"
    full_epoch = cuda if full_epoch is None else full_epoch  # a whole CPU epoch of WRN-40-2 takes hours
    if cuda:
        torch.backends.cudnn.benchmark = params.train.cudnn_benchmark
    entry = METHODS[method]
    hp = entry.setup(method_hparams(params, method, "cifar10"), Path(params.data.root), dev)
    g = torch.Generator().manual_seed(0)

    def synthetic(n: int) -> Split:
        return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(dev),
                     torch.randint(0, 10, (n,), generator=g).to(dev))

    source = TensorSource(Run(0, entry, hp, params.runtime.eval_batch_size), synthetic(epoch_samples),
                          synthetic(test_samples), 10)
    torch.manual_seed(0)
    model = build_model(arch, 10).to(dev)
    if params.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = cuda and params.train.bf16
    fwd = Forward(model, CompiledFirstShape(model, params.train.compile_mode) if compile else model,
                  bf16_autocast(dev, bf16))
    o = params.archs[arch] if arch in params.archs else params.archs["wrn40_2"]
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay, **({"fused": True} if cuda else {}))
    steps_per_epoch = math.ceil(epoch_samples / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)  # the loop's per-step schedule call
    step_fn = entry.step

    def order(epoch: int) -> list[torch.Tensor]:
        perm = torch.randperm(epoch_samples, generator=torch.Generator().manual_seed(epoch))
        return list(perm.split(batch_size))

    def steps_of(epoch: int, index_batches: list[torch.Tensor]) -> None:
        train_epoch(fwd, opt, sched, source.batches(epoch, index_batches), step_fn, hp, seed=0, epoch=epoch,
                    device=dev)

    model.train()
    warm = order(0)
    steps_of(0, warm[:warmup] + warm[-1:])  # compile, autotune, capture; and the eager short batch
    with _Timer(dev) as aug:
        batches = source.batches(1, order(1))  # the epoch's views, made up front
    with _Timer(dev) as timed:
        train_epoch(fwd, opt, sched, itertools.islice(batches, steps), step_fn, hp, seed=0, epoch=1,
                    device=dev)
    step_s = timed.seconds / steps
    epoch_s = aug.seconds + steps_per_epoch * step_s
    result = {
        "arch": arch, "method": method, "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": torch.__version__, "batch_size": batch_size, "timed_steps": steps, "bf16": bf16,
        "channels_last": params.train.channels_last, "compile": params.train.compile_mode if compile else False,
        "cudnn_benchmark": bool(cuda and params.train.cudnn_benchmark), "epoch_samples": epoch_samples,
        "step_ms": round(step_s * 1e3, 3), "samples_per_s": round(epoch_samples / epoch_s, 1),
        "augmentation_s_per_epoch": round(aug.seconds, 3), "augmentation_share": round(aug.seconds / epoch_s, 4),
        "epoch_s_estimate": round(epoch_s, 2), f"{epochs}_epochs_min_estimate": round(epochs * epoch_s / 60, 2),
    }
    if full_epoch:
        with _Timer(dev) as whole:
            steps_of(2, order(2))
            source.test_error(model, bf16)
            model.train()
        result.update({"full_epoch_s": round(whole.seconds, 2),
                       f"{epochs}_epochs_min_measured": round(epochs * whole.seconds / 60, 2)})
    return result


def format_table(result: dict[str, Any]) -> str:
    width = max(map(len, result))
    return "\n".join(f"{k:<{width}}  {v}" for k, v in result.items())
