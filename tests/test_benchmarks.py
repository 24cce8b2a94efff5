"""The benchmarks beside -C through the pipeline's own stages: -C-bar built by `corrupt` and scored by
`evaluate` (benchmark "cbar", the plain mean as the authors average), CIFAR-10.1 fetched (here: from
files the test places in the release's format) and scored for CIFAR-10 models only, CIFAR-100-P built
for CIFAR-100 when perturbations are configured."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from augmix import cifar101, config, data
from augmix.stages import corrupt, evaluate, train

from conftest import SMOKE_PARAMS

BAR = ["blue_noise_sample", "ripple"]


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    """A work folder with a CIFAR-10-format test set (named cifar10, made by the test), and CIFAR-10.1
    files in the release's format placed in data/downloads (the pinned record points at them)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGMIX_PROJECT_ROOT", str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (160, 32, 32, 3), dtype=np.uint8)
    y = np.arange(160) % 10
    data.write_cifar10_format(tmp_path / "data/raw/cifar10/cifar-10-batches-py", (x[:100], y[:100]),
                              (x[100:], y[100:]), [f"c{i}" for i in range(10)])
    downloads = tmp_path / "data/downloads"
    downloads.mkdir(parents=True)
    np.save(downloads / cifar101.V6_FILES["data"].name, rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8))
    np.save(downloads / cifar101.V6_FILES["labels"].name, (np.arange(40) % 10).astype(np.int32))
    placed = {k: cifar101.ReleasedFile(s.name, s.url, cifar101.git_blob_sha1(downloads / s.name),
                                       hashlib.sha256((downloads / s.name).read_bytes()).hexdigest())
              for k, s in cifar101.V6_FILES.items()}
    monkeypatch.setattr(cifar101, "V6_FILES", placed)
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["grid"]["datasets"] = ["cifar10"]
    raw["ablation"]["datasets"] = ["cifar10"]
    raw["subset"] = {"train": 100, "test": 60}
    raw["eval"]["calib_bin_size"] = 20
    raw["corruptions"].update(bar=BAR, natural=["cifar101"], perturbations=["gaussian_noise"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_cbar_and_cifar101_are_built_and_scored(folder):
    params = config.load("params.yaml")
    out = corrupt.run(params, "cifar10")
    bar = out / "C-bar"
    assert json.loads((bar / "severities.json").read_text())["severities"] == [1, 2, 3, 4, 5]
    assert np.load(bar / "labels.npy").shape == (5 * 60,)
    for name in BAR:
        assert np.load(bar / f"{name}.npy").shape == (5 * 60, 32, 32, 3)
    assert data.load_split(out / "natural/cifar101", "test")[0].shape == (40, 32, 32, 3)
    train.run(params, "cifar10", "wrn16_1", "standard", 1)
    summary = evaluate.run(params, "cifar10", "wrn16_1", "standard", 1)
    frame = pd.read_csv("results/cifar10/wrn16_1/standard/seed1/eval.csv")
    cbar = frame[frame.benchmark == "cbar"]
    assert sorted(cbar.corruption.unique()) == sorted(BAR) and sorted(cbar.severity.unique()) == [1, 2, 3, 4, 5]
    assert summary["cbar_error"] == pytest.approx(cbar.error.mean())  # plain mean (test_c_bar.py)
    assert summary["cbar_complete"] is False  # two of the ten
    natural = frame[frame.benchmark == "natural"]
    assert natural.corruption.tolist() == ["cifar101"] and int(natural.n.iloc[0]) == 40
    assert summary["cifar101_error"] == pytest.approx(float(natural.error.iloc[0]))
    assert "corruption_error" in summary  # the -C headline is untouched by the extra benchmarks


def test_cifar101_is_for_cifar10_models_only_and_unknown_bar_names_are_refused(folder):
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["datasets"]["cifar10"] = {"source": "cifar100"}  # a CIFAR-100-sourced set: no CIFAR-10.1 for it
    raw["corruptions"]["bar"] = []
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    out = corrupt.run(config.load("params.yaml"), "cifar10")
    assert not (out / "natural" / "cifar101").exists()
    assert (out / "P" / "gaussian_noise.npy").is_file()  # -P for a CIFAR-100-sourced set: CIFAR-100-P
    raw["corruptions"]["bar"] = ["rain"]
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ConfigError, match="corruptions.bar"):
        corrupt.run(config.load("params.yaml"), "cifar10")
