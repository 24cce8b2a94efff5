"""MLflow tracking: the only module that imports mlflow (lazily), with a null twin when disabled.

Mapping: one experiment; a parent run per pipeline invocation (opened by
`augmix repro`, its id passed to stages in AUGMIX_PARENT_RUN_ID); a child run per executed stage,
tagged with stage, dataset, arch, method, git commit, runner and a hash of the params it reads.
The store defaults to an SQLite file at the project root addressed by an absolute URI, so runs from
temporary or queued DVC experiments (which execute in a copy) are not lost.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from augmix.errors import Interrupted

PARENT_ENV = "AUGMIX_PARENT_RUN_ID"
ROOT_ENV = "AUGMIX_PROJECT_ROOT"


def _is_project(folder: Path) -> bool:
    """The augmix checkout itself (its pyproject.toml names the package); work folders hold none."""
    pyproject = folder / "pyproject.toml"
    return pyproject.is_file() and 'name = "augmix"' in pyproject.read_text()


def project_root() -> Path:
    """Where mlflow.db lives, one store per project: AUGMIX_PROJECT_ROOT if set; else, from DVC's
    root (the parent repository even inside a queued experiment's copy) or the current folder, the
    nearest enclosing augmix checkout, so a work folder inside it (demo/) logs to the checkout's
    store; a work folder elsewhere keeps its own."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    start = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if _is_project(folder):
            return folder
    return start


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def artifact_root() -> str:
    return (project_root() / "mlartifacts").as_uri()


def git_info() -> dict[str, str]:
    """The commit of the code that runs: the checkout this package is imported from (a work folder
    is a Git repository of its own, holding a copy of the code only for the orchestrators' hashes)."""
    where = str(Path(__file__).resolve().parents[2])

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", where, *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            return ""

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else False
    return {"git_commit": commit or "unknown", "git_dirty": str(dirty).lower()}


def runner() -> str:
    if os.environ.get("DVC_STAGE"):
        return "dvc"
    if os.environ.get("SNAKEMAKE_RULE") or "snakemake" in os.environ.get("AUGMIX_RUNNER", ""):
        return "snakemake"
    return os.environ.get("AUGMIX_RUNNER", "cli")


def _served(uri: str) -> bool:
    """A tracking server: it chooses where artifacts go (`--artifacts-destination`, proxied)."""
    return uri.startswith(("http://", "https://"))


@contextlib.contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """Serialise opening a local SQLite store across processes. MLflow creates and migrates the
    tables on first connection; parallel stages (`snakemake -j N` on a fresh store) doing that at
    once fail with "duplicate column name" (measured: 5 of 6; tests/test_faults.py)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no parallel runners to guard against here
        yield
        return
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _experiment_id(mlflow: Any, name: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        # A local artifact root would make every client write beside itself instead of to the server.
        location = None if _served(tracking_uri()) else artifact_root()
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # another stage created it at the same moment
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class NullRun:
    """What stages get when tracking is disabled: every call does nothing."""

    run_id = ""

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None: ...
    def log_artifacts(self, path: str | Path, subdir: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def resumed(self, epoch: int, seconds_before: float) -> None: ...
    def __enter__(self) -> "NullRun":
        return self
    def __exit__(self, *exc: Any) -> None: ...


# How a run ends: an interruption (Ctrl-C, SIGTERM) is KILLED, any other exception FAILED.
INTERRUPTIONS = (KeyboardInterrupt, Interrupted)


class Run(NullRun):
    """An MLflow run owned by this process; closed KILLED if interrupted, FAILED if the stage raises."""

    def __init__(self, *, experiment: str, name: str, tags: Mapping[str, str], parent: str | None = None):
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = tracking_uri()
        all_tags = dict(tags)
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        all_tags["mlflow.runName"] = name
        with _first_use_lock(uri):
            self._client = MlflowClient(tracking_uri=uri)
            mlflow.set_tracking_uri(uri)
            exp_id = _experiment_id(mlflow, experiment)
            self._close_stale(exp_id, all_tags.get("job", ""))
            run = self._client.create_run(exp_id, tags=all_tags, run_name=name)
        self.run_id = run.info.run_id
        self.experiment_id = exp_id
        self._job = all_tags.get("job", "")

    def _close_stale(self, exp_id: str, job: str) -> None:
        """A run of this job still RUNNING belongs to a process that was killed (SIGKILL, a lost node):
        the orchestrators never run one job twice at once. Mark it KILLED."""
        if not job:
            return
        for old in self._client.search_runs([exp_id], filter_string=f"tags.job = '{job}' and attributes.status = 'RUNNING'"):
            self._client.set_terminated(old.info.run_id, "KILLED")

    def resumed(self, epoch: int, seconds_before: float) -> None:
        """Link a run that resumed a checkpoint to the run that wrote it (the latest earlier run of the job)."""
        if epoch <= 0 or not self._job:
            return
        earlier = [r for r in self._client.search_runs(
            [self.experiment_id], filter_string=f"tags.job = '{self._job}'", order_by=["attributes.start_time DESC"])
            if r.info.run_id != self.run_id]
        tags = {"resumed_from_epoch": str(epoch), "seconds_before_resume": f"{seconds_before:.2f}"}
        if earlier:
            tags["resumed_from_run"] = earlier[0].info.run_id
        self.set_tags(tags)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # the REST API takes at most 100 params per batch
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), subdir)

    def log_artifacts(self, path: str | Path, subdir: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(path), subdir)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, str(v))

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, INTERRUPTIONS):
            status = "KILLED"
        else:
            status = "FAILED"
        self._client.set_terminated(self.run_id, status)


def run_name(job: Any) -> str:
    """Short and telling: `train · cifar10 · wrn40_2 · augmix · seed 1`."""
    parts = [job.stage, *(str(v) for k, v in job.identity().items() if k != "seed")]
    if job.seed is not None:
        parts.append(f"seed {job.seed}")
    return " · ".join(parts)


def stage_run(params: Any, job: Any) -> NullRun:
    """Open the run of one executed job (a child when a pipeline parent run exists): its identity as
    params and tags, the values of the keys it reads as params, and where and how it ran as tags."""
    from augmix import jobs

    if not params.tracking.enabled or int(os.environ.get("RANK", "0")) != 0:
        return NullRun()  # one run per job: only rank 0 of a torchrun job logs
    import torch

    identity = {k: str(v) for k, v in job.identity().items()}
    dvc_stage = os.environ.get("DVC_STAGE", "")
    tags = {
        "stage": job.stage,
        "job": jobs.fingerprint(job, params).rsplit(":", 1)[0],
        **identity,
        **git_info(),
        "runner": runner(),
        "params_hash": params.digest(jobs.keys(job, params)),
        "dvc_stage": dvc_stage,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "python": sys.version.split()[0],
    }
    run = Run(experiment=experiment_name(params), name=run_name(job), tags=tags,
              parent=os.environ.get(PARENT_ENV) or None)
    from augmix.config import flatten

    run.log_params({**identity, **flatten(jobs.resolved(job, params))})
    return run


def experiment_name(params: Any) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or params.tracking.experiment


def parent_run(params: Any, *, name: str, tags: Mapping[str, str]) -> NullRun:
    if not params.tracking.enabled:
        return NullRun()
    return Run(experiment=experiment_name(params), name=name,
               tags={"stage": "pipeline", **git_info(), **tags})
