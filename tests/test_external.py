"""Released models beside ours: a model file declared under `external` is evaluated by the pipeline
(DVC) into results/external/<name> and shown in the report; bad model files are refused through the CLI
with one line, exit status 2, nothing written and no tracking run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
import torch

from augmix import pipeline
from augmix.cli import main
from augmix.models import build_model

from conftest import REPO, SMOKE_OVERLAY
from support.pipelines import repro, smoke_variant


def reference_checkpoint(path, arch="wrn16_1", num_classes=10, seed=0):
    """A checkpoint as the reference's cifar.py saves it: DataParallel keys under state_dict."""
    model = build_model(arch, num_classes, seed=seed)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "dataset": "digits", "model": "wrn", "state_dict": state, "best_acc": 0.5,
                "optimizer": {}}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A work folder with the digits downloaded and corrupted (so evaluation can run)."""
    tmp = tmp_path_factory.mktemp("ext")
    wd = pipeline.prepare_workdir(REPO, tmp / "wd", SMOKE_OVERLAY)
    env = {**os.environ, "AUGMIX_PROJECT_ROOT": str(tmp)}
    for cmd in (["augmix", "download", "--dataset", "digits"], ["augmix", "corrupt", "--dataset", "digits"]):
        subprocess.run(cmd, cwd=wd, env=env, check=True, capture_output=True)
    return wd


def _runs(store):
    from mlflow.tracking import MlflowClient

    db = store / "mlflow.db"
    if not db.exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def _bad(tmp, kind):
    path = tmp / f"{kind}.pt"
    good = tmp / "good.pt"
    digest = reference_checkpoint(good)
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    elif kind == "not_a_checkpoint":
        path.write_bytes(os.urandom(4096))
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    elif kind == "wrong_arch":
        reference_checkpoint(path, arch="wrn16_2")
    elif kind == "wrong_classes":
        reference_checkpoint(path, num_classes=100)
    elif kind == "sha256":
        path.write_bytes(good.read_bytes())
        return path, ["--sha256", "0" * 64], digest
    return path, [], digest


REFUSALS = {"truncated": "truncated", "not_a_checkpoint": "not", "html": "HTML", "wrong_arch": "do not fit wrn16_1",
            "wrong_classes": "class", "sha256": "SHA-256"}


@pytest.mark.slow  # augmix subprocesses build the work folder (about 10 s)
@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_bad_model_files_are_refused_with_one_line(folder, kind, tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("AUGMIX_PROJECT_ROOT", str(store))
    monkeypatch.chdir(folder)
    path, extra, _ = _bad(tmp_path, kind)
    out = tmp_path / "out"
    rc = main(["evaluate", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmix",
               "--checkpoint", str(path), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("augmix: error: "), err
    assert str(path) in err[0] and REFUSALS[kind].lower() in err[0].lower(), err[0]
    assert not out.exists()
    assert _runs(store) == []  # refused before any tracking run opened


@pytest.mark.slow
def test_a_reference_checkpoint_is_evaluated_by_the_cli(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUGMIX_PROJECT_ROOT", str(tmp_path))
    monkeypatch.chdir(folder)
    path = tmp_path / "ref.pt"
    digest = reference_checkpoint(path)
    assert main(["evaluate", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmix", "--checkpoint",
                 str(path), "--sha256", digest, "--out", str(tmp_path / "out")]) == 0
    assert "reference format" in capsys.readouterr().out  # auto says which format it chose
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["clean_error"] <= 1


@pytest.mark.slow
def test_an_external_model_is_evaluated_by_dvc_and_reported(tmp_path):
    model = tmp_path / "released.pt"
    digest = reference_checkpoint(model, seed=3)
    released = {"label": "released AugMix WRN-16-1", "file": str(model), "sha256": digest, "arch": "wrn16_1",
                "dataset": "digits", "method": "augmix", "format": "reference"}
    wd = smoke_variant(tmp_path, lambda raw: raw.update(external={"released_wrn": released}))
    env = repro(wd, tmp_path)
    metrics = json.loads((wd / "results/external/released_wrn/metrics.json").read_text())
    assert metrics["model"] == "released AugMix WRN-16-1" and metrics["arch"] == "wrn16_1"
    report = (wd / "report/report.md").read_text()
    assert "released AugMix WRN-16-1" in report
    # a tampered file is refused by its job: change the weights, keep the declared hash
    reference_checkpoint(model, seed=4)
    result = subprocess.run(["dvc", "repro"], cwd=wd, capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "SHA-256" in result.stdout + result.stderr
