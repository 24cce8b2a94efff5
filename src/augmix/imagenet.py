"""ImageNet from the folder the user points to: the index, the reference transforms, streaming loaders.

REF `imagenet.py`  trains ResNet-50 on `datasets.ImageFolder(train)` with
RandomResizedCrop(224) + RandomHorizontalFlip, then AugMix (severity 1) on the crop, and tests on
Resize(256) + CenterCrop(224). ImageNet-C is evaluated on its 224-pixel JPEGs with CenterCrop(224)
only. Here the JPEGs are decoded in DataLoader workers; the crop and flip of
sample i in epoch e come from a generator seeded by (seed, e, i), so the batches do not depend on the
number of workers, and AugMix runs batched on the device afterwards, keyed the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augmix.errors import DataError
from augmix.predict import predict_logits
from augmix.rng import derive_seed

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".webp")  # torchvision IMG_EXTENSIONS, lower case
INDEX_FILE = "imagenet.json"  # what `augmix download --dataset imagenet` writes in data/raw/imagenet


@dataclass(frozen=True)
class FolderIndex:
    """`<root>/<class>/<image>` as ImageFolder sees it: classes sorted by name, images sorted by path."""

    root: Path
    classes: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray  # int64, one per path

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, n: int) -> FolderIndex:
        """n images evenly spaced over the sorted list (every class keeps a share); 0 or >= len: all."""
        if n <= 0 or n >= len(self):
            return self
        keep = np.linspace(0, len(self) - 1, n).round().astype(np.int64)
        return FolderIndex(self.root, self.classes, tuple(self.paths[i] for i in keep), self.labels[keep])


def scan_folder(root: str | Path, classes: Sequence[str] | None = None, *, what: str = "folder") -> FolderIndex:
    """Index an ImageFolder tree. With `classes`, labels follow that list (the training classes), so
    a validation or ImageNet-C folder is labelled the way the model was trained."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} {root} not found (expected {root}/<class>/<image>.JPEG)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{what} {root} has no class folders (expected {root}/<class>/<image>.JPEG)")
    classes = tuple(found) if classes is None else tuple(classes)
    label_of = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(found) - set(label_of))
    if unknown:
        raise DataError(f"{what} {root}: class folders {unknown[:5]} are not among the {len(classes)} training classes")
    paths, labels = [], []
    for name in found:
        for p in sorted((root / name).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(label_of[name])
    if not paths:
        raise DataError(f"{what} {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return FolderIndex(root, classes, tuple(paths), np.asarray(labels, dtype=np.int64))


def read_index(raw_dir: str | Path) -> dict:
    """The pointer `augmix download --dataset imagenet` left in data/raw/imagenet."""
    path = Path(raw_dir) / INDEX_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: run `augmix download --dataset imagenet` first "
                        f"(it checks datasets.imagenet.dir and records it)")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- transforms


def rrc_box(width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (left, top, w, h), torchvision's algorithm: up to 10 tries of an area
    fraction U(scale) and a log-uniform aspect ratio; else the centre crop clamped to `ratio`."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def train_crop(img: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """RandomResizedCrop(size) (bilinear, PIL) then RandomHorizontalFlip(0.5): uint8 (size, size, 3)."""
    left, top, w, h = rrc_box(img.width, img.height, rng)
    # crop, then resize (torchvision resized_crop); PIL's resize(box=...) would read pixels
    # outside the box for the filter taps near its edges.
    out = img.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
    if rng.uniform() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.array(out, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """torchvision Resize(int): the shorter side becomes `size`, the longer keeps the aspect (floor)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        return img.resize((size, int(size * h / w)), Image.BILINEAR)
    return img.resize((int(size * w / h), size), Image.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """torchvision CenterCrop: offsets rounded as round((W - size) / 2)."""
    w, h = img.size
    if w < size or h < size:
        raise DataError(f"image of {w}x{h} is smaller than the centre crop {size}")
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def eval_image(img: Image.Image, resize: int, size: int) -> np.ndarray:
    """Test transform: Resize(resize) + CenterCrop(size) (resize 0: CenterCrop only, ImageNet-C)."""
    if resize:
        img = resize_shorter(img, resize)
    return np.array(center_crop(img, size), dtype=np.uint8)


# ----------------------------------------------------------------------------- datasets


class TrainFolder(torch.utils.data.Dataset):
    """Item (epoch, i) -> (uint8 (3, S, S) crop, label, i); the draws depend on (seed, epoch, i) only."""

    def __init__(self, index: FolderIndex, size: int, seed: int) -> None:
        self.index, self.size, self.seed = index, size, seed

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: tuple[int, int]):
        epoch, i = item
        rng = np.random.default_rng(derive_seed("crop", self.seed, epoch, i))
        crop = train_crop(load_rgb(self.index.paths[i]), self.size, rng)
        return torch.from_numpy(crop).permute(2, 0, 1), int(self.index.labels[i]), i


class EvalFolder(torch.utils.data.Dataset):
    """Item i -> (uint8 (3, S, S) image, label): Resize + CenterCrop, no randomness."""

    def __init__(self, index: FolderIndex, resize: int, size: int) -> None:
        self.index, self.resize, self.size = index, resize, size

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        img = eval_image(load_rgb(self.index.paths[i]), self.resize, self.size)
        return torch.from_numpy(img).permute(2, 0, 1), int(self.index.labels[i])


def _loader(dataset, batch_sampler=None, *, batch_size: int | None = None, workers: int, device: torch.device):
    kw = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers:
        kw["prefetch_factor"] = 4
    if batch_sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, **kw)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **kw)


def train_batches(dataset: TrainFolder, epoch: int, batches: Sequence[torch.Tensor], *, workers: int,
                  device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels, indices) on `device` for the given index batches, in order."""
    sampler = [[(epoch, int(i)) for i in b] for b in batches]
    for x, y, idx in _loader(dataset, sampler, workers=workers, device=device):
        yield (x.to(device, non_blocking=True), y.to(device, non_blocking=True),
               idx.to(device, non_blocking=True))


def eval_batches(dataset: EvalFolder, *, batch_size: int, workers: int,
                 device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in _loader(dataset, batch_size=batch_size, workers=workers, device=device):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def folder_logits(model: torch.nn.Module, dataset: EvalFolder, *, batch_size: int, workers: int,
                  device: torch.device, autocast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and labels (N,) for a whole folder, streamed in batches."""
    logits, labels = [], []
    for x, y in eval_batches(dataset, batch_size=batch_size, workers=workers, device=device):
        logits.append(predict_logits(model, x, batch_size, autocast=autocast))
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def load_eval_array(index: FolderIndex, resize: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole (sub)set as uint8 (N, S, S, 3) plus labels: input of the ImageNet-C generator."""
    images = np.stack([eval_image(load_rgb(p), resize, size) for p in index.paths])
    return images, index.labels.copy()
