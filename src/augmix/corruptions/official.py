"""The released CIFAR-10-C / CIFAR-100-C archives (Zenodo), fetched or accepted offline, verified.

Facts (docs/corruptions.md, "Released files"): Zenodo records 2535967 (CIFAR-10-C.tar) and 3555552
(CIFAR-100-C.tar); sizes and SHA-256 from tensorflow/datasets `url_checksums/cifar10_corrupted.txt`
and `cifar100_corrupted.txt`. Extraction gives `<dest>/CIFAR-10-C/<corruption>.npy` + `labels.npy`,
the same layout `build.build_c_set` writes.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from augmix import io
from augmix.errors import DataError

from .functions import ALL_CORRUPTIONS

__all__ = ["OFFICIAL", "fetch_official_cifar_c", "verify_archive"]

OFFICIAL = {
    "cifar10": {
        "file": "CIFAR-10-C.tar",
        "folder": "CIFAR-10-C",
        "url": "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
        "record": "https://zenodo.org/records/2535967",
        "size": 2_918_471_680,
        "sha256": "c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7",
    },
    "cifar100": {
        "file": "CIFAR-100-C.tar",
        "folder": "CIFAR-100-C",
        "url": "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
        "record": "https://zenodo.org/records/3555552",
        "size": 2_918_473_216,
        "sha256": "30ee6543a1bfd049fa33834b7c1ada301e7064b7fbe8fc38340eb8b62ced4b33",
    },
}
_DONE = ".complete"


def verify_archive(path: Path, *, sha256: str, size: int | None) -> None:
    """Raise DataError unless the file has the expected size (when given) and SHA-256."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DataError(
            f"{path}: size {actual_size} bytes, expected {size}; the file is incomplete or wrong"
        )
    digest = io.file_digest(path, "sha256")
    if digest != sha256:
        raise DataError(
            f"{path}: SHA-256 {digest}, expected {sha256}; delete it and fetch again"
        )


def _download(
    url: str, target: Path, progress: Callable[[int, int], None] | None
) -> None:
    """Stream `url` into `target` through an atomic file (a killed download leaves no `target`)."""
    with urllib.request.urlopen(url) as resp, io.AtomicFile(target, algorithm=None) as out:
        total = int(resp.headers.get("Content-Length") or 0)
        done = 0
        while block := resp.read(1 << 22):
            out.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
        out.commit()


def _safe_extract(archive: Path, dest: Path, folder: str) -> Path:
    """Extract into a temporary folder beside the target, check the layout, then rename."""
    final = dest / folder
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=f".{folder}."))
    try:
        with tarfile.open(archive) as tar:
            members = []
            for m in tar.getmembers():
                p = Path(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: refusing unsafe member {m.name!r}")
                members.append(m)
            tar.extractall(staging, members=members)
        root = staging / folder
        if not root.is_dir():
            raise DataError(f"{archive}: expected a top-level folder {folder}/")
        _check_layout(root)
        if final.exists():
            shutil.rmtree(final)
        os.replace(root, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (final / _DONE).write_text("ok\n")
    return final


def _check_layout(root: Path) -> None:
    labels = np.load(root / "labels.npy", mmap_mode="r")
    if labels.ndim != 1 or labels.shape[0] % 5:
        raise DataError(f"{root}/labels.npy: shape {labels.shape}, expected (5 * N,)")
    for name in ALL_CORRUPTIONS:
        path = root / f"{name}.npy"
        if not path.is_file():
            raise DataError(f"{root}: missing {name}.npy")
        arr = np.load(path, mmap_mode="r")
        if (
            arr.dtype != np.uint8
            or arr.ndim != 4
            or arr.shape[0] != labels.shape[0]
            or arr.shape[-1] != 3
        ):
            raise DataError(
                f"{path}: {arr.dtype} {arr.shape}, expected uint8 ({labels.shape[0]}, H, W, 3)"
            )


def fetch_official_cifar_c(
    name: str,
    dest,
    *,
    download: bool,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Make `<dest>/CIFAR-10-C` (or CIFAR-100-C) available and return its path.

    Uses `<dest>/CIFAR-10-C.tar` if the user placed it there (offline); otherwise downloads it
    from Zenodo when `download` is true; otherwise raises DataError saying which file to
    put where. The archive is verified (size and SHA-256) before extraction. expected_sha256 /
    expected_size override the published values (for tests with small archives; pass
    expected_size=None together with a custom hash to skip the size check).
    """
    if name not in OFFICIAL:
        raise KeyError(f"unknown dataset {name!r}; expected one of {sorted(OFFICIAL)}")
    info = OFFICIAL[name]
    sha = expected_sha256 or info["sha256"]
    size = info["size"] if expected_sha256 is None else expected_size
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / info["folder"]
    if (final / _DONE).is_file():
        return final
    archive = dest / info["file"]
    if not archive.is_file():
        if not download:
            raise DataError(
                f"{archive} not found. Download {info['file']} ({info['size']:,} bytes, SHA-256 "
                f"{info['sha256']}) from {info['record']} and place it at {archive}, or set data.download: true "
                f"to fetch it."
            )
        _download(info["url"], archive, progress)
    verify_archive(archive, sha256=sha, size=size)
    return _safe_extract(archive, dest, info["folder"])
