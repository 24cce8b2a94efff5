"""The ImageNet path: folder index, the reference transforms (checked against torchvision), and a whole
download -> corrupt -> train -> evaluate run of ResNet-50 on a tiny generated image folder."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from scipy.stats import ks_2samp
from torchvision.transforms import RandomResizedCrop, v2
from torchvision.transforms.v2 import functional as TF

from augmix import config, imagenet
from augmix.data import DataError
from augmix.stages import corrupt, download, evaluate, train
from augmix.train import recipe_for, step_decay_factor
from augmix.training_methods import _augmix_kwargs, method_hparams

from conftest import SMOKE_PARAMS

RAW = yaml.safe_load(SMOKE_PARAMS.read_text())
WNIDS = ("n01440764", "n01443537", "n01484850")


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth colour fields with an edge: JPEG-friendly and unlike noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = rng.uniform(40, 200, 3)
    waves = [60 * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy) + rng.uniform(0, 6))
             for _ in range(3)]
    img = np.stack([base[c] + waves[c] for c in range(3)], -1)
    img[: h // 3] *= 0.6
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for wnid in WNIDS:
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = int(rng.integers(72, 120)), int(rng.integers(72, 120))
                _photo(rng, w, h).save(root / split / wnid / f"{wnid}_{split}_{i:04d}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("inet"), {"train": 8, "val": 4})


def _params(folder: Path, **changes) -> config.Params:
    raw = copy.deepcopy(RAW)
    raw["datasets"]["imagenet"]["dir"] = str(folder)
    raw["subset"].update(train=0, test=0)
    raw["imagenet"].update(datasets=["imagenet"], image_size=64, resize=73)
    raw["imagenet"]["recipe"].update(batch_size=8, epochs=2, lr=0.05)
    raw["runtime"].update(workers=0, eval_batch_size=16)
    raw["corruptions"].update(names=["gaussian_noise", "contrast"], severities=[1, 5])
    raw["eval"].update(calib_bin_size=4)
    raw["tracking"]["enabled"] = False
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = raw
        for p in path:
            node = node[p]
        node[key] = value
    return config.parse(raw)


# ----------------------------------------------------------------------------- index


def test_scan_folder_sorts_classes_and_maps_other_folders_by_name(folder, tmp_path):
    train = imagenet.scan_folder(folder / "train")
    assert train.classes == WNIDS and len(train) == 24
    assert list(train.labels) == [0] * 8 + [1] * 8 + [2] * 8
    # A folder with a subset of the classes keeps the training labels.
    make_folder(tmp_path / "sub", {"val": 1})
    shutil.rmtree(tmp_path / "sub" / "val" / WNIDS[0])
    sub = imagenet.scan_folder(tmp_path / "sub" / "val", train.classes)
    assert list(sub.labels) == [1, 2]
    small = train.subset(6)
    assert len(small) == 6 and set(small.labels) == {0, 1, 2}


def test_scan_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        imagenet.scan_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        imagenet.scan_folder(tmp_path / "empty")
    make_folder(tmp_path / "f", {"val": 1})
    with pytest.raises(DataError, match="not among the 2 training classes"):
        imagenet.scan_folder(tmp_path / "f" / "val", WNIDS[:2])
    with pytest.raises(DataError, match="run `augmix download --dataset imagenet`"):
        imagenet.read_index(tmp_path)


# ----------------------------------------------------------------------------- transforms


def test_rrc_box_stays_in_bounds_and_follows_the_scale_and_ratio_ranges():
    rng = np.random.default_rng(0)
    boxes = np.array([imagenet.rrc_box(500, 375, rng) for _ in range(4000)])
    left, top, w, h = boxes.T
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= 500).all() and (top + h <= 375).all()
    area = w * h / (500 * 375)
    assert area.min() >= 0.07 and area.max() <= 1.0
    ratio = np.log(w / h)
    assert ratio.min() > math.log(3 / 4) - 0.02 and ratio.max() < math.log(4 / 3) + 0.02
    # Same distribution as torchvision's RandomResizedCrop.get_params (which draws from torch's RNG).

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = np.array([RandomResizedCrop.get_params(Image.new("RGB", (500, 375)), (0.08, 1.0), (3 / 4, 4 / 3))
                        for _ in range(4000)])  # (top, left, h, w)
    assert ks_2samp(area, ref[:, 2] * ref[:, 3] / (500 * 375)).pvalue > 1e-3
    assert ks_2samp(ratio, np.log(ref[:, 3] / ref[:, 2])).pvalue > 1e-3
    assert ks_2samp(left / np.maximum(500 - w, 1), ref[:, 1] / np.maximum(500 - ref[:, 3], 1)).pvalue > 1e-3
    # Degenerate aspect: no try fits, so the fallback centre crop clamped to the ratio range.
    assert imagenet.rrc_box(1000, 10, np.random.default_rng(1)) == ((1000 - 13) // 2, 0, 13, 10)


def test_train_crop_equals_torchvision_resized_crop_and_flip():
    img = _photo(np.random.default_rng(3), 117, 90)
    for seed in range(6):
        got = imagenet.train_crop(img, 56, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        left, top, w, h = imagenet.rrc_box(img.width, img.height, rng)
        ref = TF.resized_crop(img, top, left, h, w, [56, 56], interpolation=TF.InterpolationMode.BILINEAR)
        if rng.uniform() < 0.5:
            ref = TF.horizontal_flip(ref)
        assert np.array_equal(got, np.asarray(ref)), seed


def test_eval_image_equals_torchvision_resize_and_center_crop():
    ref = v2.Compose([v2.Resize(73, interpolation=v2.InterpolationMode.BILINEAR), v2.CenterCrop(64)])
    for w, h in [(117, 90), (90, 117), (73, 100), (200, 75)]:
        img = _photo(np.random.default_rng(w), w, h)
        assert np.array_equal(imagenet.eval_image(img, 73, 64), np.asarray(ref(img))), (w, h)
    assert imagenet.eval_image(img, 0, 64).shape == (64, 64, 3)  # ImageNet-C: CenterCrop only


def test_train_batches_do_not_depend_on_workers_or_batch_split(folder):
    index = imagenet.scan_folder(folder / "train")
    ds = imagenet.TrainFolder(index, 48, seed=5)
    order = [torch.tensor([3, 17, 9, 0]), torch.tensor([22, 5, 11, 8])]
    one = list(imagenet.train_batches(ds, 2, order, workers=0, device=torch.device("cpu")))
    two = list(imagenet.train_batches(ds, 2, [torch.cat(order)], workers=2, device=torch.device("cpu")))
    x1 = torch.cat([b[0] for b in one])
    assert x1.shape == (8, 3, 48, 48) and x1.dtype == torch.uint8
    assert torch.equal(x1, two[0][0]) and torch.equal(torch.cat([b[2] for b in one]), two[0][2])
    other_epoch = next(iter(imagenet.train_batches(ds, 3, order[:1], workers=0, device=torch.device("cpu"))))
    assert not torch.equal(other_epoch[0], one[0][0])


# ----------------------------------------------------------------------------- recipe


def test_imagenet_recipe_scales_lr_and_steps_down_at_thirds(folder):
    r = recipe_for(_params(folder, **{"imagenet.recipe.epochs": 90, "imagenet.recipe.batch_size": 512}),
                   "imagenet", "resnet50")
    assert r.lr == pytest.approx(0.05 * 2) and not r.nesterov and r.weight_decay == 1e-4  # REF: lr * batch / 256
    spe = 10
    assert [r.factor(e * spe, spe) for e in (0, 29, 30, 59, 60, 89)] == [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    # REF: k = epochs // 3, the second drop at 2k; for 200 epochs that is epoch 132, not 133
    assert [step_decay_factor(e, 200) for e in (65, 66, 131, 132)] == [1.0, 0.1, 0.1, 0.01]
    cifar = recipe_for(_params(folder), "digits", "wrn16_1")
    assert cifar.nesterov and cifar.factor(0, 10) == 1.0 and cifar.schedule == "cosine"


def test_imagenet_augmix_takes_its_severity_and_fill_from_its_per_dataset_values(folder):
    params = _params(folder, **{"methods.augmix.per_dataset.imagenet": {"severity": 2, "fill": 128}})
    hp = method_hparams(params, "augmix", "imagenet")
    assert _augmix_kwargs(hp)["severity"] == 2 and _augmix_kwargs(hp)["affine_fill"] == 128
    cifar = method_hparams(params, "augmix", "digits")  # the CIFAR recipe: black fill
    assert _augmix_kwargs(cifar)["severity"] == params.methods.augmix.severity == 3
    assert _augmix_kwargs(cifar)["affine_fill"] == 0


# ----------------------------------------------------------------------------- the stages


def test_generated_imagenet_c_uses_the_224_table(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(folder, **{"corruptions.severities": [2], "subset.test": 6})
    download.run(params, "imagenet")
    with pytest.raises(config.ConfigError, match="imagenet.image_size"):
        corrupt.run(params, "imagenet")
    assert not Path("data/corrupted/imagenet").exists()  # nothing half-written
    params = _params(folder, **{"corruptions.severities": [2], "subset.test": 6, "imagenet.image_size": 224,
                                "imagenet.resize": 256})
    out = corrupt.run(params, "imagenet")
    files = sorted((out / "C").rglob("*.JPEG"))
    assert len(files) == 2 * 6 and {Image.open(f).size for f in files} == {(224, 224)}
    assert {f.relative_to(out / "C").parts[:2] for f in files} == {("gaussian_noise", "2"), ("contrast", "2")}
    assert {f.parent.name for f in files} == set(WNIDS)


def _official_imagenet_c(root: Path, val: Path, names, severities, size: int) -> Path:
    """An ImageNet-C-shaped folder: centre crops of the val images, darkened with severity."""
    for name in names:
        for s in severities:
            for src in val.rglob("*.JPEG"):
                img = imagenet.eval_image(imagenet.load_rgb(src), size + 9, size)
                dst = root / name / str(s) / src.parent.name / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((img * (1 - 0.15 * s)).astype(np.uint8)).save(dst, quality=85)
    return root


@pytest.mark.slow
def test_resnet50_pipeline_on_a_tiny_image_folder(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c_root = _official_imagenet_c(tmp_path / "inet-c", folder / "val", ["gaussian_noise", "contrast"], [1, 5], 64)
    params = _params(folder, **{"corruptions.source": "official", "datasets.imagenet.c_dir": str(c_root),
                                "corruptions.perturbations": ["gaussian_noise", "translate"]})
    raw = download.run(params, "imagenet")
    assert json.loads((raw / "imagenet.json").read_text())["train"] == 24
    out = corrupt.run(params, "imagenet")
    assert json.loads((out / "C" / "source.json").read_text())["dir"] == str(c_root.resolve())
    videos = sorted((out / "P").rglob("*.npy"))  # ImageNet-P from val: one video per image and perturbation
    assert len(videos) == 2 * 12 and {np.load(v).shape for v in videos} == {(31, 64, 64, 3), (41, 64, 64, 3)}

    summary = train.run(params, "imagenet", "resnet50", "augmix", 1)
    assert summary["n_train"] == 24 and summary["n_test"] == 12 and summary["epochs"] == 2
    log = pd.read_csv(Path("results/imagenet/resnet50/augmix/seed1/train_log.csv"))
    assert list(log.epoch) == [1, 2] and np.isfinite(log.train_loss).all()
    state = torch.load("results/imagenet/resnet50/augmix/seed1/model.pt", weights_only=True)
    assert state["num_classes"] == 3 and state["classes"] == list(WNIDS)
    assert state["model"]["fc.weight"].shape == (3, 2048)

    result = evaluate.run(params, "imagenet", "resnet50", "augmix", 1)
    frame = pd.read_csv("results/imagenet/resnet50/augmix/seed1/eval.csv")
    assert len(frame) == 1 + 2 * 2 and set(frame.n) == {12}
    assert 0 <= result["clean_error"] <= 1 and "corruption_error" in result
    assert "mce" not in result  # AlexNet-normalised mCE needs all five severities
    p_frame = pd.read_csv("results/imagenet/resnet50/augmix/seed1/eval_p.csv")
    assert list(p_frame.perturbation) == ["gaussian_noise", "translate"] and set(p_frame.n_sequences) == {12}
    assert ((p_frame.flip_prob >= 0) & (p_frame.flip_prob <= 1)).all() and "mean_flip_prob" in result
