"""The MLflow UI as a researcher sees it: headless Chromium (Playwright, the system's Chromium) against
`augmix ui` serving the store of a smoke pipeline run (`augmix repro`, DVC).

The researcher opens the page `augmix ui` names and lands on the experiment's runs table (the classic
ML view, not the GenAI one); shows the params columns dataset / arch / method / seed and the parent
run's headline metrics, expands the pipeline's parent run and finds every stage run by name; opens the
parent run and reads each evaluated model's clean and corruption error; opens a training run's system
metrics. Screenshots are saved as PNG (and kept under pytest's temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageStat

from augmix import pipeline, tracking

from conftest import REPO, SMOKE_PARAMS
from support import browser

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")]

TREE = "[data-testid=column-selector-tree] .du-bois-light-tree-treenode"
# The run-name cell's expand/collapse button for parent runs (MLflow 3.17 runs table).
EXPAND = 'button[data-component-id*="runnamecellrenderer"]'
PARAMS = ("dataset", "arch", "method", "seed")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding one whole smoke pipeline run (`augmix repro`, DVC runner): its parent run with
    the headline metrics and the report, and every stage run."""
    root = tmp_path_factory.mktemp("ui-store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tracking.ROOT_ENV, str(root))
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", tracking.PARENT_ENV):
            mp.delenv(var, raising=False)
        wd = pipeline.prepare_workdir(REPO, tmp_path_factory.mktemp("ui-wd"), SMOKE_PARAMS)
        pipeline.repro(runner="dvc", cwd=wd)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("augmix")
    return root, exp, client.search_runs([exp.experiment_id], max_results=100)


def assert_png(path: Path, min_size: tuple[int, int] = (800, 600)) -> None:
    """A real screenshot: a PNG of at least this size that is not one flat colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1], img.size
        assert max(ImageStat.Stat(img.convert("L")).stddev) > 5.0  # text and widgets, not a blank page


def tick_column(page, section: str, name: str) -> None:
    """In the open Columns menu, search `name` and click its box under `section` (Attributes,
    Metrics, Parameters, Tags): the tree lists each section's header, then its columns."""
    page.get_by_placeholder("Search columns").fill(name)
    page.locator(TREE).first.wait_for()
    page.wait_for_timeout(300)  # the tree re-renders after the search
    nodes = page.locator(TREE)
    current = ""
    for i in range(nodes.count()):
        node = nodes.nth(i)
        text = node.inner_text().strip()
        if "switcher_open" in (node.locator(".du-bois-light-tree-switcher").get_attribute("class") or ""):
            current = text  # a section header, e.g. "Parameters (4)"
        elif current.startswith(section) and text == name:
            node.locator(".du-bois-light-tree-checkbox").click()
            return
    raise AssertionError(f"the Columns menu has no {section} column {name!r}")


def table_rows(page) -> dict[str, dict[str, str]]:
    """The rendered runs table: run name -> {column id: cell text}."""
    rows = page.evaluate("""() => [...document.querySelectorAll(
            '.ag-center-cols-container .ag-row, .ag-pinned-left-cols-container .ag-row')]
        .map(r => [r.getAttribute('row-index'),
                   [...r.querySelectorAll('.ag-cell')]
                       .map(c => [c.getAttribute('col-id') || '', c.innerText.trim()])])""")
    by_index: dict[str, dict[str, str]] = {}
    for index, cells in rows:
        by_index.setdefault(index, {}).update(dict(cells))
    out = {}
    for cells in by_index.values():
        name = cells.get("attributes.`Run Name`", "").splitlines()[-1:]  # after the colour swatch's label
        if name:
            out[name[0]] = cells
    return out


def test_mlflow_ui_opens_on_runs_with_params_and_headline_metrics(store, tmp_path):
    root, exp, runs = store
    parent = next(r for r in runs if r.data.tags.get("stage") == "pipeline")
    stage_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["stage"] for r in stage_runs) == ["corrupt", "download", "evaluate", "evaluate",
                                                                "report", "train", "train"]
    train = next(r for r in stage_runs if r.info.run_name == "train · digits · wrn16_1 · augmix · seed 1")
    headline = {k: v for k, v in parent.data.metrics.items() if k.endswith(("/clean_error", "/corruption_error"))}
    assert sorted(headline) == [f"digits/wrn16_1/{m}/seed1/{k}" for m in ("augmix", "standard")
                                for k in ("clean_error", "corruption_error")]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with browser.augmix_ui(browser.environment(root), tmp_path) as ui, \
            browser.chromium(width=1920, height=1080) as page:
        # The page `augmix ui` names: the runs table, in the classic ML view.
        page.goto(ui.pages[exp.name])
        page.get_by_text(parent.info.run_name).first.wait_for()
        assert page.get_by_text("matching runs").count() >= 1
        assert f"/#/experiments/{exp.experiment_id}/runs?" in page.url and "workflowType=machine_learning" in page.url
        close = page.locator('button[data-component-id="mlflow.assistant.chat_panel.close"]')
        if close.count():
            close.click()  # the assistant's side panel narrows the table

        # Columns: the run identity as params, the parent's headline metrics; room made for them.
        page.get_by_role("button", name="Columns").click()
        for name in ("Dataset", "Source", "Models"):
            tick_column(page, "Attributes", name)
        for name in PARAMS:
            tick_column(page, "Parameters", name)
        for name in sorted(headline):
            tick_column(page, "Metrics", name)
        page.keyboard.press("Escape")

        # The pipeline's parent run, then its stage runs once expanded.
        page.locator(EXPAND).first.click()
        for r in stage_runs:
            page.get_by_text(r.info.run_name, exact=True).first.wait_for()
        rows = table_rows(page)
        assert {r.info.run_name for r in stage_runs} | {parent.info.run_name} <= set(rows), sorted(rows)
        for name, value in headline.items():
            assert float(rows[parent.info.run_name][f"metrics.`{name}`"]) == pytest.approx(value)
        assert {k: rows[train.info.run_name][f"params.`{k}`"] for k in PARAMS} == {
            "dataset": "digits", "arch": "wrn16_1", "method": "augmix", "seed": "1"}
        page.screenshot(path=shots / "runs.png")
        assert_png(shots / "runs.png")

        # The parent run: every evaluated model's headline numbers, and its stage runs.
        page.goto(f"{ui.url}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}?workflowType=machine_learning")
        for name in headline:
            page.get_by_text(name, exact=True).first.wait_for()
        text = page.inner_text("body")
        assert f"Metrics ({len(parent.data.metrics)})" in text and "Finished" in text
        page.get_by_text(train.info.run_name).first.wait_for()  # among its child runs
        page.screenshot(path=shots / "parent_run.png")
        assert_png(shots / "parent_run.png")

        # A training run's system metrics, sampled while it trained.
        page.goto(f"{ui.url}/#/experiments/{exp.experiment_id}/runs/{train.info.run_id}/system-metrics"
                  f"?workflowType=machine_learning")
        page.get_by_text("cpu_utilization_percentage").first.wait_for()
        assert page.get_by_text("system_memory_usage_megabytes").count() >= 1
        page.screenshot(path=shots / "train_system_metrics.png")
        assert_png(shots / "train_system_metrics.png")
    # Kept for a person to look at when the test is run by hand (pytest keeps the last tmp dirs).
    print(f"screenshots: {shots}")
