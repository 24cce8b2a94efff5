"""Your own data: an image folder or a .npz file becomes a CIFAR-format dataset that the whole pipeline
corrupts, trains and evaluates; bad folders and files stop with one line naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from augmix import data, owndata
from augmix.cli import main
from augmix.config import OwnSource
from augmix.errors import DataError

from conftest import SMOKE_PARAMS
from support.pipelines import repro, smoke_variant

CLASSES = ["cat", "dog", "fox"]


def make_folder(root, n_train=12, n_test=6, seed=0):
    """A few classes of images of different sizes, modes and formats (the reader resizes to 32x32 RGB)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                side = int(rng.integers(20, 80))
                pixels = (rng.random((side, side + 3, 3)) * 60 + 60 * c).astype(np.uint8)
                img = Image.fromarray(pixels)
                if i % 3 == 1:
                    img = img.convert("L")
                img.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_image_folder_becomes_cifar_format(tmp_path):
    root = make_folder(tmp_path / "mine")
    (train, test, classes) = owndata.read_folder(root, "datasets.mine.path")
    assert classes == CLASSES
    assert train[0].shape == (36, 32, 32, 3) and train[0].dtype == np.uint8 and test[0].shape == (18, 32, 32, 3)
    assert sorted(set(train[1].tolist())) == [0, 1, 2]
    out = tmp_path / "raw" / "mine"

    data.prepare("mine", OwnSource(source="folder", path=str(root), size=32), tmp_path, download=False)
    x, y = data.load_split(out, "train")
    assert np.array_equal(x, train[0]) and np.array_equal(y, train[1])
    assert data.class_names(out) == CLASSES and data.num_classes(out) == 3
    # a picture at 32x32 already is stored unchanged
    pic = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pic).save(root / "train" / "cat" / "zz_exact.png")
    (train2, _, _) = owndata.read_folder(root, "k")
    assert any(np.array_equal(im, pic) for im in train2[0])


def test_npz_arrays_become_cifar_format(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y_train=np.arange(20) % 4,
             x_test=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), y_test=np.arange(8) % 4)
    train, test, classes = owndata.read_npz(path, "datasets.mine.path")
    assert classes == ["0", "1", "2", "3"] and train[0].shape == (20, 32, 32, 3) and test[0].shape == (8, 32, 32, 3)
    assert np.all(test[0][..., 0] == test[0][..., 1])  # grey arrays become three equal channels


BAD_FOLDERS = {
    "missing folder": (lambda root: None, "not found"),
    "empty class": (lambda root: [p.unlink() for p in (root / "train" / "dog").iterdir()], "holds no images"),
    "unreadable image": (lambda root: (root / "test" / "fox" / "0.jpg").write_bytes(b"not a picture"),
                         "not a readable image"),
    "different classes": (lambda root: (root / "test" / "owl").mkdir(), "differ from those of"),
    "no class folders": (lambda root: (root / "train").rename(root / "training"), "has no class folders"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_folders_stop_with_one_line(case, tmp_path, monkeypatch, capsys):
    make_folder(tmp_path / "mine") if case != "missing folder" else None
    BAD_FOLDERS[case][0](tmp_path / "mine")
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["datasets"]["mine"] = {"source": "folder", "path": str(tmp_path / "mine"), "size": 32}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGMIX_PROJECT_ROOT", str(tmp_path))
    assert main(["download", "--dataset", "mine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("augmix: error: ") and BAD_FOLDERS[case][1] in err[-1], err
    assert not (tmp_path / "data" / "raw" / "mine").exists()


def test_bad_npz_files(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2, int))
    with pytest.raises(DataError, match="missing array"):
        owndata.read_npz(path, "k")
    np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.float32), y_train=np.zeros(2, int),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, int))
    with pytest.raises(DataError, match="must be uint8"):
        owndata.read_npz(path, "k")
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        owndata.read_npz(path, "k")


@pytest.mark.slow
def test_an_image_folder_goes_through_the_whole_pipeline(tmp_path):
    """download -> corrupt -> train -> evaluate -> report, by DVC, on a three-class folder."""
    root = make_folder(tmp_path / "mine", n_train=20, n_test=10)

    def mine(raw: dict) -> None:
        raw["grid"]["datasets"] = ["mine"]
        raw["ablation"]["datasets"] = ["mine"]
        raw["datasets"] = {"mine": {"source": "folder", "path": str(root), "size": 32}}
        raw["eval"] = {"calib_bin_size": 10}  # 30 test images: bins of 10

    wd = smoke_variant(tmp_path, mine)
    repro(wd, tmp_path)

    metrics = json.loads((wd / "results/mine/wrn16_1/augmix/seed1/metrics.json").read_text())
    assert metrics["dataset"] == "mine" and 0 <= metrics["corruption_error"] <= 1
    assert "mce" not in metrics  # plain mean corruption error: no AlexNet normalisation
    assert (wd / "report" / "report.md").is_file()
    assert data.class_names(wd / "data/raw/mine") == CLASSES
