"""Real pipeline runs of the tiny config: `dvc repro` and `snakemake` in temporary copies of the repo,
then the MLflow store read back through the MLflow client (runs, tags, metrics, artifacts)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from augmix import pipeline, tracking

from conftest import REPO, SMOKE_PARAMS

pytestmark = pytest.mark.slow  # real dvc repro / snakemake runs of the smoke config

CELLS = [("digits", "wrn16_1", "standard", "seed1"), ("digits", "wrn16_1", "augmix", "seed1")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the smoke pipeline once through DVC and once through Snakemake, each in its own copy."""
    store = tmp_path_factory.mktemp("store")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tracking.ROOT_ENV, str(store))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv(tracking.PARENT_ENV, raising=False)
        for runner in ("dvc", "snakemake"):
            wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp(runner), SMOKE_PARAMS)
            pipeline.repro(runner=runner, cwd=wd, jobs=1)
            out[runner] = wd
        out["uri"] = tracking.tracking_uri()
        yield out


@pytest.mark.parametrize("runner", ["dvc", "snakemake"])
def test_pipeline_writes_every_output(runs, runner):
    wd = runs[runner]
    c_dir = wd / "data/corrupted/digits/C"
    labels = np.load(c_dir / "labels.npy")
    for name in ("gaussian_noise", "contrast"):
        arr = np.load(c_dir / f"{name}.npy")
        assert arr.shape == (2 * 200, 32, 32, 3) and arr.dtype == np.uint8 and len(labels) == 400
    for cell in CELLS:
        res = wd / "results" / "/".join(cell)
        metrics = json.loads((res / "metrics.json").read_text())
        assert 0.0 <= metrics["clean_error"] <= 1.0 and 0.0 <= metrics["corruption_error"] <= 1.0
        frame = pd.read_csv(res / "eval.csv")
        assert set(frame.corruption) == {"clean", "gaussian_noise", "contrast"}
        assert frame[frame.benchmark == "c"].severity.tolist() == [1, 5, 1, 5]
        assert (frame.n[frame.benchmark == "c"] == 200).all()
        summary = json.loads((res / "train_summary.json").read_text())
        assert summary["n_train"] == 192 and summary["epochs"] == 1
        resolved = yaml.safe_load((res / "params.resolved.yaml").read_text())
        assert resolved["job"] == {"dataset": "digits", "arch": "wrn16_1", "method": cell[2], "seed": 1}
        assert set(resolved["params"]) == {"datasets", "archs", "methods", "train", "subset"}  # the job's keys only
        assert set(resolved["params"]["methods"]) == {cell[2]}
    assert (wd / "report" / "report.md").is_file()


def test_cpu_runs_are_deterministic_across_orchestrators(runs):
    for cell in CELLS:
        a = json.loads((runs["dvc"] / "results" / "/".join(cell) / "metrics.json").read_text())
        b = json.loads((runs["snakemake"] / "results" / "/".join(cell) / "metrics.json").read_text())
        assert a == b, cell
        assert a["provenance"]["git_commit"] == tracking.git_info(REPO)["git_commit"]  # the project's, not the folder's


def test_mlflow_holds_parent_and_child_runs(runs):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=runs["uri"])
    exp = client.get_experiment_by_name("augmix")
    assert exp is not None and exp.artifact_location.startswith("file://")
    all_runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in all_runs if r.data.tags.get("stage") == "pipeline"]
    assert {p.data.tags["runner"] for p in parents} == {"dvc", "snakemake"}
    for parent in parents:
        assert parent.info.status == "FINISHED"
        children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        stages = sorted(r.data.tags["stage"] for r in children)
        assert stages == ["corrupt", "download", "evaluate", "evaluate", "report", "train", "train"]
        for run in children:
            tags = run.data.tags
            assert tags["runner"] == parent.data.tags["runner"]
            assert len(tags["git_commit"]) in (40, 7) or tags["git_commit"] == "unknown"
            assert len(tags["params_hash"]) == 12 and tags["dataset"] == "digits" if tags["stage"] != "report" else True
            assert run.info.status == "FINISHED"
        train = [r for r in children if r.data.tags["stage"] == "train"]
        assert {r.data.tags["method"] for r in train} == {"standard", "augmix"}
        for run in train:
            method = run.data.tags["method"]
            assert run.data.params["method"] == method and run.data.params["seed"] == "1"
            assert run.info.run_name == f"train · digits · wrn16_1 · {method} · seed 1"
            if method == "augmix":
                assert run.data.params["methods.augmix.jsd_weight"] == "12.0"
            assert not any(k.startswith("methods.") and not k.startswith(f"methods.{method}.") for k in run.data.params)
            history = client.get_metric_history(run.info.run_id, "test_error")
            assert [m.step for m in history] == [1]
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"train_log.csv", "train_summary.json", "params.resolved.yaml"} <= names
        for run in (r for r in children if r.data.tags["stage"] == "evaluate"):
            assert 0 <= run.data.metrics["clean_error"] <= 1 and "corruption_error" in run.data.metrics
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"metrics.json", "eval.csv"} <= names
        report = next(r for r in children if r.data.tags["stage"] == "report")
        assert client.list_artifacts(report.info.run_id), "report artifacts missing"
        parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert "params.yaml" in parent_files


def test_dvc_reruns_only_what_a_param_change_touches(runs):
    wd = runs["dvc"]
    status = subprocess.run(["dvc", "status"], cwd=wd, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status
    params = yaml.safe_load((wd / "params.yaml").read_text())
    params["eval"]["calib_mode"] = "corrected"
    (wd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry = subprocess.run(["dvc", "repro", "--dry"], cwd=wd, capture_output=True, text=True, check=True).stdout
    planned = {line[2:] for line in dry.splitlines() if line.startswith("> ")}
    assert planned == {"augmix check --stamp .augmix/params-ok",
                       "augmix evaluate --dataset digits --arch wrn16_1 --method standard --seed 1",
                       "augmix evaluate --dataset digits --arch wrn16_1 --method augmix --seed 1",
                       "augmix report"}
