"""Device builds (issues #4 and #14): the device choice, the batch-size rule, the device path pinned
byte for byte to the NumPy path (torch on the CPU, also dividing as CUDA does), the background
writer (same bytes as writing directly), and failures in either thread leaving no partial file, no
manifest and no thread behind."""

from __future__ import annotations

import hashlib
import io
import json
import threading

import numpy as np
import pytest
import torch

from augmix import io as aio
from augmix.corruptions import build as B
from augmix.corruptions import functions as F
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.torch_backend import host_pieces
from augmix.errors import ConfigError

from support.cuda_division import emulate_cuda_scalar_division

# device batches in these tests: 300 images make one full batch and a short one
SMALL_BATCH = 256
TORCH_CPU = torch.device("cpu")  # the torch (device) path, run on the CPU


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def small_device_batches(monkeypatch):
    monkeypatch.setitem(B.DEVICE_BATCH_PIXELS, "cpu", SMALL_BATCH * 32 * 32)  # CPU torch as an accelerator
    return SMALL_BATCH


@pytest.fixture(scope="module")
def data():
    imgs = synthetic_images(300, seed=5)
    return imgs, np.arange(len(imgs)) % 10


def _no_temporaries(folder) -> bool:
    return not list(folder.glob(".*tmp"))


# ----------------------------------------------------------------------------------------------
# the device choice and the batch size


def test_resolve_device():
    cuda = torch.cuda.is_available()
    assert B.resolve_device("cpu") is None and B.resolve_device(None) is None  # the NumPy path
    assert B.resolve_device("auto") == ("cuda" if cuda else None)
    assert B.resolve_device(TORCH_CPU) == TORCH_CPU  # the torch path on the CPU
    with pytest.raises(ConfigError, match="corruptions.device"):
        B.resolve_device("gpu")
    if not cuda:
        with pytest.raises(ConfigError, match="corruptions.device: 'cuda:1' asks for CUDA"):
            B.resolve_device("cuda:1")


def test_batch_size_rule():
    assert B.batch_size(None, 32, 32) == B.CHUNK == 128  # the NumPy path
    assert B.batch_size(None, 224, 224) == 128
    assert B.batch_size(TORCH_CPU, 32, 32) == 128  # CPU torch: big batches fault in more than they save
    assert B.batch_size("cuda", 32, 32) == 8192
    # 167 fit at 224x224: rounded down to a multiple of CHUNK, never below it
    assert B.batch_size("cuda:0", 224, 224) == 128
    assert B.batch_size("cuda", 64, 64) == 2048
    assert B.batch_size("cuda", 100, 100) == 768  # 838 fit: a multiple of CHUNK
    assert B.batch_size("cuda", 4096, 4096) == 128


def test_batch_size_follows_the_budget(small_device_batches):
    assert B.batch_size(TORCH_CPU, 32, 32) == small_device_batches
    assert B.batch_size(None, 32, 32) == B.CHUNK


# ----------------------------------------------------------------------------------------------
# the device path builds the NumPy path's bytes


def _frost_ok() -> bool:
    try:
        from augmix.corruptions.frost import load_frost_textures

        load_frost_textures("cifar")
        return True
    except (FileNotFoundError, OSError):
        return False


def _all_names() -> list[str]:
    names = list(F.ALL_CORRUPTIONS)  # the device corruptions and spatter (NumPy on every device)
    return names if _frost_ok() else [n for n in names if n != "frost"]


@pytest.mark.parametrize("division", ["cpu", "cuda-like"])
def test_device_build_equals_the_numpy_build(tmp_path, monkeypatch, small_device_batches, division):
    """Every corruption, built by the torch path (batches of 256 and 44) and by the NumPy path
    (batches of 128, 128 and 44), gives the same files: the draws are keyed per image, and the
    arithmetic is the same, also when dividing the way CUDA does."""
    imgs = synthetic_images(300, seed=5)
    imgs[7, :16] = 255  # a flat saturated region
    labels = np.arange(len(imgs)) % 10
    kw = {"names": _all_names(), "severities": (1, 5), "seed": 7}
    numpy_build = B.build_c_set(imgs, labels, tmp_path / "numpy", device="cpu", **kw)
    if division == "cuda-like":
        emulate_cuda_scalar_division(monkeypatch)
    device_build = B.build_c_set(imgs, labels, tmp_path / "device", device=TORCH_CPU, **kw)
    assert numpy_build["batch"] == B.CHUNK and device_build["batch"] == small_device_batches
    assert (numpy_build["backend"], device_build["backend"]) == ("numpy", "torch")
    for name in kw["names"] + ["labels"]:
        a = (tmp_path / "numpy" / f"{name}.npy").read_bytes()
        assert a == (tmp_path / "device" / f"{name}.npy").read_bytes(), name
    assert numpy_build["files"] == device_build["files"]


def test_device_build_is_reproducible_and_records_its_device(data, tmp_path, small_device_batches):
    imgs, labels = data
    names, sev = ["gaussian_noise", "contrast"], (1, 4)
    kw = {"names": names, "severities": sev, "seed": 7, "device": TORCH_CPU}
    first = B.build_c_set(imgs, labels, tmp_path / "a", **kw)
    B.build_c_set(imgs, labels, tmp_path / "b", **kw)
    for name in names + ["labels"]:
        a = (tmp_path / "a" / f"{name}.npy").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.npy").read_bytes(), name
    manifest = json.loads((tmp_path / "a" / B.MANIFEST).read_text())
    assert manifest["batch"] == first["batch"] == small_device_batches
    assert manifest["backend"] == "torch" and manifest["device_type"] == "cpu"
    assert manifest["seeding"] == B.SEEDING and manifest["format_version"] == 2
    assert B.is_complete(tmp_path / "a", deep=True)
    noisy = np.load(tmp_path / "a" / "gaussian_noise.npy")
    for i, s in enumerate(sev):
        block = noisy[i * len(imgs) : (i + 1) * len(imgs)]
        for batch in (None, B.CHUNK, 7):  # any batch gives the same block
            assert np.array_equal(block, B.corrupt_block(imgs, "gaussian_noise", s, 7, device=TORCH_CPU, batch=batch))


def test_numpy_build_manifest(data, tmp_path):
    imgs, labels = data
    B.build_c_set(imgs[:8], labels[:8], tmp_path, names=["contrast"], seed=1, device="cpu")
    manifest = json.loads((tmp_path / B.MANIFEST).read_text())
    assert manifest["batch"] == B.CHUNK and (manifest["backend"], manifest["device_type"]) == ("numpy", "cpu")


# ----------------------------------------------------------------------------------------------
# the background writer


def _parts(seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [5, 128, 1, 64, 0, 33]
    return [rng.integers(0, 256, (k, 8, 8, 3), dtype=np.uint8) for k in sizes]


def test_background_writer_equals_direct_write(tmp_path):
    parts = _parts()
    shape = (sum(len(p) for p in parts), 8, 8, 3)
    with aio.NpyStream(tmp_path / "direct.npy", shape, np.uint8) as w:
        for p in parts:
            w.write(p)
        direct = w.commit()
    with aio.NpyStream(tmp_path / "queued.npy", shape, np.uint8) as w:
        with B.BackgroundWriter(w.write, depth=2) as writer:
            for p in parts:
                writer.put(p)
        queued = w.commit()
    data = (tmp_path / "queued.npy").read_bytes()
    assert data == (tmp_path / "direct.npy").read_bytes()
    buf = io.BytesIO()
    np.save(buf, np.concatenate(parts))
    assert data == buf.getvalue()
    assert queued == direct == hashlib.sha256(data).hexdigest()


def test_background_writer_hands_its_error_to_the_caller():
    before = threading.active_count()
    written = []

    def write(part):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(part)

    with (
        pytest.raises(OSError, match="disk full"),
        B.BackgroundWriter(write, depth=2) as writer,
    ):
        for p in _parts() * 3:  # more parts than the queue holds: put must not block
            writer.put(p)
    assert len(written) == 2
    assert threading.active_count() == before


def test_background_writer_stops_on_a_caller_error():
    before = threading.active_count()
    written = []
    with (
        pytest.raises(RuntimeError, match="caller"),
        B.BackgroundWriter(written.append) as writer,
    ):
        writer.put(np.zeros(1, np.uint8))
        raise RuntimeError("caller")
    assert threading.active_count() == before and len(written) <= 1


# ----------------------------------------------------------------------------------------------
# failures mid-build


def _complete_build(imgs, labels, folder):
    B.build_c_set(imgs[:8], labels[:8], folder, names=["contrast"], seed=1, device="cpu")
    assert B.is_complete(folder)


@pytest.mark.parametrize("device", ["cpu", TORCH_CPU])
def test_failing_corruption_leaves_no_partial_file(
    data, tmp_path, monkeypatch, small_device_batches, device
):
    imgs, labels = data
    _complete_build(imgs, labels, tmp_path)  # its manifest must go too
    real = B.corrupt
    cells = []

    def corrupt(part, name, severity, rng, **kw):
        if name == "gaussian_noise":
            cells.append(len(part))
            if len(cells) == 3:  # a later batch: earlier parts are queued or written
                raise RuntimeError("corruption failed")
        return real(part, name, severity, rng, **kw)

    monkeypatch.setattr(B, "corrupt", corrupt)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="corruption failed"):
        B.build_c_set(
            imgs,
            labels,
            tmp_path,
            names=["contrast", "gaussian_noise", "brightness"],
            severities=(1, 2),
            seed=3,
            device=device,
        )
    assert cells[:2] == ([256, 44] if device == TORCH_CPU else [128, 128])
    assert threading.active_count() == before
    assert not (tmp_path / B.MANIFEST).exists() and not B.is_complete(tmp_path)
    assert not (tmp_path / "gaussian_noise.npy").exists()
    assert not (tmp_path / "brightness.npy").exists()
    assert _no_temporaries(tmp_path)


def test_failing_write_leaves_no_partial_file(data, tmp_path, monkeypatch):
    imgs, labels = data
    _complete_build(imgs, labels, tmp_path)
    real = aio.NpyStream.write
    calls = []

    def write(self, array):
        if self.path.name == "gaussian_noise.npy":
            calls.append(threading.current_thread().name)
            if len(calls) == 2:
                raise OSError("disk full")
        real(self, array)

    monkeypatch.setattr(aio.NpyStream, "write", write)
    before = threading.active_count()
    with pytest.raises(OSError, match="disk full"):
        B.build_c_set(
            imgs,
            labels,
            tmp_path,
            names=["contrast", "gaussian_noise"],
            severities=(1, 2),
            seed=3,
            device="cpu",
        )
    assert calls == ["augmix-npy-writer"] * 2  # written on the writer thread
    assert threading.active_count() == before
    assert not (tmp_path / B.MANIFEST).exists()
    assert not (tmp_path / "gaussian_noise.npy").exists()
    assert _no_temporaries(tmp_path)


def test_host_pieces_is_one_copy_of_equal_pieces():
    """The CUDA JPEG path moves the encoded images to the host with one copy per batch."""
    pieces = [torch.arange(k, dtype=torch.uint8) + k for k in (3, 1, 7)]
    out = host_pieces(pieces)
    assert [p.tolist() for p in out] == [p.tolist() for p in pieces]
    assert out[1].untyped_storage().data_ptr() == out[2].untyped_storage().data_ptr()
    assert host_pieces([]) == []


def test_imagenet_folder_is_the_same_on_every_path(tmp_path):
    """The ImageNet-C folder builder takes the same device choice; the torch path writes the
    NumPy path's JPEG files (the same corrupted pixels, then the same q85 encoder)."""
    imgs = synthetic_images(3, size=224, seed=2)
    wnids, files = ["n01", "n02", "n01"], ["a.JPEG", "b.JPEG", "c.JPEG"]
    names = ["shot_noise", "glass_blur", "contrast", "elastic_transform"]
    kw = {"names": names, "severities": (2,), "seed": "imagenet"}
    a = B.build_imagenet_c_folder(imgs, wnids, files, tmp_path / "numpy", device="cpu", **kw)
    b = B.build_imagenet_c_folder(imgs, wnids, files, tmp_path / "torch", device=TORCH_CPU, **kw)
    assert a["written"] == b["written"] == 12 and (a["backend"], b["backend"]) == ("numpy", "torch")
    assert a["seed"] == "imagenet" and a["seeding"] == B.SEEDING
    for name in names:
        for wnid, f in zip(wnids, files):
            rel = f"{name}/2/{wnid}/{f}"
            assert (tmp_path / "numpy" / rel).read_bytes() == (tmp_path / "torch" / rel).read_bytes(), rel
