"""Training: the dataset on the device, batched augmentation, per-step cosine, exact resume.

The recipe is REF cifar.py (augmix.md §9.1): SGD with Nesterov momentum 0.9, weight decay on all
parameters, batch 128 shuffled with the last partial batch kept, cosine from lr to 1e-6 stepped every
iteration. Randomness: the shuffle, the flip/crop and the method's draws all come from generators
seeded by (seed, epoch, step or sample index), so a run resumed at an epoch boundary replays exactly
what an uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmix import io
from augmix.config import FOLDER_DATASETS, NUM_CLASSES, Params, to_dict
from augmix.progress import progress

# Sections of params.yaml the train stage reads (dvc.yaml and the Snakefile list the same).
TRAIN_SECTIONS = ["seed", "data", "augmix", "optim", "archs", "methods", "train"]
IMAGENET_TRAIN_SECTIONS = ["seed", "data", "augmix", "methods", "train", "imagenet"]


def train_sections(dataset: str) -> list[str]:
    return IMAGENET_TRAIN_SECTIONS if dataset in FOLDER_DATASETS else TRAIN_SECTIONS


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
    """What the optimiser and schedule need, from `optim` + `archs` (CIFAR) or `imagenet`."""

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


def recipe_for(params: Params, dataset: str, arch: str) -> Recipe:
    if dataset in FOLDER_DATASETS:
        p = params.imagenet
        return Recipe(p.epochs, p.batch_size, p.lr * p.batch_size / 256, p.lr_min * p.batch_size / 256,
                      p.momentum, p.nesterov, p.weight_decay, p.schedule)
    o, arch_recipe = params.optim, params.recipe(arch)
    return Recipe(arch_recipe.epochs, o.batch_size, o.lr, o.lr_min, o.momentum, o.nesterov,
                  arch_recipe.weight_decay, "cosine")


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers; independent streams for (seed, epoch, step) tuples."""
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


@dataclass
class Data:
    x: torch.Tensor  # (N, 3, H, W) uint8 on the device
    y: torch.Tensor  # (N,) int64 on the device


def to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> Data:
    return Data(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device), torch.from_numpy(y).to(device))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int, *, autocast: bool = False) -> torch.Tensor:
    """Logits (N, C) float32 for uint8 images (N, 3, H, W) on the model's device; eval mode."""
    model.eval()
    out = []
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    for i in range(0, len(x), batch_size):
        with ctx:
            out.append(model(x[i : i + batch_size].float().div_(255)).float())
    return torch.cat(out)


# ----------------------------------------------------------------------------- data sources
# A source yields each step's TrainBatch for the index batches it is given and measures test error.
# Both key every random draw by (seed, epoch, sample index), so the split over ranks does not matter.


class TensorSource:
    """CIFAR-style data: both splits as uint8 tensors on the device; an epoch's views made up front."""

    def __init__(self, params: Params, method: str, hp: dict[str, Any], train: Data, test: Data,
                 num_classes: int) -> None:
        self.params, self.method, self.hp, self.train, self.test = params, method, hp, train, test
        self.n, self.n_test, self.num_classes = len(train.y), len(test.y), num_classes
        self.classes: list[str] = []

    @classmethod
    def load(cls, params: Params, dataset: str, raw_dir: Path, device: torch.device, method: str,
             hp: dict[str, Any]) -> TensorSource:
        from augmix.data import load_split

        return cls(params, method, hp, to_device(*load_split(raw_dir, "train", params.data.max_train), device),
                   to_device(*load_split(raw_dir, "test", params.data.max_test), device), NUM_CLASSES[dataset])

    def batches(self, epoch: int, index_batches: list[torch.Tensor]):
        """Make the epoch's views and move its index batches to the device now (one copy: a
        pageable host-to-device copy per step would synchronise every step), then yield lazily."""
        from augmix.training_methods import EpochViews

        prepared = EpochViews(self.train.x, self.params.seed, epoch, self.method, self.hp)
        sizes = [len(b) for b in index_batches]
        on_device = torch.cat(index_batches).to(self.train.x.device).split(sizes) if sizes else ()
        return (self._batch(epoch, prepared, idx) for idx in on_device)

    def _batch(self, epoch: int, prepared: Any, idx: torch.Tensor):
        from augmix.rng import SampleKeys
        from augmix.training_methods import TrainBatch

        xb = prepared.base[idx]  # the shared flip + crop of each sample
        return TrainBatch(x=xb.float().div(255), y=self.train.y[idx], num_classes=self.num_classes, x_uint8=xb,
                          keys=SampleKeys(self.params.seed, epoch, idx), views=prepared.batch_views(idx))

    def test_error(self, model: torch.nn.Module, autocast: bool) -> float:
        logits = predict_logits(model, self.test.x, self.params.eval.batch_size, autocast=autocast)
        return float((logits.argmax(1) != self.test.y).float().mean())


class FolderSource:
    """ImageNet-style data streamed from class folders: JPEGs decoded and RandomResizedCrop'd in
    DataLoader workers, AugMix batched on the device per step (REF imagenet.py, augmix.md §9.2)."""

    def __init__(self, params: Params, dataset: str, raw_dir: Path, device: torch.device, method: str,
                 hp: dict[str, Any]) -> None:
        from augmix import imagenet

        p = params.imagenet
        root = Path(imagenet.read_index(raw_dir)["dir"])
        train = imagenet.scan_folder(root / "train", what=f"{dataset} train folder").subset(params.data.max_train)
        val = imagenet.scan_folder(root / "val", train.classes, what=f"{dataset} val folder").subset(params.data.max_test)
        self.params, self.device = params, device
        self.train_set = imagenet.TrainFolder(train, p.image_size, params.seed)
        self.val_set = imagenet.EvalFolder(val, p.resize, p.image_size)
        self.n, self.n_test, self.num_classes = len(train), len(val), len(train.classes)
        self.classes = list(train.classes)

    def batches(self, epoch: int, index_batches: list[torch.Tensor]):
        from augmix import imagenet
        from augmix.rng import SampleKeys
        from augmix.training_methods import TrainBatch

        for xb, yb, idx in imagenet.train_batches(self.train_set, epoch, index_batches,
                                                  workers=self.params.imagenet.workers, device=self.device):
            yield TrainBatch(x=xb.float().div(255), y=yb, num_classes=self.num_classes, x_uint8=xb,
                             keys=SampleKeys(self.params.seed, epoch, idx), views=None)

    def test_error(self, model: torch.nn.Module, autocast: bool) -> float:
        from augmix import imagenet

        logits, labels = imagenet.folder_logits(model, self.val_set, batch_size=self.params.eval.batch_size,
                                                workers=self.params.imagenet.workers, device=self.device,
                                                autocast=autocast)
        return float((logits.argmax(1) != labels).float().mean())


def _source(dataset: str) -> Any:
    """The loader of a dataset's source: (params, dataset, raw_dir, device, method, hp) -> source."""
    return FolderSource if dataset in FOLDER_DATASETS else TensorSource.load


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
        gen = torch.Generator(device).manual_seed(derive_seed(seed, epoch, step, 2))
        loss, _ = step_fn(model, batch, hp, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().float() * len(batch.y)
        seen += len(batch.y)
    return loss_sum, seen


def train_hparams(params: Params, dataset: str, method: str, device: torch.device) -> dict[str, Any]:
    """The method's hyperparameters for this dataset: ImageNet overrides AugMix's severity and fill;
    CIFAR-100 takes Cutout's smaller hole."""
    from augmix.training_methods import method_hparams

    hp = method_hparams(params, method, device, dataset)
    if dataset in FOLDER_DATASETS and "severity" in hp:
        hp["severity"] = params.imagenet.augmix_severity  # REF imagenet.py: AugMix severity 1
        hp["affine_fill"] = params.imagenet.augmix_fill  # 128: the released weights' code (augmix.md §6)
    return hp


def _fingerprint(params: Params, dataset: str, arch: str, method: str) -> str:
    return f"{dataset}/{arch}/{method}/{params.digest(train_sections(dataset))}"


def train(
    params: Params,
    *,
    dataset: str,
    arch: str,
    method: str,
    raw_dir: Path,
    out_dir: Path,
    checkpoint: Path,
    run: Any,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train one grid cell; write model.pt, train_log.csv and train_summary.json to `out_dir`.

    `checkpoint` is written after every epoch and resumed from when its fingerprint (cell and the
    params sections it reads) matches. `stop_after_epoch` ends the run early, as a kill would (tests).
    """
    from augmix.models import build_model
    from augmix.training_methods import all_methods

    t0 = time.monotonic()
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    device = pick_device(params.train.device)
    cuda = device.type == "cuda"
    if cuda and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist = init_distributed(cuda)
    if cuda:  # CIFAR shapes are fixed, so timing cuDNN's algorithms once pays off over the run
        torch.backends.cudnn.benchmark = params.train.cudnn_benchmark
    recipe = recipe_for(params, dataset, arch)
    step_fn = all_methods()[method]
    hp = train_hparams(params, dataset, method, device)
    data = _source(dataset)(params, dataset, raw_dir, device, method, hp)

    torch.manual_seed(params.seed)  # initial weights (REF seeds torch with 1)
    model = build_model(arch, data.num_classes).to(device)
    if params.train.channels_last:  # faster convolutions on CUDA and on CPU (oneDNN)
        model = model.to(memory_format=torch.channels_last)
    forward_model = model
    if dist.world > 1:  # each rank trains on its share of every global batch; gradients are averaged
        forward_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if params.train.compile:
        forward_model = CompiledFirstShape(forward_model, params.train.compile_mode)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
                                **({"fused": True} if cuda else {}))
    n = data.n
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: recipe.factor(t, steps_per_epoch))

    fingerprint = _fingerprint(params, dataset, arch, method)
    log: list[dict[str, Any]] = []
    start_epoch = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            # Unlike REF, the schedule is restored too (REF restarts the cosine on resume, §9.1).
            scheduler.load_state_dict(state["scheduler"])
            log, start_epoch = list(state["log"]), int(state["epoch"])
            print(f"[train] resuming {fingerprint} after epoch {start_epoch}", flush=True)
            for row in log:  # this run's history is complete even when it resumed
                run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        else:
            print(f"[train] ignoring checkpoint {checkpoint}: it belongs to other params", flush=True)

    bf16 = cuda and params.train.bf16
    forward = Forward(model, forward_model, bf16_autocast(device, bf16))
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        # Dropout (AllConvNet) draws from torch's global generator, which has no per-call argument:
        # seed it per epoch so a resumed run replays the same masks.
        torch.manual_seed(derive_seed(params.seed, epoch, 1))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(params.seed, epoch, 0)))
        # DDP: rank r takes samples r, r + world, ... of every global batch.
        index_batches = [b[dist.rank :: dist.world] for b in order.split(recipe.batch_size)]
        ep_start = time.monotonic()
        batches = progress(data.batches(epoch, index_batches), total=steps_per_epoch,
                           desc=f"epoch {epoch + 1}/{recipe.epochs}", every=params.train.log_every)
        loss_sum, seen = train_epoch(forward, optimizer, scheduler, batches, step_fn, hp, seed=params.seed,
                                     epoch=epoch, device=device)
        test_error = data.test_error(model, bf16)
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
                            "log": log}, tmp)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < recipe.epochs:
            return {"stopped_after_epoch": epoch + 1}

    import pandas as pd

    if not dist.main:
        return {"rank": dist.rank}
    out_dir.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out_dir / "model.pt", suffix=".pt") as tmp:
        torch.save({"arch": arch, "dataset": dataset, "method": method, "num_classes": data.num_classes,
                    "classes": data.classes,
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "params": to_dict(params)}, tmp)
    io.write_csv(out_dir / "train_log.csv", pd.DataFrame(log))
    summary = {"dataset": dataset, "arch": arch, "method": method, "epochs": recipe.epochs,
               "n_train": n, "n_test": data.n_test, "device": str(device), "world_size": dist.world,
               "final_test_error": log[-1]["test_error"], "final_train_loss": log[-1]["train_loss"],
               "seconds": round(time.monotonic() - t0, 2)}
    io.write_json(out_dir / "train_summary.json", summary)
    return summary


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model saved by `train` (weights only: no pickled code is executed)."""
    from augmix.models import build_model

    state = torch.load(path, map_location=device, weights_only=True)
    model = build_model(state["arch"], int(state["num_classes"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state
