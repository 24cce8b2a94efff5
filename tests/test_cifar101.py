"""CIFAR-10.1: verification, the offline message, download and storage in the CIFAR pickle format,
on small files the tests build in the release's format (uint8 (N, 32, 32, 3), int32 labels)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from augmix import cifar101 as C
from augmix.data import load_split
from augmix.errors import DataError


@pytest.fixture
def release(tmp_path):
    """A 30-image release in the official format under tmp/src, and its file records."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(30) % 10).astype(np.int32)
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / C.V6_FILES["data"].name, x)
    np.save(src / C.V6_FILES["labels"].name, y)
    files = {}
    for key, spec in C.V6_FILES.items():
        path = src / spec.name
        files[key] = C.ReleasedFile(spec.name, path.as_uri(), C.git_blob_sha1(path),
                                    hashlib.sha256(path.read_bytes()).hexdigest())
    return x, y, src, files


def test_git_blob_sha1_is_gits(tmp_path):
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    # `git hash-object` of the empty file and of "hello\n"
    assert C.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert C.git_blob_sha1(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_release_record():
    assert set(C.V6_FILES) == {"data", "labels"}
    for spec in C.V6_FILES.values():
        assert C.COMMIT in spec.url and spec.url.endswith(spec.name)
        assert len(spec.git_blob_sha1) == 40
    assert len(C.V6_FILES["labels"].sha256) == 64
    assert C.CLASSES[0] == "airplane" and C.CLASSES[-1] == "truck" and len(C.CLASSES) == 10


def test_placed_files_load_like_the_cifar_test_set(release, tmp_path):
    x, y, src, files = release
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for spec in files.values():
        (downloads / spec.name).write_bytes((src / spec.name).read_bytes())
    out = C.fetch_cifar101(tmp_path / "raw" / "cifar101", downloads=downloads, download=False, files=files)
    gx, gy = load_split(out, "test")
    assert np.array_equal(gx, x) and gy.dtype == np.int64 and np.array_equal(gy, y)
    assert np.array_equal(C.load_cifar101(out)[0], x)
    assert sorted(p.name for p in (out / C.BATCHES).iterdir()) == ["batches.meta", "test_batch"]
    record = json.loads((out / "cifar101.json").read_text())
    assert record["n_images"] == 30
    assert record["files"][files["data"].name]["git_blob_sha1"] == files["data"].git_blob_sha1


@pytest.mark.parametrize("damage", ["tamper", "truncate"])
def test_damaged_file_is_refused(release, tmp_path, damage):
    x, y, src, files = release
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for spec in files.values():
        (downloads / spec.name).write_bytes((src / spec.name).read_bytes())
    data = downloads / files["data"].name
    raw = bytearray(data.read_bytes())
    if damage == "tamper":
        raw[500] ^= 0x01
        data.write_bytes(bytes(raw))
    else:
        data.write_bytes(bytes(raw[: len(raw) // 2]))
    out = tmp_path / "raw" / "cifar101"
    with pytest.raises(DataError, match="fails its checksum") as err:
        C.fetch_cifar101(out, downloads=downloads, download=False, files=files)
    assert str(data) in str(err.value) and files["data"].url in str(err.value)
    assert not out.exists()


def test_offline_message_names_files_source_and_destination(release, tmp_path):
    downloads = tmp_path / "downloads"
    with pytest.raises(DataError) as err:
        C.fetch_cifar101(tmp_path / "out", downloads=downloads, download=False)
    msg = str(err.value)
    for spec in C.V6_FILES.values():
        assert spec.name in msg and spec.url in msg
    assert str(downloads) in msg and "downloading is off" in msg


def test_download_verifies_and_keeps_nothing_wrong(release, tmp_path):
    x, y, src, files = release
    downloads = tmp_path / "downloads"
    out = C.fetch_cifar101(tmp_path / "out", downloads=downloads, download=True, files=files)
    assert np.array_equal(load_split(out, "test")[0], x)
    assert sorted(p.name for p in downloads.iterdir()) == sorted(s.name for s in files.values())
    # a source that does not match its record: refused, and no file left in downloads
    bad = dict(files, labels=C.ReleasedFile(files["labels"].name, files["labels"].url, "0" * 40))
    (downloads / files["labels"].name).unlink()
    with pytest.raises(DataError, match="fails its checksum"):
        C.fetch_cifar101(tmp_path / "out2", downloads=downloads, download=True, files=bad)
    assert not (downloads / files["labels"].name).exists()
    assert not list(downloads.glob(".*"))
    # an unreachable source: a DataError that says where to put the file
    gone = dict(files, labels=C.ReleasedFile(files["labels"].name, (tmp_path / "nowhere.npy").as_uri(),
                                             files["labels"].git_blob_sha1))
    with pytest.raises(DataError, match="could not download") as err:
        C.fetch_cifar101(tmp_path / "out3", downloads=downloads, download=True, files=gone)
    assert str(downloads / files["labels"].name) in str(err.value)


def test_wrong_shapes_are_refused(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    np.save(src / C.V6_FILES["data"].name, np.zeros((4, 32, 32), np.uint8))
    np.save(src / C.V6_FILES["labels"].name, np.zeros(4, np.int32))
    files = {k: C.ReleasedFile(s.name, s.url, C.git_blob_sha1(src / s.name)) for k, s in C.V6_FILES.items()}
    with pytest.raises(DataError, match=r"expected uint8 \(N, 32, 32, 3\)"):
        C.fetch_cifar101(tmp_path / "out", downloads=src, download=False, files=files)
