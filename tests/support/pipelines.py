"""A variant of the smoke config run by `dvc repro` in a work folder of its own (real runs, real store)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from augmix import pipeline

from conftest import REPO, SMOKE_OVERLAY


def smoke_variant(folder: Path, edit: Callable[[dict], None]) -> Path:
    """A work folder in `folder`/wd whose overlay is the smoke overlay changed in place by `edit`."""
    raw = yaml.safe_load(SMOKE_OVERLAY.read_text())
    edit(raw)
    overlay = folder / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(raw))
    return pipeline.prepare_workdir(REPO, folder / "wd", overlay)


def repro(wd: Path, store: Path) -> dict[str, str]:
    """`dvc repro` in `wd`, logging to the MLflow store in `store`; it must succeed. The environment
    it ran with, for the commands a test runs after it."""
    env = {**os.environ, "AUGMIX_PROJECT_ROOT": str(store), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["dvc", "repro"], cwd=wd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env
