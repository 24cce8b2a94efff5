"""MLflow tracking as a researcher meets it, on real SQLite stores in temporary folders.

* One store that follows the project folder: made in one folder, the folder moved, a new stage run
  logs its artifacts under the new folder and the old runs' artifacts are still readable.
* The experiment is a classic ML experiment; compute stages log system metrics and what they cost.
* `augmix ui` serves the store on loopback and says which page to open.
* Input refused before work starts leaves no run (the CLI, in a subprocess).
* Interruptions through the real CLI on the smoke config: SIGINT / SIGTERM end training with one line,
  status 130 / 143, the run KILLED and the checkpoint kept; after SIGKILL the run stays RUNNING until
  the job starts again, which marks it KILLED, resumes from the checkpoint, links the killed run and
  reports the seconds of both segments.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml

from augmix import config, pipeline, tracking
from augmix.jobs import Job

from conftest import REPO, SMOKE_PARAMS
from support import browser, services


def client_for(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def runs_in(root: Path) -> list:
    """Every run of every experiment in the store at `root` (none when there is no store)."""
    if not (root / "mlflow.db").exists():
        return []
    client = client_for(root)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=1000) if ids else []


@pytest.fixture(scope="module")
def smoke_params() -> config.Params:
    return config.load(SMOKE_PARAMS)


# --------------------------------------------------------------------------------------------
# One store, wherever the project folder goes
# --------------------------------------------------------------------------------------------


def logged_stage_run(params: config.Params, job: Job, artifact: Path) -> str:
    """A stage's tracking run (what `stages.common.job_run` opens) that logs one artifact."""
    with tracking.stage_run(params, job) as run:
        run.log_artifact(artifact)
    return run.run_id


@pytest.mark.slow
def test_store_follows_the_project_folder_when_it_is_moved(tmp_path, monkeypatch, smoke_params):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    first, moved = tmp_path / "project", tmp_path / "elsewhere" / "project"
    first.mkdir()
    note = tmp_path / "note.txt"
    note.write_text("first segment\n")
    monkeypatch.setenv(tracking.ROOT_ENV, str(first))
    job = Job("download", "digits")
    old_id = logged_stage_run(smoke_params, job, note)
    old = client_for(first).get_run(old_id)
    assert old.info.artifact_uri.startswith(first.as_uri() + "/mlartifacts/")

    moved.parent.mkdir()
    shutil.move(first, moved)  # the whole folder: store and artifacts
    monkeypatch.setenv(tracking.ROOT_ENV, str(moved))
    note.write_text("second segment\n")
    new_id = logged_stage_run(smoke_params, job, note)

    client = client_for(moved)
    exp = client.get_experiment(client.get_run(new_id).info.experiment_id)
    assert exp.artifact_location == (moved / "mlartifacts").as_uri()
    assert exp.tags[tracking.ROOT_TAG] == str(moved)
    for run_id, text in ((old_id, "first segment\n"), (new_id, "second segment\n")):
        run = client.get_run(run_id)
        assert run.info.artifact_uri.startswith(moved.as_uri() + "/mlartifacts/"), run.info.artifact_uri
        assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
        local = client.download_artifacts(run_id, "note.txt", str(tmp_path / run_id))
        assert Path(local).read_text() == text
    # The new run's file is really under the new folder, and nothing was written to the old one.
    assert (moved / "mlartifacts" / new_id / "artifacts" / "note.txt").is_file()
    assert not first.exists()


def test_a_store_shared_through_the_tracking_uri_keeps_its_artifact_uris(tmp_path, monkeypatch, smoke_params):
    """Only a store that lives in the project root moves with it: one named by MLFLOW_TRACKING_URI,
    shared by projects, keeps the URIs its runs were written with, wherever it is opened from."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{shared / 'mlflow.db'}")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    note = tmp_path / "note.txt"
    note.write_text("x")
    monkeypatch.setenv(tracking.ROOT_ENV, str(a))
    first = logged_stage_run(smoke_params, Job("download", "digits"), note)
    monkeypatch.setenv(tracking.ROOT_ENV, str(b))
    logged_stage_run(smoke_params, Job("download", "digits"), note)
    # Even opened as the store of a project whose root is its folder.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv(tracking.ROOT_ENV, str(shared))
    logged_stage_run(smoke_params, Job("download", "digits"), note)
    client = client_for(shared)
    run = client.get_run(first)
    assert run.info.artifact_uri.startswith(a.as_uri() + "/")
    assert client.get_experiment(run.info.experiment_id).tags[tracking.ROOT_TAG] == ""


# --------------------------------------------------------------------------------------------
# What the experiment and its runs carry
# --------------------------------------------------------------------------------------------


def test_experiment_is_a_classic_ml_experiment_new_or_existing(tracking_env, smoke_params):
    client = client_for(tracking_env)
    # An experiment made before the tag existed (as older versions made it) gets it on next use.
    old = client.create_experiment("older", artifact_location=(tracking_env / "mlartifacts").as_uri())
    with tracking.Run(experiment="older", name="x", tags={}):
        pass
    assert client.get_experiment(old).tags[tracking.KIND_TAG] == "custom_model_development"
    with tracking.stage_run(smoke_params, Job("download", "digits")) as run:
        pass
    exp = client.get_experiment(run.experiment_id)
    assert exp.name == smoke_params.tracking.experiment
    assert exp.tags[tracking.KIND_TAG] == "custom_model_development"
    assert tracking.ui_url("http://127.0.0.1:5000", exp.experiment_id) == (
        f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning")


def burn_cpu(seconds: float) -> None:
    """Real work for the samplers to see (matrix products, as training does)."""
    a = torch.randn(256, 256)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = torch.tanh(a @ a)


@pytest.mark.parametrize("stage,monitored", [("train", True), ("evaluate", True), ("download", False)])
def test_compute_runs_log_system_metrics_and_what_they_cost(tracking_env, monkeypatch, smoke_params, stage,
                                                            monitored):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    job = Job(stage, "digits", *(("wrn16_1", "augmix", 1) if stage != "download" else ()))
    cpu0 = tracking._cpu_seconds()
    t0 = time.monotonic()
    with tracking.stage_run(smoke_params, job) as run:
        burn_cpu(1.6)
    wall, cpu = time.monotonic() - t0, tracking._cpu_seconds() - cpu0
    client = client_for(tracking_env)
    metrics = client.get_run(run.run_id).data.metrics
    if not monitored:
        assert not any(k.startswith(("system/", "resources/")) for k in metrics), metrics
        return
    # MLflow's sampler: a sample every 0.5 s, the last partial interval included.
    history = client.get_metric_history(run.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2, history
    assert max(m.value for m in history) > 0
    assert metrics["system/system_memory_usage_megabytes"] > 0
    # What the run cost: inside the bounds measured around it, and no GPU on a CPU run.
    assert 1.6 <= metrics["resources/wall_seconds"] <= wall
    assert 0.3 < metrics["resources/cpu_seconds"] <= cpu + 0.05
    if not torch.cuda.is_available():
        assert metrics["resources/gpus"] == 0 and metrics["resources/gpu_seconds"] == 0
        assert "resources/peak_gpu_memory_mib" not in metrics


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_runs_log_peak_memory_and_gpu_seconds(tracking_env, smoke_params):
    job = Job("train", "digits", "wrn16_1", "augmix", 1)
    with tracking.stage_run(smoke_params, job) as run:
        x = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")  # 64 MiB
        del x
        time.sleep(0.2)
    metrics = client_for(tracking_env).get_run(run.run_id).data.metrics
    assert metrics["resources/gpus"] == 1
    assert metrics["resources/peak_gpu_memory_mib"] >= 64
    assert metrics["resources/gpu_seconds"] == pytest.approx(metrics["resources/wall_seconds"])


def test_headline_metrics_name_each_evaluated_model(tmp_path):
    """The parent run's numbers come from every metrics.json under results/, named by its folder."""
    results = tmp_path / "results"
    cells = {"digits/wrn16_1/augmix/seed1": {"clean_error": 0.25, "corruption_error": 0.5, "per_corruption": {}},
             "digits/wrn16_1/standard/seed2": {"clean_error": 0.125, "corruption_error_complete": False},
             "external/released": {"clean_error": 0.0625, "mce": 0.75, "model": "released"}}
    for cell, summary in cells.items():
        (results / cell).mkdir(parents=True)
        (results / cell / "metrics.json").write_text(json.dumps(summary))
    assert pipeline.headline_metrics(results) == {
        "digits/wrn16_1/augmix/seed1/clean_error": 0.25, "digits/wrn16_1/augmix/seed1/corruption_error": 0.5,
        "digits/wrn16_1/standard/seed2/clean_error": 0.125,
        "external/released/clean_error": 0.0625, "external/released/mce": 0.75}


# --------------------------------------------------------------------------------------------
# augmix ui
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ui_command_serves_the_store_on_loopback_and_names_the_page(tmp_path, smoke_params, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv(tracking.ROOT_ENV, str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    with tracking.stage_run(smoke_params, Job("download", "digits")) as run:
        pass
    with browser.augmix_ui(browser.environment(store), tmp_path) as ui:
        assert services.listening_addresses(ui.proc.pid) == {"127.0.0.1"}
        assert ui.pages == {"augmix": f"{ui.url}/#/experiments/{run.experiment_id}/runs?workflowType=machine_learning"}
        assert f"sqlite:///{store / 'mlflow.db'}" in ui.log.read_text()
        with urllib.request.urlopen(f"{ui.url}/ajax-api/2.0/mlflow/runs/get?run_id={run.run_id}", timeout=30) as r:
            assert json.loads(r.read())["run"]["info"]["run_name"] == "download · digits"


def test_ui_command_names_a_tracking_server_instead_of_serving(tmp_path):
    env = {**browser.environment(tmp_path), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    out = subprocess.run(["augmix", "ui"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "http://127.0.0.1:9/#/experiments?workflowType=machine_learning" in out.stdout
    assert list(tmp_path.iterdir()) == []  # no store made


# --------------------------------------------------------------------------------------------
# Through the CLI: refusals leave no run; interruptions
# --------------------------------------------------------------------------------------------

CELL = ["--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"]
EPOCH_LINE = "[train] epoch"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A smoke work folder with digits downloaded, and params-long.yaml: 4 epochs, time to interrupt."""
    wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("tracking-cli"), SMOKE_PARAMS)
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw["archs"]["wrn16_1"]["epochs"] = 4
    (wd / "params-long.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = cli_env(tmp_path_factory.mktemp("download-store"))
    subprocess.run(["augmix", "download", "--dataset", "digits"], cwd=wd, env=env, check=True, capture_output=True,
                   text=True, timeout=600)
    return wd


def cli_env(store: Path) -> dict[str, str]:
    env = browser.environment(store)
    env = {k: v for k, v in env.items() if not k.startswith("DVC_")}
    env.update({"DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def one_line(stderr: str, start: str) -> str:
    """The single `augmix:` line the command ended with (progress lines may come before it)."""
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    ours = [line for line in stderr.splitlines() if line.startswith("augmix:")]
    assert len(ours) == 1 and ours[0].startswith(start), stderr[-3000:]
    assert stderr.rstrip().splitlines()[-1] == ours[0], stderr[-3000:]
    return ours[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["text file as --checkpoint", "unknown arch", "missing dataset folder"])
def test_input_refused_before_work_starts_leaves_no_run(workdir, tmp_path, case):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    empty = tmp_path / "empty"  # a work folder where nothing was downloaded
    empty.mkdir()
    shutil.copy(workdir / "params.yaml", empty / "params.yaml")
    argv, cwd, needle = {
        "text file as --checkpoint": (["evaluate", *CELL, "--checkpoint", str(notes)], workdir,
                                      "not a PyTorch checkpoint"),
        "unknown arch": (["train", "--dataset", "digits", "--arch", "vgg16", "--method", "standard"], workdir, "vgg16"),
        "missing dataset folder": (["train", *CELL], empty, "data/raw/digits"),
    }[case]
    store = tmp_path / "store"
    store.mkdir()
    out = subprocess.run(["augmix", *argv], cwd=cwd, env=cli_env(store), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, (out.stdout[-1000:], out.stderr[-2000:])
    assert len(out.stderr.strip().splitlines()) == 1 and needle in one_line(out.stderr, "augmix: error: ")
    assert runs_in(store) == []


def start_training(workdir: Path, env: dict, seed: int) -> tuple[subprocess.Popen, Path]:
    """Start a 4-epoch training and return once its first checkpoint is on disk (the process then
    trains epoch 2)."""
    ckpt = workdir / "checkpoints" / "digits" / "wrn16_1" / "standard" / f"seed{seed}" / "last.pt"
    proc = subprocess.Popen(["augmix", "train", "--params", "params-long.yaml", *CELL, "--seed", str(seed)],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith(EPOCH_LINE):
            break
    else:
        raise AssertionError(f"training ended before its first epoch: {proc.wait()}\n{proc.stderr.read()[-3000:]}")
    deadline = time.monotonic() + 60
    while not ckpt.exists():  # printed just before the checkpoint is written
        assert time.monotonic() < deadline, "no checkpoint after epoch 1"
        time.sleep(0.05)
    return proc, ckpt


def train_run(store: Path, seed: int) -> list:
    return sorted((r for r in runs_in(store) if r.data.tags.get("stage") == "train"
                   and r.data.tags.get("seed") == str(seed)), key=lambda r: r.info.start_time)


@pytest.mark.slow
@pytest.mark.parametrize("sig,status,seed", [(signal.SIGINT, 130, 11), (signal.SIGTERM, 143, 12)],
                         ids=["SIGINT", "SIGTERM"])
def test_sigint_and_sigterm_end_training_with_one_line_and_a_killed_run(workdir, tmp_path, sig, status, seed):
    store = tmp_path / "store"
    store.mkdir()
    proc, ckpt = start_training(workdir, cli_env(store), seed)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr[-3000:]
    one_line(stderr, f"augmix: interrupted ({sig.name})")
    [run] = train_run(store, seed)
    assert run.info.status == "KILLED"
    assert run.data.metrics["resources/wall_seconds"] > 0  # what it cost is logged even so
    state = torch.load(ckpt, weights_only=True)  # kept, whole
    assert state["epoch"] >= 1 and len(state["log"]) == state["epoch"]
    assert not (workdir / "results" / "digits" / "wrn16_1" / "standard" / f"seed{seed}" / "model.pt").exists()


@pytest.mark.slow
def test_sigkill_leaves_a_running_run_that_the_restart_closes_and_resumes_from(workdir, tmp_path):
    seed = 13
    store = tmp_path / "store"
    store.mkdir()
    env = cli_env(store)
    proc, ckpt = start_training(workdir, env, seed)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    [killed] = train_run(store, seed)
    assert killed.info.status == "RUNNING"  # nobody could say otherwise
    state = torch.load(ckpt, weights_only=True)
    seconds_before = float(state["seconds"])

    out = subprocess.run(["augmix", "train", "--params", "params-long.yaml", *CELL, "--seed", str(seed)],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"after epoch {state['epoch']}" in out.stdout
    old, new = train_run(store, seed)
    assert old.info.run_id == killed.info.run_id and old.info.status == "KILLED"
    assert new.info.status == "FINISHED"
    assert new.data.tags["resumed_from_run"] == killed.info.run_id
    assert new.data.tags["resumed_from_epoch"] == str(state["epoch"])
    summary = json.loads((workdir / "results" / "digits" / "wrn16_1" / "standard" / f"seed{seed}"
                          / "train_summary.json").read_text())
    # Total seconds across segments: the killed segment's (from its checkpoint) and this one's.
    assert summary["seconds_this_segment"] < summary["seconds"]
    assert new.data.metrics["seconds_total"] == pytest.approx(seconds_before + summary["seconds_this_segment"],
                                                              abs=0.02)
    assert new.data.metrics["seconds_total"] == pytest.approx(summary["seconds"])
