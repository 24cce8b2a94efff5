"""Writers for corrupted test sets in the official layouts, seeded and atomic.

* `build_c_set`: CIFAR-10-C / CIFAR-100-C layout (spec corruptions.md §7.1): `<corruption>.npy`
  uint8 (len(severities)*N, H, W, 3) stacked by severity, `labels.npy` (labels repeated per
  severity), plus `contact_sheet.png` and `manifest.json`.
* `build_imagenet_c_folder`: ImageNet-C layout `<root>/<corruption>/<severity>/<wnid>/<file>`,
  JPEG quality 85 with optimize=True (§7.3).

Reproducibility: every (corruption, severity, cell of `cell_size` images) cell has its own NumPy
generator derived from (seed, corruption index, severity, cell index), so the bytes depend only
on the seed, never on the order or subset of corruptions built. Cells hold CHUNK images on the
NumPy path and more on a torch device (`cell_size`); the manifest records the size used. This is
coarser than spec §1.3's generator per (corruption, severity, image index): creating a NumPy
generator costs ~30 us, which for 750,000 images is ~22 s of a 60 s one-core budget; a cell keeps
the spec's purpose (bytes fixed by the seed, independent of workers and of what else is built) but
the bytes depend on the cell size and device type, and draws are batched per cell. Completion:
each file is written to a temporary name and os.replace'd; `manifest.json` is removed when a build
starts and written last, so an interrupted build never passes `is_complete`. In `build_c_set` a
`BackgroundWriter` thread writes and hashes each part while the next cell is computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from augmix.memory import keep_freed_memory

from .functions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    SCALES,
    corrupt,
    torch_device_type,
)

__all__ = [
    "CHUNK",
    "DEVICE_CELL_PIXELS",
    "MANIFEST",
    "BackgroundWriter",
    "NpyStream",
    "atomic_save_npy",
    "atomic_write_bytes",
    "build_c_set",
    "build_imagenet_c_folder",
    "cell_rng",
    "cell_size",
    "contact_sheet",
    "corrupt_block",
    "is_complete",
    "iter_block",
    "npy_header",
]

CHUNK = 128  # images per seeded cell on the NumPy path (part of the output's definition, recorded
# in the manifest); small blocks also keep the float64 working set in cache, 1.5-3x faster than 1000
# Pixels per cell on an accelerator, by device type. Each device cell launches dozens of small
# kernels and syncs once (the `.cpu()` of its result), so at CHUNK images a GPU spends its time on
# launches and syncs (~5,900 cells for CIFAR-10-C), not arithmetic: 2**23 pixels is 8192 images at
# 32x32 (~200 MB per float64 copy), while 224x224 stays at CHUNK. CPU torch is not listed and keeps
# CHUNK: there, fresh 200 MB temporaries cost more page faults than the launches they save (3.3x
# slower measured).
DEVICE_CELL_PIXELS = {"cuda": 2**23}
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def _publish(tmp: str, path: Path) -> None:
    """Give the temporary file ordinary permissions (mkstemp makes it 0600), then rename it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _drop_cache(f) -> None:
    """Ask the kernel to drop the (already fsync'ed) pages of `f` from the page cache.

    Writing GBs of output otherwise grows the page cache with freshly allocated pages, which on
    our VM cost far more than the write itself (150 MB: 0.09 s when the cache is recycled, up to
    1.5 s when it keeps growing). Harmless: the data is on disk; a later read just reads it."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - filesystems without fadvise
            pass


def npy_header(shape: Sequence[int], dtype) -> bytes:
    """The header np.save writes (format version 1.0) for a C-ordered array of this shape."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(int(d) for d in shape),
        },
    )
    return buf.getvalue()


class NpyStream:
    """Write one .npy file piece by piece: to a temporary name in the target folder, hashing the
    bytes as they go, then fsync and os.replace on `commit()`. The file equals np.save of the
    concatenated pieces. Used as a context manager: leaving it without `commit()` (an exception)
    removes the temporary file."""

    def __init__(self, path, shape: Sequence[int], dtype):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self._left = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        fd, self._tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self._f = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._put(npy_header(self.shape, self.dtype))

    def _put(self, data) -> None:
        self._hash.update(data)
        self._f.write(data)

    def write(self, array: np.ndarray) -> None:
        """Append the bytes of `array` (C order; its dtype must be the file's)."""
        array = np.asarray(array)
        if array.dtype != self.dtype:
            raise ValueError(f"expected {self.dtype}, got {array.dtype}")
        if array.size == 0:
            return
        data = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        if data.nbytes > self._left:
            raise ValueError(
                f"{self.path.name}: more data than the shape {self.shape} holds"
            )
        step = 1 << 22
        for i in range(0, data.nbytes, step):
            self._put(data[i : i + step])
        self._left -= data.nbytes

    def commit(self) -> str:
        """Close, fsync and publish the file; returns its SHA-256."""
        if self._left:
            raise ValueError(
                f"{self.path.name}: {self._left} bytes short of the shape {self.shape}"
            )
        self._f.flush()
        os.fsync(self._f.fileno())
        _drop_cache(self._f)
        self._f.close()
        _publish(self._tmp, self.path)
        self._tmp = None
        return self._hash.hexdigest()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._f.close()
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def atomic_save_npy(path: Path, array: np.ndarray) -> str:
    """np.save to a temporary file in the same folder, then os.replace. Returns the SHA-256
    (computed while writing, not by reading the file back)."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError("object arrays are not saved (allow_pickle=False)")
    with NpyStream(path, array.shape, array.dtype) as w:
        w.write(array)
        return w.commit()


class BackgroundWriter:
    """Call `write(part)` for every `put(part)`, in order, on one thread fed through a bounded
    queue, so that the caller computes (on a GPU: launches and waits for) the next cell while this
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
        self._thread = threading.Thread(
            target=self._run, name="augmix-npy-writer", daemon=True
        )

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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# seeded corruption of a block


def cell_rng(seed: int, name: str, severity: int, chunk: int) -> np.random.Generator:
    """The generator of one (corruption, severity, chunk) cell. Keyed by the corruption's index in
    ALL_CORRUPTIONS so that building a subset gives the same bytes as building all."""
    key = (ALL_CORRUPTIONS.index(name), int(severity), int(chunk))
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key))
    )


def cell_size(device, height: int, width: int) -> int:
    """Images per seeded cell: CHUNK on the NumPy path (device None) and on device types without
    a budget; on an accelerator as many images as fit its DEVICE_CELL_PIXELS, rounded down to a
    multiple of CHUNK and never below it. One size per build: a corruption without a torch path
    (spatter) uses the same cells."""
    budget = None if device is None else DEVICE_CELL_PIXELS.get(torch_device_type(device))
    if budget is None:
        return CHUNK
    fit = budget // max(1, int(height) * int(width))
    return max(CHUNK, fit - fit % CHUNK)


def _resolve_chunk(images: np.ndarray, device, chunk: int | None) -> int:
    if chunk is None:
        return cell_size(device, images.shape[1], images.shape[2])
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of images, got {chunk!r}")
    return int(chunk)


def iter_block(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    *,
    table: str = "cifar",
    device=None,
    chunk: int | None = None,
):
    """Yield (start, corrupted chunk) for all images at one severity, chunk by chunk, each chunk
    with its own seeded generator (the cell of `cell_rng`). chunk: images per cell (default
    `cell_size(device, H, W)`)."""
    if name not in CORRUPTIONS:
        raise KeyError(
            f"unknown corruption {name!r}; expected one of {list(CORRUPTIONS)}"
        )
    chunk = _resolve_chunk(images, device, chunk)
    for k, start in enumerate(range(0, images.shape[0], chunk)):
        part = images[start : start + chunk]
        rng = cell_rng(seed, name, severity, k)
        yield start, corrupt(part, name, severity, rng, table=table, device=device)


def corrupt_block(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    *,
    table: str = "cifar",
    device=None,
    chunk: int | None = None,
) -> np.ndarray:
    """Corrupt all images at one severity, chunk by chunk, each chunk with its own seeded generator
    (chunk: images per cell, default `cell_size(device, H, W)`). Unknown names: iter_block raises."""
    out = np.empty_like(images)
    for start, part in iter_block(
        images, name, severity, seed, table=table, device=device, chunk=chunk
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
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# CIFAR-C layout


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    for n in names:
        if n not in CORRUPTIONS:
            raise KeyError(
                f"unknown corruption {n!r}; expected one of {list(CORRUPTIONS)}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate corruption names in {names}")
    return names


def _check_severities(severities: Sequence[int]) -> list[int]:
    sev = [int(s) for s in severities]
    if (
        not sev
        or any(s not in (1, 2, 3, 4, 5) for s in sev)
        or len(set(sev)) != len(sev)
    ):
        raise ValueError(
            f"severities must be distinct values in 1..5, got {severities!r}"
        )
    return sev


def build_c_set(
    images: np.ndarray,
    labels,
    out_dir,
    *,
    names: Iterable[str] = BENCHMARK_CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int,
    table: str = "cifar",
    device=None,
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Write a CIFAR-10-C style folder. Returns a summary dict (paths, shapes, timings, seed).

    images: uint8 (N, H, W, 3); labels: (N,) ints. progress(name, severity) is called after each
    (corruption, severity) block.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), got {labels.shape}"
        )
    if table not in SCALES:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(SCALES)}")
    names = _check_names(names)
    sev = _check_severities(severities)
    keep_freed_memory()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()  # from here until the end, the folder does not pass as complete
    t0 = time.perf_counter()
    files, seconds = {}, {}
    sheet_rows = {}
    n = images.shape[0]
    cell = cell_size(device, images.shape[1], images.shape[2])
    for name in names:
        # Streamed: each chunk goes to the file (and the hash) as soon as it is made, so no
        # (5N, H, W, 3) array is ever allocated (fresh memory is slow to fault in on our VM).
        t = time.perf_counter()
        shape = (len(sev) * n,) + images.shape[1:]
        firsts = []
        with NpyStream(out / f"{name}.npy", shape, np.uint8) as w:
            with BackgroundWriter(w.write) as writer:  # joined before the commit
                for s in sev:
                    for start, part in iter_block(
                        images, name, s, seed, table=table, device=device, chunk=cell
                    ):
                        if start == 0:
                            firsts.append(part[0].copy())
                        writer.put(part)
                    if progress is not None:
                        progress(name, s)
            files[f"{name}.npy"] = {
                "sha256": w.commit(),
                "shape": list(shape),
                "dtype": "uint8",
            }
        seconds[name] = time.perf_counter() - t
        if n:
            sheet_rows[name] = firsts
    label_dtype = (
        np.uint8
        if labels.size == 0 or (labels.min() >= 0 and labels.max() < 256)
        else np.int64
    )
    tiled = np.tile(labels.astype(label_dtype), len(sev))
    files["labels.npy"] = {
        "sha256": atomic_save_npy(out / "labels.npy", tiled),
        "shape": list(tiled.shape),
        "dtype": np.dtype(label_dtype).name,
    }
    if names and images.shape[0]:
        png = _png_bytes(contact_sheet(sheet_rows, images[0]))
        atomic_write_bytes(out / "contact_sheet.png", png)
        files["contact_sheet.png"] = {"sha256": hashlib.sha256(png).hexdigest()}
    total = time.perf_counter() - t0
    manifest = {
        "format": "cifar-c",
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "chunk": cell,  # images per seeded cell: part of what the bytes depend on
        "table": table,
        "names": names,
        "severities": sev,
        "n_images": int(images.shape[0]),
        "files": files,
    }
    # device builds have their own random streams (torch_backend)
    if device is not None:
        manifest["device_type"] = torch_device_type(device)
    atomic_write_bytes(
        manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
    )
    n_out = len(names) * len(sev) * images.shape[0]
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
            if deep and _sha256(path) != meta["sha256"]:
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
    seed: int,
    table: str = "imagenet",
    device=None,
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Write `<root>/<corruption>/<severity>/<wnid>/<file name>` as JPEG quality 85, optimize=True.

    images: uint8 (N, 224, 224, 3), already Resize(256) + CenterCrop(224)'d. Every image,
    jpeg_compression included, gets this extra JPEG encoding, as in the released ImageNet-C.
    """
    images = np.asarray(images)
    if len(wnids) != images.shape[0] or len(file_names) != images.shape[0]:
        raise ValueError(
            f"need one wnid and one file name per image ({images.shape[0]}), "
            f"got {len(wnids)} and {len(file_names)}"
        )
    names = _check_names(names)
    sev = _check_severities(severities)
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest_path.unlink()
    t0 = time.perf_counter()
    count = 0
    cell = cell_size(device, images.shape[1], images.shape[2])
    import io

    for name in names:
        for s in sev:
            block = corrupt_block(
                images, name, s, seed, table=table, device=device, chunk=cell
            )
            for img, wnid, fname in zip(block, wnids, file_names):
                folder = root / name / str(s) / wnid
                folder.mkdir(parents=True, exist_ok=True)
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="JPEG", quality=85, optimize=True)
                atomic_write_bytes(folder / fname, buf.getvalue())
                count += 1
            if progress is not None:
                progress(name, s)
    manifest = {
        "format": "imagenet-c",
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "chunk": cell,
        "table": table,
        "names": names,
        "severities": sev,
        "n_images": int(images.shape[0]),
        "files": {},
    }
    if device is not None:
        manifest["device_type"] = torch_device_type(device)
    atomic_write_bytes(
        manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
    )
    return {
        **manifest,
        "out_dir": str(root),
        "written": count,
        "seconds": time.perf_counter() - t0,
    }
