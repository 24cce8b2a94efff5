"""Shared fixtures: the repository root, the smoke params, a prepared pipeline work folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from augmix import config

REPO = Path(__file__).resolve().parents[1]
SMOKE_OVERLAY = REPO / "tests" / "smoke" / "params.yaml"
BIN = Path(sys.executable).parent


def _compose_smoke() -> Path:
    """The smoke overlay over params.yaml, as pipeline.prepare_workdir composes it (one file per session)."""
    out = Path(tempfile.mkdtemp(prefix="augmix-smoke-")) / "params.yaml"
    out.write_text(config.compose_text(REPO / "params.yaml", SMOKE_OVERLAY))
    return out


SMOKE_PARAMS = _compose_smoke()

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The console scripts (augmix, dvc, snakemake) live beside this interpreter.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture()
def repo() -> Path:
    return REPO


@pytest.fixture()
def one_torch_thread():
    """Torch's CPU kernels (the corruption device path, zoom blur, the normals) on one thread: on a
    busy two-core machine its second thread waits on other processes and those tests slow down tenfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tracking_env(tmp_path, monkeypatch):
    """Point MLflow at a fresh SQLite store in tmp_path (the real store, not a mock)."""
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("AUGMIX_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AUGMIX_PARENT_RUN_ID", raising=False)
    return root
