"""The report builder on small synthetic result trees, and the packaged published.csv."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from augmix import metrics, report
from augmix.models import ARCHS
from augmix.report import names

BENCH = metrics.BENCHMARK_CORRUPTIONS


def _write_model(
    root,
    dataset,
    arch,
    method,
    *,
    clean=0.05,
    c_error=None,
    corruptions=BENCH,
    severities=(1, 2, 3, 4, 5),
    summary=True,
    p=None,
    preds=None,
):
    """One results/<d>/<a>/<m>/ folder; ``c_error(corruption_index, severity)`` gives errors."""
    c_error = c_error or (lambda i, s: 0.1 + 0.01 * s)
    rows = [
        {
            "dataset": dataset,
            "arch": arch,
            "method": method,
            "benchmark": "clean",
            "corruption": "clean",
            "severity": 0,
            "error": clean,
            "rms_calib": 0.03,
            "brier": 0.1,
            "n": 200,
        }
    ]
    for i, c in enumerate(corruptions):
        for s in severities:
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "method": method,
                    "benchmark": "c",
                    "corruption": c,
                    "severity": s,
                    "error": c_error(i, s),
                    "rms_calib": 0.05 + 0.01 * s,
                    "brier": 0.2,
                    "n": 200,
                }
            )
    d = root / dataset / arch / method
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "eval.csv", index=False)
    if summary:
        (d / "train_summary.json").write_text(
            json.dumps(
                {
                    "epochs": 2,
                    "n_train": 512,
                    "n_test": 200,
                    "dataset": dataset,
                    "arch": arch,
                    "method": method,
                    "device": "cpu",
                    "seconds": 1.5,
                }
            )
        )
    if p is not None:
        pd.DataFrame(
            [
                {
                    "dataset": dataset,
                    "arch": arch,
                    "method": method,
                    "perturbation": k,
                    "flip_prob": v,
                    "top5_dist": 0.5,
                    "n_sequences": 4,
                }
                for k, v in p.items()
            ]
        ).to_csv(d / "eval_p.csv", index=False)
    if preds is not None:
        np.savez(d / "predictions_clean.npz", **preds)
    return d


def _published(path, rows):
    pd.DataFrame(rows, columns=list(report.REQUIRED_COLUMNS)).to_csv(path, index=False)
    return path


def _cell(cells, table, arch, method, metric, dataset=None):
    hit = cells[
        (cells.table == table)
        & (cells.arch == arch)
        & (cells.method == method)
        & (cells.metric == metric)
        & ((cells.dataset == dataset) if dataset else True)
    ]
    assert len(hit) == 1, (table, arch, method, metric)
    return hit.iloc[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small tree: two CIFAR-10 models with -P and predictions, one ImageNet model, one demo
    'digits' model with two corruptions, and one folder without eval.csv."""
    tmp = tmp_path_factory.mktemp("rep")
    root = tmp / "results"
    rng = np.random.default_rng(0)
    preds = {"confidence": rng.uniform(0.3, 1.0, 250), "correct": rng.uniform(size=250) < 0.7}
    fp = {k: 0.01 * (i + 1) for i, k in enumerate(metrics.P_PERTURBATIONS)}
    _write_model(
        root,
        "cifar10",
        "wrn40_2",
        "augmix",
        clean=0.06,
        c_error=lambda i, s: 0.1 + 0.01 * i + 0.005 * s,
        p=fp,
        preds=preds,
    )
    _write_model(root, "cifar10", "allconv", "standard", clean=0.08, c_error=lambda i, s: 0.3)
    _write_model(
        root, "imagenet", "resnet50", "augmix", clean=0.25, c_error=lambda i, s: 0.5, summary=False
    )
    # The smoke pipeline's shape: an arch outside the paper's registry, severities 1 and 5 only,
    # and the header-only eval_p.csv the evaluate stage writes when there is no -P set.
    demo = _write_model(
        root,
        "digits",
        "wrn16_1",
        "augmix",
        clean=0.02,
        corruptions=("gaussian_noise", "fog"),
        severities=(1, 5),
    )
    pd.DataFrame(columns=list(report.EVAL_P_COLUMNS)).to_csv(demo / "eval_p.csv", index=False)
    (root / "cifar10" / "resnext29_4x32d" / "mixup").mkdir(parents=True)
    (root / "cifar10" / "resnext29_4x32d" / "mixup" / "train_summary.json").write_text("{}")
    pub = _published(
        tmp / "published.csv",
        [
            ("table1", "cifar10", "wrn40_2", "augmix", "corruption_error", 0.112, "paper", "T"),
            ("other", "cifar10", "wrn40_2", "augmix", "clean_error", 0.049, "measured", "M"),
            ("table1", "cifar10", "wrn40_2", "augmix", "clean_error", 0.05, "paper quote", "Q"),
            ("lb", "imagenet", "resnet50", "augmix", "mce", 0.653, "README", "A"),
        ],
    )
    out = tmp / "report"
    with pytest.warns(UserWarning, match="no eval.csv"):
        files = report.build_report(root, out, calib_mode="reference", published_path=pub)
    cells = pd.read_csv(out / "cells.csv")
    return {"root": root, "out": out, "files": files, "cells": cells, "preds": preds, "fp": fp}


def test_files_written(built):
    out, files = built["out"], built["files"]
    for rel, path in files.items():
        assert path == out / rel and path.exists() and path.stat().st_size > 0, rel
    for name in (
        "cifar10_corruption_error",
        "cifar10_clean_error",
        "cifar10_per_corruption",
        "cifar10_p",
        "imagenet_mce",
        "imagenet_imagenet",
        "digits_corruption_error",
        "calibration",
    ):
        for ext in ("md", "csv", "tex"):
            assert f"tables/{name}.{ext}" in files, (name, ext)
    pngs = [k for k in files if k.endswith(".png")]
    assert "plots/cifar10/wrn40_2__augmix__severity.png" in pngs
    assert "plots/cifar10/wrn40_2__augmix__reliability.png" in pngs
    assert "plots/cifar10/heatmap_corruption_error.png" in pngs
    assert "plots/imagenet/heatmap_mce.png" in pngs
    assert any(k.endswith("__per_corruption.png") for k in pngs)
    for k in pngs:
        assert files[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp*")), "temporary files left behind"


def test_corruption_error_cell_ours_published_diff(built):
    c = _cell(built["cells"], "cifar10_corruption_error", "wrn40_2", "augmix", "corruption_error")
    ours = np.mean([0.1 + 0.01 * i + 0.015 for i in range(15)])  # mean of s = 1..5 is 0.005 * 3
    assert c.ours == pytest.approx(ours)
    assert c.published == pytest.approx(0.112)
    assert c["diff"] == pytest.approx(ours - 0.112)
    assert c.flag == "T" and bool(c.complete)
    md = (built["out"] / "tables" / "cifar10_corruption_error.md").read_text()
    # One seed: no std; the test's published file states no tolerance, so the band is 0.
    assert f"| AugMix | | {100 * ours:.1f} (n=1) [11.2 T, {100 * (ours - 0.112):+.1f}, differs] |" in md.replace(
        "|  |", "| |"
    )
    tex = (built["out"] / "tables" / "cifar10_corruption_error.tex").read_text()
    assert r"\begin{tabular}" in tex and "[11.2 T, " in tex
    # No published value -> empty published/diff, no parenthesis in the rendering.
    other = _cell(
        built["cells"], "cifar10_corruption_error", "allconv", "standard", "corruption_error"
    )
    assert other.ours == pytest.approx(0.3) and math.isnan(other.published)
    assert "| Standard | 30.0 (n=1) |" in md


def test_published_preference_paper_over_measurement(built):
    c = _cell(built["cells"], "cifar10_clean_error", "wrn40_2", "augmix", "clean_error")
    assert c.ours == pytest.approx(0.06)
    assert c.published == pytest.approx(0.05) and c.flag == "Q"  # Q row beats the earlier M row
    assert c["diff"] == pytest.approx(0.01)


def test_imagenet_mce_and_relative(built):
    half = {c: [0.5] * 5 for c in BENCH}
    c = _cell(built["cells"], "imagenet_mce", "resnet50", "augmix", "mce")
    assert c.ours == pytest.approx(metrics.mce(half)) and c.ours == pytest.approx(
        0.646726, abs=1e-6
    )
    assert c.published == pytest.approx(0.653) and c.flag == "A"
    rel = _cell(built["cells"], "imagenet_imagenet", "resnet50", "augmix", "relative_mce")
    assert rel.ours == pytest.approx(0.813978, abs=1e-6)
    fog = _cell(built["cells"], "imagenet_imagenet", "resnet50", "augmix", "ce_fog")
    assert fog.ours == pytest.approx(2.5 / sum(metrics.ALEXNET_ERR["fog"]))


def test_perturbation_table_plain_mean_on_cifar(built):
    c = _cell(built["cells"], "cifar10_p", "wrn40_2", "augmix", "mfr")
    assert c.ours == pytest.approx(np.mean(list(built["fp"].values())))
    fp = _cell(built["cells"], "cifar10_p", "wrn40_2", "augmix", "fp_rotate")
    assert fp.ours == pytest.approx(built["fp"]["rotate"])


@pytest.mark.parametrize("kind", ["cifar", "imagenet"])
def test_mean_flip_probability_averages_the_kinds_test_perturbations(kind):
    """CIFAR-P averages cifar-p-eval.py's ten (spatter, no snow); ImageNet-P its ten test
    perturbations (snow, no spatter: spatter is a validation one; docs/reference-facts.md, "Perturbations (-P)")."""
    averaged = metrics.P_PERTURBATIONS_BY_KIND[kind]
    other = {"cifar": "snow", "imagenet": "spatter"}[kind]
    assert len(averaged) == 10 and other not in averaged
    fp = {p: 0.1 * (i + 1) for i, p in enumerate(averaged)}
    pp = pd.DataFrame({"perturbation": [*fp, other], "flip_prob": [*fp.values(), 5.0],
                       "top5_dist": [1.0] * 11})
    found = {name: (value, complete) for name, value, complete in report.aggregate.perturbation_rows(pp, kind)}
    assert found["mfp"] == (pytest.approx(0.55), True)  # the extra sequence is reported, not averaged
    assert found[f"fp_{other}"][0] == 5.0
    pp = pp[pp.perturbation != averaged[4]]  # one of the ten missing: flagged incomplete
    found = {name: (value, complete) for name, value, complete in report.aggregate.perturbation_rows(pp, kind)}
    assert found["mfp"][1] is False


def test_calibration_both_modes_from_predictions(built):
    pr = built["preds"]
    for mode in metrics.CALIB_MODES:
        c = _cell(
            built["cells"], "calibration", "wrn40_2", "augmix", f"rms_calib_clean_{mode}", "cifar10"
        )
        assert c.ours == pytest.approx(
            metrics.rms_calibration_error(pr["confidence"], pr["correct"], mode=mode)
        )
    c = _cell(built["cells"], "calibration", "wrn40_2", "augmix", "rms_calib_c", "cifar10")
    assert c.ours == pytest.approx(0.05 + 0.01 * 3)  # mean over 75 cells of 0.05 + 0.01 s


def test_demo_dataset_marked_incomplete(built):
    c = _cell(built["cells"], "digits_corruption_error", "wrn16_1", "augmix", "corruption_error")
    assert c.ours == pytest.approx(0.1 + 0.01 * 3) and not bool(c.complete)
    md = (built["out"] / "tables" / "digits_corruption_error.md").read_text()
    assert "| AugMix | 13.0* (n=1) |" in md and "wrn16_1" in md
    assert "tables/digits_p.md" not in built["files"]  # empty eval_p.csv: no -P table


def test_report_header_scale_mode_and_skips(built):
    text = (built["out"] / "report.md").read_text()
    assert "REDUCED-SCALE RUN" in text
    assert "mode **reference**" in text and "skipped" in text
    assert "| cifar10 | wrn40_2 | augmix | 2 | 512 | 200 | cpu | 2 |" in text
    assert "| imagenet | resnet50 | augmix | ? | ? | 200 | ? | ? |" in text  # no train_summary
    assert "cifar10/resnext29_4x32d/mixup" in text and "no eval.csv" in text
    assert "### CIFAR-10-C corruption error by method x architecture" in text


def test_errors_are_fractions_in_csv(built):
    summary = pd.read_csv(built["out"] / "summary.csv")
    errs = summary[summary.metric.str.contains("error")].value
    assert errs.between(0, 1).all()


def test_no_eval_csv_at_all_raises(tmp_path):
    d = tmp_path / "results" / "cifar10" / "wrn40_2" / "augmix"
    d.mkdir(parents=True)
    (d / "train_summary.json").write_text("{}")
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="eval.csv"):
        report.build_report(tmp_path / "results", tmp_path / "out", calib_mode="reference")


def test_bad_inputs_raise_naming_offender(tmp_path):
    d = _write_model(tmp_path / "r1", "cifar10", "wrn40_2", "augmix")
    frame = pd.read_csv(d / "eval.csv").drop(columns=["brier"])
    frame.to_csv(d / "eval.csv", index=False)
    with pytest.raises(ValueError, match="brier"):
        report.build_report(tmp_path / "r1", tmp_path / "o1", calib_mode="reference")
    d = _write_model(tmp_path / "r2", "cifar10", "wrn40_2", "augmix")
    frame = pd.read_csv(d / "eval.csv").assign(method="cutout")
    frame.to_csv(d / "eval.csv", index=False)
    with pytest.raises(ValueError, match="cutout"):
        report.build_report(tmp_path / "r2", tmp_path / "o2", calib_mode="reference")
    with pytest.raises(ValueError, match="calib_mode"):
        report.build_report(tmp_path / "r2", tmp_path / "o3", calib_mode="nope")


def test_corrected_mode_in_header(tmp_path):
    _write_model(tmp_path / "r", "cifar100", "wrn40_2", "augmix", c_error=lambda i, s: 0.359)
    files = report.build_report(tmp_path / "r", tmp_path / "o", calib_mode="corrected")
    text = files["report.md"].read_text()
    assert "mode **corrected**" in text
    # Packaged published.csv: CIFAR-100-C WRN-40-2 AugMix 35.9 (T) -> diff 0.
    cells = pd.read_csv(files["cells.csv"])
    c = _cell(cells, "cifar100_corruption_error", "wrn40_2", "augmix", "corruption_error")
    assert c.published == pytest.approx(0.359) and c.flag == "T"
    assert c["diff"] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------- published.csv


def test_published_csv_parses_and_uses_known_names():
    pub = report.load_published()
    assert list(pub.columns) == list(report.PUBLISHED_COLUMNS)
    assert set(pub.flag) <= set("ATQMU")
    assert pub.value.notna().all() and pub.value.between(0, 1).all()  # fractions, not percent
    assert (pub.source.str.len() > 0).all()
    # Every row states its tolerance (a fraction, like the value) and why.
    assert pub.tolerance.notna().all() and pub.tolerance.between(0, 0.05).all()
    assert (pub.tolerance_note.str.len() > 0).all()
    # Paper Table 1 rows use the code's own names (models.ARCHS and the method table).
    paper = pub[pub.table == "table1"]
    assert set(paper.arch) <= set(names.arch_names())
    assert set(paper.method) <= set(names.method_names())


def test_published_ablation_rows_are_paper_table4():
    """The paper's Table 4: WRN-40-2, CIFAR-10-C / CIFAR-100-C error, in the paper's row order
    (docs/reference-facts.md, "Published numbers")."""
    abl = report.load_published()
    abl = abl[abl.table == "ablation"]
    assert set(abl.arch) == {"wrn40_2"}
    expect = {
        "standard": (0.269, 0.533, "Q"),
        "autoaugment_star": (0.239, 0.496, "Q"),
        "random_autoaugment_star": (0.170, 0.436, "Q"),
        "random_autoaugment_star_jsd": (0.147, 0.408, "Q"),
        "augmix_nojsd": (0.131, 0.398, "Q"),
        "augmix": (0.112, 0.359, "T"),
    }
    assert list(dict.fromkeys(abl.method)) == list(expect)
    got = abl.set_index(["method", "dataset"])
    for method, (c10, c100, flag) in expect.items():
        assert got.loc[(method, "cifar10"), "value"] == pytest.approx(c10)
        assert got.loc[(method, "cifar100"), "value"] == pytest.approx(c100)
        assert set(got.loc[method].flag) == {flag}
    # The third-party seed spread sets the tolerance of the best-measured cell (0.098 pp x 2 + 0.05).
    assert got.loc[("augmix", "cifar100"), "tolerance"] == pytest.approx(0.0025)


def test_names_and_order_come_from_the_code_tables():
    assert names.arch_names() == tuple(ARCHS)
    assert names.archs(["zz_unknown", *reversed(list(ARCHS))]) == [*ARCHS, "zz_unknown"]
    methods = names.method_names()
    assert {"standard", "augmix", "augmix_nojsd"} <= set(methods)
    assert names.methods(["b_new", "a_new", *reversed(methods)]) == [*methods, "a_new", "b_new"]
    assert names.method_title("not_a_method") == "not_a_method"
    assert names.row_title("augmix", "released AugMix WRN-40-2") == "AugMix (released AugMix WRN-40-2)"


def test_published_csv_key_numbers():
    sel = report.select_published(report.load_published())
    expect = {
        ("cifar10", "wrn40_2", "augmix", "corruption_error"): (0.112, "T"),
        ("cifar10", "resnext29_4x32d", "augmix", "corruption_error"): (0.109, "T"),
        ("cifar100", "wrn40_2", "augmix", "corruption_error"): (0.359, "T"),
        ("cifar100", "resnext29_4x32d", "augmix", "corruption_error"): (0.349, "T"),
        ("cifar10", "wrn40_2", "standard", "corruption_error"): (0.269, "Q"),
        ("cifar100", "wrn40_2", "standard", "corruption_error"): (0.533, "Q"),
        ("cifar100", "wrn40_2", "augmix_nojsd", "corruption_error"): (0.398, "Q"),
        ("imagenet", "resnet50", "augmix", "mce"): (0.653, "A"),
        ("imagenet", "resnet50", "augmix", "clean_error"): (0.2247, "A"),
        ("imagenet", "resnet50", "standard", "mce"): (0.806, "A"),
        ("imagenet", "resnet50", "augmix", "mfr"): (0.374, "A"),
    }
    for key, (value, flag) in expect.items():
        assert sel.loc[key, "value"] == pytest.approx(value), key
        assert sel.loc[key, "flag"] == flag, key


def test_published_alexnet_rows_match_metrics_table():
    pub = report.load_published()
    alex = pub[pub.table == "alexnet_baseline"].set_index("metric").value
    for name, errs in metrics.ALEXNET_ERR.items():
        for s, e in enumerate(errs, 1):
            assert alex[f"error_{name}_s{s}"] == pytest.approx(e), (name, s)
    assert alex["clean_error"] == pytest.approx(metrics.ALEXNET_CLEAN_ERROR)
