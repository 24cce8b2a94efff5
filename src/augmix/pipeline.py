"""Whole-pipeline runs: `augmix repro` (DVC or Snakemake under one MLflow parent run) and the demo.

The demo runs the very same dvc.yaml / Snakefile in a work folder (default `demo/`, git-ignored) that
holds a copy of the pipeline files with the demo params as its params.yaml, so the committed
params.yaml is never touched. Its MLflow runs go to the main store at the repository root.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from augmix import config, experiments, io, tracking
from augmix.errors import PipelineError

PIPELINE_FILES = ["dvc.yaml", "Snakefile", ".dvcignore"]
PIPELINE_DIRS = ["workflow", "src"]


def _tool(name: str) -> str:
    """The orchestrator installed beside this Python (the project's .venv), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise PipelineError(f"{name} not found: run `make setup` (it installs the pinned tools in .venv)")
    return found


def orchestrator_command(runner: str, *, jobs: int, force: bool, extra: list[str]) -> list[str]:
    commands = {
        "dvc": [_tool("dvc"), "repro", *(["--force"] if force else [])],
        "snakemake": [_tool("snakemake"), "--cores", str(jobs), "--configfile", "params.yaml",
                      *(["--forceall"] if force else [])],
    }
    if runner not in commands:
        raise PipelineError(f"--runner: unknown runner {runner!r} (choose dvc or snakemake)")
    return [*commands[runner], *extra]


def repro(*, runner: str = "dvc", cwd: Path = Path("."), jobs: int = 1, force: bool = False,
          extra: list[str] | None = None) -> None:
    """Run the pipeline in `cwd` under one MLflow parent run; stages log child runs."""
    cwd = Path(cwd).resolve()
    params = config.load(cwd / "params.yaml")  # fail on bad params before anything runs
    importlib.import_module("augmix.stages.check").run(params, str(cwd / "params.yaml"), root=cwd)  # names, paths
    cmd = orchestrator_command(runner, jobs=jobs, force=force, extra=list(extra or []))
    name = f"pipeline-{runner}-{tracking.git_info()['git_commit'][:8]}"
    with tracking.parent_run(params, name=name, tags={"runner": runner, "workdir": str(cwd)}) as parent:
        env = {**os.environ, tracking.PARENT_ENV: parent.run_id, "AUGMIX_RUNNER": runner}
        env.setdefault(tracking.ROOT_ENV, str(tracking.project_root()))  # the parent's store, wherever cwd is
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        print(f"[repro] {' '.join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))}", flush=True)
        rc = subprocess.run(cmd, cwd=cwd, env=env).returncode
        for f in ("params.yaml", "dvc.lock"):
            if (cwd / f).exists():
                parent.log_artifact(cwd / f)
        parent.log_metrics(headline_metrics(cwd / "results"))
        if (cwd / "report").is_dir():
            parent.log_artifacts(cwd / "report", "report")
        if rc != 0:
            raise PipelineError(f"{runner} exited with status {rc}")


# The numbers a researcher compares runs on (metrics.summarize's headline keys), per evaluated model.
HEADLINE = ("clean_error", "corruption_error", "mce", "relative_mce", "mfr", "mt5d")


def headline_metrics(results: Path) -> dict[str, float]:
    """Each evaluated model's headline numbers from its metrics.json, named after its results folder:
    `digits/wrn16_1/augmix/seed1/clean_error` (the pipeline's parent run carries them, so the runs
    table compares pipelines without opening the stage runs)."""
    out: dict[str, float] = {}
    for path in sorted(Path(results).rglob("metrics.json")):
        summary = json.loads(path.read_text())
        cell = path.parent.relative_to(results).as_posix()
        out.update({f"{cell}/{key}": float(summary[key]) for key in HEADLINE
                    if isinstance(summary.get(key), (int, float)) and not isinstance(summary[key], bool)})
    return out


def prepare_workdir(repo: Path, workdir: Path, overlay: Path | None) -> Path:
    """A folder holding the pipeline files of `repo` with params.yaml composed from the repository's
    params.yaml and `overlay` (a small file of the keys that differ). An existing work folder keeps
    its own params.yaml (a `dvc exp run -S` there edits it) unless the overlay changed since it was
    composed."""
    repo, workdir = Path(repo).resolve(), Path(workdir).resolve()
    text = config.compose_text(repo / "params.yaml", overlay) if overlay else (repo / "params.yaml").read_text()
    config.parse(config.loads_yaml(text), where=str(overlay or repo / "params.yaml"))  # validate before copying
    workdir.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        if (repo / name).exists():
            shutil.copy2(repo / name, workdir / name)
    for name in PIPELINE_DIRS:
        shutil.copytree(repo / name, workdir / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache"))
    stamp = workdir / ".augmix" / "composed-from"
    if not (workdir / "params.yaml").exists() or not stamp.exists() or stamp.read_text() != text:
        io.write_text(workdir / "params.yaml", text)
        io.write_text(stamp, text)
    io.write_text(workdir / tracking.SOURCE_STAMP, json.dumps(tracking.git_info(repo), sort_keys=True) + "\n")
    _git_backed(workdir)
    return workdir


# A work folder is its own Git repository, so `dvc exp run -S`, `exp show`, `params diff`, `metrics
# diff` and `plots diff` work there as in a clone of the project (they need Git). Outputs DVC tracks
# are git-ignored by DVC itself; these are the rest (dvc_plots/ is where `dvc plots show` writes).
PLOTS_TEMPLATE = ".augmix/dvc-plots.html"  # the offline page for `dvc plots show` (augmix.experiments)
WORKDIR_GITIGNORE = f"""# written by augmix: not versioned in a work folder
/checkpoints/
/mlflow.db
/mlflow.db.lock
/mlartifacts/
/mlruns/
/.snakemake/
/.augmix/params-ok
/{PLOTS_TEMPLATE}
/dvc_plots/
__pycache__/
"""


# The folder's own commits: no signing or hooks from the user's global Git config.
GIT_OPTIONS = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]


def _git(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *GIT_OPTIONS, *args], cwd=workdir, check=check, capture_output=True, text=True)


def _git_backed(workdir: Path) -> None:
    if shutil.which("git") is None:
        raise PipelineError("git not found: a work folder is a Git repository (dvc exp needs one); install git")
    if not (workdir / ".git").exists():
        _git(workdir, "init", "--quiet")
    if not _git(workdir, "config", "user.email", check=False).stdout.strip():
        _git(workdir, "config", "user.email", "augmix@localhost")  # this repository only
        _git(workdir, "config", "user.name", "augmix work folder")
    io.write_text(workdir / ".gitignore", WORKDIR_GITIGNORE)
    if not (workdir / ".dvc").is_dir():
        subprocess.run([_tool("dvc"), "init", "--quiet"], cwd=workdir, check=True, capture_output=True,
                       env={**os.environ, "DVC_NO_ANALYTICS": "1"})
        subprocess.run([_tool("dvc"), "config", "core.analytics", "false"], cwd=workdir, check=True)
    # `dvc plots show` / `plots diff` draw offline: a page template with vega inlined (DVC's own loads it
    # from a CDN), named in .dvc/config relative to .dvc/.
    experiments.write_plots_template(workdir / PLOTS_TEMPLATE)
    if f"../{PLOTS_TEMPLATE}" not in (workdir / ".dvc" / "config").read_text():
        subprocess.run([_tool("dvc"), "config", "plots.html_template", f"../{PLOTS_TEMPLATE}"], cwd=workdir, check=True)
    commit(workdir, "augmix: pipeline files and params")


def commit(workdir: Path, message: str) -> None:
    """Commit whatever changed in the work folder (nothing to commit is fine)."""
    _git(workdir, "add", "-A")
    if _git(workdir, "status", "--porcelain").stdout.strip():
        _git(workdir, "commit", "--quiet", "-m", message)


def demo(*, repo: Path, workdir: Path, runner: str, overlay: Path, jobs: int = 2, force: bool = False) -> None:
    workdir = prepare_workdir(repo, workdir, overlay)
    repro(runner=runner, cwd=workdir, jobs=jobs, force=force)
    if runner == "snakemake":  # let DVC adopt what Snakemake made, so dvc exp / metrics work alike
        subprocess.run([_tool("dvc"), "commit", "--force", "--quiet"], cwd=workdir, check=True)
    commit(workdir, f"augmix demo: {runner} run")
    report = workdir / "report"
    print("\nDemo finished.")
    print(f"  tables and plots: {report}/ (start with {report / 'report.md'})")
    print(f"  per-model results: {workdir / 'results'}/<dataset>/<arch>/<method>/")
    print(f"  MLflow runs:      {tracking.tracking_uri()}")
    print("  browse them:      augmix ui   (or make ui; it prints the page to open)")
