"""params.yaml is strict: each kind of bad value stops with a message naming the dotted key."""

from __future__ import annotations

import copy

import pytest
import yaml

from augmix import config
from augmix.config import ConfigError

from conftest import REPO, SMOKE_PARAMS

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_committed_params_load_and_carry_the_paper_recipes():
    p = config.load(REPO / "params.yaml")
    assert p.grid.datasets == ["cifar10", "cifar100"]
    assert set(p.grid.archs) == {"allconv", "densenet40_12", "wrn40_2", "resnext29_4x32d"}
    assert "augmix" in p.grid.methods and "standard" in p.grid.methods
    # REF README: 100 epochs for WRN-40-2 and AllConvNet, 200 for ResNeXt/DenseNet, DenseNet wd 1e-4.
    assert (p.recipe("wrn40_2").epochs, p.recipe("allconv").epochs) == (100, 100)
    assert (p.recipe("resnext29_4x32d").epochs, p.recipe("densenet40_12").epochs) == (200, 200)
    assert p.recipe("densenet40_12").weight_decay == 1e-4
    assert (p.augmix.severity, p.augmix.width, p.augmix.depth, p.augmix.alpha, p.augmix.jsd_weight) == (3, 3, -1, 1.0, 12.0)
    assert (p.optim.lr, p.optim.lr_min, p.optim.batch_size, p.optim.nesterov) == (0.1, 1e-6, 128, True)
    assert len(p.corruptions.names) == 15
    # ImageNet AugMix as imagenet.py is committed: severity 1, black fill (REF-#3 used 128)
    assert (p.imagenet.augmix_severity, p.imagenet.augmix_fill) == (1, 0)


@pytest.mark.parametrize("path", [REPO / "workflow/params/demo.yaml", SMOKE_PARAMS])
def test_other_configs_share_the_schema(path):
    p = config.load(path)
    assert p.grid.datasets == ["digits"]


def _mutated(fn):
    raw = copy.deepcopy(RAW)
    fn(raw)
    return raw


BAD = [
    ("unknown key", lambda r: r["augmix"].update(sevrity=3), "augmix.sevrity"),
    ("unknown top-level key", lambda r: r.update(extra=1), "extra"),
    ("missing key", lambda r: r["optim"].pop("momentum"), "optim.momentum"),
    ("missing section", lambda r: r.pop("eval"), "eval"),
    ("wrong type str for float", lambda r: r["optim"].update(lr="fast"), "optim.lr"),
    ("wrong type float for int", lambda r: r["archs"]["wrn40_2"].update(epochs=1.5), "archs.wrn40_2.epochs"),
    ("wrong type int for bool", lambda r: r["train"].update(bf16=1), "train.bf16"),
    ("bool is not an int", lambda r: r["augmix"].update(width=True), "augmix.width"),
    ("list expected", lambda r: r["grid"].update(archs="wrn40_2"), "grid.archs"),
    ("mapping expected", lambda r: r.update(augmix=3), "augmix"),
    ("above max", lambda r: r["augmix"].update(severity=11), "augmix.severity"),
    ("below min", lambda r: r["augmix"].update(depth=-2), "augmix.depth"),
    ("severity out of range", lambda r: r["corruptions"].update(severities=[1, 6]), "corruptions.severities"),
    ("bad choice", lambda r: r["eval"].update(calib_mode="fancy"), "eval.calib_mode"),
    ("empty grid", lambda r: r["grid"].update(methods=[]), "grid.methods"),
    ("duplicate grid entry", lambda r: r["grid"].update(archs=["wrn40_2", "wrn40_2"]), "grid.archs"),
    ("unknown dataset", lambda r: r["grid"].update(datasets=["mnist"]), "grid.datasets"),
    ("unknown arch", lambda r: r["grid"].update(archs=["wrn40_2", "vgg16"]), "grid.archs[1]"),
    ("unknown method", lambda r: r["grid"].update(methods=["augmax"]), "grid.methods[0]"),
    ("unknown corruption", lambda r: r["corruptions"].update(names=["gaussian_noise", "rain"]), "corruptions.names[1]"),
    ("unknown arch recipe", lambda r: r["archs"].update(vgg={"epochs": 1, "weight_decay": 0.0}), "archs.vgg"),
    ("lr floor above lr", lambda r: r["optim"].update(lr_min=1.0), "optim.lr_min"),
    ("imagenet without a folder", lambda r: r["imagenet"].update(datasets=["imagenet"]), "data.imagenet_dir"),
    ("imagenet in the CIFAR grid", lambda r: r["grid"].update(datasets=["cifar10", "imagenet"]), "grid.datasets[1]"),
    ("unknown imagenet dataset", lambda r: r["imagenet"].update(datasets=["places365"]), "imagenet.datasets"),
    ("unknown imagenet arch", lambda r: r["imagenet"].update(archs=["resnet51"]), "imagenet.archs[0]"),
    ("unknown imagenet method", lambda r: r["imagenet"].update(methods=["augmix", "rand"]), "imagenet.methods[1]"),
    ("bad imagenet schedule", lambda r: r["imagenet"].update(schedule="linear"), "imagenet.schedule"),
    ("crop larger than resize", lambda r: r["imagenet"].update(image_size=300), "imagenet.image_size"),
    ("imagenet fill above 255", lambda r: r["imagenet"].update(augmix_fill=256), "imagenet.augmix_fill"),
    ("imagenet fill below 0", lambda r: r["imagenet"].update(augmix_fill=-1), "imagenet.augmix_fill"),
    ("imagenet fill not an int", lambda r: r["imagenet"].update(augmix_fill=128.0), "imagenet.augmix_fill"),
    ("imagenet fill is a bool", lambda r: r["imagenet"].update(augmix_fill=True), "imagenet.augmix_fill"),
    ("imagenet fill missing", lambda r: r["imagenet"].pop("augmix_fill"), "imagenet.augmix_fill"),
]


@pytest.mark.parametrize("what,mutate,key", BAD, ids=[b[0] for b in BAD])
def test_bad_values_name_the_dotted_key(what, mutate, key):
    with pytest.raises(ConfigError) as err:
        config.parse(_mutated(mutate))
    assert key in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)


def test_config_is_frozen_and_digest_tracks_sections():
    p = config.load(REPO / "params.yaml")
    with pytest.raises(Exception):
        p.seed = 3  # type: ignore[misc]
    q = config.parse(_mutated(lambda r: r["augmix"].update(severity=5)))
    assert p.digest(["augmix"]) != q.digest(["augmix"])
    assert p.digest(["optim"]) == q.digest(["optim"])
    assert config.flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": "[1, 2]"}


def test_method_sections_mirror_the_method_defaults():
    """Every hyperparameter in params.yaml is one the method reads (and vice versa, but implementation switches)."""
    from augmix.methods import DEFAULT_HPARAMS
    from augmix.training_methods import PER_DATASET_HPARAMS

    p = config.load(REPO / "params.yaml")
    for name, section in p.section("methods").items():
        per_dataset = PER_DATASET_HPARAMS.get(name, {})
        assert {replaces for _, replaces in per_dataset.values()} <= set(section), name
        assert set(section) - set(per_dataset) == set(DEFAULT_HPARAMS[name]) - {"fill", "per_image"}, name
