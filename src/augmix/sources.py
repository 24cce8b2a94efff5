"""Training data sources: each yields every step's TrainBatch for the index batches it is given and
measures the test error after an epoch. Both key every random draw by (seed, epoch, sample index), so
the split of a batch over ranks or loader workers does not change what a sample sees.

* `TensorSource`: CIFAR-format data, both splits as uint8 tensors on the device; an epoch's flip/crop
  and per-sample views made up front in large chunks (`augment.EpochViews`).
* `FolderSource`: ImageNet-style class folders, JPEGs decoded and RandomResizedCrop'd in DataLoader
  workers, the method's views made per step on the device (REF imagenet.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmix import imagenet
from augmix.augment import EpochViews
from augmix.data import load_split
from augmix.predict import predict_logits
from augmix.rng import SampleKeys
from augmix.training_methods import Method, TrainBatch


@dataclass
class Split:
    x: torch.Tensor  # (N, 3, H, W) uint8 on the device
    y: torch.Tensor  # (N,) int64 on the device


def to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> Split:
    return Split(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device), torch.from_numpy(y).to(device))


@dataclass
class Run:
    """What a source needs of the job: its seed, the method and its hyperparameters, run-time sizes."""

    seed: int
    method: Method
    hp: Any
    eval_batch_size: int
    workers: int = 0


class TensorSource:
    def __init__(self, run: Run, train: Split, test: Split, num_classes: int) -> None:
        self.run, self.train, self.test = run, train, test
        self.n, self.n_test, self.num_classes = len(train.y), len(test.y), num_classes
        self.classes: list[str] = []

    @classmethod
    def load(cls, run: Run, raw_dir: Path, device: torch.device, *, max_train: int, max_test: int,
             num_classes: int, image_size: int = 0, resize: int = 0) -> TensorSource:
        return cls(run, to_device(*load_split(raw_dir, "train", max_train), device),
                   to_device(*load_split(raw_dir, "test", max_test), device), num_classes)

    def batches(self, epoch: int, index_batches: list[torch.Tensor]) -> Iterator[TrainBatch]:
        """Make the epoch's views and move its index batches to the device now (one copy: a
        pageable host-to-device copy per step would synchronise every step), then yield lazily."""
        maker = self.run.method.epoch_views(self.run.hp)
        prepared = EpochViews(self.train.x, self.run.seed, epoch, maker, self.run.method.n_views)
        sizes = [len(b) for b in index_batches]
        on_device = torch.cat(index_batches).to(self.train.x.device).split(sizes) if sizes else ()
        return (self._batch(epoch, prepared, idx) for idx in on_device)

    def _batch(self, epoch: int, prepared: EpochViews, idx: torch.Tensor) -> TrainBatch:
        xb = prepared.base[idx]  # the shared flip + crop of each sample
        return TrainBatch(x=xb.float().div(255), y=self.train.y[idx], num_classes=self.num_classes, x_uint8=xb,
                          keys=SampleKeys(self.run.seed, epoch, idx), views=prepared.batch_views(idx))

    def test_error(self, model: torch.nn.Module, autocast: bool) -> float:
        logits = predict_logits(model, self.test.x, self.run.eval_batch_size, autocast=autocast)
        return float((logits.argmax(1) != self.test.y).float().mean())


class FolderSource:
    def __init__(self, run: Run, raw_dir: Path, device: torch.device, *, max_train: int, max_test: int,
                 num_classes: int, image_size: int, resize: int) -> None:
        root = Path(imagenet.read_index(raw_dir)["dir"])
        train = imagenet.scan_folder(root / "train", what=f"{raw_dir.name} train folder").subset(max_train)
        val = imagenet.scan_folder(root / "val", train.classes, what=f"{raw_dir.name} val folder").subset(max_test)
        self.run, self.device = run, device
        self.train_set = imagenet.TrainFolder(train, image_size, run.seed)
        self.val_set = imagenet.EvalFolder(val, resize, image_size)
        self.n, self.n_test, self.num_classes = len(train), len(val), len(train.classes)
        self.classes = list(train.classes)

    def batches(self, epoch: int, index_batches: list[torch.Tensor]) -> Iterator[TrainBatch]:
        for xb, yb, idx in imagenet.train_batches(self.train_set, epoch, index_batches,
                                                  workers=self.run.workers, device=self.device):
            yield TrainBatch(x=xb.float().div(255), y=yb, num_classes=self.num_classes, x_uint8=xb,
                             keys=SampleKeys(self.run.seed, epoch, idx), views=None)

    def test_error(self, model: torch.nn.Module, autocast: bool) -> float:
        logits, labels = imagenet.folder_logits(model, self.val_set, batch_size=self.run.eval_batch_size,
                                                workers=self.run.workers, device=self.device, autocast=autocast)
        return float((logits.argmax(1) != labels).float().mean())


# datasets.<name>.source -> its training source
SOURCES = {"cifar10": TensorSource.load, "cifar100": TensorSource.load, "digits": TensorSource.load,
           "folder": TensorSource.load, "npz": TensorSource.load, "imagenet": FolderSource}
