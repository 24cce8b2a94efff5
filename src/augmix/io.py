"""Atomic file writes and small file helpers.

Every stage writes through these, so an interrupted stage never leaves a half-written file that a
later stage or DVC would trust: data goes to a temporary file in the same folder, then `os.replace`
swaps it in (atomic on POSIX file systems). `AtomicFile` and `NpyStream` write a file piece by
piece and hash it as it goes; `file_digest` is the one way to hash a file that already exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def _clear_leftovers(path: Path) -> None:
    """Remove temporaries a killed earlier writer of `path` left beside it. One writer per output
    is the orchestrators' rule (DVC and Snakemake lock outputs), so any such leftover is stale."""
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file should look like any other
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` atomically and durably (fsync'ed before the rename, as AtomicFile)."""
    with AtomicFile(path, algorithm=None) as f:
        f.write(data)
        f.commit()
    return Path(path)


def write_npy_digest(path: str | Path, array: np.ndarray, algorithm: str = "sha256") -> str:
    """np.save(path, array, allow_pickle=False), atomically and durably; returns the file's hex
    digest, computed while writing (no read-back)."""
    array = np.asarray(array)
    with NpyStream(path, array.shape, array.dtype, algorithm=algorithm) as w:
        w.write(array)
        return w.commit()


def write_csv(path: str | Path, frame: Any) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole directory beside `path`, then swap it in; a failure leaves the old one alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (hashlib.file_digest; any hashlib algorithm name)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _drop_cache(fd: int) -> None:
    """Ask the kernel to drop a file's (already fsync'ed) pages from the page cache. Writing GBs of
    output otherwise grows the page cache with freshly allocated pages, which on our VM cost far
    more than the write itself (150 MB: 0.09 s when the cache is recycled, up to 1.5 s when it keeps
    growing). Harmless: the data is on disk; a later read just reads it."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # file systems without fadvise
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class AtomicFile:
    """A file written piece by piece under a temporary name beside `path`, hashed as it goes.

    `commit()` flushes, fsyncs, drops the file's pages from the page cache, renames it over `path`
    and returns the hex digest of everything written (`algorithm`; "" for None). Used as a context
    manager: leaving it without commit() (an exception) removes the temporary file, so `path` is
    either the old file or the complete new one."""

    _BLOCK = 1 << 22  # bytes hashed and written per call: large, and still cache-sized

    def __init__(self, path: str | Path, algorithm: str | None = "sha256"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp: Path | None = Path(tmp)
        self._f = os.fdopen(fd, "wb")
        self._hash = hashlib.new(algorithm) if algorithm else None

    def write(self, data) -> None:
        """Append bytes (any buffer)."""
        view = memoryview(data).cast("B")
        for i in range(0, view.nbytes, self._BLOCK):
            block = view[i : i + self._BLOCK]
            if self._hash is not None:
                self._hash.update(block)
            self._f.write(block)

    def commit(self) -> str:
        if self._tmp is None:
            raise ValueError(f"{self.path}: already committed or closed")
        self._f.flush()
        os.fsync(self._f.fileno())
        _drop_cache(self._f.fileno())
        self._f.close()
        os.chmod(self._tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self._hash.hexdigest() if self._hash is not None else ""

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._f.close()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def npy_header(shape, dtype) -> bytes:
    """The header np.save writes (format version 1.0) for a C-ordered array of this shape."""
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


class NpyStream(AtomicFile):
    """One .npy file written piece by piece (an AtomicFile): the file equals np.save of the
    concatenated pieces. The shape is fixed up front; commit() refuses a short file."""

    def __init__(self, path: str | Path, shape, dtype, algorithm: str | None = "sha256"):
        self.dtype = np.dtype(dtype)
        if self.dtype.hasobject:
            raise ValueError(f"{path}: object arrays are not saved (allow_pickle=False)")
        self.shape = tuple(int(d) for d in shape)
        self._left = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        super().__init__(path, algorithm)
        super().write(npy_header(self.shape, self.dtype))

    def write(self, array) -> None:
        """Append the bytes of `array` (C order; its dtype must be the file's)."""
        array = np.asarray(array)
        if array.dtype != self.dtype:
            raise ValueError(f"{self.path.name}: expected {self.dtype}, got {array.dtype}")
        if array.size == 0:
            return
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if data.nbytes > self._left:
            raise ValueError(f"{self.path.name}: more data than the shape {self.shape} holds")
        super().write(data)
        self._left -= data.nbytes

    def commit(self) -> str:
        if self._left:
            raise ValueError(f"{self.path.name}: {self._left} bytes short of the shape {self.shape}")
        return super().commit()
