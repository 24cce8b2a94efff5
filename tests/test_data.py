"""Dataset code on small archives in the official CIFAR formats that the tests build (offline)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from augmix import data
from augmix.data import Archive, DataError
from augmix.io import file_digest


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_cifar10_archive(path: Path, n_train: int = 50, n_test: int = 10, seed: int = 0):
    """A small archive with the layout and pickle keys of cifar-10-python.tar.gz."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_test)
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # R plane, G plane, B plane
    with tarfile.open(path, "w:gz") as tar:
        for i, idx in enumerate(np.array_split(np.arange(n_train), 5), 1):
            _add(tar, f"cifar-10-batches-py/data_batch_{i}",
                 _pickle_bytes({b"data": rows[idx], b"labels": y[idx].tolist(), b"batch_label": b"x"}))
        _add(tar, "cifar-10-batches-py/test_batch",
             _pickle_bytes({b"data": rows[n_train:], b"labels": y[n_train:].tolist()}))
        _add(tar, "cifar-10-batches-py/batches.meta",
             _pickle_bytes({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def make_cifar100_archive(path: Path, n_train: int = 30, n_test: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 100, n_train + n_test)
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "cifar-100-python/train", _pickle_bytes(
            {b"data": rows[:n_train], b"fine_labels": y[:n_train].tolist(), b"coarse_labels": [0] * n_train}))
        _add(tar, "cifar-100-python/test", _pickle_bytes(
            {b"data": rows[n_train:], b"fine_labels": y[n_train:].tolist(), b"coarse_labels": [0] * n_test}))
        _add(tar, "cifar-100-python/meta", _pickle_bytes({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


@pytest.mark.parametrize("maker,dataset,folder", [
    (make_cifar10_archive, "cifar10", "cifar-10-batches-py"),
    (make_cifar100_archive, "cifar100", "cifar-100-python"),
])
def test_offline_archive_is_verified_extracted_and_read(tmp_path, maker, dataset, folder):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    official = data.CIFAR_ARCHIVES[dataset]
    (train, test) = maker(downloads / official.filename)
    archive = Archive(official.url, official.filename, file_digest(downloads / official.filename), folder)
    out = data.fetch_cifar(dataset, tmp_path / "raw" / dataset, downloads=downloads, download=False, archive=archive)
    x, y = data.load_split(out, "train")
    np.testing.assert_array_equal(x, train[0])
    np.testing.assert_array_equal(y, train[1])
    x, y = data.load_split(out, "test")
    np.testing.assert_array_equal(x, test[0])
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and y.dtype == np.int64
    assert len(data.class_names(out)) == (10 if dataset == "cifar10" else 100)
    assert len(data.load_split(out, "train", limit=7)[0]) == 7


def test_tampered_or_truncated_archive_is_refused(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    path = downloads / "cifar-10-python.tar.gz"
    make_cifar10_archive(path)
    good = Archive("u", path.name, file_digest(path), "cifar-10-batches-py")
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match="fails its checksum"):
        data.fetch_cifar("cifar10", tmp_path / "raw", downloads=downloads, download=False, archive=good)
    assert not (tmp_path / "raw").exists()  # nothing half-written
    # The official record: our test archive is not the official one, so it is refused by default.
    make_cifar10_archive(path)
    with pytest.raises(DataError, match="expected c58f30108f718f92721af3b95e74349a"):
        data.fetch_cifar("cifar10", tmp_path / "raw", downloads=downloads, download=False)


def test_missing_archive_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as err:
        data.fetch_cifar("cifar100", tmp_path / "raw", downloads=tmp_path / "dl", download=False)
    msg = str(err.value)
    assert str(tmp_path / "dl" / "cifar-100-python.tar.gz") in msg and "cifar-100-python.tar.gz" in msg


def test_digits_demo_set_is_deterministic_cifar_format(tmp_path):
    a = data.build_digits(tmp_path / "a", test_fraction=0.2, seed=1)
    b = data.build_digits(tmp_path / "b", test_fraction=0.2, seed=1)
    xa, ya = data.load_split(a, "train")
    xt, yt = data.load_split(a, "test")
    assert xa.shape[1:] == (32, 32, 3) and xa.dtype == np.uint8
    assert len(xa) + len(xt) == 1797 and abs(len(xt) / 1797 - 0.2) < 0.01
    np.testing.assert_array_equal(xa, data.load_split(b, "train")[0])
    np.testing.assert_array_equal(yt, data.load_split(b, "test")[1])
    # Stratified: every class is in both splits; grey digits copied to three equal channels.
    assert set(ya) == set(yt) == set(range(10))
    assert (xa[..., 0] == xa[..., 2]).all() and xa.max() > 200
    assert (tmp_path / "a" / "digits-batches-py" / "data_batch_1").exists()  # CIFAR-10 layout
    assert data.class_names(a) == [str(i) for i in range(10)]


def test_imagenet_folder_check(tmp_path):
    with pytest.raises(DataError, match="datasets.imagenet.dir"):
        data.check_imagenet(tmp_path / "missing")
    for split in ("train", "val"):
        (tmp_path / "inet" / split / "n01").mkdir(parents=True)
        (tmp_path / "inet" / split / "n01" / "a.JPEG").write_bytes(b"x")
    assert data.check_imagenet(tmp_path / "inet") == {"train": 1, "val": 1}
