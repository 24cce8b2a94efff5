"""Atomic writes: all or nothing, and leftovers of a killed writer are cleared by the next one."""

from __future__ import annotations

import hashlib
import os
from io import BytesIO

import numpy as np
import pytest

from augmix import io


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failed_directory_build_keeps_the_previous_one(tmp_path):
    out = tmp_path / "corrupted"
    with io.atomic_dir(out) as tmp:
        (tmp / "a.npy").write_text("complete")
    with pytest.raises(RuntimeError), io.atomic_dir(out) as tmp:
        (tmp / "a.npy").write_text("partial")
        raise RuntimeError("killed")
    assert (out / "a.npy").read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupted"]


def test_leftovers_of_a_killed_writer_are_cleared(tmp_path):
    # What SIGKILL leaves: the context manager's cleanup never ran.
    (tmp_path / ".model.pt.abc123.tmp.pt").write_bytes(b"x")
    (tmp_path / ".digits.xyz.tmp").mkdir()
    (tmp_path / ".digits.xyz.tmp" / "part.npy").write_bytes(b"x")
    (tmp_path / ".other.pt.1.tmp").write_bytes(b"keep")  # another output's temporary
    io.write_text(tmp_path / "model.pt", "new")
    with io.atomic_dir(tmp_path / "digits") as tmp:
        (tmp / "done").write_text("1")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.pt.1.tmp", "digits", "model.pt"]


# ----------------------------------------------------------------------------------------------
# streamed, hashed writes (AtomicFile, NpyStream) and file_digest


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
        np.arange(7, dtype=np.int64),
        np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        np.zeros((0, 32, 32, 3), np.uint8),
    ],
)
def test_write_npy_digest_is_np_save(tmp_path, array):
    digest = io.write_npy_digest(tmp_path / "a.npy", array)
    buf = BytesIO()
    np.save(buf, array, allow_pickle=False)
    data = (tmp_path / "a.npy").read_bytes()
    assert data == buf.getvalue()
    assert digest == hashlib.sha256(data).hexdigest() == io.file_digest(tmp_path / "a.npy", "sha256")
    assert not list(tmp_path.glob(".*tmp"))


def test_npy_stream_pieces_and_errors(tmp_path):
    parts = [np.full((3, 2, 2, 3), i, np.uint8) for i in range(4)]
    with io.NpyStream(tmp_path / "s.npy", (12, 2, 2, 3), np.uint8) as w:
        for p in parts:
            w.write(p)
        digest = w.commit()
    buf = BytesIO()
    np.save(buf, np.concatenate(parts))
    assert (tmp_path / "s.npy").read_bytes() == buf.getvalue()
    assert digest == hashlib.sha256(buf.getvalue()).hexdigest()
    with (  # incomplete: nothing published
        pytest.raises(ValueError, match="short"),
        io.NpyStream(tmp_path / "t.npy", (12, 2, 2, 3), np.uint8) as w,
    ):
        w.write(parts[0])
        w.commit()
    with (
        pytest.raises(ValueError, match="more data"),
        io.NpyStream(tmp_path / "u.npy", (1, 2, 2, 3), np.uint8) as w,
    ):
        w.write(parts[0])
    with pytest.raises(ValueError, match="object arrays"):
        io.NpyStream(tmp_path / "v.npy", (1,), object)
    assert not (tmp_path / "t.npy").exists() and not (tmp_path / "u.npy").exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_atomic_file_all_or_nothing_with_ordinary_permissions(tmp_path):
    target = tmp_path / "archive.tar"
    io.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), io.AtomicFile(target, algorithm="md5") as f:
        f.write(b"half of a download")
        raise RuntimeError("connection reset")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar"]
    with io.AtomicFile(target, algorithm="md5") as f:
        f.write(b"new ")
        f.write(memoryview(b"bytes"))
        digest = f.commit()
    assert target.read_bytes() == b"new bytes" and digest == hashlib.md5(b"new bytes").hexdigest()
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_file_digest_any_algorithm(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 5000)
    for algorithm in ("md5", "sha256", "blake2b"):
        assert io.file_digest(path, algorithm) == hashlib.new(algorithm, path.read_bytes()).hexdigest()
    assert io.file_digest(path) == hashlib.md5(path.read_bytes()).hexdigest()  # md5 by default
