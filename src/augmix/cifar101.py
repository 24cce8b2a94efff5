"""CIFAR-10.1 (Recht, Roelofs, Schmidt, Shankar 2018), version 6: 2,000 new test images for
CIFAR-10 models, downloaded, verified and stored in the CIFAR pickle format.

The release is two NumPy files in github.com/modestyachts/CIFAR-10.1 `datasets/`:
`cifar10.1_v6_data.npy` (2000, 32, 32, 3) uint8 and `cifar10.1_v6_labels.npy` (2000,) int32, 200
images per class, labels in CIFAR-10's class order (airplane ... truck). The authors publish no
checksums. We pin what the authors' repository itself records at commit d9982ab (2020-04-15, "Update
to numpy format version 2.0", the last change to these files): git's blob id (SHA-1 of
"blob <size>\\0" + bytes) of each file, read from the commit's tree, and the SHA-256 of the labels
file, computed from its blob. The data file's bytes were not readable here (the repository
snapshot omits files over 4 MiB), so its SHA-256 is not pinned; its git blob id fixes its size and
content as well. Downloads use that commit's raw URLs, so a later change of the branch cannot
swap the files.

`fetch_cifar101` looks for the files in `<data root>/downloads/` (where an offline user puts
them), downloads what is missing when allowed, verifies every file, and writes the images as a
CIFAR-10-style `test_batch` (and `batches.meta`, no training batches) with
`augmix.data.write_cifar10_format`, so `augmix.data.load_split(folder, "test")` reads it like the
CIFAR test set.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augmix.data import load_split, write_cifar10_format
from augmix.errors import DataError
from augmix.io import atomic_dir, atomic_path

__all__ = [
    "CLASSES",
    "COMMIT",
    "V6_FILES",
    "ReleasedFile",
    "fetch_cifar101",
    "git_blob_sha1",
    "load_cifar101",
    "verify_file",
]

REPOSITORY = "modestyachts/CIFAR-10.1"
COMMIT = "d9982abb0bfc4846b8d13a11e66b887d946205d0"
BATCHES = "cifar-10.1-v6-batches-py"  # the folder inside the stored dataset
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class ReleasedFile:
    name: str  # file name in the release, and in <data root>/downloads/
    url: str
    git_blob_sha1: str  # the blob id in the authors' tree at COMMIT
    sha256: str | None = None  # where the bytes could be read


def _raw_url(name: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/datasets/{name}"


V6_FILES = {
    "data": ReleasedFile(
        "cifar10.1_v6_data.npy",
        _raw_url("cifar10.1_v6_data.npy"),
        "24349cc5f3fb59648d75cd8015b5a184b1f5c250",
    ),
    "labels": ReleasedFile(
        "cifar10.1_v6_labels.npy",
        _raw_url("cifar10.1_v6_labels.npy"),
        "e713b09cecf2ecd933970001909fcdec7c907ab0",
        "ae40beda001693674edc94d925ee8268cfe68905f8f9aff800c8dcdfcd6c9448",
    ),
}


def _digests(path: Path) -> dict[str, str]:
    """git blob id and SHA-256 of a file, in one read."""
    size = path.stat().st_size
    blob = hashlib.sha1(b"blob %d\0" % size)
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            blob.update(chunk)
            sha.update(chunk)
    return {"git_blob_sha1": blob.hexdigest(), "sha256": sha.hexdigest()}


def git_blob_sha1(path: str | Path) -> str:
    """git's object id of a file's bytes (`git hash-object`)."""
    return _digests(Path(path))["git_blob_sha1"]


def verify_file(path: Path, spec: ReleasedFile) -> dict[str, str]:
    """Raise DataError unless `path` has the released bytes; returns its digests."""
    got = _digests(path)
    for kind in ("git_blob_sha1", "sha256"):
        want = getattr(spec, kind)
        if want is not None and got[kind] != want:
            raise DataError(
                f"CIFAR-10.1: {path} fails its checksum ({kind} {got[kind]}, expected {want}): "
                f"the file is truncated or not the released {spec.name}. Delete it and download "
                f"{spec.url} again."
            )
    return got


def _download(spec: ReleasedFile, dest: Path) -> None:
    """Fetch spec.url to a temporary file beside `dest`, verify it, then move it into place; a
    failed or wrong download leaves nothing at `dest`."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(spec.url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as exc:  # URLError, HTTPError and socket errors are OSErrors
            raise DataError(
                f"CIFAR-10.1: could not download {spec.url} ({exc}). When offline, put "
                f"{spec.name} at {dest} (git blob {spec.git_blob_sha1})."
            ) from None
        verify_file(tmp, spec)


def _missing_message(missing: list[ReleasedFile], downloads: Path) -> str:
    listing = "; ".join(f"{f.name} from {f.url}" for f in missing)
    names = ", ".join(f.name for f in missing)
    return (
        f"CIFAR-10.1: {names} not found in {downloads} and downloading is off. Download {listing} "
        f"(the files of github.com/{REPOSITORY} datasets/ at commit {COMMIT[:7]}) and put them in "
        f"{downloads}/."
    )


def _read_release(data_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.load(data_path, allow_pickle=False)
        y = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"CIFAR-10.1: cannot read {data_path} / {labels_path} as NumPy arrays ({exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"CIFAR-10.1: {data_path} holds {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"CIFAR-10.1: {labels_path} holds {y.dtype} {y.shape}, expected {x.shape[0]} integer labels")
    if y.size and (y.min() < 0 or y.max() >= len(CLASSES)):
        raise DataError(f"CIFAR-10.1: {labels_path} has labels outside 0..{len(CLASSES) - 1}")
    return x, y.astype(np.int64)


def fetch_cifar101(
    out_dir: str | Path,
    *,
    downloads: str | Path,
    download: bool,
    files: dict[str, ReleasedFile] | None = None,
) -> Path:
    """Make `out_dir` hold CIFAR-10.1 v6 as a CIFAR-10-style test batch (folder `BATCHES`, plus
    `cifar101.json` recording the source and digests; no training batches); returns `out_dir`.

    The release files are taken from `downloads` (<data root>/downloads/) when there, downloaded
    when missing and `download` is true, and verified either way. `files` overrides the release
    record (tests build small files in the official format). The folder is built beside `out_dir`
    and swapped in, so an interrupted run leaves nothing half-made."""
    files = files or V6_FILES
    downloads = Path(downloads)
    paths = {key: downloads / spec.name for key, spec in files.items()}
    missing = [files[k] for k, p in paths.items() if not p.is_file()]
    if missing and not download:
        raise DataError(_missing_message(missing, downloads))
    for spec in missing:
        _download(spec, downloads / spec.name)
    digests = {files[k].name: verify_file(p, files[k]) for k, p in paths.items()}
    x, y = _read_release(paths["data"], paths["labels"])
    with atomic_dir(out_dir) as tmp:
        # A test set only, as released. write_cifar10_format cannot write an empty training split
        # (its reshape(0, -1)), so the training batches it makes from these images are dropped.
        write_cifar10_format(tmp / BATCHES, (x, y), (x, y), CLASSES)
        for batch in (tmp / BATCHES).glob("data_batch_*"):
            batch.unlink()
        record = {
            "dataset": "CIFAR-10.1",
            "version": "v6",
            "source": f"https://github.com/{REPOSITORY}/tree/{COMMIT}/datasets",
            "n_images": int(x.shape[0]),
            "files": digests,
        }
        (tmp / "cifar101.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return Path(out_dir)


def load_cifar101(dataset_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), labels int64 (N,)) of a folder `fetch_cifar101` made."""
    return load_split(dataset_dir, "test")
