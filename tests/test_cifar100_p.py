"""CIFAR-100-P: the -P generator run on CIFAR-100 test images. hendrycks/robustness never released
CIFAR-100-P (issue #53); its -P script takes only images, so CIFAR-100-P is the CIFAR-10-P recipe
(same perturbations, difficulty 1, same frame schedules) on the CIFAR-100 test set. Nothing in
`build_p_set` reads labels or a class count; the evaluation side reads logits of any width."""

from __future__ import annotations

import json
import pickle

import numpy as np

from augmix import metrics
from augmix.corruptions import build_p_set
from augmix.corruptions.bench import synthetic_images
from augmix.corruptions.perturbations import CIFAR_P_EVAL, NOISE_PERTURBATIONS, SEQUENCE_LENGTHS
from augmix.data import class_names, load_split


def write_cifar100_layout(folder, test_x, test_y):
    """The CIFAR-100 python layout (`train`, `test` with fine_labels, `meta`), small."""
    folder.mkdir(parents=True)
    for name, x, y in (("train", test_x[:2], test_y[:2]), ("test", test_x, test_y)):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
        batch = {b"data": rows, b"fine_labels": [int(v) for v in y],
                 b"coarse_labels": [int(v) // 5 for v in y], b"filenames": [b"x.png"] * len(x)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f, protocol=2)


def test_build_small_cifar100_p(tmp_path):
    x = np.stack(list(synthetic_images(5, seed=8)))
    y = np.array([0, 17, 42, 63, 99])
    write_cifar100_layout(tmp_path / "raw" / "cifar100" / "cifar-100-python", x, y)
    images, labels = load_split(tmp_path / "raw" / "cifar100", "test")
    assert np.array_equal(images, x) and np.array_equal(labels, y)
    assert len(class_names(tmp_path / "raw" / "cifar100")) == 100

    out = tmp_path / "CIFAR-100-P"
    info = build_p_set(images, out, names=CIFAR_P_EVAL, seed=3, difficulty=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["names"] == list(CIFAR_P_EVAL) and manifest["n_images"] == 5 == info["n_images"]
    videos = {}
    for name in CIFAR_P_EVAL:
        arr = np.load(out / f"{name}.npy")
        assert arr.shape == (5, SEQUENCE_LENGTHS[name], 32, 32, 3) and arr.dtype == np.uint8, name
        if name in NOISE_PERTURBATIONS:
            assert np.array_equal(arr[:, 0], images), name  # frame 0 is the clean image
        videos[name] = arr
    assert not (out / "labels.npy").exists()  # as released: -P sets carry no labels

    # the same seed gives the same bytes, whatever else is built
    build_p_set(images, tmp_path / "again", names=["gaussian_noise"], seed=3)
    assert np.array_equal(np.load(tmp_path / "again" / "gaussian_noise.npy"), videos["gaussian_noise"])

    # flip probability and top-5 distance of a 100-class scorer (a fixed random linear map)
    w = np.random.default_rng(0).standard_normal((32 * 32 * 3, 100))
    for name, arr in videos.items():
        logits = (arr.reshape(-1, 32 * 32 * 3) / 255.0 @ w).reshape(arr.shape[0], arr.shape[1], 100)
        noise = metrics.is_noise_perturbation(name)
        fp = metrics.flip_probability(logits.argmax(-1), noise=noise)
        t5 = metrics.top5_distance(logits, noise=noise)
        assert 0.0 <= fp <= 1.0 and np.isfinite(t5), name
