"""Datasets: CIFAR-10/100 (official archives), the offline demo set (scikit-learn digits), ImageNet.

Every small dataset ends up in the same on-disk format, the CIFAR "python version" pickled batches
(https://www.cs.toronto.edu/~kriz/cifar.html), under `data/raw/<dataset>/`. One reader
(`load_split`) serves all of them, so every later stage runs the same code for the demo and the paper.
"""

from __future__ import annotations

import json
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augmix import owndata
from augmix.errors import DataError
from augmix.io import atomic_dir, file_digest


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    md5: str  # published by torchvision (torchvision/datasets/cifar.py) and the CIFAR page
    folder: str  # top-level folder inside the archive


CIFAR_ARCHIVES = {
    "cifar10": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    "cifar100": Archive(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
}

# File names of the two pickle layouts: CIFAR-10 (five train batches, `labels`) and CIFAR-100
# (one `train` file, `fine_labels`; the coarse labels are not used by the paper).
_SPLIT_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}


def raw_dir(root: str | Path, dataset: str) -> Path:
    return Path(root) / "raw" / dataset


# --------------------------------------------------------------------------------------------
# CIFAR download / verify / extract
# --------------------------------------------------------------------------------------------


def _verify(path: Path, md5: str) -> None:
    got = file_digest(path, "md5")
    if got != md5:
        raise DataError(
            f"{path} fails its checksum (md5 {got}, expected {md5}): the file is truncated or "
            f"not the official archive. Delete it and download it again."
        )


def fetch_cifar(
    dataset: str,
    out_dir: str | Path,
    *,
    downloads: str | Path,
    download: bool,
    archive: Archive | None = None,
) -> Path:
    """Make `out_dir` hold the extracted official batches of `dataset`.

    Looks for the archive in `downloads` (where an offline user puts it); downloads it through
    torchvision (which checks the md5 too) when absent and `download` is true; verifies the md5;
    extracts into a temporary folder and swaps it in, so an interrupted run leaves nothing half-made.
    `archive` overrides the official record (tests build small archives in the official format).
    """
    archive = archive or CIFAR_ARCHIVES[dataset]
    downloads = Path(downloads)
    path = downloads / archive.filename
    if not path.exists():
        if not download:
            raise DataError(
                f"{dataset}: archive {path} not found and downloading is off (data.download: false). "
                f"Download {archive.url} (md5 {archive.md5}) and put it at {path}."
            )
        from torchvision.datasets.utils import download_url

        try:
            download_url(archive.url, str(downloads), archive.filename, archive.md5)
        except Exception as exc:  # network errors come in many types
            raise DataError(
                f"{dataset}: could not download {archive.url} ({exc}). When offline, put the "
                f"archive at {path} (md5 {archive.md5})."
            ) from None
    _verify(path, archive.md5)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / archive.folder).is_dir():
            raise DataError(f"{path}: expected a top-level folder {archive.folder!r} inside")
    return out_dir


# --------------------------------------------------------------------------------------------
# The CIFAR pickle format: reading and writing
# --------------------------------------------------------------------------------------------


def _layout(folder: Path) -> str:
    if (folder / "data_batch_1").exists() or (folder / "test_batch").exists():
        return "cifar10"
    if (folder / "train").exists() or (folder / "test").exists():
        return "cifar100"
    raise DataError(f"{folder}: no CIFAR batches found (data_batch_*/test_batch or train/test)")


def _find_batches(dataset_dir: Path) -> Path:
    candidates = [p for p in sorted(dataset_dir.iterdir()) if p.is_dir()] if dataset_dir.is_dir() else []
    for folder in candidates:
        try:
            _layout(folder)
            return folder
        except DataError:
            continue
    raise DataError(
        f"{dataset_dir}: no dataset found. Run `augmix download --dataset {dataset_dir.name}` first."
    )


def load_split(dataset_dir: str | Path, split: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read one split as (images uint8 (N, 32, 32, 3) HWC, labels int64 (N,))."""
    folder = _find_batches(Path(dataset_dir))
    layout = _layout(folder)
    xs, ys = [], []
    for name in _SPLIT_FILES[layout][split]:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        labels = batch["labels"] if "labels" in batch else batch["fine_labels"]
        # Rows are 3072 bytes: 1024 red, 1024 green, 1024 blue, each row-major 32x32.
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(labels, dtype=np.int64))
    x, y = np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y


def class_names(dataset_dir: str | Path) -> list[str]:
    folder = _find_batches(Path(dataset_dir))
    meta = folder / ("batches.meta" if _layout(folder) == "cifar10" else "meta")
    with open(meta, "rb") as f:
        m = pickle.load(f, encoding="bytes")
    m = {k.decode() if isinstance(k, bytes) else k: v for k, v in m.items()}
    names = m.get("label_names", m.get("fine_label_names"))
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def num_classes(dataset_dir: str | Path) -> int:
    """Classes of a prepared dataset: CIFAR-format label names, or an image folder's train classes."""
    index = Path(dataset_dir) / "imagenet.json"
    if index.is_file():
        train = Path(json.loads(index.read_text())["dir"]) / "train"
        return sum(1 for p in train.iterdir() if p.is_dir())
    return len(class_names(dataset_dir))


def write_cifar10_format(
    folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], names: list[str]
) -> None:
    """Write arrays as CIFAR-10-style pickled batches (five train batches, one test batch)."""
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, x: np.ndarray, y: np.ndarray) -> None:
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": rows,
                 b"filenames": [f"{i:05d}.png".encode() for i in range(len(x))]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    for i, idx in enumerate(np.array_split(np.arange(len(train[0])), 5), 1):
        dump(f"data_batch_{i}", train[0][idx], train[1][idx])
    dump("test_batch", *test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, f, protocol=2)


# --------------------------------------------------------------------------------------------
# The demo dataset: scikit-learn's handwritten digits (real data shipped inside the package)
# --------------------------------------------------------------------------------------------


def digits_arrays(test_fraction: float,
                  seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The 1,797 8x8 digits as 32x32 RGB uint8, split deterministically (stratified by class)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16 (number of set pixels in a 4x4 block of the 32x32 scan); map to 0..255.
    small = torch.from_numpy(digits.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    big = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    x = big.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        members = np.flatnonzero(y == c)
        take = int(round(len(members) * test_fraction))
        test_idx.extend(rng.permutation(members)[:take])
    is_test = np.zeros(len(y), bool)
    is_test[test_idx] = True
    return (np.ascontiguousarray(x[~is_test]), y[~is_test]), (np.ascontiguousarray(x[is_test]), y[is_test])


def build_digits(out_dir: str | Path, *, test_fraction: float, seed: int) -> Path:
    train, test = digits_arrays(test_fraction, seed)
    with atomic_dir(out_dir) as tmp:
        write_cifar10_format(tmp / "digits-batches-py", train, test, [str(i) for i in range(10)])
    return Path(out_dir)


# --------------------------------------------------------------------------------------------
# ImageNet: read from the folder the user points to
# --------------------------------------------------------------------------------------------


def check_imagenet(where: str | Path, key: str = "datasets.imagenet.dir") -> dict[str, int]:
    folder = Path(where)
    if not str(where) or not folder.is_dir():
        raise DataError(
            f"{key}: ImageNet folder {folder} not found. ImageNet cannot be downloaded "
            f"automatically; point {key} at a folder with train/<class>/ and val/<class>/ images."
        )
    counts = {}
    for split in ("train", "val"):
        d = folder / split
        classes = sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
        if not classes:
            raise DataError(f"{key}: {d} has no class folders (expected {d}/<class>/*.JPEG)")
        counts[split] = sum(1 for c in classes for _ in c.iterdir())
    return counts


def _prepare_cifar(name: str, entry: Any, out: Path, root: Path, download: bool) -> Path:
    return fetch_cifar(entry.source, out, downloads=root / "downloads", download=download)


def _prepare_digits(name: str, entry: Any, out: Path, root: Path, download: bool) -> Path:
    return build_digits(out, test_fraction=entry.test_fraction, seed=entry.split_seed)


def _prepare_imagenet(name: str, entry: Any, out: Path, root: Path, download: bool) -> Path:
    counts = check_imagenet(entry.dir, key=f"datasets.{name}.dir")
    with atomic_dir(out) as tmp:
        (tmp / "imagenet.json").write_text(json.dumps({"dir": str(Path(entry.dir).resolve()), **counts}))
    return out


def _prepare_own(name: str, entry: Any, out: Path, root: Path, download: bool) -> Path:
    train, test, classes = owndata.READERS[entry.source](Path(entry.path), f"datasets.{name}.path")
    with atomic_dir(out) as tmp:
        write_cifar10_format(tmp / f"{name}-batches-py", train, test, classes)
    return out


# datasets.<name>.source -> how `augmix download` makes data/raw/<name>
PREPARE = {"cifar10": _prepare_cifar, "cifar100": _prepare_cifar, "digits": _prepare_digits,
           "imagenet": _prepare_imagenet, "folder": _prepare_own, "npz": _prepare_own}


def prepare(name: str, entry: Any, root: str | Path, *, download: bool) -> Path:
    """The `download` stage: make <root>/raw/<name> hold the dataset `entry` (a datasets.<name>
    section) describes, in its on-disk format."""
    return PREPARE[entry.source](name, entry, raw_dir(root, name), Path(root), download)
