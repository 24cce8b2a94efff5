"""Experiments in a work folder, on real runs of the smoke config: `dvc exp run -S` re-runs exactly
what a key can change, refuses a bad value before any output is removed, keeps a stopped training's
checkpoint across a run-time key change; `augmix exps` and `augmix plan` read what DVC records; the
report's figures are DVC plots and `dvc plots show` draws offline.

One completed `dvc repro` of tests/smoke/params.yaml (module fixture) is copied for each test, so the
tests do not see each other's experiments. The quick tests at the end need no run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from augmix import experiments, pipeline

from conftest import REPO, SMOKE_OVERLAY
from support import browser

CHECK = "check"
CELL = "digits/wrn16_1/{}/seed1"
TRAIN = {m: f"train@digits-wrn16_1-{m}-1" for m in ("standard", "augmix")}
EVAL = {m: f"evaluate@digits-wrn16_1-{m}-1" for m in ("standard", "augmix")}
REPORT = "report"
KEPT = ("model.pt", "train_log.csv", "train_summary.json", "metrics.json")


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})


def ok(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = run(cmd, cwd)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def ran(result: subprocess.CompletedProcess) -> set[str]:
    """The stages whose command DVC ran, from its own output."""
    return set(re.findall(r"^Running stage '([^']+)':", result.stdout + result.stderr, flags=re.M))


def digests(wd: Path) -> dict[str, str]:
    """SHA-256 of every file under results/ (DVC-tracked outputs and metrics alike)."""
    return {p.relative_to(wd).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((wd / "results").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> Path:
    """A work folder of the smoke overlay after `dvc repro`, committed as `augmix demo` commits."""
    tmp = tmp_path_factory.mktemp("experiments")
    (tmp / "store").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUGMIX_PROJECT_ROOT", str(tmp / "store"))
        wd = pipeline.prepare_workdir(REPO, tmp / "base", SMOKE_OVERLAY)
        ok(["dvc", "repro"], wd)
        pipeline.commit(wd, "smoke run")
        yield wd


@pytest.fixture()
def workdir(completed, tmp_path) -> Path:
    wd = tmp_path / "wd"
    shutil.copytree(completed, wd, symlinks=True)
    return wd


@pytest.mark.slow
def test_the_work_folder_is_a_clean_git_and_dvc_repository(workdir):
    assert ok(["git", "status", "--porcelain"], workdir).stdout == ""
    assert "up to date" in ok(["dvc", "status"], workdir).stdout
    ignored = ok(["git", "check-ignore", "checkpoints/x", "dvc_plots/index.html", ".augmix/dvc-plots.html",
                  "mlflow.db"], workdir)
    assert len(ignored.stdout.split()) == 4


@pytest.mark.slow
def test_a_run_time_key_reruns_nothing(workdir):
    before = digests(workdir)
    result = ok(["dvc", "exp", "run", "-n", "quiet", "-S", "runtime.log_every=10"], workdir)
    assert ran(result) == set(), result.stdout
    assert "Ran experiment(s): quiet" in result.stdout
    assert yaml.safe_load((workdir / "params.yaml").read_text())["runtime"]["log_every"] == 10
    assert digests(workdir) == before


@pytest.mark.slow
def test_a_method_key_reruns_its_jobs_and_the_experiment_is_listed(workdir):
    standard = digests(workdir)
    result = ok(["dvc", "exp", "run", "-n", "sev4", "-S", "methods.augmix.severity=4"], workdir)
    assert ran(result) == {CHECK, TRAIN["augmix"], EVAL["augmix"], REPORT}, result.stdout
    after = digests(workdir)
    def standard_cells(d):
        return {k: v for k, v in d.items() if "/standard/" in k}

    assert standard_cells(after) == standard_cells(standard)

    shown = json.loads(ok(["dvc", "exp", "show", "--json"], workdir).stdout)
    exps = [r for e in shown for x in (e.get("experiments") or []) for r in x["revs"]]
    assert [r["name"] for r in exps] == ["sev4"]
    assert exps[0]["data"]["params"]["params.yaml"]["data"]["methods"]["augmix"]["severity"] == 4
    assert "sev4" in ok(["dvc", "exp", "show", "--md"], workdir).stdout

    # augmix exps: the changed key and the numbers of the metrics files, baseline (HEAD) and experiment.
    table = ok(["augmix", "exps"], workdir).stdout
    assert re.search(r"^sev4 \(\w{7}\)\s+success\s+methods\.augmix\.severity=4\s+" + re.escape(CELL.format("augmix")),
                     table, flags=re.M), table
    assert "(1 cell unchanged)" in table and max(len(line) for line in table.splitlines()) < 130
    rows = list(csv.DictReader(io.StringIO(ok(["augmix", "exps", "--csv"], workdir).stdout)))
    by = {(r["experiment"], r["cell"]): r for r in rows}
    assert {r["experiment"] for r in rows} == {"master", "sev4"} and len(rows) == 4
    for method in ("standard", "augmix"):
        cell = CELL.format(method)
        path = f"results/{cell}/metrics.json"
        head = json.loads(ok(["git", "show", f"HEAD:{path}"], workdir).stdout)
        now = json.loads((workdir / path).read_text())  # the workspace holds the experiment's results
        for name, metrics in (("master", head), ("sev4", now)):
            row = by[(name, cell)]
            assert float(row["clean_error"]) == metrics["clean_error"]
            assert float(row["corruption_error"]) == metrics["corruption_error"]
            assert row["methods.augmix.severity"] == ("3" if name == "master" else "4")


@pytest.mark.slow
@pytest.mark.parametrize("settings", [["methods.augmix.severity=high"],
                                      ["runtime.device=gpu", "methods.augmix.severity=4"]],
                         ids=["job-key", "run-time-key-with-a-job-key"])
def test_an_invalid_value_fails_before_any_output_is_removed(workdir, settings):
    before = digests(workdir)
    assert {k.rsplit("/", 1)[1] for k in before} >= set(KEPT)
    result = run(["dvc", "exp", "run", *(a for s in settings for a in ("-S", s))], workdir)
    assert result.returncode != 0
    assert ran(result) == {CHECK}
    key = settings[0].split("=")[0]
    assert f"params.yaml: {key}:" in result.stdout + result.stderr
    assert digests(workdir) == before
    # Back to the committed params: only the cheap check runs again (its stamp was removed).
    ok(["git", "checkout", "params.yaml"], workdir)
    assert ran(ok(["dvc", "repro"], workdir)) == {CHECK}
    assert digests(workdir) == before


@pytest.mark.slow
def test_a_bad_run_time_value_alone_runs_nothing_and_is_flagged(workdir):
    """No job declares run-time keys, so nothing runs to refuse `runtime.device=gpu` on its own:
    DVC records the experiment. Nothing is removed, `augmix exps` marks it invalid with config's
    message, and `augmix plan` (like any job that runs next) refuses the params file."""
    before = digests(workdir)
    result = ok(["dvc", "exp", "run", "-n", "gpu", "-S", "runtime.device=gpu"], workdir)
    assert ran(result) == set()
    assert digests(workdir) == before
    table = ok(["augmix", "exps"], workdir).stdout
    assert re.search(r"^gpu \(\w{7}\)\s+invalid\s+runtime\.device=gpu", table, flags=re.M), table
    assert "gpu: params.yaml: runtime.device: input should be 'auto', 'cpu' or 'cuda', got 'gpu'" in table
    refused = run(["augmix", "plan"], workdir)
    assert refused.returncode == 2 and "runtime.device" in refused.stderr


@pytest.mark.slow
def test_a_stopped_training_resumes_after_a_run_time_key_change(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["archs"]["wrn16_1"]["epochs"] = 3
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ok(["augmix", "train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmix", "--seed", "1",
        "--stop-after-epoch", "1"], workdir)
    result = ok(["dvc", "exp", "run", "-S", "runtime.log_every=10", TRAIN["augmix"]], workdir)
    assert ran(result) == {CHECK, TRAIN["augmix"]}
    assert "[train] resuming digits/wrn16_1/augmix/seed1 after epoch 1" in result.stdout
    summary = json.loads((workdir / "results" / CELL.format("augmix") / "train_summary.json").read_text())
    assert summary["epochs"] == 3 and summary["resumed_from_epoch"] == 1
    log = (workdir / "results" / CELL.format("augmix") / "train_log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3"]


@pytest.mark.slow
def test_plan_says_what_runs_and_why(workdir):
    assert ok(["augmix", "plan"], workdir).stdout == "dvc repro would run nothing: every job is up to date\n"
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["methods"]["augmix"]["severity"] = 5
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    jobs = json.loads(ok(["augmix", "plan", "--json"], workdir).stdout)
    assert [(j["stage"], j["reasons"], j["after"]) for j in jobs] == [
        (CHECK, ["params methods.augmix.severity"], []),
        (TRAIN["augmix"], ["params methods.augmix.severity"], []),
        (EVAL["augmix"], [], [TRAIN["augmix"]]),
        (REPORT, [], [TRAIN["augmix"], EVAL["augmix"]]),
    ]
    # What DVC itself then runs.
    assert ran(ok(["dvc", "repro"], workdir)) == {j["stage"] for j in jobs}


@pytest.mark.slow
def test_plan_works_on_a_fresh_work_folder_of_the_paper_params(tmp_path):
    wd = pipeline.prepare_workdir(REPO, tmp_path / "paper", None)
    dry = run(["dvc", "repro", "--dry"], wd)  # why `augmix plan` exists: DVC's dry run needs the inputs
    assert dry.returncode != 0 and "failed to reproduce" in dry.stderr
    jobs = json.loads(ok(["augmix", "plan", "--json"], wd).stdout)
    stages = ok(["dvc", "stage", "list", "--name-only"], wd).stdout.split()
    assert sorted(j["stage"] for j in jobs) == sorted(stages) and len(stages) > 100
    assert all(j["reasons"] == ["never run"] for j in jobs)
    order = [j["stage"] for j in jobs]
    assert order[0] == CHECK and order[-1] == REPORT
    assert order.index("download@cifar10") < order.index("corrupt@cifar10") < order.index(
        "evaluate@cifar10-wrn40_2-augmix-1")
    text = ok(["augmix", "plan"], wd).stdout
    assert text.startswith(f"dvc repro would run {len(stages)} jobs:")


@pytest.mark.slow
def test_report_figures_are_dvc_image_plots(workdir):
    shown = json.loads(ok(["dvc", "plots", "show", "--json"], workdir).stdout)["data"]
    pngs = {p.relative_to(workdir).as_posix() for p in (workdir / "report" / "plots").rglob("*.png")}
    assert pngs and {k for k, v in shown.items() if v[0]["type"] == "image"} == pngs
    assert {k for k, v in shown.items() if v[0]["type"] == "vega"} == {
        f"results/{CELL.format(m)}/train_log.csv" for m in ("standard", "augmix")}


@pytest.mark.slow
def _file_urls_only(blocked: list[str]):
    """A route handler (one argument: Playwright passes the request too to a handler that takes two)
    that lets file: URLs through and aborts, and records, every other request."""
    return lambda r: r.continue_() if r.request.url.startswith("file:") else (blocked.append(r.request.url), r.abort())


def test_dvc_plots_show_draws_offline(workdir, tmp_path):
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "plots"
    ok(["dvc", "plots", "show", "-o", str(out)], workdir)
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed" in page
    stock = tmp_path / "stock"
    ok(["dvc", "config", "--unset", "plots.html_template"], workdir)
    ok(["dvc", "plots", "show", "-o", str(stock)], workdir)
    assert "cdn.jsdelivr.net" in (stock / "index.html").read_text()  # DVC's own page needs the network
    for folder, drawn in ((out, 2), (stock, 0)):
        with browser.chromium() as tab:
            blocked: list[str] = []
            tab.route("**/*", _file_urls_only(blocked))
            tab.goto((folder / "index.html").as_uri())
            tab.wait_for_load_state("load")
            marks = "document.querySelectorAll('.vega-embed .marks').length"  # vega's drawing, canvas or svg
            if drawn:
                tab.wait_for_function(f"{marks} >= {drawn}")
            assert tab.evaluate(marks) == drawn
            images = tab.evaluate("[...document.images].map(i => i.naturalWidth)")
            assert len(images) == len(list((workdir / "report" / "plots").rglob("*.png")))
            assert all(w > 0 for w in images)
            assert bool(blocked) == (drawn == 0)


def test_the_offline_plots_template_inlines_vega_and_fills_as_dvc_fills_it():
    from dvc_render.html import HTML

    page = experiments.plots_page()
    for name in ("vega 5", "vega-lite 5", "vega-embed 6"):
        assert f"<script>/* {name}" in page
    assert "<script src=" not in page and "{scripts}" not in page  # DVC's CDN tags have nowhere to go
    assert page.count("{plot_divs}") == 1 and page.count("{refresh_tag}") == 1
    html = HTML(page).with_scripts('<script src="https://cdn.example/vega.js"></script>')
    html.with_element('<div id="plot-1"></div>')
    filled = html.embed()
    assert '<div id="plot-1"></div>' in filled and "cdn.example" not in filled and "{plot_divs}" not in filled


def test_exps_and_plan_outside_a_dvc_repository_say_so_in_one_line(tmp_path):
    for command, words in ((["augmix", "plan"], "no dvc.yaml here"), (["augmix", "exps"], "dvc exp show failed")):
        result = run(command, tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("augmix: error: ") and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
