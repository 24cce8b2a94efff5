"""Every stage reads exactly the params keys its job declares (augmix.jobs): run each stage of the smoke
config in-process with its view recorded. Reading an undeclared key fails inside the stage (the view
refuses it); here we also check that nothing declared goes unread, so no declared key re-runs a job for
nothing."""

from __future__ import annotations

import pytest
import yaml

from augmix import config, jobs
from augmix.stages import common, corrupt, download, evaluate, report, train

from conftest import SMOKE_PARAMS

pytestmark = pytest.mark.slow  # one smoke run of every stage, in-process (about a minute)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keys")
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["tracking"]["enabled"] = False
    raw["corruptions"]["perturbations"] = ["gaussian_noise"]
    raw["corruptions"]["bar"] = ["ripple"]
    raw["eval"]["calib_bin_size"] = 50
    params = config.parse(raw)
    seen: list[tuple[jobs.Job, jobs.View]] = []
    original = jobs.view

    def recording_view(p, job):
        v = original(p, job)
        seen.append((job, v))
        return v

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setattr(common.jobs, "view", recording_view)
        download.run(params, "digits")
        corrupt.run(params, "digits")
        for method in ("standard", "augmix"):
            train.run(params, "digits", "wrn16_1", method, 1)
            evaluate.run(params, "digits", "wrn16_1", method, 1)
        report.run(params)
    return params, seen


def test_every_stage_ran(recorded):
    _, seen = recorded
    assert sorted({job.stage for job, _ in seen}) == ["corrupt", "download", "evaluate", "report", "train"]


@pytest.mark.parametrize("stage", ["download", "corrupt", "train", "evaluate", "report"])
def test_each_job_reads_what_it_declares(recorded, stage):
    params, seen = recorded
    for job, view in seen:
        if job.stage == stage:
            unread = jobs.declared_leaves(params, job) - jobs.reads(view)
            assert not unread, f"{job}: declares but never reads {sorted(unread)}"
            assert jobs.reads(view) <= jobs.declared_leaves(params, job)


def test_an_undeclared_read_is_refused():
    params = config.load(SMOKE_PARAMS)
    view = jobs.view(params, jobs.Job("report"))
    assert view.eval.calib_mode == "reference"
    with pytest.raises(jobs.UndeclaredKey, match="methods.augmix.severity"):
        view.methods.augmix.severity  # noqa: B018
    assert view.runtime.log_every  # run-time sections: readable by every job, declared by none
