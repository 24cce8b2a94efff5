"""The report's benchmarks beside -C (-C-bar, CIFAR-10.1, CIFAR-100-P) and the successors table, on
synthetic result trees with two seeds of two methods; numbers checked against hand computations and
verdicts against the packaged published.csv."""

import math
import statistics

import pandas as pd
import pytest

from augmix import metrics, report
from augmix.corruptions.cbar import LEVELS
from augmix.report import names, plots, reading

BENCH = metrics.BENCHMARK_CORRUPTIONS
CBAR = tuple(LEVELS)  # the corruption code's own order (not the report's column order)

# method -> (clean error per seed, -C error, -C-bar base error, CIFAR-10.1 error per seed)
RUNS = {
    "standard": ((0.05, 0.07), 0.27, 0.31, (0.13, 0.16)),
    "augmix": ((0.05, 0.06), 0.11, 0.165, (0.12, 0.10)),
}
SEED_SHIFT = {1: -0.003, 2: 0.003}


def cbar_error(base, seed, i, s):
    """-C-bar error of corruption i (code order) at severity s: varies with both, mean = base + shift."""
    return base + SEED_SHIFT[seed] + 0.004 * (i - 4.5) + 0.002 * (s - 3)


def _rows(dataset, arch, method, seed, clean, c_err, cbar_base, natural, *, cbar=CBAR, sevs=(1, 2, 3, 4, 5)):
    ident = {"dataset": dataset, "arch": arch, "method": method, "seed": seed, "model": "ours"}
    rows = [{**ident, "benchmark": "clean", "corruption": "clean", "severity": 0, "error": clean,
             "rms_calib": 0.03 + 0.01 * seed, "brier": 0.1, "n": 200}]
    rows += [{**ident, "benchmark": "c", "corruption": c, "severity": s, "error": c_err, "rms_calib": 0.05,
              "brier": 0.2, "n": 200} for c in BENCH for s in range(1, 6)]
    if cbar_base is not None:
        rows += [{**ident, "benchmark": "cbar", "corruption": c, "severity": s,
                  "error": cbar_error(cbar_base, seed, CBAR.index(c), s), "rms_calib": 0.06, "brier": 0.25,
                  "n": 200} for c in cbar for s in sevs]
    if natural is not None:
        rows.append({**ident, "benchmark": "natural", "corruption": "cifar101", "severity": 0, "error": natural,
                     "rms_calib": 0.07, "brier": 0.3, "n": 200})
    return pd.DataFrame(rows)


def _write(root, dataset, arch, method, seed, p=None, **kw):
    d = root / dataset / arch / method / f"seed{seed}"
    d.mkdir(parents=True)
    frame = _rows(dataset, arch, method, seed, **kw)
    frame.to_csv(d / "eval.csv", index=False)
    if p is not None:
        pd.DataFrame([{"dataset": dataset, "arch": arch, "method": method, "seed": seed, "model": "ours",
                       "perturbation": k, "flip_prob": v, "top5_dist": 0.4, "n_sequences": 4}
                      for k, v in p.items()]).to_csv(d / "eval_p.csv", index=False)
    return frame


def _cell(cells, table, method, metric, arch="wrn40_2", dataset="cifar10"):
    hit = cells[(cells.table == table) & (cells.method == method) & (cells.metric == metric)
                & (cells.arch == arch) & (cells.dataset == dataset)]
    assert len(hit) == 1, (table, method, metric, arch)
    return hit.iloc[0]


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """CIFAR-10 WRN-40-2: Standard and AugMix, seeds 1 and 2, with -C, -C-bar and CIFAR-10.1 rows;
    one ResNet-18 PRIME seed with -C-bar missing a corruption and one AllConvNet run without shifts;
    CIFAR-100 WRN-40-2 AugMix with CIFAR-100-P rows."""
    tmp = tmp_path_factory.mktemp("shifts")
    root = tmp / "results"
    frames = {}
    for method, (cleans, c_err, cbar_base, nats) in RUNS.items():
        for seed, clean, nat in zip((1, 2), cleans, nats):
            frames[(method, seed)] = _write(root, "cifar10", "wrn40_2", method, seed, clean=clean, c_err=c_err,
                                            cbar_base=cbar_base, natural=nat)
    _write(root, "cifar10", "resnet18", "prime", 1, clean=0.07, c_err=0.11, cbar_base=0.2, natural=0.15,
           cbar=CBAR[:-1])
    _write(root, "cifar10", "allconv", "standard", 1, clean=0.1, c_err=0.3, cbar_base=None, natural=None)
    fp = {k: 0.01 * (i + 1) for i, k in enumerate(metrics.P_PERTURBATIONS)}
    _write(root, "cifar100", "wrn40_2", "augmix", 1, clean=0.24, c_err=0.36, cbar_base=None, natural=None, p=fp)
    out = tmp / "report"
    files = report.build_report(root, out, calib_mode="reference")  # the packaged published.csv
    return {"root": root, "out": out, "files": files, "frames": frames, "fp": fp,
            "cells": pd.read_csv(out / "cells.csv"),
            "text": (out / "report.md").read_text()}


def _by_hand(frames, method, select):
    """(mean over seeds, sample std over seeds) of select(eval rows of one seed)."""
    per_seed = [select(frames[(method, seed)]) for seed in (1, 2)]
    return statistics.mean(per_seed), statistics.stdev(per_seed)


def _cbar_mean(frame):
    errs = frame[frame.benchmark == "cbar"].error.tolist()
    assert len(errs) == 50
    return sum(errs) / len(errs)


def test_cbar_headline_mean_std_n_by_hand_and_verdicts(shifted):
    cells = shifted["cells"]
    for method, published, tol, verdict in (("augmix", 0.160, 0.0065, "reproduced"),
                                            ("standard", 0.271, 0.0105, "differs")):
        mean, std = _by_hand(shifted["frames"], method, _cbar_mean)
        c = _cell(cells, "cifar10_cbar_error", method, "cbar_error")
        assert c.ours == pytest.approx(mean) and c["std"] == pytest.approx(std)
        assert c.n == 2 and c.seeds == "1,2" and c.complete
        # The -C-bar authors' README figure rows (flag M), band = tolerance + 2 std / sqrt(n).
        assert c.published == pytest.approx(published) and c.flag == "M"
        assert c.tolerance == pytest.approx(tol)
        band = tol + 2 * std / math.sqrt(2)
        assert c.band == pytest.approx(band)
        assert c.verdict == verdict and (abs(mean - published) <= band) == (verdict == "reproduced")
    md = (shifted["out"] / "tables" / "cifar10_cbar_error.md").read_text()
    assert "### CIFAR-10-C-bar error by method x architecture" in md
    assert "| AugMix | 16.5 ± 0.42 (n=2) [16.0 M, +0.5, reproduced] |" in md


def test_cbar_per_corruption_by_hand_in_the_figure_order(shifted):
    cells, frames = shifted["cells"], shifted["frames"]
    for name, published in (("lines", 0.180), ("transverse_chromatic_abberation", 0.192)):
        def one(frame, name=name):
            rows = frame[(frame.benchmark == "cbar") & (frame.corruption == name)]
            assert sorted(rows.severity) == [1, 2, 3, 4, 5]
            return rows.error.mean()

        mean, std = _by_hand(frames, "augmix", one)
        c = _cell(cells, "cifar10_cbar_per_corruption", "augmix", f"cbar_error_{name}")
        assert c.ours == pytest.approx(mean) and c["std"] == pytest.approx(std) and c.n == 2
        assert c.published == pytest.approx(published) and c.tolerance == pytest.approx(0.02)
        band = 0.02 + 2 * std / math.sqrt(2)
        assert c.verdict == ("reproduced" if abs(mean - published) <= band else "differs")
    # C-bar - C per run: the -C error is constant here, so the difference of the means.
    delta = _cell(cells, "cifar10_cbar_per_corruption", "augmix", "cbar_minus_c")
    assert delta.ours == pytest.approx(_by_hand(frames, "augmix", _cbar_mean)[0] - 0.11)
    md = (shifted["out"] / "tables" / "cifar10_cbar_per_corruption.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("|  |"))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    assert cols[:4] == ["clean error", "corruption error", "C-bar error", "C-bar - C error"]
    assert cols[4:] == list(names.CBAR_ORDER)  # the authors' figure order, not the code's


def test_incomplete_cbar_is_starred(shifted):
    c = _cell(shifted["cells"], "cifar10_cbar_error", "prime", "cbar_error", arch="resnet18")
    assert not c.complete and c.n == 1
    errs = [cbar_error(0.2, 1, i, s) for i in range(len(CBAR) - 1) for s in range(1, 6)]
    assert c.ours == pytest.approx(sum(errs) / len(errs))
    md = (shifted["out"] / "tables" / "cifar10_cbar_error.md").read_text()
    assert f"{100 * c.ours:.1f}* (n=1)" in md


def test_cifar101_error_and_gap_by_hand(shifted):
    cells, frames = shifted["cells"], shifted["frames"]

    def nat(frame):
        return frame[frame.benchmark == "natural"].error.item()

    def gap(frame):
        return nat(frame) - frame[frame.benchmark == "clean"].error.item()

    for method in RUNS:
        mean, std = _by_hand(frames, method, nat)
        c = _cell(cells, "cifar10_cifar101", method, "cifar101_error")
        assert c.ours == pytest.approx(mean) and c["std"] == pytest.approx(std) and c.n == 2
        assert c.verdict == "no published value"
        g_mean, g_std = _by_hand(frames, method, gap)
        g = _cell(cells, "cifar10_cifar101", method, "cifar101_gap")
        assert g.ours == pytest.approx(g_mean) and g["std"] == pytest.approx(g_std)
    # AugMix: gaps 0.07 and 0.04 -> 5.5 ± 2.12
    md = (shifted["out"] / "tables" / "cifar10_cifar101.md").read_text()
    assert "CIFAR-10.1 - clean error" in md and "5.5 ± 2.12 (n=2)" in md


def test_successors_table_rows_columns_and_archs(shifted):
    t = pd.read_csv(shifted["out"] / "tables" / "successors.csv")
    assert set(t.arch) == {"wrn40_2", "resnet18"}  # not the AllConvNet run
    assert set(t.metric) >= {"clean_error", "corruption_error", "cbar_error", "cifar101_error", "rms_calib_clean"}
    md = (shifted["out"] / "tables" / "successors.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("|  |"))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    assert cols == ["clean error", "corruption error", "C-bar error", "CIFAR-10.1 error", "mFP", "RMS calib (clean)"]
    rows = [line.split("|")[1].strip() for line in md.splitlines()
            if line.startswith("| ") and line != header and "---" not in line]
    assert rows == ["CIFAR-10 / WRN-40-2 / Standard", "CIFAR-10 / WRN-40-2 / AugMix", "CIFAR-10 / ResNet-18 / PRIME",
                    "CIFAR-100 / WRN-40-2 / AugMix"]
    # CIFAR-100 AugMix: its -P mFP (mean of the ten flip probabilities) is in the table.
    mfp = t[(t.dataset == "cifar100") & (t.metric == "mfp")]
    assert mfp.ours.item() == pytest.approx(sum(shifted["fp"].values()) / len(shifted["fp"]))
    # Each cell equals the same cell of its own table (one aggregation).
    cells = shifted["cells"]
    a = _cell(cells, "successors", "augmix", "cbar_error")
    b = _cell(cells, "cifar10_cbar_error", "augmix", "cbar_error")
    assert (a.ours, a["std"], a.verdict) == (b.ours, b["std"], b.verdict)
    rms = _cell(cells, "successors", "augmix", "rms_calib_clean")
    assert rms.ours == pytest.approx(statistics.mean([0.04, 0.05]))


def test_cifar100_p_table_with_its_note(shifted):
    md = (shifted["out"] / "tables" / "cifar100_p.md").read_text()
    assert "### CIFAR-100-P perturbation stability" in md and "issue #53" in md
    c = _cell(shifted["cells"], "cifar100_p", "augmix", "mfp", dataset="cifar100")
    assert c.ours == pytest.approx(sum(shifted["fp"].values()) / 10)


def test_verdict_counts_and_headline_include_the_new_rows(shifted):
    text = shifted["text"]
    head = text[text.index("## Verdicts"):text.index("## Scale of this run")]
    assert "cbar_error" in head and "cifar101_error" in head
    judged = pd.read_csv(shifted["out"] / "cells.csv")
    judged = judged[judged.verdict.isin(["reproduced", "differs"]) & (judged.column != "mean")]
    judged = judged.drop_duplicates(["dataset", "arch", "method", "model", "metric"])
    headline = judged[judged.metric.isin(["clean_error", "corruption_error", "mce", "mfr", "cbar_error",
                                          "cifar101_error"])]
    for v in ("reproduced", "differs"):
        assert f"| {v} | {int((headline.verdict == v).sum())} | {int((judged.verdict == v).sum())} |" in head
    # The C-bar headline cells are listed among the headline cells with a published value.
    assert "| CIFAR-10 | WRN-40-2 | AugMix | ours | C-bar error | 16.5 ± 0.42 (n=2) | 16.0 M |" in head
    assert "| CIFAR-10 | WRN-40-2 | Standard | ours | C-bar error |" in head
    assert "* -C-bar error: the plain mean over its ten corruptions" in text
    assert "* Natural shifts: CIFAR-10.1" in text


def test_headline_figure_has_the_shift_panels(shifted):
    stats = pd.read_csv(shifted["out"] / "seeds.csv")
    assert plots.headline_panels(stats) == [("cifar10", "corruption_error"), ("cifar10", "cbar_error"),
                                            ("cifar10", "cifar101_error"), ("cifar100", "corruption_error")]
    files = shifted["files"]
    assert files["plots/corruption_error.png"].read_bytes()[:4] == b"\x89PNG"
    assert "plots/cifar10/wrn40_2__augmix__cbar_severity.png" in files


def test_tables_absent_without_shift_rows(tmp_path):
    root = tmp_path / "results"
    for seed in (1, 2):
        _write(root, "cifar10", "wrn40_2", "augmix", seed, clean=0.05, c_err=0.11, cbar_base=None, natural=None)
    files = report.build_report(root, tmp_path / "out", calib_mode="reference")
    tables = {k for k in files if k.startswith("tables/")}
    assert not {t for t in tables if "cbar" in t or "cifar101" in t or "successors" in t}
    text = files["report.md"].read_text()
    assert "C-bar" not in text and "CIFAR-10.1" not in text and "successors" not in text
    stats = pd.read_csv(tmp_path / "out" / "seeds.csv")
    assert plots.headline_panels(stats) == [("cifar10", "corruption_error")]


def test_reading_checks_the_new_benchmarks(tmp_path):
    root = tmp_path / "r1"
    frame = _write(root, "cifar10", "wrn40_2", "augmix", 1, clean=0.05, c_err=0.1, cbar_base=0.2, natural=0.1)
    path = root / "cifar10" / "wrn40_2" / "augmix" / "seed1" / "eval.csv"
    pd.concat([frame, frame[frame.benchmark == "cbar"].head(1)]).to_csv(path, index=False)
    with pytest.raises(reading.ResultsError, match="duplicated 'cbar'"):
        reading.collect_results(root)
    frame.assign(severity=frame.severity.where(frame.benchmark != "cbar", 6)).to_csv(path, index=False)
    with pytest.raises(reading.ResultsError, match="'cbar' corruption severities"):
        reading.collect_results(root)
    pd.concat([frame, frame[frame.benchmark == "natural"]]).to_csv(path, index=False)
    with pytest.raises(reading.ResultsError, match="duplicated 'natural'"):
        reading.collect_results(root)
    frame.assign(benchmark=frame.benchmark.replace("natural", "cifar101")).to_csv(path, index=False)
    with pytest.raises(reading.ResultsError, match="unknown benchmark values \\['cifar101'\\]"):
        reading.collect_results(root)


def test_compare_includes_the_shift_metrics(shifted, tmp_path):
    cells, _ = report.compare_cells(shifted["root"], shifted["root"])
    assert {"cbar_error", "cifar101_error", "cifar101_gap"} <= set(cells.metric)


# ---------------------------------------------------------------------------- names and published rows


def test_names_of_the_new_benchmarks():
    assert set(names.CBAR_ORDER) == set(LEVELS)
    assert names.benchmark_title("cifar100", "cbar") == "CIFAR-100-C-bar"
    assert names.benchmark_title("cifar10", "cifar101") == "CIFAR-10.1"
    assert names.metric_title("cifar101_error") == "CIFAR-10.1 error"
    assert names.metric_title("cifar101_gap") == "CIFAR-10.1 - clean error"
    assert names.metric_title("cbar_error_ripple") == "ripple"
    assert names.metric_title("cbar_error") == "C-bar error"
    for m in ("randaugment", "trivialaugment_no_overlap", "prime", "prime_nojsd", "pixmix", "augmix_nojsd"):
        assert m in names.method_names() and names.method_title(m) != m


def test_published_cbar_rows_are_the_authors_figure():
    pub = report.load_published()
    fig = pub[pub.table == "cbar_authors"]
    assert set(fig.dataset) == {"cifar10"} and set(fig.arch) == {"wrn40_2"} and set(fig.flag) == {"M"}
    assert set(fig.method) <= set(names.method_names())
    got = fig.set_index(["method", "metric"]).value
    expect = {("standard", "corruption_error"): 0.270, ("standard", "cbar_error"): 0.271,
              ("autoaugment", "corruption_error"): 0.194, ("autoaugment", "cbar_error"): 0.210,
              ("augmix", "corruption_error"): 0.111, ("augmix", "cbar_error"): 0.160}
    for key, value in expect.items():
        assert got[key] == pytest.approx(value), key
    augmix = [9.8, 27.8, 13.4, 5.9, 30.3, 18.0, 8.3, 12.1, 15.5, 19.2]
    baseline = [42.9, 27.2, 23.3, 11.8, 43.3, 26.2, 11.3, 21.6, 21.0, 42.9]
    for name, a, b in zip(names.CBAR_ORDER, augmix, baseline):
        assert got[("augmix", f"cbar_error_{name}")] == pytest.approx(a / 100), name
        assert got[("standard", f"cbar_error_{name}")] == pytest.approx(b / 100), name
    # Per-corruption metrics name the corruption code's corruptions.
    per = {k.removeprefix("cbar_error_") for k in fig.metric if k.startswith("cbar_error_")}
    assert per == set(LEVELS)
    sel = report.select_published(pub)
    # The paper's own -C numbers (T / Q) still win over the -C-bar authors' re-runs (M) ...
    assert sel.loc[("cifar10", "wrn40_2", "augmix", "corruption_error"), "value"] == pytest.approx(0.112)
    assert sel.loc[("cifar10", "wrn40_2", "standard", "corruption_error"), "value"] == pytest.approx(0.269)
    # ... and the -C-bar cells have only the figure.
    assert sel.loc[("cifar10", "wrn40_2", "augmix", "cbar_error"), "flag"] == "M"


def test_published_prime_readme_rows():
    pub = report.load_published()
    prime = pub[pub.table == "prime_readme"].set_index(["dataset", "arch", "method", "metric"])
    assert prime.loc[("cifar10", "resnet18", "prime", "corruption_error"), "value"] == pytest.approx(0.110)
    assert prime.loc[("cifar100", "resnet18", "prime", "corruption_error"), "value"] == pytest.approx(0.317)
    assert prime.loc[("cifar10", "resnet18", "augmix", "corruption_error"), "value"] == pytest.approx(0.114)
    assert prime.loc[("cifar100", "resnet18", "augmix", "corruption_error"), "value"] == pytest.approx(0.351)
    assert prime.loc[("imagenet", "resnet50", "prime", "mce"), "value"] == pytest.approx(0.555)  # with JSD
    assert prime.loc[("imagenet", "resnet50", "prime_nojsd", "mce"), "value"] == pytest.approx(0.575)
    # The PRIME authors' own rows are A; their runs of other methods are measurements (M); the one
    # cell whose two README columns disagree is U.
    assert set(prime.xs("prime", level="method").flag) == {"A"}
    assert set(prime.xs("augmix", level="method").flag) == {"M"}
    assert prime.loc[("cifar10", "resnet18", "standard", "corruption_error"), "flag"] == "U"
    sel = report.select_published(pub)
    # A beats RobustBench's measurement of the released ResNet-18 (M, 10.95).
    assert sel.loc[("cifar10", "resnet18", "prime", "corruption_error"), "value"] == pytest.approx(0.110)
    # The AugMix authors' ImageNet rows keep precedence over the PRIME table's copy.
    assert sel.loc[("imagenet", "resnet50", "standard", "mce"), "value"] == pytest.approx(0.806)
