"""Writers for corrupted test sets in the official layouts, seeded and atomic.

* `build_c_set`: the CIFAR-10-C / CIFAR-100-C layout of the released files (Zenodo records 2535967
  and 3555552): `<corruption>.npy` uint8 (len(severities)*N, H, W, 3) stacked by severity,
  `labels.npy` (labels repeated per severity), plus `contact_sheet.png` and `manifest.json`.
* `build_imagenet_c_folder`: the ImageNet-C layout `<root>/<corruption>/<severity>/<wnid>/<file>`,
  JPEG quality 85 with optimize=True, as hendrycks/robustness `make_imagenet_c.py` saves it.

Randomness: the draws of every image are keyed by (seed or dataset name, corruption name,
severity, image index) (`draws.corruption_keys`: `augmix.rng` counter-based streams), so the bytes
depend only on those: not on the batch an image is computed in, not on the device, not on which
other corruptions are built nor in what order (inserting a corruption into the tables changes no
other file). The manifest records the scheme (`SEEDING`).

Device: "cpu" runs the NumPy path; "cuda" (or "cuda:N") the torch path on that GPU, with the same
draws; "auto" picks CUDA when present; a torch.device runs the torch path on that device (tests use
torch.device("cpu") to pin the device path to the NumPy one). On CUDA the arithmetic of a few
corruptions sums in another order (see torch_backend), so rare one-level differences are possible
there; the manifest records the device type.

Completion: every file goes through `augmix.io` (a temporary name, fsync, os.replace);
`manifest.json` is removed when a build starts and written last, so an interrupted build never
passes `is_complete`. In `build_c_set` a `BackgroundWriter` thread writes and hashes each part
while the next batch is computed.
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from augmix import io
from augmix.errors import ConfigError
from augmix.memory import keep_freed_memory

from .draws import corruption_keys
from .functions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, SCALES, corrupt
from .kernels import torch_device_type

__all__ = [
    "CHUNK",
    "DEVICE_BATCH_PIXELS",
    "FORMAT_VERSION",
    "MANIFEST",
    "SEEDING",
    "BackgroundWriter",
    "batch_size",
    "build_c_set",
    "build_imagenet_c_folder",
    "contact_sheet",
    "corrupt_block",
    "is_complete",
    "iter_block",
    "resolve_device",
]

CHUNK = 128  # images per batch on the NumPy path: the float64 working set stays in cache (1.5-3x
# faster than 1000); -P builds (perturbations.py) seed cells of this many images.
# Pixels per batch on an accelerator, by device type. Each device batch launches dozens of small
# kernels and syncs once (the `.cpu()` of its result), so at CHUNK images a GPU spends its time on
# launches and syncs (~5,900 batches for CIFAR-10-C), not arithmetic: 2**23 pixels is 8192 images
# at 32x32 (~200 MB per float64 copy), while 224x224 stays at CHUNK. CPU torch is not listed and
# keeps CHUNK: there, fresh 200 MB temporaries cost more page faults than the launches they save
# (3.3x slower measured). The bytes do not depend on the batch size.
DEVICE_BATCH_PIXELS = {"cuda": 2**23}
MANIFEST = "manifest.json"
# 2: draws keyed per image by corruption name (1 keyed 128-image cells by list position).
FORMAT_VERSION = 2
SEEDING = (
    "augmix.rng per image: SampleKeys(seed=derive_seed('corrupt/<corruption>', seed, severity), "
    "epoch=0, index=image index), or derive_seed('corrupt/<dataset>/<corruption>', severity) for a "
    "dataset-name seed; named streams per corruption in augmix/corruptions/draws.py"
)


def resolve_device(device):
    """The backend of a build: None for the NumPy path, else the torch device of the torch path.

    device: "cpu" (the NumPy path; also None), "auto" (CUDA when present, else the NumPy path),
    "cuda" or "cuda:N" (the torch path on that GPU), or a torch.device (the torch path on it, the
    CPU included). The dotted key in the messages is the params key the stage reads it from."""
    if device is None or device == "cpu":
        return None
    if not isinstance(device, str):
        return device  # a torch.device
    kind = device.split(":")[0]
    if device != "auto" and kind != "cuda":
        raise ConfigError(f"corruptions.device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return None
    raise ConfigError(f"corruptions.device: {device!r} asks for CUDA, which this machine does not have; "
                      "use 'auto' or 'cpu'")


def batch_size(device, height: int, width: int) -> int:
    """Images per batch for a resolved device (`resolve_device`): CHUNK on the NumPy path (None) and
    on device types without a budget; on an accelerator as many images as fit its
    DEVICE_BATCH_PIXELS, rounded down to a multiple of CHUNK and never below it. Only speed depends
    on it, never the bytes."""
    budget = None if device is None else DEVICE_BATCH_PIXELS.get(torch_device_type(device))
    if budget is None:
        return CHUNK
    fit = budget // max(1, int(height) * int(width))
    return max(CHUNK, fit - fit % CHUNK)


def _device_fields(backend) -> dict:
    """What the manifest says about where the bytes were computed."""
    if backend is None:
        return {"backend": "numpy", "device_type": "cpu"}
    return {"backend": "torch", "device_type": torch_device_type(backend)}


class BackgroundWriter:
    """Call `write(part)` for every `put(part)`, in order, on one thread fed through a bounded
    queue, so that the caller computes (on a GPU: launches and waits for) the next batch while this
    part is written and hashed; file writes and hashlib release the GIL. The bytes are those of
    calling `write` directly.

    A context manager; leaving it always joins the thread. An error on the writer thread is
    raised in the caller at its next `put` or on leaving; an error in the caller makes the thread
    drop what is still queued. After an error the thread keeps taking parts off the queue, so a
    `put` never blocks for good."""

    _DONE = object()

    def __init__(self, write: Callable[[np.ndarray], None], depth: int = 3):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="augmix-npy-writer", daemon=True)

    def _run(self) -> None:
        while (part := self._queue.get()) is not self._DONE:
            if self._error is None and not self._dropping:
                try:
                    self._write(part)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, part: np.ndarray) -> None:
        self._raise_error()
        self._queue.put(part)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._dropping = exc_type is not None
        self._queue.put(self._DONE)
        self._thread.join()
        if exc_type is None:
            self._raise_error()


# ----------------------------------------------------------------------------------------------
# seeded corruption of a block


def _resolve_batch(images: np.ndarray, backend, batch: int | None) -> int:
    if batch is None:
        return batch_size(backend, images.shape[1], images.shape[2])
    if int(batch) < 1:
        raise ValueError(f"batch must be a positive number of images, got {batch!r}")
    return int(batch)


def iter_block(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int | str,
    *,
    table: str = "cifar",
    device="auto",
    batch: int | None = None,
    first_index: int = 0,
):
    """Yield (start, corrupted batch) for all images at one severity, batch by batch. Image i's
    draws are keyed by (seed, name, severity, first_index + i) (`draws.corruption_keys`), so the
    result does not depend on `batch` (default `batch_size(device, H, W)`) nor on the device
    (`resolve_device`). first_index: the dataset index of images[0] (for sets built in parts)."""
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; expected one of {list(CORRUPTIONS)}")
    backend = resolve_device(device)
    batch = _resolve_batch(images, backend, batch)
    for start in range(0, images.shape[0], batch):
        part = images[start : start + batch]
        index = range(first_index + start, first_index + start + part.shape[0])
        keys = corruption_keys(seed, name, severity, index, device=backend)
        yield start, corrupt(part, name, severity, keys, table=table, device=backend)


def corrupt_block(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int | str,
    *,
    table: str = "cifar",
    device="auto",
    batch: int | None = None,
    first_index: int = 0,
) -> np.ndarray:
    """Corrupt all images at one severity (`iter_block`, gathered). Unknown names: iter_block raises."""
    out = np.empty_like(images)
    for start, part in iter_block(
        images, name, severity, seed, table=table, device=device, batch=batch, first_index=first_index
    ):
        out[start : start + part.shape[0]] = part
    return out


# ----------------------------------------------------------------------------------------------
# contact sheet


def contact_sheet(
    rows: dict, clean: np.ndarray, *, scale: int = 3, label_width: int = 120
) -> Image.Image:
    """One picture: a row per corruption (clean image, then severities left to right).

    rows: name -> list of uint8 (H, W, 3) images (one per severity)."""
    h, w = clean.shape[:2]
    ncol = 1 + max((len(v) for v in rows.values()), default=0)
    cell_h, cell_w = h * scale, w * scale
    pad = 2
    sheet = Image.new(
        "RGB",
        (label_width + ncol * (cell_w + pad), 16 + len(rows) * (cell_h + pad)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    draw.text((label_width, 2), "clean", fill="black")
    for j in range(1, ncol):
        draw.text((label_width + j * (cell_w + pad), 2), f"s={j}", fill="black")
    for i, (name, imgs) in enumerate(rows.items()):
        y = 16 + i * (cell_h + pad)
        draw.text((2, y + cell_h // 2 - 5), name, fill="black")
        for j, img in enumerate([clean] + list(imgs)):
            tile = Image.fromarray(np.ascontiguousarray(img)).resize(
                (cell_w, cell_h), Image.NEAREST
            )
            sheet.paste(tile, (label_width + j * (cell_w + pad), y))
    return sheet


def _png_bytes(img: Image.Image) -> bytes:
    buf = _bytes_io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_manifest(path: Path, manifest: dict) -> None:
    io.write_bytes(path, json.dumps(manifest, indent=2, sort_keys=True).encode())


# ----------------------------------------------------------------------------------------------
# CIFAR-C layout


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    for n in names:
        if n not in CORRUPTIONS:
            raise KeyError(f"unknown corruption {n!r}; expected one of {list(CORRUPTIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate corruption names in {names}")
    return names


def _check_severities(severities: Sequence[int]) -> list[int]:
    sev = [int(s) for s in severities]
    if not sev or any(s not in (1, 2, 3, 4, 5) for s in sev) or len(set(sev)) != len(sev):
        raise ValueError(f"severities must be distinct values in 1..5, got {severities!r}")
    return sev


def build_c_set(
    images: np.ndarray,
    labels,
    out_dir,
    *,
    names: Iterable[str] = BENCHMARK_CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int | str,
    table: str = "cifar",
    device="auto",
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Write a CIFAR-10-C style folder. Returns a summary dict (the manifest, paths, timings).

    images: uint8 (N, H, W, 3); labels: (N,) ints. seed: the base seed (an int) or a dataset name;
    every image's draws are keyed by (seed, corruption name, severity, image index). device: "auto"
    (CUDA when present), "cpu", "cuda[:N]" or a torch.device (`resolve_device`). progress(name,
    severity) is called after each (corruption, severity) block.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if table not in SCALES:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(SCALES)}")
    names = _check_names(names)
    sev = _check_severities(severities)
    backend = resolve_device(device)
    keep_freed_memory()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest_path.unlink(missing_ok=True)  # from here until the end, the folder is not complete
    t0 = time.perf_counter()
    files, seconds = {}, {}
    sheet_rows = {}
    n = images.shape[0]
    batch = batch_size(backend, images.shape[1], images.shape[2])
    for name in names:
        # Streamed: each batch goes to the file (and the hash) as soon as it is made, so no
        # (5N, H, W, 3) array is ever allocated (fresh memory is slow to fault in on our VM).
        t = time.perf_counter()
        shape = (len(sev) * n,) + images.shape[1:]
        firsts = []
        with io.NpyStream(out / f"{name}.npy", shape, np.uint8) as w:
            with BackgroundWriter(w.write) as writer:  # joined before the commit
                for s in sev:
                    for start, part in iter_block(
                        images, name, s, seed, table=table, device=backend, batch=batch
                    ):
                        if start == 0:
                            firsts.append(part[0].copy())
                        writer.put(part)
                    if progress is not None:
                        progress(name, s)
            files[f"{name}.npy"] = {"sha256": w.commit(), "shape": list(shape), "dtype": "uint8"}
        seconds[name] = time.perf_counter() - t
        if n:
            sheet_rows[name] = firsts
    small = labels.size == 0 or (labels.min() >= 0 and labels.max() < 256)
    tiled = np.tile(labels.astype(np.uint8 if small else np.int64), len(sev))
    files["labels.npy"] = {
        "sha256": io.write_npy_digest(out / "labels.npy", tiled),
        "shape": list(tiled.shape),
        "dtype": tiled.dtype.name,
    }
    if names and n:
        png = _png_bytes(contact_sheet(sheet_rows, images[0]))
        io.write_bytes(out / "contact_sheet.png", png)
        files["contact_sheet.png"] = {"sha256": hashlib.sha256(png).hexdigest()}
    manifest = {
        "format": "cifar-c",
        "format_version": FORMAT_VERSION,
        "seeding": SEEDING,
        "seed": seed,
        "batch": batch,  # images per computed batch (the bytes do not depend on it)
        **_device_fields(backend),
        "table": table,
        "names": names,
        "severities": sev,
        "n_images": int(n),
        "files": files,
    }
    _write_manifest(manifest_path, manifest)
    total = time.perf_counter() - t0
    n_out = len(names) * len(sev) * n
    return {
        **manifest,
        "out_dir": str(out),
        "seconds": total,
        "seconds_per_corruption": seconds,
        "images_per_second": n_out / total if total > 0 else float("inf"),
    }


def is_complete(out_dir, *, deep: bool = False) -> bool:
    """True when the manifest exists and every file it lists is present with the right size
    (shape/dtype read from the .npy header; with deep=True, the SHA-256 too)."""
    out = Path(out_dir)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        for fname, meta in manifest["files"].items():
            path = out / fname
            if not path.is_file():
                return False
            if fname.endswith(".npy"):
                arr = np.load(path, mmap_mode="r")
                if list(arr.shape) != meta["shape"] or arr.dtype.name != meta["dtype"]:
                    return False
            if deep and io.file_digest(path, "sha256") != meta["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


# ----------------------------------------------------------------------------------------------
# ImageNet-C layout


def build_imagenet_c_folder(
    images: np.ndarray,
    wnids: Sequence[str],
    file_names: Sequence[str],
    out_root,
    *,
    names: Iterable[str] = BENCHMARK_CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int | str,
    table: str = "imagenet",
    device="auto",
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Write `<root>/<corruption>/<severity>/<wnid>/<file name>` as JPEG quality 85, optimize=True.

    images: uint8 (N, 224, 224, 3), already Resize(256) + CenterCrop(224)'d. Every image,
    jpeg_compression included, gets this extra JPEG encoding, as in the released ImageNet-C.
    seed and device as in `build_c_set`.
    """
    images = np.asarray(images)
    if len(wnids) != images.shape[0] or len(file_names) != images.shape[0]:
        raise ValueError(
            f"need one wnid and one file name per image ({images.shape[0]}), "
            f"got {len(wnids)} and {len(file_names)}"
        )
    names = _check_names(names)
    sev = _check_severities(severities)
    backend = resolve_device(device)
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    manifest_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    count = 0
    batch = batch_size(backend, images.shape[1], images.shape[2])
    for name in names:
        for s in sev:
            for start, part in iter_block(images, name, s, seed, table=table, device=backend, batch=batch):
                for img, wnid, fname in zip(part, wnids[start:], file_names[start:]):
                    buf = _bytes_io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG", quality=85, optimize=True)
                    io.write_bytes(root / name / str(s) / wnid / fname, buf.getvalue())
                    count += 1
            if progress is not None:
                progress(name, s)
    manifest = {
        "format": "imagenet-c",
        "format_version": FORMAT_VERSION,
        "seeding": SEEDING,
        "seed": seed,
        "batch": batch,
        **_device_fields(backend),
        "table": table,
        "names": names,
        "severities": sev,
        "n_images": int(images.shape[0]),
        "files": {},
    }
    _write_manifest(manifest_path, manifest)
    return {**manifest, "out_dir": str(root), "written": count, "seconds": time.perf_counter() - t0}
