"""DVC and Snakemake describe the same DAG, and each job declares exactly what it reads: the params
keys of augmix.jobs and the package files its command imports (augmix.codedeps)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from augmix import codedeps, config, jobs, pipeline

from conftest import REPO, SMOKE_PARAMS

STAGE_OF = {"train_ablation": "train", "evaluate_ablation": "evaluate", "imagenet_download": "download",
            "imagenet_corrupt": "corrupt", "imagenet_train": "train", "imagenet_evaluate": "evaluate",
            "evaluate_external": "external"}


def _with_imagenet(tmp: Path) -> Path:
    """The paper params with the ImageNet jobs switched on (the folder is not read by a plan)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["imagenet"].update(datasets=["imagenet"], nproc=8)
    raw["datasets"]["imagenet"]["dir"] = "/datasets/imagenet"
    raw["grid"]["seeds"] = [1, 2]
    path = tmp / "params.imagenet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _with_external(tmp: Path) -> Path:
    """The smoke overlay with a released model declared (its file is not read by a plan)."""
    raw = yaml.safe_load((REPO / "tests/smoke/params.yaml").read_text())
    (tmp / "released.pt").write_bytes(b"weights")
    raw["external"] = {"released": {"label": "released", "file": str(tmp / "released.pt"), "sha256": "0" * 64,
                                    "arch": "wrn16_1", "dataset": "digits", "method": "augmix", "format": "auto"}}
    path = tmp / "params.external.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module", params=["smoke", "smoke+external", "paper", "paper+imagenet+seeds", "successors"])
def workdir(request, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    params = {"smoke": lambda: SMOKE_PARAMS, "paper": lambda: REPO / "params.yaml",
              "smoke+external": lambda: _with_external(tmp),
              "paper+imagenet+seeds": lambda: _with_imagenet(tmp),
              "successors": lambda: REPO / "workflow/params/successors.yaml"}[request.param]()
    return pipeline.prepare_workdir(REPO, tmp / "wd", params)


def _job(cmd: str, params=None) -> jobs.Job:
    parts = cmd.split()
    args = dict(zip(parts[2::2], parts[3::2]))
    if parts[1] == "evaluate-external":
        entry = params.external[args["--name"]]
        return jobs.Job("external", entry.dataset, entry.arch, entry.method, None, args["--name"])
    return jobs.Job(parts[1], args.get("--dataset", ""), args.get("--arch", ""), args.get("--method", ""),
                    int(args["--seed"]) if "--seed" in args else None)


def dvc_plan(wd: Path) -> dict[str, dict]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    plan = {}
    with Repo(str(wd)) as repo:
        for stage in repo.index.stages:
            plan[stage.cmd] = {
                "inputs": {d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)},
                "outputs": {o.def_path for o in stage.outs},
                "keys": [p for d in stage.deps if isinstance(d, ParamsDependency) for p in d.params],
                "name": stage.name.split("@")[0],
            }
    return plan


def dvc_dry_commands(wd: Path) -> set[str]:
    out = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=wd, capture_output=True, text=True, check=True)
    return {line[2:].strip() for line in out.stdout.splitlines() if line.startswith("> ")}


def snakemake_plan(wd: Path) -> dict[str, dict]:
    out = subprocess.run(["snakemake", "--dry-run", "--printshellcmds", "--forceall", "--cores", "1"],
                         cwd=wd, capture_output=True, text=True, check=True).stdout
    plan = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        rule = re.search(r"^(?:localrule|rule) (\w+):", block, re.M)
        cmd = re.search(r"^Shell command: (.+)$", block, re.M)
        if not rule or not cmd or cmd.group(1).strip() == "None":
            continue

        def field(name: str, block: str = block) -> set[str]:
            found = re.search(rf"^\s+{name}: (.+)$", block, re.M)
            return {s.strip() for s in found.group(1).split(",")} if found else set()

        plan[cmd.group(1).strip()] = {"inputs": field("input"), "outputs": field("output"), "name": rule.group(1)}
    return plan


def _covered(paths: set[str], by: set[str]) -> set[str]:
    """Paths not equal to, nor inside, any of `by` (a directory dep covers the files in it)."""
    return {p for p in paths if not any(p == b or PurePosixPath(p).is_relative_to(b) for b in by)}


CHECK = "augmix check --stamp .augmix/params-ok"  # DVC's root stage; Snakemake runs it on start (common.smk)


@pytest.mark.slow  # dvc and snakemake dry runs, 5-15 s each
def test_dvc_and_snakemake_plan_the_same_jobs(workdir):
    dvc, smk = dvc_plan(workdir), snakemake_plan(workdir)
    assert CHECK in dvc and CHECK not in smk
    del dvc[CHECK]
    assert set(dvc) == set(smk), f"only DVC: {set(dvc) - set(smk)}; only Snakemake: {set(smk) - set(dvc)}"
    assert dvc_dry_commands(workdir) == {*dvc, CHECK}
    for cmd in dvc:
        d, s = dvc[cmd], smk[cmd]
        assert cmd.startswith("augmix "), cmd
        assert STAGE_OF.get(d["name"], d["name"]) == STAGE_OF.get(s["name"], s["name"]), cmd
        assert d["outputs"] == s["outputs"], cmd
        assert not _covered(s["inputs"], d["inputs"])
        assert not _covered(d["inputs"], s["inputs"] | {"results", ".augmix/params-ok"}), cmd


def test_each_dvc_job_declares_exactly_the_keys_of_the_job_table(workdir):
    params = config.load(workdir / "params.yaml")
    for cmd, job in dvc_plan(workdir).items():
        expected = jobs.keys(_job(cmd, params), params)
        assert sorted(job["keys"]) == sorted(expected), cmd
        tree = config.to_dict(params)
        for key in expected:
            config.get(tree, key)  # every declared key exists in the file


def test_snakemake_runs_the_check_before_any_job():
    assert 'onstart:\n    shell("augmix check")' in (REPO / "workflow/rules/common.smk").read_text()


def test_snakemake_rules_take_their_params_from_the_job_table():
    """Every Snakemake rule's params are `job_params(<its stage>)`: augmix.jobs.values of its wildcards."""
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        text = path.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", text, re.M):
            assert f'job=job_params("{STAGE_OF.get(rule, rule)}")' in body, f"{path.name}: rule {rule}"


def test_each_stage_depends_on_exactly_its_import_closure(workdir):
    """dvc.yaml lists, per job, the package files its command imports (transitively) and no others."""
    params = config.load(workdir / "params.yaml")
    for cmd, job in dvc_plan(workdir).items():
        stage = _job(cmd, params).stage
        code = {p for p in job["inputs"] if p.startswith("src/augmix/") and p.endswith(".py")}
        assert code == set(codedeps.stage_files(stage)), cmd


def test_dvc_yaml_is_what_the_writer_renders():
    rc = subprocess.run([sys.executable, str(REPO / "workflow/scripts/write_dvc_yaml.py"), "--check"]).returncode
    assert rc == 0, "dvc.yaml is stale: run python workflow/scripts/write_dvc_yaml.py"


def test_grid_expands_to_every_cell_and_seed(workdir):
    p = config.load(workdir / "params.yaml")
    cmds = set(dvc_plan(workdir))
    n_imagenet = len(p.imagenet.datasets) * len(p.imagenet.archs) * len(p.imagenet.methods) * len(p.imagenet.seeds)
    n_grid = len(p.grid.datasets) * len(p.grid.archs) * len(p.grid.methods) * len(p.grid.seeds)
    n_ablation = len(p.ablation.datasets) * len(p.ablation.archs) * len(p.ablation.methods) * len(p.grid.seeds)
    n_cells = n_grid + n_ablation + n_imagenet
    assert sum(c.startswith("augmix train ") for c in cmds) == n_cells
    assert sum(c.startswith("augmix evaluate ") for c in cmds) == n_cells
    assert sum(c.startswith("augmix corrupt ") for c in cmds) == len(p.grid.datasets) + len(p.imagenet.datasets)
    for seed in p.grid.seeds:
        assert any(c.endswith(f"--seed {seed}") for c in cmds)


def test_no_import_cycles_in_the_package():
    assert codedeps.cycles() == []


@pytest.mark.slow
def test_snakemake_refuses_config_values_the_jobs_would_not_see(tmp_path):
    wd = pipeline.prepare_workdir(REPO, tmp_path / "wd", SMOKE_PARAMS)
    out = subprocess.run(["snakemake", "-n", "--cores", "1", "--config", "subset={'train': 5, 'test': 5}"],
                         cwd=wd, capture_output=True, text=True)
    assert out.returncode != 0 and "--config / --configfile values do not reach the jobs" in out.stdout + out.stderr


def test_a_work_folders_code_names_the_checkout_it_was_copied_from(tmp_path):
    """Provenance (metrics.json, MLflow tags) names the project's commit, not the work folder's own."""
    wd = pipeline.prepare_workdir(REPO, tmp_path / "wd", SMOKE_PARAMS)
    probe = "import json; from augmix import tracking; print(json.dumps(tracking.git_info()))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=wd, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(wd / "src")})
    folder = subprocess.run(["git", "rev-parse", "HEAD"], cwd=wd, capture_output=True, text=True).stdout.strip()
    assert json.loads(out.stdout) == pipeline.tracking.git_info(REPO) and folder not in out.stdout
    assert json.loads(out.stdout)["git_commit"] == subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
