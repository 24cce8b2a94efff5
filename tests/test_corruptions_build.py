"""Writers: official layouts, dtype/shape/labels, byte-identical re-runs, name-keyed seeding (a
corruption's bytes do not depend on the others, their order, the batch or the device), interrupted
builds, ImageNet-C folders, the offline path of the official archive, frost texture errors."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from augmix.corruptions import build as B
from augmix.corruptions import functions as F
from augmix.corruptions.bench import format_table, run, synthetic_images
from augmix.corruptions.draws import corruption_keys
from augmix.corruptions.frost import (
    FROST_FILES,
    FrostTexturesMissing,
    load_frost_textures,
)
from augmix.corruptions.official import OFFICIAL, fetch_official_cifar_c
from augmix.errors import DataError

NAMES = ["gaussian_noise", "glass_blur", "contrast"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    imgs = synthetic_images(12, seed=4)
    labels = np.arange(12) % 10
    return imgs, labels


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    imgs, labels = data
    out = tmp_path_factory.mktemp("c1")
    calls = []
    summary = B.build_c_set(
        imgs,
        labels,
        out,
        names=NAMES,
        seed=3,
        device="cpu",
        progress=lambda n, s: calls.append((n, s)),
    )
    return out, summary, calls


def test_layout_dtype_shapes_labels(built, data):
    imgs, labels = data
    out, summary, calls = built
    assert calls == [(n, s) for n in NAMES for s in range(1, 6)]
    for name in NAMES:
        arr = np.load(out / f"{name}.npy")
        assert arr.dtype == np.uint8 and arr.shape == (60, 32, 32, 3)
        for s in range(1, 6):  # rows [(s-1)N, sN) hold severity s, in input order
            block = arr[(s - 1) * 12 : s * 12]
            assert np.array_equal(block, B.corrupt_block(imgs, name, s, 3, device="cpu"))
    lab = np.load(out / "labels.npy")
    assert lab.dtype == np.uint8 and np.array_equal(lab, np.tile(labels, 5))
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > 6 * 64 and sheet.size[1] > 3 * 64
    manifest = json.loads((out / B.MANIFEST).read_text())
    assert manifest["seed"] == 3 and manifest["names"] == NAMES and manifest["batch"] == B.CHUNK
    assert manifest["format_version"] == B.FORMAT_VERSION == 2 and manifest["seeding"] == B.SEEDING
    assert manifest["backend"] == "numpy" and manifest["device_type"] == "cpu"
    assert B.is_complete(out, deep=True)
    assert summary["images_per_second"] > 0
    assert not list(out.glob(".*tmp"))  # no temporary files left


def test_byte_identical_reruns_and_subset_independence(built, data, tmp_path):
    imgs, labels = data
    out, _, _ = built
    B.build_c_set(imgs, labels, tmp_path / "a", names=["glass_blur"], seed=3, device="cpu")
    B.build_c_set(imgs, labels, tmp_path / "b", names=["glass_blur"], seed=4, device="cpu")
    same = (tmp_path / "a" / "glass_blur.npy").read_bytes()
    assert (
        same == (out / "glass_blur.npy").read_bytes()
    )  # same seed, built alone or with others
    assert same != (tmp_path / "b" / "glass_blur.npy").read_bytes()


def test_every_image_has_its_own_stream():
    imgs = np.repeat(synthetic_images(1, seed=2), B.CHUNK + 2, axis=0)
    out = B.corrupt_block(imgs, "gaussian_noise", 3, 0, device="cpu")
    assert len({out[i].tobytes() for i in range(len(out))}) == len(out)
    # an image's bytes depend on its index, not on the batch it was computed in
    for batch in (1, 7, B.CHUNK, 1000):
        assert np.array_equal(out, B.corrupt_block(imgs, "gaussian_noise", 3, 0, device="cpu", batch=batch))
    assert np.array_equal(out[:2], B.corrupt_block(imgs[:2], "gaussian_noise", 3, 0, device="cpu"))
    part = B.corrupt_block(imgs[5:9], "gaussian_noise", 3, 0, device="cpu", first_index=5)
    assert np.array_equal(out[5:9], part)


RANDOM = ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
          "fog", "elastic_transform", "speckle_noise", "spatter"]


def test_seeds_are_keyed_by_name_not_position(monkeypatch):
    """Inserting a corruption before the others, or reversing their order, changes no other
    corruption's bytes: the keys name the corruption, never its index in the tables."""
    imgs = synthetic_images(6, seed=9)
    names = [n for n in RANDOM if n != "spatter" or _has_cv2()]
    before = {n: B.corrupt_block(imgs, n, 4, 11, device="cpu") for n in names}
    shuffled = dict(reversed(list(F.CORRUPTIONS.items())))
    shuffled = {"aaa_inserted": F.CORRUPTIONS["gaussian_noise"], **shuffled}
    monkeypatch.setattr(F, "CORRUPTIONS", shuffled)
    monkeypatch.setattr(F, "ALL_CORRUPTIONS", tuple(shuffled))
    monkeypatch.setattr(B, "CORRUPTIONS", shuffled)
    for n in names:
        assert np.array_equal(before[n], B.corrupt_block(imgs, n, 4, 11, device="cpu")), n
    # the inserted one (gaussian noise's arithmetic) draws its own noise
    assert not np.array_equal(B.corrupt_block(imgs, "aaa_inserted", 4, 11, device="cpu"), before["gaussian_noise"])


def test_keys_name_seed_corruption_severity_and_index():
    base = corruption_keys(3, "fog", 2, range(4))
    assert base.index.tolist() == [0, 1, 2, 3] and base.epoch == 0
    others = [corruption_keys(4, "fog", 2, range(4)), corruption_keys(3, "snow", 2, range(4)),
              corruption_keys(3, "fog", 3, range(4)), corruption_keys("cifar10", "fog", 2, range(4)),
              corruption_keys("cifar100", "fog", 2, range(4))]
    assert len({base.seed, *(k.seed for k in others)}) == 6
    assert corruption_keys(3, "fog", 2, [7]).seed == base.seed  # the index is the sample index
    imgs = synthetic_images(3, seed=1)
    named = B.corrupt_block(imgs, "gaussian_noise", 1, "cifar10", device="cpu")
    assert np.array_equal(named, B.corrupt_block(imgs, "gaussian_noise", 1, "cifar10", device="cpu"))
    assert not np.array_equal(named, B.corrupt_block(imgs, "gaussian_noise", 1, "cifar100", device="cpu"))


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def test_interrupted_build_is_not_complete(data, tmp_path):
    imgs, labels = data
    B.build_c_set(imgs, labels, tmp_path, names=["contrast"], seed=1)
    assert B.is_complete(tmp_path)

    def boom(name, s):
        if name == "gaussian_noise" and s == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        B.build_c_set(
            imgs,
            labels,
            tmp_path,
            names=["contrast", "gaussian_noise"],
            seed=1,
            progress=boom,
        )
    assert not B.is_complete(
        tmp_path
    )  # the old manifest was removed before anything was written
    assert not (tmp_path / "gaussian_noise.npy").exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_truncated_file_is_not_complete(data, tmp_path):
    imgs, labels = data
    B.build_c_set(imgs, labels, tmp_path, names=["contrast"], seed=1)
    path = tmp_path / "contrast.npy"
    path.write_bytes(path.read_bytes()[:-100])
    assert not B.is_complete(tmp_path)


def test_bad_arguments(data, tmp_path):
    imgs, labels = data
    with pytest.raises(KeyError, match="fog2"):
        B.build_c_set(imgs, labels, tmp_path, names=["fog2"], seed=0)
    with pytest.raises(ValueError, match="severities"):
        B.build_c_set(imgs, labels, tmp_path, names=["fog"], severities=(0,), seed=0)
    with pytest.raises(ValueError, match="labels"):
        B.build_c_set(imgs, labels[:3], tmp_path, names=["fog"], seed=0)


def test_imagenet_folder_layout(tmp_path):
    imgs = synthetic_images(2, size=224, seed=1)
    res = B.build_imagenet_c_folder(
        imgs,
        ["n01440764", "n01443537"],
        ["ILSVRC2012_val_00000293.JPEG", "ILSVRC2012_val_00000236.JPEG"],
        tmp_path,
        names=["contrast"],
        severities=(1, 3),
        seed=0,
    )
    assert res["written"] == 4
    for s in (1, 3):
        p = (
            tmp_path
            / "contrast"
            / str(s)
            / "n01443537"
            / "ILSVRC2012_val_00000236.JPEG"
        )
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (224, 224)
            expect = F.contrast(imgs[1:], s, table="imagenet")[0].astype(int)
            assert (
                np.abs(np.asarray(im).astype(int) - expect).mean() < 3
            )  # q85 re-encoding only
    assert (tmp_path / B.MANIFEST).is_file()


# ----------------------------------------------------------------------------------------------
# official archives (offline)


def _fake_archive(path, folder, n=2, bad_member=False):
    with tarfile.open(path, "w") as tar:

        def add(name, arr):
            buf = io.BytesIO()
            np.save(buf, arr)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)

        for i, name in enumerate(F.ALL_CORRUPTIONS):
            add(f"{name}.npy", np.full((5 * n, 32, 32, 3), i, np.uint8))
        add("labels.npy", np.tile(np.arange(n, dtype=np.uint8), 5))
        if bad_member:
            info = tarfile.TarInfo("../evil.txt")
            info.size = 0
            tar.addfile(info, io.BytesIO())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_official_offline_archive(tmp_path):
    sha = _fake_archive(tmp_path / "CIFAR-10-C.tar", "CIFAR-10-C")
    root = fetch_official_cifar_c(
        "cifar10", tmp_path, download=False, expected_sha256=sha
    )
    assert root == tmp_path / "CIFAR-10-C"
    arr = np.load(root / "fog.npy")
    assert arr.shape == (10, 32, 32, 3) and arr.dtype == np.uint8
    assert np.array_equal(np.load(root / "labels.npy"), np.tile([0, 1], 5))
    # a second call finds the completed extraction
    assert (
        fetch_official_cifar_c(
            "cifar10", tmp_path, download=False, expected_sha256="0" * 64
        )
        == root
    )


def test_official_missing_and_bad_checksum(tmp_path):
    with pytest.raises(DataError) as err:
        fetch_official_cifar_c("cifar100", tmp_path, download=False)
    msg = str(err.value)
    assert "CIFAR-100-C.tar" in msg and "3555552" in msg and str(tmp_path) in msg
    _fake_archive(tmp_path / "CIFAR-10-C.tar", "CIFAR-10-C")
    with pytest.raises(
        DataError, match="size"
    ):  # the published size and hash apply by default
        fetch_official_cifar_c("cifar10", tmp_path, download=False)
    with pytest.raises(DataError, match="SHA-256"):
        fetch_official_cifar_c(
            "cifar10", tmp_path, download=False, expected_sha256="0" * 64
        )
    with pytest.raises(KeyError, match="svhn"):
        fetch_official_cifar_c("svhn", tmp_path, download=False)
    assert OFFICIAL["cifar10"]["size"] == 2_918_471_680


def test_official_rejects_unsafe_members(tmp_path):
    sha = _fake_archive(tmp_path / "CIFAR-10-C.tar", "CIFAR-10-C", bad_member=True)
    with pytest.raises(DataError, match="unsafe"):
        fetch_official_cifar_c("cifar10", tmp_path, download=False, expected_sha256=sha)
    assert not (tmp_path / "CIFAR-10-C").exists()


# ----------------------------------------------------------------------------------------------
# frost textures, bench


def test_frost_missing_names_the_fix(tmp_path):
    with pytest.raises(FrostTexturesMissing, match="imagecorruptions==1.1.2"):
        load_frost_textures("cifar", str(tmp_path))
    for name in FROST_FILES:
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(FrostTexturesMissing, match="SHA-256"):
        load_frost_textures("cifar", str(tmp_path))


def test_bench_small():
    res = run(n=16, names=("contrast", "gaussian_noise"), severities=(1, 2))
    assert set(res["corruptions"]) == {"contrast", "gaussian_noise"}
    assert res["projected_total_seconds"] > 0 and res["images_total"] == 2 * 2 * 10_000
    assert "contrast" in format_table(res)
    json.dumps(res)  # the CLI prints it with --json
