"""Seeds as a grid dimension, on real DVC runs of the smoke config: two seeds give two models, the
report's mean and standard deviation are the hand computation, adding a seed runs only its jobs, and
every result file says what made it (provenance)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from support.pipelines import repro, smoke_variant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    wd = smoke_variant(tmp, lambda raw: raw["grid"].update(seeds=[1, 2]))
    return wd, repro(wd, tmp)


def test_two_seeds_give_two_models_and_the_report_aggregates_them(two_seeds):
    wd, _ = two_seeds
    cell = wd / "results/digits/wrn16_1/augmix"
    a = torch.load(cell / "seed1/model.pt", weights_only=True)
    b = torch.load(cell / "seed2/model.pt", weights_only=True)
    assert (a["seed"], b["seed"]) == (1, 2)
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    errors = [json.loads((cell / f"seed{s}/metrics.json").read_text())["corruption_error"] for s in (1, 2)]
    seeds = pd.read_csv(wd / "report/seeds.csv")
    row = seeds[(seeds.method == "augmix") & (seeds.metric == "corruption_error")]
    assert len(row) == 1
    assert row["n"].iloc[0] == 2
    assert row["mean"].iloc[0] == pytest.approx(np.mean(errors))
    assert row["std"].iloc[0] == pytest.approx(np.std(errors, ddof=1))


def test_result_files_carry_their_provenance(two_seeds):
    wd, _ = two_seeds
    for name in ("metrics.json", "train_summary.json"):
        data = json.loads((wd / "results/digits/wrn16_1/standard/seed2" / name).read_text())
        prov = data.get("provenance", data)
        assert prov["seed"] == 2
        assert len(prov["git_commit"]) == 40 or prov["git_commit"] == "unknown"
        assert isinstance(prov["git_dirty"], bool)
        assert set(prov["libraries"]) == {"torch", "torchvision", "numpy", "pillow", "opencv"}
        assert prov["libraries"]["torch"] == torch.__version__.split("+")[0] or prov["libraries"]["torch"]
        assert prov["device"].startswith("cpu") and len(prov["params_digest"]) == 12


def test_adding_a_seed_runs_only_its_jobs(two_seeds):
    from dvc.repo import Repo

    wd, _ = two_seeds
    params = yaml.safe_load((wd / "params.yaml").read_text())
    params["grid"]["seeds"] = [1, 2, 3]
    original = (wd / "params.yaml").read_text()
    try:
        (wd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        with Repo(str(wd)) as repo:
            changed = {name.rsplit(":", 1)[-1] for name in repo.status()}
        assert changed - {"check"} == {f"{stage}@digits-wrn16_1-{m}-3" for stage in ("train", "evaluate")
                                       for m in ("standard", "augmix")}
    finally:
        (wd / "params.yaml").write_text(original)
