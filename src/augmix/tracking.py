"""MLflow tracking: the only module that imports mlflow (lazily), with a null twin when disabled.

Mapping: one experiment; a parent run per pipeline invocation (opened by
`augmix repro`, its id passed to stages in AUGMIX_PARENT_RUN_ID); a child run per executed stage,
tagged with stage, dataset, arch, method, git commit, runner and a hash of the params it reads.
The store defaults to an SQLite file at the project root addressed by an absolute URI, so runs from
temporary or queued DVC experiments (which execute in a copy) are not lost. MLflow records absolute
artifact URIs in that file; `relocate_store` rewrites them when the project folder was copied or moved.

What a researcher sees: the experiment is tagged as a classic ML experiment (`EXPERIMENT_TAGS`), the
compute stages' runs carry system metrics (CPU, memory, GPU: MLflow's sampler) and their resource use
(`resources/*`: wall, CPU and GPU seconds, peak GPU memory), and `augmix ui` serves the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from augmix import jobs
from augmix.config import flatten
from augmix.errors import Interrupted

PARENT_ENV = "AUGMIX_PARENT_RUN_ID"
ROOT_ENV = "AUGMIX_PROJECT_ROOT"

# The project root an experiment's artifact URIs were written under, "" when its store is not kept
# in the project root (see relocate_store).
ROOT_TAG = "augmix.root"
# A classic ML experiment, not a GenAI one. MLflow 3.17's UI reads this tag only where its workflow
# selector is off; with it on (the default build) the view follows the `workflowType` of the URL or of
# the browser's storage (GenAI unless chosen), so `ui_url` names it too (mlflow/server/js: the
# experiment-kind hooks; the values are its ExperimentKind enum).
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
ML_VIEW = "workflowType=machine_learning"
EXPERIMENT_TAGS = {KIND_TAG: KIND}
# Stages whose runs carry system metrics and resource use (the ones that compute).
COMPUTE_STAGES = frozenset({"corrupt", "train", "evaluate"})
# Seconds between system-metric samples (MLflow's MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides).
SYSTEM_METRICS_INTERVAL = 5.0


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


# A work folder's copy of the code names the checkout it was copied from (pipeline.prepare_workdir):
# the folder is a Git repository of its own, whose commits say nothing about which code it holds.
SOURCE_STAMP = ".augmix/source.json"


def git_info(where: Path | None = None) -> dict[str, str]:
    """The commit of the code that runs: the checkout this package is imported from or, for a work
    folder's copy, the checkout that copy was made from."""
    where = Path(where) if where is not None else Path(__file__).resolve().parents[2]
    stamp = where / SOURCE_STAMP
    if stamp.is_file():
        return json.loads(stamp.read_text())

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
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


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created (with its tags, and a local artifact root) when it is new; an
    existing one without the kind tag gets it."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        # A local artifact root would make every client write beside itself instead of to the server.
        uri = tracking_uri()
        served = _served(uri)
        tags = {**EXPERIMENT_TAGS, **({} if served else {ROOT_TAG: _recorded_root(uri)})}
        try:
            return client.create_experiment(name, artifact_location=None if served else artifact_root(), tags=tags)
        except MlflowException:  # another stage created it at the same moment
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    for key, value in EXPERIMENT_TAGS.items():
        if key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


# --------------------------------------------------------------------------------------------
# A store that moved: artifact URIs follow the project folder
# --------------------------------------------------------------------------------------------

# Columns holding absolute artifact URIs, per table (MLflow 3.17's SQL schema): (table, column, rows of
# one experiment). Tables an older schema lacks are skipped.
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location", "experiment_id = ?"),
    ("runs", "artifact_uri", "experiment_id = ?"),
    ("logged_models", "artifact_location", "experiment_id = ?"),
    ("trace_tags", "value",
     "key = 'mlflow.artifactLocation' and request_id in (select request_id from trace_info where experiment_id = ?)"),
)


def _root_of(location: str | None) -> str | None:
    """The project root of an experiment made before ROOT_TAG existed: its `file://<root>/mlartifacts`."""
    if not location or not location.startswith("file://"):
        return None
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    return str(path.parent) if path.name == "mlartifacts" else None


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _in_root(uri: str, root: Path) -> bool:
    """The store is the project's own file (mlflow.db in the root), so it moves with the folder."""
    db = _sqlite_path(uri)
    return db is not None and db.resolve().parent == Path(root).resolve()


def _recorded_root(uri: str) -> str:
    """ROOT_TAG's value for a new experiment: the project root when the store lives in it, else ""
    (a store elsewhere, shared through MLFLOW_TRACKING_URI: its URIs are never rewritten)."""
    return str(project_root()) if _in_root(uri, project_root()) else ""


def relocate_store(uri: str, root: Path) -> list[str]:
    """Point the artifact URIs of a local SQLite store at `root` when the store was made under another
    root (the project folder copied or moved: MLflow writes absolute `file://` URIs into
    experiments, runs, logged models and traces, with no setting for a relative one). Only a store
    that lives in `root` itself is rewritten: a store shared through MLFLOW_TRACKING_URI keeps its
    URIs. Returns the ids of the experiments rewritten. Call it under `_first_use_lock`."""
    db = _sqlite_path(uri)
    root = Path(root).resolve()
    if not _in_root(uri, root) or not db.is_file():
        return []
    new_uri = root.as_uri()
    moved = []
    con = sqlite3.connect(db, timeout=120)
    try:
        with con:  # one transaction
            tables = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
            if not {"experiments", "experiment_tags", "runs"} <= tables:
                return []  # a store MLflow has not set up yet
            rows = con.execute("select e.experiment_id, e.artifact_location, t.value from experiments e "
                               "left join experiment_tags t on t.experiment_id = e.experiment_id and t.key = ?",
                               (ROOT_TAG,)).fetchall()
            for exp_id, location, recorded in rows:
                old = _root_of(location) if recorded is None else recorded  # None: made before the tag
                if not old:
                    continue  # not one of ours, or made with a store outside its project root
                old_uri = Path(old).as_uri()
                if old_uri != new_uri:
                    prefix = old_uri + "/"
                    for table, column, where in ARTIFACT_COLUMNS:
                        if table in tables:
                            con.execute(f"update {table} set {column} = ? || substr({column}, ?) "  # noqa: S608 (our names)
                                        f"where {where} and substr({column}, 1, ?) = ?",
                                        (new_uri, len(old_uri) + 1, exp_id, len(prefix), prefix))
                    moved.append(str(exp_id))
                if recorded != str(root):
                    con.execute("insert or replace into experiment_tags (key, value, experiment_id) values (?, ?, ?)",
                                (ROOT_TAG, str(root), exp_id))
    finally:
        con.close()
    return moved


def open_store(uri: str | None = None) -> str:
    """The tracking URI, its local store relocated to this project root if it was moved (see
    relocate_store); serialised with every other process opening it."""
    uri = uri or tracking_uri()
    with _first_use_lock(uri):
        relocate_store(uri, project_root())
    return uri


# --------------------------------------------------------------------------------------------
# What a run cost: system metrics while it runs, resource use when it ends
# --------------------------------------------------------------------------------------------


def _cuda_devices() -> list[int]:
    """CUDA devices this process allocated memory on (none when torch or CUDA was never used)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    return [d for d in range(torch.cuda.device_count()) if torch.cuda.max_memory_allocated(d) > 0]


def _cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (data-loader workers), user and system."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Usage:
    """Resource use from `start()` on: wall, CPU and GPU seconds, peak GPU memory. GPU-seconds are
    wall seconds x GPUs used (each torchrun rank uses one; only rank 0 logs, so x WORLD_SIZE)."""

    wall0: float
    cpu0: float

    @classmethod
    def start(cls) -> Usage:
        torch = sys.modules.get("torch")
        for d in _cuda_devices():  # this run's peak, not an earlier one's in the same process
            torch.cuda.reset_peak_memory_stats(d)
        return cls(time.monotonic(), _cpu_seconds())

    def metrics(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall0
        devices = _cuda_devices()
        gpus = len(devices) * int(os.environ.get("WORLD_SIZE", "1"))
        out = {"resources/wall_seconds": wall, "resources/cpu_seconds": _cpu_seconds() - self.cpu0,
               "resources/gpus": float(gpus), "resources/gpu_seconds": wall * gpus}
        if devices:
            torch = sys.modules["torch"]
            out["resources/peak_gpu_memory_mib"] = max(torch.cuda.max_memory_allocated(d) for d in devices) / 2**20
        return out


def _system_monitor(run_id: str, uri: str) -> Any:
    """MLflow's sampler (CPU, memory, disk, network; NVIDIA GPUs when nvidia-ml-py is installed) as
    `system/*` metrics of the run, or None when it cannot start."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no INFO lines on stderr
    psutil.cpu_percent()  # its first reading is against this call, not 0.0 against nothing
    try:
        monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_INTERVAL, tracking_uri=uri)
        monitor.start()
    except Exception as exc:  # noqa: BLE001 - a missing sampler must not stop the job
        print(f"[tracking] no system metrics: {exc}", file=sys.stderr, flush=True)
        return None
    return monitor


def _finish_monitor(monitor: Any) -> None:
    """Stop the sampler and log the samples of its last, partial interval too (MLflow's drops them, so
    a run shorter than one interval would have no system metrics at all)."""
    monitor.finish()
    tail = monitor.aggregate_metrics()
    if tail:
        monitor.publish_metrics(tail)
        monitor.mlflow_logger.flush()


class NullRun:
    """What stages get when tracking is disabled: every call does nothing."""

    run_id = ""

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None: ...
    def log_artifacts(self, path: str | Path, subdir: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def resumed(self, epoch: int, seconds_before: float) -> None: ...
    def __enter__(self) -> NullRun:
        return self
    def __exit__(self, *exc: Any) -> None: ...


# How a run ends: an interruption (Ctrl-C, SIGTERM) is KILLED, any other exception FAILED.
INTERRUPTIONS = (KeyboardInterrupt, Interrupted)


@contextlib.contextmanager
def _signals_held(*, redeliver: bool) -> Iterator[None]:
    """SIGINT and SIGTERM wait while a run's end is recorded: a second Ctrl-C there would leave the run
    RUNNING. One that came is delivered afterwards when `redeliver` (the run was not already ending
    because of one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if pending and redeliver:
            signal.raise_signal(pending[0])


class Run(NullRun):
    """An MLflow run owned by this process; closed KILLED if interrupted, FAILED if the stage raises."""

    def __init__(self, *, experiment: str, name: str, tags: Mapping[str, str], parent: str | None = None,
                 monitor: bool = False):
        from mlflow.tracking import MlflowClient

        uri = tracking_uri()
        all_tags = dict(tags)
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        all_tags["mlflow.runName"] = name
        with _first_use_lock(uri):
            relocate_store(uri, project_root())
            # A client of its own, not mlflow.set_tracking_uri: that also sets MLFLOW_TRACKING_URI in
            # os.environ, which would pin every later run of this process (and its children) to it.
            self._client = MlflowClient(tracking_uri=uri)
            exp_id = _experiment_id(self._client, experiment)
            self._close_stale(exp_id, all_tags.get("job", ""))
            run = self._client.create_run(exp_id, tags=all_tags, run_name=name)
        self.run_id = run.info.run_id
        self.experiment_id = exp_id
        self._job = all_tags.get("job", "")
        self._usage = Usage.start() if monitor else None
        self._monitor = _system_monitor(self.run_id, uri) if monitor else None

    def _close_stale(self, exp_id: str, job: str) -> None:
        """A run of this job still RUNNING belongs to a process that was killed (SIGKILL, a lost node):
        the orchestrators never run one job twice at once. Mark it KILLED."""
        if not job:
            return
        running = f"tags.job = '{job}' and attributes.status = 'RUNNING'"
        for old in self._client.search_runs([exp_id], filter_string=running):
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

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, INTERRUPTIONS):
            status = "KILLED"
        else:
            status = "FAILED"
        with _signals_held(redeliver=status != "KILLED"):
            try:  # what the run cost, interrupted or not
                if self._monitor is not None:
                    _finish_monitor(self._monitor)
                if self._usage is not None:
                    self.log_metrics(self._usage.metrics())
            finally:
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
              parent=os.environ.get(PARENT_ENV) or None, monitor=job.stage in COMPUTE_STAGES)
    run.log_params({**identity, **flatten(jobs.resolved(job, params))})
    return run


def experiment_name(params: Any) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or params.tracking.experiment


def parent_run(params: Any, *, name: str, tags: Mapping[str, str]) -> NullRun:
    if not params.tracking.enabled:
        return NullRun()
    return Run(experiment=experiment_name(params), name=name,
               tags={"stage": "pipeline", **git_info(), **tags})


# --------------------------------------------------------------------------------------------
# Browsing the store: `augmix ui`
# --------------------------------------------------------------------------------------------


def ui_url(base: str, experiment_id: str | None = None) -> str:
    """Where a researcher starts: the experiment's runs table in the UI's classic ML view."""
    where = f"experiments/{experiment_id}/runs" if experiment_id else "experiments"
    return f"{base.rstrip('/')}/#/{where}?{ML_VIEW}"


def our_experiments(uri: str) -> list[tuple[str, str]]:
    """(id, name) of the active experiments augmix made in a local SQLite store."""
    db = _sqlite_path(uri)
    if db is None or not db.is_file():
        return []
    con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=60)
    try:
        return [(str(i), n) for i, n in con.execute(
            "select e.experiment_id, e.name from experiments e join experiment_tags t "
            "on t.experiment_id = e.experiment_id and t.key = ? where e.lifecycle_stage = 'active' "
            "order by e.experiment_id", (ROOT_TAG,))]
    except sqlite3.OperationalError:  # no tables yet
        return []
    finally:
        con.close()


def ui(*, port: int = 5000, host: str = "127.0.0.1") -> None:
    """Serve the project's store with `mlflow ui` on loopback (this process becomes the server), after
    saying where to look; a tracking server (MLFLOW_TRACKING_URI http(s)) is only named."""
    uri = tracking_uri()
    if _served(uri):
        print(f"[ui] runs are on the tracking server {uri}: open {ui_url(uri)}", flush=True)
        return
    uri = open_store(uri)
    base = f"http://{host}:{port}"
    print(f"[ui] MLflow store: {uri}")
    found = our_experiments(uri)
    for exp_id, name in found:
        print(f"[ui] experiment {name}: open {ui_url(base, exp_id)}")
    if not found:
        print(f"[ui] no augmix runs in it yet; open {ui_url(base)}")
    print("[ui] Ctrl-C stops the server", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port),
                              "--workers", "1", "--backend-store-uri", uri])
