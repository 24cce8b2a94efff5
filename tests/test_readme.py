"""The README says what the code does: its "What re-runs when you change X" table matches the jobs'
declared keys, and every params change it shows names a real key with a valid value."""

from __future__ import annotations

import re

import pytest
import yaml

from augmix import config, jobs
from augmix.config import FOLDER_SOURCES

from conftest import REPO

README = (REPO / "README.md").read_text()
PLACEHOLDERS = {"<d>": "cifar10", "<a>": "wrn40_2", "<m>": "augmix", "<name>": "released"}
IDENTITY = {"<d>": "dataset", "<a>": "arch", "<m>": "method", "<name>": "name"}


def _params() -> config.Params:
    """The paper's params with every kind of job switched on: ImageNet, ablation, an external model."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["imagenet"]["datasets"] = ["imagenet"]
    raw["grid"]["datasets"] = ["cifar10", "cifar100", "digits"]
    raw["datasets"]["imagenet"]["dir"] = "/datasets/imagenet"
    raw["external"] = {"released": {"label": "r", "file": "r.pt", "sha256": "0" * 64, "arch": "wrn40_2",
                                    "dataset": "cifar10", "method": "augmix", "format": "auto"}}
    return config.parse(raw)


def all_jobs(p: config.Params) -> list[jobs.Job]:
    out = [jobs.Job("check"), jobs.Job("report")]
    for d in [*p.grid.datasets, *p.imagenet.datasets]:
        out += [jobs.Job("download", d), jobs.Job("corrupt", d)]
    for grid, seeds in ((p.grid, p.grid.seeds), (p.ablation, p.grid.seeds), (p.imagenet, p.imagenet.seeds)):
        for d in grid.datasets:
            for a in grid.archs:
                for m in grid.methods:
                    for s in seeds:
                        out += [jobs.Job("train", d, a, m, s), jobs.Job("evaluate", d, a, m, s)]
    for name, e in p.external.items():
        out.append(jobs.Job("external", e.dataset, e.arch, e.method, None, name))
    return out


def table_rows() -> list[tuple[list[str], set[str], str]]:
    block = README.split("<!-- reruns-table -->")[1].split("<!-- /reruns-table -->")[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        keys = re.findall(r"`([^`]+)`", cells[0])
        stages = set(re.findall(r"`([^`]+)`", cells[1]))
        rows.append((keys, stages, cells[2] if len(cells) > 2 else ""))
    return rows


def _leaves(p: config.Params, pattern: str) -> list[str]:
    for ph, value in PLACEHOLDERS.items():
        pattern = pattern.replace(ph, value)
    tree = config.to_dict(p)
    if pattern.endswith(".*"):
        return list(config.leaf_keys(config.get(tree, pattern[:-2]), pattern[:-2]))
    return [pattern]


def _declares(job: jobs.Job, p: config.Params, key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in jobs.keys(job, p))


@pytest.mark.parametrize("row", table_rows(), ids=lambda r: r[0][0])
def test_rerun_table_matches_the_declarations(row):
    keys, stages, _ = row
    p = _params()
    everything = all_jobs(p)
    for pattern in keys:
        for key in _leaves(p, pattern):
            hit = [j for j in everything if j.stage != "check" and _declares(j, p, key)]
            assert {j.stage for j in hit} == stages, f"{key}: {sorted({j.stage for j in hit})}"
            for ph, field in IDENTITY.items():
                if ph in pattern:  # only that architecture's / method's / model's jobs
                    assert all(getattr(j, field) == PLACEHOLDERS[ph] for j in hit), key
            is_runtime = key.split(".")[0] in config.RUNTIME_SECTIONS
            assert any(_declares(j, p, key) for j in everything if j.stage == "check") != is_runtime or not hit


def test_table_states_the_imagenet_and_cifar_splits():
    p = _params()
    hit = [j for j in all_jobs(p) if _declares(j, p, "imagenet.recipe.lr")]
    assert hit and all(p.datasets[j.dataset].source in FOLDER_SOURCES for j in hit if j.stage == "train")
    hit = [j for j in all_jobs(p) if j.stage == "train" and _declares(j, p, "train.nproc")]
    assert hit and all(p.datasets[j.dataset].source not in FOLDER_SOURCES for j in hit)


def test_every_table_row_covers_a_distinct_part_of_the_params():
    p = _params()
    covered = {k for keys, _, _ in table_rows() for pattern in keys for k in _leaves(p, pattern)}
    leaves = set(config.leaf_keys(config.to_dict(p)))
    # every declared key family appears in the table (placeholders stand for their siblings)
    families = {re.sub(r"^(archs|methods|datasets|external)\..*", r"\1", k) for k in leaves}
    shown = {re.sub(r"^(archs|methods|datasets|external)\..*", r"\1", k) for k in covered}
    missing = {f for f in families - shown if not f.startswith(("data.root",))}
    assert not missing, sorted(missing)


def test_readme_param_changes_name_real_keys_with_valid_values():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    lines = [line.strip() for line in README.splitlines() if line.strip().startswith("dvc exp run")]
    found = [f for line in lines for f in re.findall(r"-S '?([a-z_.0-9]+)=([^' \n`]+)'?", line)]
    assert len(found) >= 4
    for key, value in found:
        config.get(raw, key)  # the key exists where the README says
        for v in value.split(","):  # a grid: one experiment per value
            changed = yaml.safe_load(v)
            node = raw = yaml.safe_load((REPO / "params.yaml").read_text())
            *head, last = key.split(".")
            for part in head:
                node = node[part]
            node[last] = changed
            config.parse(raw)  # the value is valid
