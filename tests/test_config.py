"""params.yaml is strict and every setting has one home: bad values stop with their dotted keys, all
at once; the old layout names each moved key's new place; the JSON schema Snakemake uses is current."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from augmix import config
from augmix.config import ConfigError
from augmix.stages import check
from augmix.training_methods import METHODS, method_hparams

from conftest import REPO, SMOKE_PARAMS

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_committed_params_carry_the_paper_recipes():
    p = config.load(REPO / "params.yaml")
    assert p.grid.datasets == ["cifar10", "cifar100"] and p.grid.seeds == [1]
    assert set(p.grid.archs) == {"allconv", "densenet40_12", "wrn40_2", "resnext29_4x32d"}
    assert "augmix" in p.grid.methods and "standard" in p.grid.methods
    # REF README: 100 epochs for WRN-40-2 and AllConvNet, 200 for ResNeXt/DenseNet, DenseNet wd 1e-4.
    assert (p.archs["wrn40_2"].epochs, p.archs["allconv"].epochs) == (100, 100)
    assert (p.archs["resnext29_4x32d"].epochs, p.archs["densenet40_12"].epochs) == (200, 200)
    assert p.archs["densenet40_12"].weight_decay == 1e-4
    w = p.archs["wrn40_2"]
    assert (w.lr, w.lr_min, w.batch_size, w.nesterov, w.momentum) == (0.1, 1e-6, 128, True, 0.9)
    a = p.methods.augmix
    assert (a.severity, a.width, a.depth, a.alpha, a.jsd_weight, a.fill) == (3, 3, -1, 1.0, 12.0, 0)
    assert len(p.corruptions.names) == 15
    # per-dataset values written in params: REF imagenet.py's severity 1, DeVries & Taylor's 8x8 on CIFAR-100
    assert method_hparams(p, "augmix", "imagenet").severity == 1
    assert method_hparams(p, "augmix", "cifar10").severity == 3
    assert (method_hparams(p, "cutout", "cifar100").length, method_hparams(p, "cutout", "cifar10").length) == (8, 16)
    assert method_hparams(p, "augmix", "imagenet").fill == 0  # imagenet.py as committed


@pytest.mark.parametrize("overlay", [REPO / "workflow/params/demo.yaml", REPO / "tests/smoke/params.yaml"])
def test_overlays_hold_only_what_differs_and_compose(overlay):
    raw = yaml.safe_load(overlay.read_text())
    assert set(raw) < set(RAW)  # a small file: some sections, never the whole set
    p = config.parse(yaml.safe_load(config.compose_text(REPO / "params.yaml", overlay)))
    assert p.grid.datasets == ["digits"]
    assert p.corruptions.severities == (RAW["corruptions"]["severities"] if "corruptions" not in raw else
                                        raw["corruptions"].get("severities", RAW["corruptions"]["severities"]))


def test_merge_replaces_lists_and_merges_mappings():
    assert config.merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}


def _mutated(fn):
    raw = copy.deepcopy(RAW)
    fn(raw)
    return raw


BAD = [
    ("unknown key", lambda r: r["methods"]["augmix"].update(sevrity=3), "methods.augmix.sevrity"),
    ("unknown top-level key", lambda r: r.update(extra=1), "extra"),
    ("missing key", lambda r: r["archs"]["wrn40_2"].pop("momentum"), "archs.wrn40_2.momentum"),
    ("missing section", lambda r: r.pop("eval"), "eval"),
    ("wrong type str for float", lambda r: r["archs"]["wrn40_2"].update(lr="fast"), "archs.wrn40_2.lr"),
    ("wrong type float for int", lambda r: r["archs"]["wrn40_2"].update(epochs=1.5), "archs.wrn40_2.epochs"),
    ("wrong type int for bool", lambda r: r["train"].update(bf16=1), "train.bf16"),
    ("bool is not an int", lambda r: r["methods"]["augmix"].update(width=True), "methods.augmix.width"),
    ("string is not an int", lambda r: r["methods"]["augmix"].update(severity="high"), "methods.augmix.severity"),
    ("list expected", lambda r: r["grid"].update(archs="wrn40_2"), "grid.archs"),
    ("mapping expected", lambda r: r["methods"].update(augmix=3), "methods.augmix"),
    ("above max", lambda r: r["methods"]["augmix"].update(severity=11), "methods.augmix.severity"),
    ("below min", lambda r: r["methods"]["augmix"].update(depth=-2), "methods.augmix.depth"),
    ("per-dataset value checked", lambda r: r["methods"]["cutout"]["per_dataset"]["cifar100"].update(length=0),
     "methods.cutout.per_dataset.cifar100.length"),
    ("per-dataset unknown key", lambda r: r["methods"]["cutout"]["per_dataset"]["cifar100"].update(size=8),
     "methods.cutout.per_dataset.cifar100.size"),
    ("per-dataset unknown dataset", lambda r: r["methods"]["cutout"]["per_dataset"].update(svhn={"length": 8}),
     "methods.cutout.per_dataset.svhn"),
    ("severity out of range", lambda r: r["corruptions"].update(severities=[1, 6]), "corruptions.severities"),
    ("bad choice", lambda r: r["eval"].update(calib_mode="fancy"), "eval.calib_mode"),
    ("runtime choice", lambda r: r["runtime"].update(device="gpu"), "runtime.device"),
    ("empty grid", lambda r: r["grid"].update(methods=[]), "grid.methods"),
    ("no seeds", lambda r: r["grid"].update(seeds=[]), "grid.seeds"),
    ("unknown dataset", lambda r: r["grid"].update(datasets=["mnist"]), "grid.datasets[0]"),
    ("unknown dataset source", lambda r: r["datasets"].update(mnist={"source": "mnist"}), "datasets.mnist.source"),
    ("digits split out of range", lambda r: r["datasets"]["digits"].update(test_fraction=0.9),
     "datasets.digits.test_fraction"),
    ("arch without a recipe", lambda r: r["grid"].update(archs=["wrn40_2", "vgg16"]), "grid.archs[1]"),
    ("unknown method", lambda r: r["grid"].update(methods=["augmax"]), "grid.methods[0]"),
    ("unknown method section", lambda r: r["methods"].update(augmax={}), "methods.augmax"),
    ("lr floor above lr", lambda r: r["archs"]["wrn40_2"].update(lr_min=1.0), "archs.wrn40_2.lr_min"),
    ("imagenet without a folder", lambda r: r["imagenet"].update(datasets=["imagenet"]), "datasets.imagenet.dir"),
    ("imagenet in the CIFAR grid", lambda r: r["grid"].update(datasets=["cifar10", "imagenet"]), "grid.datasets[1]"),
    ("unknown imagenet dataset", lambda r: r["imagenet"].update(datasets=["places365"]), "imagenet.datasets"),
    ("unknown imagenet method", lambda r: r["imagenet"].update(methods=["augmix", "rand"]), "imagenet.methods[1]"),
    ("bad imagenet schedule", lambda r: r["imagenet"]["recipe"].update(schedule="linear"), "imagenet.recipe.schedule"),
    ("crop larger than resize", lambda r: r["imagenet"].update(image_size=300), "imagenet.image_size"),
    ("fill above 255", lambda r: r["methods"]["augmix"].update(fill=256), "methods.augmix.fill"),
    ("fill not an int", lambda r: r["methods"]["augmix"]["per_dataset"]["imagenet"].update(fill=128.0),
     "methods.augmix.per_dataset.imagenet.fill"),
    ("ablation cell also in the grid", lambda r: r["ablation"].update(methods=["augmix"]), "ablation"),
    ("ablation dataset not downloaded", lambda r: r["ablation"].update(datasets=["digits"]), "ablation.datasets[0]"),
]


@pytest.mark.parametrize("what,mutate,key", BAD, ids=[b[0] for b in BAD])
def test_bad_values_name_the_dotted_key(what, mutate, key):
    with pytest.raises(ConfigError) as err:
        config.parse(_mutated(mutate))
    assert key in str(err.value)


def test_every_problem_is_reported_at_once():
    def several(r):
        r["methods"]["augmix"].update(severity="high")
        r["archs"]["wrn40_2"].update(lr=True)
        r["train"].update(bogus=1)
        r["runtime"].pop("log_every")
    with pytest.raises(ConfigError) as err:
        config.parse(_mutated(several))
    text = str(err.value)
    assert text.splitlines()[0].endswith("4 problems")
    for key in ("methods.augmix.severity", "archs.wrn40_2.lr", "train.bogus", "runtime.log_every"):
        assert key in text
    assert "known keys in train: bf16" in text  # an unknown key lists the known ones


def test_old_layout_names_each_moved_key():
    with pytest.raises(ConfigError) as err:
        config.load(REPO / "tests/fixtures/params_old_layout.yaml")
    text = str(err.value)
    lines = text.splitlines()[1:]
    assert len(lines) == len(set(lines)) >= 15
    for old, new in [("seed", "grid.seeds"), ("optim", "archs.<arch>"), ("augmix", "methods.augmix"),
                     ("train.log_every", "runtime.log_every"), ("data.imagenet_dir", "datasets.imagenet.dir"),
                     ("imagenet.augmix_severity", "methods.augmix.per_dataset.imagenet.severity"),
                     ("methods.cutout.length_cifar100", "methods.cutout.per_dataset.cifar100.length")]:
        assert any(line.strip().startswith(f"{old}: moved to {new}") for line in lines), old


def test_names_the_schema_cannot_know_are_checked_by_the_check_stage():
    """Architecture and corruption names live in the code's tables (models, corruptions): the check
    stage at the root of the DAG refuses unknown ones before any job runs."""
    assert check.problems(config.load(REPO / "params.yaml")) == []
    bad = config.parse(_mutated(lambda r: (r["archs"].update(vgg=dict(r["archs"]["wrn40_2"])),
                                           r["corruptions"].update(names=["gaussian_noise", "rain"]))))
    found = check.problems(bad)
    assert any(p.startswith("archs.vgg") for p in found) and any(p.startswith("corruptions.names[1]") for p in found)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)


def test_config_is_frozen_and_digest_tracks_keys():
    p = config.load(REPO / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        p.methods.augmix.severity = 3  # type: ignore[misc]
    q = config.parse(_mutated(lambda r: r["methods"]["augmix"].update(severity=5)))
    assert p.digest(["methods.augmix"]) != q.digest(["methods.augmix"])
    assert p.digest(["methods.cutout", "archs.wrn40_2"]) == q.digest(["methods.cutout", "archs.wrn40_2"])
    assert config.flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": "[1, 2]"}


def test_the_method_table_and_the_schema_name_the_same_methods():
    assert set(METHODS) == set(config.METHOD_PARAMS)
    assert set(RAW["methods"]) == set(config.METHOD_PARAMS)  # each method owns its section in params.yaml


def test_exported_schema_is_current_and_validates_like_the_config():
    """workflow/schemas/params.schema.json is `augmix schema`'s output; Snakemake validates with it."""
    committed = json.loads((REPO / "workflow/schemas/params.schema.json").read_text())
    assert committed == json.loads(json.dumps(config.json_schema())), \
        "run: augmix schema --out workflow/schemas/params.schema.json"
    validator = jsonschema.Draft202012Validator(committed)
    assert not list(validator.iter_errors(RAW))
    assert not list(validator.iter_errors(yaml.safe_load(SMOKE_PARAMS.read_text())))
    for _, mutate, _ in BAD[:20]:
        raw = _mutated(mutate)
        if "per_dataset" in json.dumps(raw) and not list(validator.iter_errors(raw)):
            continue  # a cross-section check (an unknown dataset name): the typed load has it
        assert list(validator.iter_errors(raw)), mutate
