"""Seeds, external models, verdicts, the headline figure and `compare` on synthetic result trees."""

import json
import math

import pandas as pd
import pytest

from augmix import metrics, report
from augmix.report import published, reading
from augmix.report.compare import spread_status

BENCH = metrics.BENCHMARK_CORRUPTIONS


def _eval_rows(ident, *, clean=0.05, c_error=0.3):
    rows = [{**ident, "benchmark": "clean", "corruption": "clean", "severity": 0, "error": clean,
             "rms_calib": 0.03, "brier": 0.1, "n": 200}]
    rows += [{**ident, "benchmark": "c", "corruption": c, "severity": s,
              "error": c_error(i, s) if callable(c_error) else c_error, "rms_calib": 0.05, "brier": 0.2,
              "n": 200} for i, c in enumerate(BENCH) for s in range(1, 6)]
    return pd.DataFrame(rows)


def _run(folder, dataset="cifar10", arch="wrn40_2", method="augmix", *, seed=None, model=None,
         metrics_json=None, **kw):
    """One run folder; seed / model columns are written only when given."""
    ident = {"dataset": dataset, "arch": arch, "method": method}
    if seed is not None:
        ident["seed"] = seed
    if model is not None:
        ident["model"] = model
    folder.mkdir(parents=True)
    _eval_rows(ident, **kw).to_csv(folder / "eval.csv", index=False)
    if metrics_json is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics_json))
    return folder


def _pub(path, rows):
    """published.csv rows (dataset, arch, method, metric, value, tolerance)."""
    pd.DataFrame([{"table": "t", "dataset": d, "arch": a, "method": m, "metric": k, "value": v,
                   "source": "test", "flag": "T", "tolerance": tol, "tolerance_note": "test band"}
                  for d, a, m, k, v, tol in rows]).to_csv(path, index=False)
    return path


def _cell(cells, table, method, metric="corruption_error", model="ours", arch="wrn40_2"):
    hit = cells[(cells.table == table) & (cells.method == method) & (cells.metric == metric)
                & (cells.model == model) & (cells.arch == arch)]
    assert len(hit) == 1, (table, method, metric, model)
    return hit.iloc[0]


# ---------------------------------------------------------------------------- the verdict rule


def test_band_and_verdict_rule():
    # n = 1: the tolerance alone.
    assert published.band(0.01, math.nan, 1) == pytest.approx(0.01)
    assert published.verdict(0.120, math.nan, 1, 0.112, 0.01) == ("reproduced", pytest.approx(0.01))
    assert published.verdict(0.123, math.nan, 1, 0.112, 0.01)[0] == "differs"
    # n > 1: widened by two standard errors of our mean.
    std, n = 0.006, 4
    width = 0.01 + 2 * std / math.sqrt(n)
    assert published.band(0.01, std, n) == pytest.approx(width)
    assert published.verdict(0.112 + width - 1e-6, std, n, 0.112, 0.01)[0] == "reproduced"
    assert published.verdict(0.112 - width - 1e-4, std, n, 0.112, 0.01)[0] == "differs"
    # No published value; a row without a tolerance counts as 0.
    assert published.verdict(0.2, 0.01, 3, math.nan, 0.01)[0] == "no published value"
    assert published.band(math.nan, math.nan, 1) == 0.0


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Two seeds of WRN AugMix (inside the band), one of Standard (outside it), one AllConv
    method with no published value, one external model, on CIFAR-10."""
    tmp = tmp_path_factory.mktemp("seeds")
    root = tmp / "results"
    for seed, err in ((1, 0.30), (2, 0.34)):
        _run(root / "cifar10" / "wrn40_2" / "augmix" / f"seed{seed}", seed=seed, model="ours", c_error=err,
             clean=0.05 + 0.01 * seed)
    _run(root / "cifar10" / "wrn40_2" / "standard" / "seed1", method="standard", seed=1, model="ours",
         c_error=0.40)
    _run(root / "cifar10" / "allconv" / "cutout" / "seed1", arch="allconv", method="cutout", seed=1,
         model="ours", c_error=0.5)
    _run(root / "external" / "released_wrn", seed=0, model="released AugMix WRN-40-2", c_error=0.29)
    pub = _pub(tmp / "published.csv", [
        ("cifar10", "wrn40_2", "augmix", "corruption_error", 0.35, 0.01),
        ("cifar10", "wrn40_2", "standard", "corruption_error", 0.30, 0.01),
    ])
    out = tmp / "report"
    files = report.build_report(root, out, calib_mode="reference", published_path=pub)
    return {"root": root, "out": out, "files": files, "cells": pd.read_csv(out / "cells.csv"),
            "text": (out / "report.md").read_text()}


def test_two_seeds_mean_and_sample_std_by_hand(seeded):
    c = _cell(seeded["cells"], "cifar10_corruption_error", "augmix")
    assert c.n == 2 and c.seeds == "1,2"
    assert c.ours == pytest.approx((0.30 + 0.34) / 2)
    assert c["std"] == pytest.approx(math.sqrt(((0.30 - 0.32) ** 2 + (0.34 - 0.32) ** 2) / (2 - 1)))
    clean = _cell(seeded["cells"], "cifar10_clean_error", "augmix", "clean_error")
    assert clean.ours == pytest.approx(0.065) and clean["std"] == pytest.approx(0.01 / math.sqrt(2))
    # Per corruption too (all corruptions share the seed's error here).
    fog = _cell(seeded["cells"], "cifar10_per_corruption", "augmix", "ce_fog")
    assert fog.ours == pytest.approx(0.32) and fog.n == 2 and fog["std"] == pytest.approx(0.02 * math.sqrt(2))
    seeds = pd.read_csv(seeded["out"] / "seeds.csv")
    row = seeds[(seeds.method == "augmix") & (seeds.model == "ours") & (seeds.metric == "corruption_error")]
    assert row["mean"].item() == pytest.approx(0.32) and row.n.item() == 2


def test_verdicts_inside_outside_and_without_a_published_value(seeded):
    cells = seeded["cells"]
    inside = _cell(cells, "cifar10_corruption_error", "augmix")
    # |0.32 - 0.35| = 0.03 <= 0.01 + 2 * 0.02828 / sqrt(2) = 0.05
    assert inside.band == pytest.approx(0.01 + 2 * 0.02 * math.sqrt(2) / math.sqrt(2))
    assert inside.verdict == "reproduced" and inside["diff"] == pytest.approx(-0.03)
    outside = _cell(cells, "cifar10_corruption_error", "standard")  # n = 1: band = tolerance
    assert outside.n == 1 and math.isnan(outside["std"]) and outside.band == pytest.approx(0.01)
    assert outside.verdict == "differs"
    none = _cell(cells, "cifar10_corruption_error", "cutout", arch="allconv")
    assert none.verdict == "no published value" and math.isnan(none.published)
    ext = _cell(cells, "cifar10_corruption_error", "augmix", model="released AugMix WRN-40-2")
    assert ext.n == 1 and ext.verdict == "differs"  # |0.29 - 0.35| > 0.01
    text = seeded["text"]
    head = text[text.index("## Verdicts"):text.index("## Scale of this run")]
    assert "| reproduced | 1 |" in head and "| differs | 2 |" in head
    assert "**reproduced**" in head and "32.0 ± 2.83 (n=2)" in head


def test_external_model_is_its_own_row_beside_ours(seeded):
    md = (seeded["out"] / "tables" / "cifar10_corruption_error.md").read_text()
    assert "| AugMix (released AugMix WRN-40-2) |" in md
    assert "32.0 ± 2.83 (n=2) [35.0 T, -3.0, reproduced]" in md
    assert "40.0 (n=1) [30.0 T, +10.0, differs]" in md
    # Our mean-over-architectures column leaves the external model out.
    ext_rows = [line for line in md.splitlines() if "released" in line]
    assert ext_rows and all(line.rstrip().endswith("|  |") for line in ext_rows)


def test_headline_figure_written_first_and_embedded(seeded):
    files, text = seeded["files"], seeded["text"]
    fig = files["plots/corruption_error.png"]
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    embed = "](plots/corruption_error.png)"
    assert text.index(embed) < text.index("## Verdicts") < text.index("## Tables")
    assert text[: text.index(embed)].rstrip().endswith("![Corruption error by method and architecture, mean ± std "
                                                       "over seeds, published values marked")
    # Every other plot is embedded too, not just linked.
    for rel in files:
        if rel.endswith(".png"):
            assert f"]({rel})" in text and "![" in text.split(f"]({rel})")[0].rsplit("\n", 1)[-1]


def test_ablation_table_lists_the_paper_rows(tmp_path):
    root = tmp_path / "results"
    for seed, err in ((1, 0.10), (2, 0.12)):
        _run(root / "cifar10" / "wrn40_2" / "augmix" / f"seed{seed}", seed=seed, c_error=err)
    _run(root / "external" / "released", seed=0, model="released AugMix WRN-40-2", c_error=0.111)
    report.build_report(root, tmp_path / "out", calib_mode="reference")  # packaged published.csv
    md = (tmp_path / "out" / "tables" / "ablation.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:7] == ["Standard", "AutoAugment*", "Random AutoAugment*", "Random AutoAugment* + JSD",
                         "AugmentAndMix (no JSD)", "AugMix"]
    assert "| AutoAugment* | – [23.9 Q] | – [49.6 Q] |" in md  # not run: the published value alone
    assert "| AugMix | 11.0 ± 1.41 (n=2) [11.2 T, -0.2, reproduced] | – [35.9 T] |" in md
    assert "| AugMix (released AugMix WRN-40-2) | 11.1 (n=1) [11.2 T, -0.1, reproduced] |" in md
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    c = _cell(cells[cells.dataset == "cifar10"], "ablation", "augmix")
    assert c.published == pytest.approx(0.112) and c.tolerance == pytest.approx(0.01)


# ---------------------------------------------------------------------------- reading layouts


def test_layouts_old_new_and_external_identity_from_files(tmp_path):
    root = tmp_path / "results"
    _run(root / "cifar10" / "wrn40_2" / "augmix")  # old layout, no seed anywhere -> seed 1
    _run(root / "cifar10" / "wrn40_2" / "standard", method="standard", metrics_json={"seed": 7})
    _run(root / "cifar100" / "wrn40_2" / "augmix" / "seed3", dataset="cifar100", seed=3, model="ours")
    _run(root / "cifar100" / "wrn40_2" / "augmix" / "seed4", dataset="cifar100")  # no column: folder
    _run(root / "external" / "rb_wrn", seed=0, model="released AugMix WRN-40-2")
    _run(root / "external" / "unnamed")  # no identity columns: model = folder name, seed 0
    res = reading.collect_results(root)
    keys = set(res.folders)
    assert keys == {
        ("cifar10", "wrn40_2", "augmix", "ours", 1),
        ("cifar10", "wrn40_2", "standard", "ours", 7),
        ("cifar100", "wrn40_2", "augmix", "ours", 3),
        ("cifar100", "wrn40_2", "augmix", "ours", 4),
        ("cifar10", "wrn40_2", "augmix", "released AugMix WRN-40-2", 0),
        ("cifar10", "wrn40_2", "augmix", "unnamed", 0),
    }
    assert set(res.evals.columns) >= set(metrics.IDENTITY_COLUMNS)
    assert res.evals.groupby(["model", "seed"]).size().eq(76).all()


def test_identity_conflicts_raise_naming_the_file(tmp_path):
    root = tmp_path / "r1"
    _run(root / "cifar10" / "wrn40_2" / "augmix" / "seed2", seed=5)
    with pytest.raises(ValueError, match="seed2.*'seed'|'seed'.*5"):
        reading.collect_results(root)
    root = tmp_path / "r2"
    _run(root / "cifar10" / "wrn40_2" / "augmix")  # seed 1 by default
    _run(root / "cifar10" / "wrn40_2" / "augmix" / "seed1", seed=1)
    with pytest.raises(reading.ResultsError, match="both hold"):
        reading.collect_results(root)
    root = tmp_path / "r3"
    d = _run(root / "external" / "x", seed=0, model="m")
    frame = pd.read_csv(d / "eval.csv")
    frame.loc[3, "model"] = "other"
    frame.to_csv(d / "eval.csv", index=False)
    with pytest.raises(ValueError, match="several values"):
        reading.collect_results(root)


# ---------------------------------------------------------------------------- compare


def test_compare_two_folders_cell_by_cell(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for seed, (ea, eb) in enumerate([(0.30, 0.40), (0.32, 0.42), (0.34, 0.44)], 1):
        _run(a / "cifar10" / "wrn40_2" / "augmix" / f"seed{seed}", seed=seed, c_error=ea)
        _run(b / "cifar10" / "wrn40_2" / "augmix" / f"seed{seed}", seed=seed, c_error=eb)
    _run(a / "cifar10" / "wrn40_2" / "standard" / "seed1", method="standard", seed=1)
    _run(b / "cifar10" / "wrn40_2" / "standard" / "seed1", method="standard", seed=1, c_error=0.31)
    _run(b / "cifar10" / "allconv" / "augmix" / "seed1", arch="allconv", seed=1)
    cells, only = report.compare_cells(a, b)
    ce = cells[(cells.method == "augmix") & (cells.metric == "corruption_error")].iloc[0]
    assert ce["diff"] == pytest.approx(0.10)
    # Both sides: sample std 0.02 over 3 seeds; threshold = 2 * 0.02 * sqrt(1/3 + 1/3).
    assert ce.threshold == pytest.approx(2 * 0.02 * math.sqrt(2 / 3)) and ce.status == "exceeds spread"
    clean = cells[(cells.method == "augmix") & (cells.metric == "clean_error")].iloc[0]
    assert clean["diff"] == pytest.approx(0.0) and clean.status == "within spread"
    std = cells[(cells.method == "standard") & (cells.metric == "corruption_error")].iloc[0]
    assert std.status == "no spread (n=1 on both sides)" and std["diff"] == pytest.approx(0.01)
    assert set(only.side) == {"B"} and set(only.arch) == {"allconv"}
    md = report.compare(a, b)
    assert ("| CIFAR-10 | WRN-40-2 | AugMix | ours | corruption error | 32.0 ± 2.00 (n=3) | 42.0 ± 2.00 (n=3) "
            "| +10.0 |") in md
    assert "exceeds spread: 1" in md and "B only: cifar10 / allconv / AugMix / corruption_error" in md


def test_compare_spread_with_one_seed_on_one_side():
    threshold, status = spread_status(0.30, math.nan, 1, 0.36, 0.02, 4)
    assert threshold == pytest.approx(2 * 0.02 * math.sqrt(1 + 1 / 4)) and status == "exceeds spread"
    assert spread_status(0.30, math.nan, 1, 0.31, 0.02, 4)[1] == "within spread"
