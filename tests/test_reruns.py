"""Change one setting, re-run exactly what it changes: after a completed smoke run, every leaf key of
the params file (enumerated from the file itself) is changed in turn, and `dvc status` and Snakemake's
dry run must name exactly the jobs the key can affect, the same set for both.

The expectations below are written from what each setting means (the README's "What re-runs when you
change X"), not read from augmix.jobs, so a wrong declaration there fails here. `check` (the params
validation at the root of the DAG) re-runs for any non-run-time key; its output never changes, so
nothing runs because of it.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from augmix import config, pipeline

from conftest import REPO, SMOKE_OVERLAY

pytestmark = pytest.mark.slow

C = "augmix check --stamp .augmix/params-ok"
D = "augmix download --dataset digits"
R = "augmix corrupt --dataset digits"
T = {m: f"augmix train --dataset digits --arch wrn16_1 --method {m} --seed 1" for m in ("standard", "augmix")}
E = {m: f"augmix evaluate --dataset digits --arch wrn16_1 --method {m} --seed 1" for m in ("standard", "augmix")}
P = "augmix report"
ALL = {C, D, R, *T.values(), *E.values(), P}
# What a job's new outputs make run after it (check's output never changes, so it has no edge).
AFTER = {D: {R, *T.values()}, R: set(E.values()), T["standard"]: {E["standard"], P},
         T["augmix"]: {E["augmix"], P}, E["standard"]: {P}, E["augmix"]: {P}}


def downstream(direct: set[str]) -> set[str]:
    out, todo = set(direct), list(direct)
    while todo:
        for nxt in AFTER.get(todo.pop(), ()):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


# The first rule whose pattern matches the key gives the jobs its change re-runs directly.
EXPECTED: list[tuple[str, set[str]]] = [
    (r"runtime\.|tracking\.|data\.download$", set()),  # how and where to run
    (r"data\.root$", {D, R, *T.values(), *E.values()}),  # every output moves to the new root
    (r"datasets\.digits\.", {C, D}),
    (r"archs\.wrn16_1\.", {C, *T.values()}),
    # A per-dataset value re-runs its method's cells on every dataset: DVC can only declare keys that
    # exist for every job, so a job declares its method's whole section (README, "What re-runs").
    (r"methods\.standard", {C, T["standard"]}),
    (r"methods\.augmix\.", {C, T["augmix"]}),
    (r"train\.threads$", {C, *T.values(), *E.values()}),  # float sums in training and evaluation
    (r"train\.", {C, *T.values()}),
    (r"subset\.train$", {C, *T.values()}),
    (r"subset\.test$", {C, R, *T.values(), *E.values()}),  # the -C set and the per-epoch test error
    (r"corruptions\.(source|seed)$", {C, R}),
    (r"corruptions\.", {C, R, *E.values()}),
    (r"eval\.", {C, *E.values(), P}),
    # sections the smoke grid has no job of: other datasets, archs, methods; ImageNet's recipe
    (r"datasets\.|archs\.|methods\.|imagenet\.", {C}),
]
# Keys that choose which jobs exist: a change adds jobs (or none) and re-runs no existing one.
GRID_KEYS = r"(grid|ablation)\.|imagenet\.(datasets|archs|methods|seeds)$|external$"


def expected_direct(key: str) -> set[str]:
    for pattern, jobs in EXPECTED:
        if re.match(pattern, key):
            return jobs
    raise AssertionError(f"no expectation for {key}: add it to EXPECTED")


# A different valid value for each leaf (None: the key has no other valid value on its own here).
SPECIAL: dict[str, object] = {
    "corruptions.bar": ["ripple"], "corruptions.natural": ["cifar101"],
    "methods.prime.transforms": ["diffeo"], "methods.prime_nojsd.transforms": ["color", "filter"],
    # a released model (any existing file will do for planning): a new job, nothing re-runs
    "external": {"released": {"label": "released", "file": "params.yaml", "sha256": "0" * 64, "arch": "wrn16_1",
                              "dataset": "digits", "method": "augmix", "format": "auto"}},
    "grid.datasets": ["digits", "cifar10"], "grid.archs": ["wrn16_1", "allconv"],
    "grid.methods": ["standard", "augmix", "mixup"], "grid.seeds": [1, 2],
    "ablation.datasets": [], "ablation.archs": ["wrn16_1", "allconv"], "ablation.methods": ["augmix_nojsd"],
    "imagenet.datasets": None,  # needs datasets.imagenet.dir too: test_imagenet_switch_reruns_no_cifar_job
    "imagenet.archs": ["resnet18"], "imagenet.methods": ["standard"], "imagenet.seeds": [1, 2],
    "datasets.cifar10.source": "cifar100", "datasets.cifar100.source": "cifar10",
    "datasets.digits.source": None, "datasets.imagenet.source": None,  # the only source of their shape
    "methods.pixmix.mixing.source": None,  # the other source (folder) has other keys: `.seed` and `.n` stand in
    "datasets.imagenet.dir": "/nowhere/imagenet", "datasets.imagenet.c_dir": "/nowhere/imagenet-c",
    "methods.standard": {"per_dataset": {"digits": {}}},
    "corruptions.names": ["gaussian_noise", "contrast", "fog"], "corruptions.severities": [1, 4],
    "corruptions.perturbations": ["gaussian_noise"], "data.root": "data2", "tracking.experiment": "other",
    "runtime.device": "cpu", "imagenet.recipe.lr_min": 0.05,
}


def changed(key: str, value: object) -> object:
    if key in SPECIAL:
        return SPECIAL[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.1
    if isinstance(value, str):  # a Literal: another of its choices
        choices = _choices(key)
        return next(c for c in choices if c != value)
    raise AssertionError(f"no changed value for {key}={value!r}: add it to SPECIAL")


def _choices(key: str) -> list[str]:
    schema = config.json_schema()
    node: dict = schema
    for part in key.split("."):
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].split("/")[-1]]
        node = node["properties"][part] if part in node.get("properties", {}) else node["additionalProperties"]
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].split("/")[-1]]
    return list(node["enum"])


def _set(raw: dict, key: str, value: object) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return raw


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> dict[str, Path]:
    """Two completed smoke runs: one by DVC, one by Snakemake (each records what it ran with)."""
    tmp = tmp_path_factory.mktemp("reruns")
    env_root = tmp / "store"
    env_root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUGMIX_PROJECT_ROOT", str(env_root))
        out = {}
        for runner, cmd in (("dvc", ["dvc", "repro"]), ("snakemake", ["snakemake", "--cores", "2"])):
            wd = pipeline.prepare_workdir(REPO, tmp / runner, SMOKE_OVERLAY)
            result = _run(cmd, wd)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            out[runner] = wd
        yield out


def dvc_changed(wd: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(wd)) as repo:
        names = set(repo.status())
        return {s.cmd for s in repo.index.stages if s.addressing in names}


def snakemake_planned(wd: Path) -> set[str]:
    result = _run(["snakemake", "--dry-run", "--printshellcmds", "--cores", "1"], wd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line.split("Shell command: ", 1)[1].strip() for line in result.stdout.splitlines()
            if line.startswith("Shell command: ") and "None" not in line}


def with_params(wd: Path, raw: dict, fn: Callable[[], set[str]]) -> set[str]:
    path = wd / "params.yaml"
    original = path.read_text()
    try:
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return fn()
    finally:
        path.write_text(original)


def leaf_keys() -> list[str]:
    raw = yaml.safe_load(config.compose_text(REPO / "params.yaml", SMOKE_OVERLAY))
    return list(config.leaf_keys(raw))


def test_a_completed_run_is_up_to_date(done):
    assert dvc_changed(done["dvc"]) == set()
    assert snakemake_planned(done["snakemake"]) == set()


@pytest.mark.parametrize("key", leaf_keys())
def test_changing_one_key_reruns_exactly_what_it_can_change(done, key):
    raw = yaml.safe_load((done["dvc"] / "params.yaml").read_text())
    new = changed(key, config.get(raw, key))
    if new is None:
        pytest.skip(f"{key} has no other valid value on its own in the smoke config")
    mutated = _set(raw, key, new)
    config.parse(mutated)  # the change itself is valid
    dvc = with_params(done["dvc"], mutated, lambda: dvc_changed(done["dvc"]))
    smk = with_params(done["snakemake"], mutated, lambda: snakemake_planned(done["snakemake"]))
    if re.match(GRID_KEYS, key):  # new jobs may appear; no existing job re-runs (the report takes them in)
        assert dvc & ALL <= {C}, key
        assert smk & ALL <= {P}, key
        return
    direct = expected_direct(key)
    assert dvc == direct, f"{key}: DVC re-runs {sorted(dvc)}"
    assert smk == downstream(direct) - {C}, f"{key}: Snakemake re-runs {sorted(smk)}"  # its check: on start


def test_imagenet_switch_reruns_no_cifar_job(done):
    """Pointing at an ImageNet folder and switching its jobs on adds ImageNet jobs only."""
    folder = done["dvc"].parent / "imagenet"
    raw = yaml.safe_load((done["dvc"] / "params.yaml").read_text())
    mutated = _set(_set(raw, "datasets.imagenet.dir", str(folder)), "imagenet.datasets", ["imagenet"])
    dvc = with_params(done["dvc"], mutated, lambda: dvc_changed(done["dvc"]))
    smk = with_params(done["snakemake"], mutated, lambda: snakemake_planned(done["snakemake"]))
    assert dvc & ALL == {C}
    assert smk & ALL <= {P}
    assert any("--dataset imagenet" in c for c in dvc) and any("--dataset imagenet" in c for c in smk)
