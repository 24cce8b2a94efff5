"""DVC and Snakemake describe the same DAG: same commands, same outputs, inputs and params sections."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from augmix import config, pipeline

from conftest import REPO, SMOKE_PARAMS


def _with_imagenet(tmp: Path) -> Path:
    """The paper params with the ImageNet jobs switched on (the folder is not read by a plan)."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["imagenet"].update(datasets=["imagenet"], nproc=8)
    raw["data"]["imagenet_dir"] = "/datasets/imagenet"
    path = tmp / "params.imagenet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module", params=["smoke", "paper", "paper+imagenet"])
def workdir(request, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    params = {"smoke": lambda: SMOKE_PARAMS, "paper": lambda: REPO / "params.yaml",
              "paper+imagenet": lambda: _with_imagenet(tmp)}[request.param]()
    return pipeline.prepare_workdir(REPO, tmp / "wd", params)


def dvc_plan(wd: Path) -> dict[str, dict]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    plan = {}
    with Repo(str(wd)) as repo:
        for stage in repo.index.stages:
            plan[stage.cmd] = {
                "inputs": {d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)},
                "outputs": {o.def_path for o in stage.outs},
                "sections": {p for d in stage.deps if isinstance(d, ParamsDependency) for p in d.params},
                "name": stage.name.split("@")[0],
            }
    return plan


def dvc_dry_commands(wd: Path) -> set[str]:
    out = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=wd, capture_output=True, text=True, check=True)
    return {line[2:].strip() for line in out.stdout.splitlines() if line.startswith("> ")}


def snakemake_plan(wd: Path) -> dict[str, dict]:
    out = subprocess.run(["snakemake", "--dry-run", "--printshellcmds", "--forceall", "--cores", "1"],
                         cwd=wd, capture_output=True, text=True, check=True).stdout
    rule_sections = {  # `rule name:` and `use rule base as name with:` blocks
        m.group(1): set(re.findall(r'"(\w+)"', m.group(2)))
        for path in (wd / "workflow" / "rules").glob("*.smk")
        for m in re.finditer(r"^(?:use )?rule (?:\w+ as )?(\w+)(?: with)?:.*?sections=sections\(([^)]*)\)",
                             path.read_text(), re.S | re.M)
    }
    plan = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        rule = re.search(r"^(?:localrule|rule) (\w+):", block, re.M)
        cmd = re.search(r"^Shell command: (.+)$", block, re.M)
        if not rule or not cmd or cmd.group(1).strip() == "None":
            continue
        def field(name: str) -> set[str]:
            found = re.search(rf"^\s+{name}: (.+)$", block, re.M)
            return {s.strip() for s in found.group(1).split(",")} if found else set()

        plan[cmd.group(1).strip()] = {"inputs": field("input"), "outputs": field("output"),
                                      "sections": rule_sections[rule.group(1)], "name": rule.group(1)}
    return plan


def _covered(paths: set[str], by: set[str]) -> set[str]:
    """Paths not equal to, nor inside, any of `by` (a directory dep covers the files in it)."""
    return {p for p in paths if not any(p == b or PurePosixPath(p).is_relative_to(b) for b in by)}


def test_dvc_and_snakemake_plan_the_same_jobs(workdir):
    dvc, smk = dvc_plan(workdir), snakemake_plan(workdir)
    assert set(dvc) == set(smk), f"only DVC: {set(dvc) - set(smk)}; only Snakemake: {set(smk) - set(dvc)}"
    assert dvc_dry_commands(workdir) == set(dvc)
    for cmd in dvc:
        d, s = dvc[cmd], smk[cmd]
        assert cmd.startswith("augmix "), cmd
        assert d["name"] == s["name"], cmd
        assert d["outputs"] == s["outputs"], cmd
        assert not _covered(s["inputs"], d["inputs"]) and not _covered(d["inputs"], s["inputs"] | {"results"}), cmd
        assert d["sections"] == s["sections"], cmd


def test_every_listed_params_section_exists(workdir):
    fields = set(config.Params.__dataclass_fields__)
    for job in dvc_plan(workdir).values():
        assert job["sections"] <= fields, job


def test_grid_expands_to_every_cell(workdir):
    p = config.load(workdir / "params.yaml")
    plan = dvc_plan(workdir)
    cmds = set(plan)
    n_imagenet = len(p.imagenet.datasets) * len(p.imagenet.archs) * len(p.imagenet.methods)
    n_cells = len(p.grid.datasets) * len(p.grid.archs) * len(p.grid.methods) + n_imagenet
    assert sum(c.startswith("augmix train ") for c in cmds) == n_cells
    assert sum(c.startswith("augmix evaluate ") for c in cmds) == n_cells
    assert sum(c.startswith("augmix corrupt ") for c in cmds) == len(p.grid.datasets) + len(p.imagenet.datasets)
    # ImageNet cells run under the imagenet_* stages, which read the imagenet section.
    imagenet_jobs = {c: job for c, job in plan.items() if "--dataset imagenet" in c}
    assert len(imagenet_jobs) == 2 * n_imagenet + 2 * len(p.imagenet.datasets)
    for cmd, job in imagenet_jobs.items():
        assert job["name"].startswith("imagenet_"), cmd
        assert "imagenet" in job["sections"] or cmd.startswith("augmix download"), cmd
