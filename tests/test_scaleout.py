"""Scale-out: the SLURM profile (dry run of the paper grid, and real submissions to a fake `sbatch`),
and the same tracking code logging to an MLflow server backed by a real PostgreSQL server."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from augmix import pipeline, tracking

from conftest import REPO, SMOKE_PARAMS
from support import services
from support.workers import concurrent_stage_runs

pytestmark = pytest.mark.slow  # PostgreSQL-backed MLflow server, SLURM submissions through Snakemake

PROFILE = "workflow/profiles/slurm"
PAPER = yaml.safe_load((REPO / "params.yaml").read_text())
N_SEEDS = len(PAPER["grid"]["seeds"])
N_CELLS = N_SEEDS * (len(PAPER["grid"]["datasets"]) * len(PAPER["grid"]["archs"]) * len(PAPER["grid"]["methods"])
                     + len(PAPER["ablation"]["datasets"]) * len(PAPER["ablation"]["archs"])
                     * len(PAPER["ablation"]["methods"]))

# What the profile promises per rule (workflow/profiles/slurm/config.yaml), as Snakemake resolves it.
EXPECTED = {
    "corrupt": {"gpu": "1", "cpus_per_gpu": "4", "runtime": "60", "mem_mb": "32000", "slurm_partition": "gpu"},
    "train": {"gpu": "1", "cpus_per_gpu": "8", "runtime": "720", "mem_mb": "32000", "slurm_partition": "gpu"},
    "evaluate": {"gpu": "1", "cpus_per_gpu": "4", "runtime": "60", "mem_mb": "32000", "slurm_partition": "gpu"},
    "download": {"cpus_per_task": "2", "runtime": "30", "mem_mb": "4000"},
    "report": {"cpus_per_task": "1", "runtime": "15", "mem_mb": "4000"},
}
# ... and the sbatch flags each GPU rule must reach the scheduler with.
SBATCH = {
    "corrupt": {"-p": "gpu", "-t": "60", "--mem": "32000", "--gpus": "1", "--cpus-per-gpu": "4"},
    "train": {"-p": "gpu", "-t": "720", "--mem": "32000", "--gpus": "1", "--cpus-per-gpu": "8"},
    "evaluate": {"-p": "gpu", "-t": "60", "--mem": "32000", "--gpus": "1", "--cpus-per-gpu": "4"},
}

needs_slurm_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pip install 'snakemake-executor-plugin-slurm>=2.8,<3')",
)


@pytest.fixture(scope="module")
def paper_workdir(tmp_path_factory) -> Path:
    return pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("paper"), REPO / "params.yaml")


def _jobs(dry_run: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) for every job block of a Snakemake dry run."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.+)$", block, re.M)
        if rule and res:
            pairs = (item.split("=", 1) for item in res.group(1).split(", "))
            jobs.append((rule.group(1), {k.strip(): v.strip() for k, v in pairs}))
    return jobs


@needs_slurm_plugin
def test_slurm_profile_dry_run_resolves_per_rule_resources(paper_workdir):
    out = subprocess.run(["snakemake", "--workflow-profile", PROFILE, "--dry-run"], cwd=paper_workdir,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert f"Using workflow specific profile {PROFILE}" in text
    jobs = _jobs(text)
    counts = {rule: sum(r == rule for r, _ in jobs) for rule in EXPECTED}
    n_data = len(PAPER["grid"]["datasets"])
    assert counts == {"download": n_data, "corrupt": n_data, "train": N_CELLS, "evaluate": N_CELLS, "report": 1}
    assert {rule for rule, _ in jobs} == {*EXPECTED, "all"}
    for rule, resources in jobs:
        if rule == "all":  # the target rule runs nothing
            continue
        for key, value in EXPECTED[rule].items():
            assert resources.get(key) == value, (rule, key, resources)
        # cpus_per_task overrides cpus_per_gpu in the plugin: a GPU rule must not carry both.
        if "gpu" in resources:
            assert "cpus_per_task" not in resources, (rule, resources)


def _sbatch_flags(argv: list[str]) -> dict[str, str]:
    """sbatch's argv as {flag: value}, for both `--flag value` and `--flag=value` spellings."""
    flags, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and "=" in arg:
            key, value = arg.split("=", 1)
            flags[key] = value
        elif arg.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            flags[arg] = argv[i + 1]
            i += 1
        else:
            flags[arg] = ""
        i += 1
    return flags


@needs_slurm_plugin
def test_slurm_submissions_carry_the_profile_resources(paper_workdir, tmp_path):
    """Drive the SLURM executor for real: one corrupt, one train and one evaluate job go to a fake
    `sbatch` that records its command line and refuses the job (so nothing runs)."""
    wd = paper_workdir
    # Inputs so that exactly these three jobs are ready: raw data, and one trained cell to evaluate.
    for d in ("data/raw/cifar10", "data/raw/cifar100", "data/corrupted/cifar10"):
        (wd / d).mkdir(parents=True, exist_ok=True)
    trained = wd / "results/cifar10/allconv/standard/seed1"
    trained.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "params.resolved.yaml", "train_summary.json", "train_log.csv"):
        (trained / name).write_text("stand-in")
    log = tmp_path / "slurm_calls.jsonl"
    fake = services.fake_slurm_bin(tmp_path / "bin", log)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/never-contacted"}
    targets = ["data/corrupted/cifar100", "results/cifar10/wrn40_2/augmix/seed1/model.pt",
               "results/cifar10/allconv/standard/seed1/eval.csv"]
    out = subprocess.run(["snakemake", "--workflow-profile", PROFILE, "--retries", "0", "--keep-going",
                          "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
                          *targets], cwd=wd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0  # the fake cluster refuses every job
    assert "fake cluster: submission recorded" in out.stdout + out.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    submissions = {}
    for call in (c for c in calls if c["tool"] == "sbatch"):
        flags = _sbatch_flags(call["argv"])
        rule = re.match(r"rule_(\w+?)_wildcards", flags["--comment"]).group(1)
        submissions[rule] = flags
    assert set(submissions) == set(SBATCH)
    for rule, want in SBATCH.items():
        flags = submissions[rule]
        for key, value in want.items():
            assert flags.get(key) == value, (rule, key, flags)
        assert "--cpus-per-task" not in flags, (rule, flags)
        assert "--export" in flags and flags["--export"] == "ALL"  # MLFLOW_TRACKING_URI reaches the job
        assert flags["-D"] == str(wd)
    job = shlex.split(submissions["train"]["--wrap"])
    assert "train:dataset=cifar10,arch=wrn40_2,method=augmix,seed=1" in job
    assert not (wd / "results/cifar10/wrn40_2").exists()  # nothing ran locally


@pytest.fixture(scope="module")
def imagenet_workdir(tmp_path_factory) -> Path:
    """The paper grid plus ImageNet ResNet-50 jobs on 8 GPUs each."""
    tmp = tmp_path_factory.mktemp("paper-imagenet")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["imagenet"].update(datasets=["imagenet"], nproc=8)
    raw["datasets"]["imagenet"]["dir"] = str(tmp / "imagenet")
    for split in ("train", "val"):  # the folder the check stage looks for (a plan reads no image)
        (tmp / "imagenet" / split / "n01440764").mkdir(parents=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return pipeline.prepare_workdir(REPO, tmp / "wd", tmp / "params.yaml")


IMAGENET_EXPECTED = {
    "imagenet_train": {"gpu": "8", "cpus_per_gpu": "12", "runtime": "4320", "mem_mb": "256000"},
    "imagenet_evaluate": {"gpu": "1", "cpus_per_gpu": "16", "runtime": "480", "mem_mb": "64000"},
    "imagenet_corrupt": {"gpu": "1", "cpus_per_gpu": "16", "runtime": "1440", "mem_mb": "64000"},
    "imagenet_download": {"cpus_per_task": "2", "runtime": "30", "mem_mb": "4000"},
}


@needs_slurm_plugin
def test_multi_gpu_imagenet_training_is_one_slurm_job_per_cell(imagenet_workdir, tmp_path):
    """imagenet.nproc GPUs per ImageNet training job: the dry run resolves them, a real submission to a
    fake `sbatch` asks for them, and the job's command is the plain `augmix train` (torchrun inside)."""
    wd = imagenet_workdir
    out = subprocess.run(["snakemake", "--workflow-profile", PROFILE, "--dry-run"], cwd=wd,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = _jobs(out.stdout + out.stderr)
    n_methods = len(PAPER["imagenet"]["methods"])
    counts = {rule: sum(r == rule for r, _ in jobs) for rule in IMAGENET_EXPECTED}
    assert counts == {"imagenet_train": n_methods, "imagenet_evaluate": n_methods, "imagenet_corrupt": 1,
                      "imagenet_download": 1}
    assert sum(r == "train" for r, _ in jobs) == N_CELLS  # the CIFAR grid is unchanged
    for rule, resources in jobs:
        for key, value in IMAGENET_EXPECTED.get(rule, {}).items():
            assert resources.get(key) == value, (rule, key, resources)

    (wd / "data/raw/imagenet").mkdir(parents=True)
    log = tmp_path / "slurm_calls.jsonl"
    fake = services.fake_slurm_bin(tmp_path / "bin", log)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/never-contacted"}
    out = subprocess.run(["snakemake", "--workflow-profile", PROFILE, "--retries", "0", "--keep-going",
                          "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
                          "results/imagenet/resnet50/augmix/seed1/model.pt"], cwd=wd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert "fake cluster: submission recorded" in out.stdout + out.stderr, out.stderr[-3000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (flags,) = [_sbatch_flags(c["argv"]) for c in calls if c["tool"] == "sbatch"]
    assert flags["--gpus"] == "8" and flags["--cpus-per-gpu"] == "12" and flags["-t"] == "4320"
    assert "--cpus-per-task" not in flags
    assert "imagenet_train:dataset=imagenet,arch=resnet50,method=augmix,seed=1" in shlex.split(flags["--wrap"])


# --------------------------------------------------------------------------------------------
# MLflow server on PostgreSQL
# --------------------------------------------------------------------------------------------

PG_REASON = services.postgres_missing_reason()
CELL_STAGE = "evaluate@digits-wrn16_1-standard-1"


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    if PG_REASON:
        pytest.skip(PG_REASON)
    work = tmp_path_factory.mktemp("mlflow-server")
    with services.postgres() as pg, services.mlflow_server(pg.uri, work / "artifacts", work) as server:
        yield pg, server, work


@pytest.fixture(scope="module")
def server_pipeline(pg_server, tmp_path_factory):
    """The smoke pipeline up to one evaluated cell through `augmix repro` (DVC), logging to the server:
    download, corrupt, train and evaluate of digits/wrn16_1/standard under one parent run."""
    pg, server, work = pg_server
    root = tmp_path_factory.mktemp("no-local-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server.url)
        mp.setenv(tracking.ROOT_ENV, str(root))  # where a local store would wrongly appear
        mp.delenv(tracking.PARENT_ENV, raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("wd"), SMOKE_PARAMS)
        pipeline.repro(runner="dvc", cwd=wd, extra=[CELL_STAGE])
    return pg, server, work, wd, root


def test_server_binds_loopback_only(pg_server):
    _, server, _ = pg_server
    assert services.listening_addresses(server.proc.pid) == {"127.0.0.1"}


def test_pipeline_logs_to_a_postgresql_backed_server(server_pipeline):
    from mlflow.tracking import MlflowClient

    pg, server, work, wd, root = server_pipeline
    assert (wd / "results/digits/wrn16_1/standard/seed1/metrics.json").is_file()
    assert not (root / "mlflow.db").exists() and not (wd / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("augmix")
    assert exp is not None
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # proxied by the server
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == ["corrupt", "download", "evaluate", "train"]
    assert all(r.info.status == "FINISHED" and r.data.tags["runner"] == "dvc" for r in children)
    train = next(r for r in children if r.data.tags["stage"] == "train")
    assert [m.step for m in client.get_metric_history(train.info.run_id, "test_error")] == [1]
    assert train.data.params["archs.wrn16_1.batch_size"] == "64" and train.data.tags["method"] == "standard"
    assert {"train_log.csv", "train_summary.json"} <= {a.path for a in client.list_artifacts(train.info.run_id)}
    # The artifact went through the server into its --artifacts-destination.
    stored = list((work / "artifacts").rglob(f"{train.info.run_id}/artifacts/train_summary.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["epochs"] == 1
    evaluate = next(r for r in children if r.data.tags["stage"] == "evaluate")
    assert 0.0 <= evaluate.data.metrics["clean_error"] <= 1.0
    assert "metrics.json" in {a.path for a in client.list_artifacts(evaluate.info.run_id)}
    # The runs really live in PostgreSQL.
    import psycopg2

    with psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.database) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
        assert dict(cur.fetchall()) == {"FINISHED": 5}
        cur.execute("SELECT count(DISTINCT key) FROM metrics WHERE key = 'clean_error'")
        assert cur.fetchone()[0] == 1


def test_concurrent_stage_runs_against_the_server(pg_server, tmp_path):
    """Four processes open stage runs on the server at once (the SLURM situation); none is lost."""
    _, server, _ = pg_server
    found = concurrent_stage_runs(4, uri=server.url, experiment="concurrency-server", workdir=tmp_path)
    assert found["n_runs"] == 4 and found["statuses"] == {"FINISHED"}
    assert found["complete_metrics"] == 4 and found["reported_equals_stored"]
