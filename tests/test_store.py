"""One store per project: jobs run from a work folder inside the checkout (demo/) and from the checkout
itself log to the checkout's mlflow.db (read back with the MLflow client)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from augmix import pipeline

from conftest import REPO, SMOKE_OVERLAY, SMOKE_PARAMS


@pytest.mark.slow
def test_jobs_from_the_work_folder_and_the_root_land_in_one_store(tmp_path):
    from mlflow.tracking import MlflowClient

    root = tmp_path / "checkout"  # a stand-in checkout: what makes a folder the project is its pyproject
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(SMOKE_PARAMS, root / "params.yaml")
    wd = pipeline.prepare_workdir(REPO, root / "demo", SMOKE_OVERLAY)
    env = {k: v for k, v in os.environ.items() if k not in ("AUGMIX_PROJECT_ROOT", "MLFLOW_TRACKING_URI",
                                                            "AUGMIX_PARENT_RUN_ID", "DVC_ROOT")}
    for cwd in (wd, root):
        done = subprocess.run(["augmix", "download", "--dataset", "digits"], cwd=cwd, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "mlflow.db").is_file() and not (wd / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.data.tags["stage"] for r in runs] == ["download", "download"]
    assert {r.info.status for r in runs} == {"FINISHED"}
