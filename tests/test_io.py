"""Atomic writes: all or nothing, and leftovers of a killed writer are cleared by the next one."""

from __future__ import annotations

import pytest

from augmix import io


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failed_directory_build_keeps_the_previous_one(tmp_path):
    out = tmp_path / "corrupted"
    with io.atomic_dir(out) as tmp:
        (tmp / "a.npy").write_text("complete")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(out) as tmp:
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
