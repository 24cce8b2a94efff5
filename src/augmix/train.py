"""Training: the dataset on the device, batched augmentation, per-step cosine, exact resume.

The recipe is the architecture's `archs.<arch>` section (REF cifar.py: SGD with Nesterov momentum,
weight decay on all parameters, shuffled batches with the last partial batch kept, cosine from lr to
its floor stepped every iteration) or, for image-folder data, `imagenet.recipe` (REF imagenet.py).
Randomness: the shuffle, the flip/crop and the method's draws all come from generators seeded by
(seed, epoch, step or sample index), so a run resumed at an epoch boundary replays exactly what an
uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from augmix import io, jobs
from augmix.config import FOLDER_SOURCES
from augmix.data import num_classes
from augmix.device import pick_device
from augmix.errors import ConfigError
from augmix.jobs import Job
from augmix.models import build_model
from augmix.progress import progress
from augmix.rng import derive_seed
from augmix.sources import SOURCES, Run
from augmix.training_methods import METHODS, method_hparams

NUMERICS = tuple(k.removeprefix("train.") for k in jobs.TRAIN_NUMERICS)  # the training numerics a job declares


def cosine_factor(step: int, total: int, floor_ratio: float) -> float:
    """REF cifar.py get_lr: multiplier of the base lr, 1 at step 0 and floor_ratio at step total."""
    return floor_ratio + (1.0 - floor_ratio) * 0.5 * (1.0 + math.cos(math.pi * step / total))


def step_decay_factor(epoch: int, epochs: int) -> float:
    """REF imagenet.py adjust_learning_rate: with k = E // 3, x1 before epoch k, x0.1 before 2k
    (not (2E) // 3: the two differ when E mod 3 == 2), then x0.01."""
    k = epochs // 3
    return 1.0 if epoch < k else 0.1 if epoch < 2 * k else 0.01


@dataclass(frozen=True)
class Recipe:
    """What the optimiser and schedule need, from `archs.<arch>` (CIFAR) or `imagenet.recipe`."""

    epochs: int
    batch_size: int
    lr: float
    lr_min: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str  # a key of SCHEDULES

    def factor(self, step: int, steps_per_epoch: int) -> float:
        return SCHEDULES[self.schedule](self, step, steps_per_epoch)


SCHEDULES = {  # lr multiplier at a (0-based) optimiser step; stepped every iteration
    "cosine": lambda r, t, spe: cosine_factor(t, r.epochs * spe, r.lr_min / r.lr if r.lr else 1.0),
    "step": lambda r, t, spe: step_decay_factor(t // spe, r.epochs),
}


def recipe_for(params: Any, dataset: str, arch: str) -> Recipe:
    """The optimiser and schedule of a job: `archs.<arch>` (CIFAR-style) or `imagenet.recipe`, whose
    lr is per 256 samples (REF imagenet.py scales it by batch_size / 256)."""
    if params.datasets[dataset].source in FOLDER_SOURCES:
        r = params.imagenet.recipe
        scale = r.batch_size / 256
        return Recipe(r.epochs, r.batch_size, r.lr * scale, r.lr_min * scale, r.momentum, r.nesterov,
                      r.weight_decay, r.schedule)
    a = params.archs[arch]
    return Recipe(a.epochs, a.batch_size, a.lr, a.lr_min, a.momentum, a.nesterov, a.weight_decay, "cosine")


@dataclass(frozen=True)
class Dist:
    """This process's place in a `torchrun` job (world 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(cuda: bool) -> Dist:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


class CompiledFirstShape:
    """Calls a static-shape compiled model for inputs shaped like the first one (full batches) and
    the eager model for any other shape (the epoch's shorter last batch). A dynamic-shape compile
    would make every step a dynamic-shape kernel; a second static compile and CUDA-graph capture
    for one step per epoch costs seconds to save milliseconds."""

    def __init__(self, model: torch.nn.Module, mode: str) -> None:
        self.eager = model
        self.compiled = torch.compile(model, mode=mode, dynamic=False)
        self.shape: torch.Size | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape is None:
            self.shape = x.shape
        return (self.compiled if x.shape == self.shape else self.eager)(x)


class Forward:
    """The model as a method calls it: the network (compiled and/or DDP-wrapped) under `autocast`,
    logits back in float32. Only the network runs in bf16: a method's own augmentation (AutoAugment's
    affine grids and Sharpness convolution, FMix's masks, AugMix views made in the step) stays in
    float32, where an autocast around the whole step would run its matmuls and convolutions in bf16.
    Other attributes (`normalize`, which Cutout's fill reads) come from the bare model."""

    def __init__(self, bare: torch.nn.Module, network: Any = None, autocast: Any = None) -> None:
        self.bare, self.network = bare, bare if network is None else network
        self.autocast = contextlib.nullcontext() if autocast is None else autocast

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            return self.network(x).float()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bare, name)


def bf16_autocast(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on CUDA when `train.bf16`; None (full precision) otherwise."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and device.type == "cuda" else None


def train_epoch(model: Forward, optimizer: torch.optim.Optimizer, scheduler: Any, batches: Any,
                step_fn: Any, hp: dict[str, Any], *, seed: int, epoch: int,
                device: torch.device) -> tuple[torch.Tensor, int]:
    """One pass over `batches`: the method's loss, backward, SGD step, per-step schedule (REF cifar.py
    train). Returns (sum of loss x batch size as a device tensor, samples seen): nothing in the loop
    reads a value back to the host, so the CPU queues steps ahead of the GPU."""
    loss_sum, seen = torch.zeros((), device=device), 0
    for step, batch in enumerate(batches):
        gen = torch.Generator(device).manual_seed(derive_seed("step", seed, epoch, step))
        loss, _ = step_fn(model, batch, hp, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().float() * len(batch.y)
        seen += len(batch.y)
    return loss_sum, seen


def train(
    params: Any,
    job: Job,
    *,
    raw_dir: Path,
    out_dir: Path,
    checkpoint: Path,
    fingerprint: str,
    job_params: dict[str, Any],
    run: Any,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train one cell; write model.pt, train_log.csv and train_summary.json to `out_dir`.

    `params` is the job's view (augmix.jobs.view). `checkpoint` is written after every epoch and
    resumed from when its `fingerprint` (the cell and the values of the keys it reads) matches, so a
    change of a run-time key keeps it. `job_params` (those keys and values) is stored in model.pt: the
    file's bytes depend on what the job read and nothing else. `stop_after_epoch` ends the run early,
    as a kill would (tests)."""
    t0 = time.monotonic()
    dataset, arch, method, seed = job.dataset, job.arch, job.method, int(job.seed)
    folder = params.datasets[dataset].source in FOLDER_SOURCES
    # Every training numeric is read up front, used or not on this device: the job declares them
    # all (bf16, cuDNN's timing and CUDA graphs change results on a GPU), and reads what it declares.
    numerics = {k: getattr(params.train, k) for k in NUMERICS}
    if numerics["threads"]:
        torch.set_num_threads(numerics["threads"])
    device = pick_device(params.runtime.device)
    cuda = device.type == "cuda"
    if cuda and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist = init_distributed(cuda)
    nproc_key = "imagenet.nproc" if folder else "train.nproc"
    nproc = params.imagenet.nproc if folder else params.train.nproc
    if dist.world != nproc:  # BatchNorm statistics are per rank: the world size is part of the recipe
        raise ConfigError(f"{nproc_key} is {nproc} but this job runs as {dist.world} processes; set "
                          f"{nproc_key}: {dist.world} (`augmix train` starts torchrun itself when it is > 1)")
    if cuda:  # CIFAR shapes are fixed, so timing cuDNN's algorithms once pays off over the run
        torch.backends.cudnn.benchmark = numerics["cudnn_benchmark"]
    recipe = recipe_for(params, dataset, arch)
    entry = METHODS[method]
    hp = entry.setup(method_hparams(params, method, dataset), Path(params.data.root), device)
    source = params.datasets[dataset].source
    sizes = {"image_size": params.imagenet.image_size, "resize": params.imagenet.resize} if folder else {}
    data = SOURCES[source](Run(seed, entry, hp, params.runtime.eval_batch_size, params.runtime.workers), raw_dir,
                           device, max_train=params.subset.train, max_test=params.subset.test,
                           num_classes=num_classes(raw_dir), **sizes)

    torch.manual_seed(seed)  # initial weights (REF seeds torch with 1)
    model = build_model(arch, data.num_classes).to(device)
    if numerics["channels_last"]:  # faster convolutions on CUDA and on CPU (oneDNN)
        model = model.to(memory_format=torch.channels_last)
    forward_model: Any = model
    if dist.world > 1:  # each rank trains on its share of every global batch; gradients are averaged
        forward_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if numerics["compile"]:
        forward_model = CompiledFirstShape(forward_model, numerics["compile_mode"])
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
                                **({"fused": True} if cuda else {}))
    n = data.n
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: recipe.factor(t, steps_per_epoch))

    log: list[dict[str, Any]] = []
    start_epoch, seconds_before = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("fingerprint") == fingerprint and int(state["epoch"]) < recipe.epochs:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            # Unlike REF, the schedule is restored too (REF restarts the cosine on resume).
            scheduler.load_state_dict(state["scheduler"])
            log, start_epoch = list(state["log"]), int(state["epoch"])
            seconds_before = float(state.get("seconds", sum(r["seconds"] for r in log)))
            print(f"[train] resuming {job.dataset}/{arch}/{method}/seed{seed} after epoch {start_epoch}", flush=True)
            for row in log:  # this run's history is complete even when it resumed
                run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        else:
            print(f"[train] ignoring checkpoint {checkpoint}: other params or code, or a finished run", flush=True)
    run.resumed(start_epoch, seconds_before)

    bf16 = cuda and numerics["bf16"]
    forward = Forward(model, forward_model, bf16_autocast(device, bf16))
    step_fn = entry.step
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        # Dropout (AllConvNet) draws from torch's global generator, which has no per-call argument:
        # seed it per epoch so a resumed run replays the same masks.
        torch.manual_seed(derive_seed("dropout", seed, epoch))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed("shuffle", seed, epoch)))
        # DDP: rank r takes samples r, r + world, ... of every global batch.
        index_batches = [b[dist.rank :: dist.world] for b in order.split(recipe.batch_size)]
        ep_start = time.monotonic()
        batches = progress(data.batches(epoch, index_batches), total=steps_per_epoch,
                           desc=f"epoch {epoch + 1}/{recipe.epochs}", every=params.runtime.log_every)
        loss_sum, seen = train_epoch(forward, optimizer, scheduler, batches, step_fn, hp, seed=seed,
                                     epoch=epoch, device=device)
        test_error = data.test_error(model, False)  # float32, as evaluation (bf16 coarsens logits)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": float(loss_sum) / seen, "test_error": test_error,
               "seconds": time.monotonic() - ep_start}
        log.append(row)
        print(f"[train] epoch {row['epoch']:>3}  lr {row['lr']:.5f}  loss {row['train_loss']:.4f}  "
              f"test error {test_error:.4f}  {row['seconds']:.1f} s", flush=True)
        run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        if dist.main:
            with io.atomic_path(checkpoint, suffix=".pt") as tmp:
                torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "log": log, "seconds": seconds_before + time.monotonic() - t0}, tmp)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < recipe.epochs:
            return {"stopped_after_epoch": epoch + 1}

    if not dist.main:
        return {"rank": dist.rank}
    out_dir.mkdir(parents=True, exist_ok=True)
    # Saved through a file object: given a path, torch.save names the archive's inner folder after the
    # (temporary) file name, so identical models would differ in bytes.
    with io.atomic_path(out_dir / "model.pt", suffix=".pt") as tmp, open(tmp, "wb") as f:
        torch.save({"format": "augmix", "arch": arch, "dataset": dataset, "method": method, "seed": seed,
                    "num_classes": data.num_classes, "classes": data.classes,
                    "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                    "params": job_params}, f)
    io.write_csv(out_dir / "train_log.csv", pd.DataFrame(log))
    checkpoint.unlink(missing_ok=True)  # finished: a forced re-run (dvc repro -f) trains afresh
    return {"dataset": dataset, "arch": arch, "method": method, "seed": seed, "epochs": recipe.epochs,
            "n_train": n, "n_test": data.n_test, "world_size": dist.world,
            "final_test_error": log[-1]["test_error"], "final_train_loss": log[-1]["train_loss"],
            "seconds": round(seconds_before + time.monotonic() - t0, 2),
            "seconds_this_segment": round(time.monotonic() - t0, 2), "resumed_from_epoch": start_epoch}
