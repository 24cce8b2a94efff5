"""The MLflow UI as a user sees it: headless Chromium against `mlflow ui` on loopback, serving the
store of a smoke pipeline run. The user opens the experiment, expands the pipeline's parent run,
sees every stage run, opens a training run and sees its metrics. Screenshots are saved as PNG."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from augmix import pipeline, tracking

from conftest import REPO, SMOKE_PARAMS
from support import services

pytestmark = [
    pytest.mark.skipif(services.chromium_binary() is None,
                       reason=f"chromium not found; install it with `{services.APT_CHROMIUM}`"),
    pytest.mark.skipif(importlib.util.find_spec("aiohttp") is None,
                       reason="aiohttp (the DevTools WebSocket client) is not installed: pip install aiohttp"),
]

# The run-name cell's expand/collapse button for parent runs (MLflow 3.17 runs table).
EXPAND = 'button[data-component-id*="runnamecellrenderer"]'


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store holding one smoke pipeline run (`augmix repro`, DVC runner) up to one evaluated
    cell (download, corrupt, train, evaluate: the full smoke grid would double the time)."""
    root = tmp_path_factory.mktemp("ui-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tracking.ROOT_ENV, str(root))
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", tracking.PARENT_ENV):
            mp.delenv(var, raising=False)
        wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("ui-wd"), SMOKE_PARAMS)
        pipeline.repro(runner="dvc", cwd=wd, extra=["evaluate@digits-wrn16_1-augmix"])
        uri = tracking.tracking_uri()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("augmix")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return uri, exp, runs


def assert_png(path: Path, min_size: tuple[int, int] = (800, 600)) -> None:
    """A real screenshot: a PNG of at least this size that is not one flat colour."""
    from PIL import Image, ImageStat

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1], img.size
        assert max(ImageStat.Stat(img.convert("L")).stddev) > 5.0  # text and widgets, not a blank page


def test_mlflow_ui_shows_experiment_runs_and_metrics(store, tmp_path):
    from support.browser import browser

    uri, exp, runs = store
    parent = next(r for r in runs if r.data.tags.get("stage") == "pipeline")
    stage_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["stage"] for r in stage_runs) == ["corrupt", "download", "evaluate", "train"]
    train = next(r for r in stage_runs if r.data.tags["stage"] == "train")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with services.mlflow_ui(uri, tmp_path) as ui:
        assert services.listening_addresses(ui.proc.pid) == {"127.0.0.1"}
        with browser(tmp_path / "chromium-profile") as page:
            # The experiment's runs table: the pipeline's parent run, then its stage runs once expanded.
            page.goto(f"{ui.url}/#/experiments/{exp.experiment_id}/runs")
            page.wait_for_text(exp.name, parent.info.run_name, timeout=90)
            assert page.click_all(EXPAND) >= 1
            # Names are cut with an ellipsis on screen; the table cells hold them whole.
            page.wait_for_text(*(r.info.run_name for r in stage_runs), timeout=60)
            assert f"{len(stage_runs) + 1} matching runs" in page.text()
            assert_png(page.screenshot(shots / "runs.png"))

            # One training run: its name, its experiment and its logged metrics and params.
            page.goto(f"{ui.url}/#/experiments/{exp.experiment_id}/runs/{train.info.run_id}")
            text = page.wait_for_text(train.info.run_name, parent.info.run_name, "test_error", "train_loss",
                                      timeout=90)
            assert exp.name in text and "Finished" in text
            assert f"{train.data.metrics['test_error']:.4g}"[:4] in text
            assert page.scroll_to_text("Metrics (")  # what a user scrolls down to
            time.sleep(0.5)
            assert_png(page.screenshot(shots / "train_run.png"))
    # Kept for a person to look at when the test is run by hand (pytest keeps the last tmp dirs).
    print(f"screenshots: {shots}")
