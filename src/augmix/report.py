"""The paper's tables and plots rebuilt from tidy result files, beside the published numbers.

Inputs (written by the ``evaluate`` stage, one folder per trained model)::

    results/<dataset>/<arch>/<method>/eval.csv            required
        dataset, arch, method, benchmark ("clean" | "c"), corruption ("clean" on the clean row),
        severity (0 clean, 1..5), error, rms_calib, brier, n
    results/<dataset>/<arch>/<method>/eval_p.csv          optional (-P sets)
        dataset, arch, method, perturbation, flip_prob, top5_dist, n_sequences
    results/<dataset>/<arch>/<method>/train_summary.json  optional (run scale for the header)
        {"epochs", "n_train", "n_test", "dataset", "arch", "method", "device", "seconds"}
    results/<dataset>/<arch>/<method>/predictions_clean.npz  optional: ``confidence``, ``correct``

A model folder without ``eval.csv`` is skipped with a warning and listed in ``report.md``; no
``eval.csv`` at all raises ``FileNotFoundError``.

Outputs under ``out_dir``::

    report.md                  every table, the run scale, the calibration mode, links to plots
    summary.csv                per-model metrics: dataset, arch, method, metric, value, complete
    cells.csv                  every table cell: ours / published / diff (fractions)
    tables/<name>.{md,csv,tex} one table each (md/tex in percent, csv in fractions)
    plots/<dataset>/*.png      error by severity, per-corruption bars, heatmap, reliability diagrams

Published numbers: ``augmix/data/published.csv``, one row per published number, columns

    table    where the number comes from: table1 / table4 (paper tables), paper_imagenet,
             released_weights*, imagenet_c_leaderboard, imagenet_p_leaderboard, robustbench*,
             reproductions*, aggregators, alexnet_baseline
    dataset  cifar10, cifar100, imagenet (others, e.g. imagenet_r, only for reference rows)
    arch     registry name (REGISTRY_ARCHS) or a reference-only name (REFERENCE_ONLY_ARCHS)
    method   registry name (REGISTRY_METHODS) or a reference-only name (REFERENCE_ONLY_METHODS)
    metric   clean_error; corruption_error (plain mean over 15 corruptions x 5 severities: the
             CIFAR "mCE"); mce (ImageNet, AlexNet-normalised ratio); ce_<corruption> (CIFAR: mean
             error over severities; ImageNet: AlexNet-normalised); error_<corruption>_s<k> (one
             cell); mfr, mt5d (-P); rms_calib_clean, rms_calib_c; corruption_error_std; error,
             accuracy_*, mpc (other benchmarks)
    value    a fraction (published percent / 100); normalised scores as ratios (mCE 65.3 -> 0.653)
    source   repository + path / issue / README where the number was read, with per-source flags
    flag     best status of the number, from /work/shared/spec/paper_numbers.md §0:
             A authors outside the paper, T paper number transcribed by RobustBench, Q paper number
             quoted by third parties, M someone else's measurement, U unconfirmed

Cells compare ours with one published value per (dataset, arch, method, metric), preferring paper
numbers: T, then Q, then A, then M; ties go to the earlier row of the file.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from augmix import io, metrics

PUBLISHED_CSV = Path(__file__).parent / "data" / "published.csv"
PUBLISHED_COLUMNS = ("table", "dataset", "arch", "method", "metric", "value", "source", "flag")
EVAL_COLUMNS = (
    "dataset",
    "arch",
    "method",
    "benchmark",
    "corruption",
    "severity",
    "error",
    "rms_calib",
    "brier",
    "n",
)
EVAL_P_COLUMNS = (
    "dataset",
    "arch",
    "method",
    "perturbation",
    "flip_prob",
    "top5_dist",
    "n_sequences",
)

REGISTRY_ARCHS = ("allconv", "densenet40_12", "wrn40_2", "resnext29_4x32d", "resnet50")
REGISTRY_METHODS = (
    "standard",
    "cutout",
    "mixup",
    "cutmix",
    "autoaugment",
    "pgd",
    "augmix",
    "augmix_nojsd",
    "fmix",
)
# Names that appear only in published rows (models we do not train); never matched by our results
# unless a run uses the same name.
REFERENCE_ONLY_ARCHS = ("alexnet", "wrn28_10", "resnet18", "resnext101")
REFERENCE_ONLY_METHODS = (
    "random_autoaugment",
    "random_autoaugment_jsd",
    "augmix_1view",
    "augmix_3view",
    "prime",
    "patch_uniform",
    "sin",
    "deepaugment_augmix",
    "assemble",
    "ant_3x3",
    "blur_after_conv",
    "groupwise_inhibition",
    "groupwise_inhibition_dataaug",
    "lowpass_bin5",
    "unspecified",
    "augmix_timm",
    "augmix_randaugment_timm",
    "randaugment_jsd_timm",
)
FLAG_PRIORITY = {"T": 0, "Q": 1, "A": 2, "M": 3, "U": 4}

DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet",
    "digits": "Digits (demo set)",
}
ARCH_TITLES = {
    "allconv": "AllConvNet",
    "densenet40_12": "DenseNet-40-12",
    "wrn40_2": "WRN-40-2",
    "resnext29_4x32d": "ResNeXt-29 4x32d",
    "resnet50": "ResNet-50",
}
METHOD_TITLES = {
    "standard": "Standard",
    "cutout": "Cutout",
    "mixup": "Mixup",
    "cutmix": "CutMix",
    "autoaugment": "AutoAugment*",
    "pgd": "Adversarial Training",
    "augmix": "AugMix",
    "augmix_nojsd": "AugMix (no JSD)",
    "fmix": "FMix",
}
METRIC_TITLES = {
    "clean_error": "clean error",
    "corruption_error": "corruption error",
    "mce": "mCE",
    "relative_mce": "relative mCE",
    "rms_calib_clean": "RMS calib (clean)",
    "rms_calib_c": "RMS calib (-C)",
    "brier_clean": "Brier (clean)",
    "brier_c": "Brier (-C)",
    "mfr": "mFR",
    "mt5d": "mT5D",
    "mfp": "mFP",
    "mean_t5d": "mean T5D",
    "rms_calib_clean_reference": "RMS calib clean, reference bins",
    "rms_calib_clean_corrected": "RMS calib clean, all bins",
}

# Paper-scale training (augmix.md §9: 100 epochs WRN-40-2 / AllConvNet, 200 ResNeXt / DenseNet;
# full training sets). Used only to label a run as reduced scale in the report header.
PAPER_TRAIN_SIZE = {"cifar10": 50_000, "cifar100": 50_000, "imagenet": 1_281_167}
PAPER_EPOCHS = {"allconv": 100, "wrn40_2": 100, "densenet40_12": 200, "resnext29_4x32d": 200}

# How a metric is rendered in md/tex: (factor, decimals, unit). Default: percent with 1 decimal.
_RENDER_PREFIX = {"brier": (1.0, 3, ""), "mean_t5d": (1.0, 3, ""), "t5d_": (1.0, 3, "")}
_DEFAULT_RENDER = (100.0, 1, "%")


def dataset_kind(dataset: str) -> str:
    """'imagenet' (AlexNet-normalised scores) for ImageNet-like datasets, else 'cifar' (plain)."""
    return "imagenet" if dataset.startswith("imagenet") else "cifar"


def _render_spec(metric: str) -> tuple[float, int, str]:
    for prefix, spec in _RENDER_PREFIX.items():
        if metric.startswith(prefix):
            return spec
    return _DEFAULT_RENDER


def _order(values, preferred) -> list[str]:
    values = list(dict.fromkeys(values))
    first = [v for v in preferred if v in values]
    return first + sorted(v for v in values if v not in preferred)


# --------------------------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------------------------


def load_published(path: Path | None = None) -> pd.DataFrame:
    """Read ``published.csv`` (default: the packaged one) and check its columns and flags."""
    path = PUBLISHED_CSV if path is None else Path(path)
    frame = pd.read_csv(
        path, dtype={"value": float}, keep_default_na=False, na_values={"value": [""]}
    )
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    bad = sorted(set(frame.flag) - set(FLAG_PRIORITY))
    if bad:
        raise ValueError(f"{path}: unknown flags {bad}; expected one of {sorted(FLAG_PRIORITY)}")
    return frame


def select_published(published: pd.DataFrame) -> pd.DataFrame:
    """One published row per (dataset, arch, method, metric): best flag, then file order."""
    ranked = published.assign(
        _rank=published.flag.map(FLAG_PRIORITY), _pos=np.arange(len(published))
    )
    ranked = ranked.dropna(subset=["value"]).sort_values(["_rank", "_pos"], kind="stable")
    keys = ["dataset", "arch", "method", "metric"]
    return ranked.drop_duplicates(keys).drop(columns=["_rank", "_pos"]).set_index(keys)


# --------------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything read from ``results_root``."""

    evals: pd.DataFrame  # all eval.csv rows
    perturbations: pd.DataFrame | None  # all eval_p.csv rows
    summaries: dict[tuple[str, str, str], dict]  # train_summary.json per model
    predictions: dict[tuple[str, str, str], dict[str, np.ndarray]]  # predictions_clean.npz
    skipped: dict[str, str]  # model folder -> reason


_MODEL_FILES = (
    "eval.csv",
    "eval_p.csv",
    "train_summary.json",
    "predictions_clean.npz",
    "model.pt",
    "metrics.json",
)


def _model_dirs(results_root: Path) -> list[Path]:
    # results/<dataset>/<arch>/<method>/: exactly three levels, holding at least one known file.
    return sorted(
        d
        for d in results_root.glob("*/*/*")
        if d.is_dir() and any((d / f).exists() for f in _MODEL_FILES)
    )


def _read_checked(
    path: Path, columns: tuple[str, ...], identity: tuple[str, str, str]
) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for col, expected in zip(("dataset", "arch", "method"), identity):
        found = set(frame[col].astype(str))
        if found - {expected}:  # an empty file (header only) passes: nothing to attribute
            raise ValueError(
                f"{path}: column {col!r} holds {sorted(found)}, but the folder says {expected!r}"
            )
    return frame


def _check_eval(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    bad = sorted(set(frame.benchmark) - {"clean", "c"})
    if bad:
        raise ValueError(f"{path}: unknown benchmark values {bad}; expected 'clean' or 'c'")
    if (frame.benchmark == "clean").sum() != 1:
        raise ValueError(
            f"{path}: expected exactly one clean row, got {(frame.benchmark == 'clean').sum()}"
        )
    err = frame.error.to_numpy(dtype=float)
    if np.any((err < 0) | (err > 1)):
        raise ValueError(
            f"{path}: errors must be fractions in [0, 1]; got range "
            f"[{np.nanmin(err)}, {np.nanmax(err)}]"
        )
    c = frame[frame.benchmark == "c"]
    if c.severity.lt(1).any() or c.severity.gt(5).any():
        raise ValueError(f"{path}: corruption severities must lie in 1..5")
    dup = c.duplicated(["corruption", "severity"])
    if dup.any():
        raise ValueError(
            f"{path}: duplicated (corruption, severity) rows: "
            f"{c[dup][['corruption', 'severity']].values.tolist()}"
        )
    return frame.astype({"severity": int})


def collect_results(results_root: Path) -> Results:
    """Read every model folder under ``results_root``; raise if no eval.csv exists at all."""
    results_root = Path(results_root)
    evals, perts, summaries, preds, skipped = [], [], {}, {}, {}
    for d in _model_dirs(results_root):
        identity = (d.parent.parent.name, d.parent.name, d.name)
        if not (d / "eval.csv").exists():
            skipped[str(d.relative_to(results_root))] = "no eval.csv (model not evaluated)"
            warnings.warn(f"report: skipping {d}: no eval.csv", stacklevel=2)
            continue
        evals.append(
            _check_eval(_read_checked(d / "eval.csv", EVAL_COLUMNS, identity), d / "eval.csv")
        )
        if (d / "eval_p.csv").exists():
            # The evaluate stage writes a header-only eval_p.csv when there is no -P set.
            pp = _read_checked(d / "eval_p.csv", EVAL_P_COLUMNS, identity)
            if not pp.empty:
                perts.append(pp.astype({"flip_prob": float, "top5_dist": float}))
        if (d / "train_summary.json").exists():
            summaries[identity] = json.loads((d / "train_summary.json").read_text())
        if (d / "predictions_clean.npz").exists():
            with np.load(d / "predictions_clean.npz") as npz:
                if {"confidence", "correct"} <= set(npz.files):
                    preds[identity] = {"confidence": npz["confidence"], "correct": npz["correct"]}
    if not evals:
        raise FileNotFoundError(
            f"no results/<dataset>/<arch>/<method>/eval.csv under {results_root.resolve()}; "
            "run the evaluate stage first"
        )
    return Results(
        evals=pd.concat(evals, ignore_index=True),
        perturbations=pd.concat(perts, ignore_index=True) if perts else None,
        summaries=summaries,
        predictions=preds,
        skipped=skipped,
    )


# --------------------------------------------------------------------------------------------
# Per-model metrics (tidy)
# --------------------------------------------------------------------------------------------


def _model_metrics(ev: pd.DataFrame, kind: str) -> list[tuple[str, float, bool]]:
    """(metric, value, complete) rows from one model's eval.csv rows."""
    out: list[tuple[str, float, bool]] = []
    clean = ev[ev.benchmark == "clean"].iloc[0]
    out += [
        ("clean_error", float(clean.error), True),
        ("rms_calib_clean", float(clean.rms_calib), True),
        ("brier_clean", float(clean.brier), True),
    ]
    c = ev[ev.benchmark == "c"]
    if c.empty:
        return out
    by_sev = {name: g.sort_values("severity") for name, g in c.groupby("corruption", sort=False)}
    for name, g in by_sev.items():
        for sev, err in zip(g.severity, g.error):
            out.append((f"error_{name}_s{sev}", float(err), True))
        out.append((f"error_{name}", float(g.error.mean()), len(g) == 5))
    # Headline corruptions: the 15 benchmark ones present; a demo run with only extras falls back
    # to what it has, and is marked incomplete.
    bench = [n for n in metrics.BENCHMARK_CORRUPTIONS if n in by_sev] or list(by_sev)
    complete = len(bench) == len(metrics.BENCHMARK_CORRUPTIONS) and all(
        len(by_sev[n]) == 5 for n in bench
    )
    sev_errors = {n: by_sev[n].error.to_numpy() for n in by_sev}
    out.append(
        ("corruption_error", metrics.mean_corruption_error(sev_errors, corruptions=bench), complete)
    )
    cells = c[c.corruption.isin(bench)]
    # -C calibration / Brier: mean over the (corruption, severity) cells, like the error
    # (metrics.md §4.2; the paper's aggregation is unconfirmed).
    out += [
        ("rms_calib_c", float(cells.rms_calib.mean()), complete),
        ("brier_c", float(cells.brier.mean()), complete),
    ]
    if kind == "cifar":
        out += [(f"ce_{n}", float(sev_errors[n].mean()), len(sev_errors[n]) == 5) for n in by_sev]
        return out
    # ImageNet: AlexNet-normalised CE needs all five severities of a corruption with a baseline.
    normalisable = [
        n
        for n in by_sev
        if n in metrics.ALEXNET_ERR
        and len(by_sev[n]) == 5
        and list(by_sev[n].severity) == list(metrics.SEVERITIES)
    ]
    out += [(f"ce_{n}", metrics.corruption_error(sev_errors[n], n), True) for n in normalisable]
    head = [n for n in metrics.BENCHMARK_CORRUPTIONS if n in normalisable]
    if head:
        full = len(head) == len(metrics.BENCHMARK_CORRUPTIONS)
        out.append(("mce", metrics.mce(sev_errors, corruptions=head), full))
        out.append(
            (
                "relative_mce",
                metrics.relative_mce(sev_errors, float(clean.error), corruptions=head),
                full,
            )
        )
    return out


def _perturbation_metrics(pp: pd.DataFrame, kind: str) -> list[tuple[str, float, bool]]:
    out = [(f"fp_{p}", float(v), True) for p, v in zip(pp.perturbation, pp.flip_prob)]
    out += [
        (f"t5d_{p}", float(v), True)
        for p, v in zip(pp.perturbation, pp.top5_dist)
        if not math.isnan(v)
    ]
    fp = dict(zip(pp.perturbation, pp.flip_prob.astype(float)))
    t5 = dict(zip(pp.perturbation, pp.top5_dist.astype(float)))
    averaged = metrics.P_PERTURBATIONS_BY_KIND[kind]
    names = [p for p in averaged if p in fp] or list(fp)
    complete = len(names) == len(averaged)
    mfp = metrics.mean_flip_rate(fp, perturbations=names)
    out.append(("mfp", mfp, complete))
    t5_names = [p for p in names if not math.isnan(t5[p])]
    if t5_names:
        out.append(("mean_t5d", metrics.mean_top5_distance(t5, perturbations=t5_names), complete))
    if kind == "cifar":
        # CIFAR-10-P / 100-P report the unnormalised mean flip probability (cifar-p-eval.py).
        out.append(("mfr", mfp, complete))
        return out
    # ImageNet-P: AlexNet-normalised, only once the AlexNet values are recorded (status U now).
    if all(p in metrics.ALEXNET_FLIP_PROB for p in names):
        out.append(
            (
                "mfr",
                metrics.mean_flip_rate(fp, perturbations=names, baseline=metrics.ALEXNET_FLIP_PROB),
                complete,
            )
        )
    if t5_names and all(p in metrics.ALEXNET_TOP5_DIST for p in t5_names):
        out.append(
            (
                "mt5d",
                metrics.mean_top5_distance(
                    t5, perturbations=t5_names, baseline=metrics.ALEXNET_TOP5_DIST
                ),
                complete,
            )
        )
    return out


def summarise(results: Results, *, bin_size: int = 100) -> pd.DataFrame:
    """Tidy per-model metrics: dataset, arch, method, metric, value, complete."""
    rows = []
    for (d, a, m), ev in results.evals.groupby(["dataset", "arch", "method"], sort=False):
        kind = dataset_kind(d)
        found = _model_metrics(ev, kind)
        if results.perturbations is not None:
            pp = results.perturbations
            pp = pp[(pp.dataset == d) & (pp.arch == a) & (pp.method == m)]
            if not pp.empty:
                found += _perturbation_metrics(pp, kind)
        pred = results.predictions.get((d, a, m))
        if pred is not None and len(pred["confidence"]) >= bin_size:
            for mode in metrics.CALIB_MODES:
                found.append(
                    (
                        f"rms_calib_clean_{mode}",
                        metrics.rms_calibration_error(
                            pred["confidence"], pred["correct"], bin_size=bin_size, mode=mode
                        ),
                        True,
                    )
                )
        rows += [
            {"dataset": d, "arch": a, "method": m, "metric": k, "value": v, "complete": c}
            for k, v, c in found
        ]
    return pd.DataFrame(rows, columns=["dataset", "arch", "method", "metric", "value", "complete"])


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


@dataclass
class Table:
    name: str
    title: str
    note: str
    cells: pd.DataFrame  # tidy: one row per cell
    row_labels: list[str]
    col_labels: list[str]


CELL_COLUMNS = [
    "table",
    "dataset",
    "row",
    "column",
    "arch",
    "method",
    "metric",
    "ours",
    "published",
    "diff",
    "flag",
    "source",
    "complete",
]


def _cell(table, dataset, row, column, arch, method, metric, ours, complete, published) -> dict:
    key = (dataset, arch, method, metric)
    pub = published.loc[key] if published is not None and key in published.index else None
    pub_value = float(pub["value"]) if pub is not None else math.nan
    return {
        "table": table,
        "dataset": dataset,
        "row": row,
        "column": column,
        "arch": arch,
        "method": method,
        "metric": metric,
        "ours": ours,
        "published": pub_value,
        "diff": ours - pub_value,
        "flag": pub["flag"] if pub is not None else "",
        "source": pub["source"] if pub is not None else "",
        "complete": complete,
    }


def _lookup_ours(summary: pd.DataFrame) -> dict[tuple, tuple[float, bool]]:
    return {
        (r.dataset, r.arch, r.method, r.metric): (float(r.value), bool(r.complete))
        for r in summary.itertuples(index=False)
    }


def _grid_table(name, title, note, dataset, metric, summary, ours, published) -> Table | None:
    """Rows = methods, columns = architectures, one metric (the paper's Table 1 layout)."""
    sub = summary[(summary.dataset == dataset) & (summary.metric == metric)]
    if sub.empty:
        return None
    archs = _order(sub.arch, REGISTRY_ARCHS)
    methods = _order(sub.method, REGISTRY_METHODS)
    cells = []
    for m in methods:
        for a in archs:
            if (dataset, a, m, metric) in ours:
                v, c = ours[(dataset, a, m, metric)]
                cells.append(
                    _cell(
                        name,
                        dataset,
                        METHOD_TITLES.get(m, m),
                        ARCH_TITLES.get(a, a),
                        a,
                        m,
                        metric,
                        v,
                        c,
                        published,
                    )
                )
        if len(archs) > 1:  # the paper's "mean" column: mean over architectures we have
            vals = [ours[(dataset, a, m, metric)] for a in archs if (dataset, a, m, metric) in ours]
            cells.append(
                _cell(
                    name,
                    dataset,
                    METHOD_TITLES.get(m, m),
                    "mean",
                    "mean",
                    m,
                    metric,
                    float(np.mean([v for v, _ in vals])),
                    len(vals) == len(archs) and all(c for _, c in vals),
                    None,
                )
            )
    cols = [ARCH_TITLES.get(a, a) for a in archs] + (["mean"] if len(archs) > 1 else [])
    return Table(
        name,
        title,
        note,
        pd.DataFrame(cells, columns=CELL_COLUMNS),
        [METHOD_TITLES.get(m, m) for m in methods],
        cols,
    )


def _column_title(metric: str) -> str:
    """Readable column name: a known title, else the corruption / perturbation name."""
    if metric in METRIC_TITLES:
        return METRIC_TITLES[metric]
    for prefix in ("ce_", "fp_"):
        if metric.startswith(prefix):
            return metric.removeprefix(prefix)
    return metric


def _wide_table(name, title, note, datasets, metric_list, summary, ours, published) -> Table | None:
    """Rows = (dataset, arch, method), columns = metrics."""
    sub = summary[summary.dataset.isin(datasets) & summary.metric.isin(metric_list)]
    if sub.empty:
        return None
    present = [k for k in metric_list if k in set(sub.metric)]
    cells, rows = [], []
    for d in _order(sub.dataset, list(DATASET_TITLES)):
        sd = sub[sub.dataset == d]
        for a in _order(sd.arch, REGISTRY_ARCHS):
            for m in _order(sd[sd.arch == a].method, REGISTRY_METHODS):
                row = " / ".join(
                    ([DATASET_TITLES.get(d, d)] if len(datasets) > 1 else [])
                    + [ARCH_TITLES.get(a, a), METHOD_TITLES.get(m, m)]
                )
                rows.append(row)
                for k in present:
                    if (d, a, m, k) in ours:
                        v, c = ours[(d, a, m, k)]
                        cells.append(
                            _cell(
                                name,
                                d,
                                row,
                                _column_title(k),
                                a,
                                m,
                                k,
                                v,
                                c,
                                published,
                            )
                        )
    cols = [_column_title(k) for k in present]
    return Table(name, title, note, pd.DataFrame(cells, columns=CELL_COLUMNS), rows, cols)


def build_tables(
    summary: pd.DataFrame, published: pd.DataFrame | None, *, calib_mode: str, bin_size: int = 100
) -> list[Table]:
    """All report tables for the datasets present in ``summary``."""
    ours = _lookup_ours(summary)
    tables: list[Table] = []
    corr_cols = [f"ce_{c}" for c in metrics.ALL_CORRUPTIONS]
    for d in _order(summary.dataset, list(DATASET_TITLES)):
        title = DATASET_TITLES.get(d, d)
        present = set(summary[summary.dataset == d].metric)
        extra_ce = sorted(k for k in present if k.startswith("ce_") and k not in corr_cols)
        if dataset_kind(d) == "cifar":
            tables.append(
                _grid_table(
                    f"{d}_corruption_error",
                    f"{title}-C corruption error by method x architecture",
                    "Plain mean over the 15 benchmark corruptions x 5 severities, no AlexNet "
                    "normalisation (the paper's CIFAR 'mCE'; paper Table 1).",
                    d,
                    "corruption_error",
                    summary,
                    ours,
                    published,
                )
            )
            if any(k.startswith("ce_") for k in present):
                tables.append(
                    _wide_table(
                        f"{d}_per_corruption",
                        f"{title}-C error per corruption (mean over severities)",
                        "Published per-corruption values are RobustBench measurements (M).",
                        [d],
                        ["clean_error", "corruption_error"] + corr_cols + extra_ce,
                        summary,
                        ours,
                        published,
                    )
                )
        else:
            tables.append(
                _grid_table(
                    f"{d}_mce",
                    f"{title}-C mCE by method x architecture",
                    "AlexNet-normalised mean corruption error x 100 (AlexNet = 100).",
                    d,
                    "mce",
                    summary,
                    ours,
                    published,
                )
            )
            tables.append(
                _wide_table(
                    f"{d}_imagenet",
                    f"{title}: clean error, mCE, relative mCE and per-corruption CE",
                    "CE per corruption normalised by AlexNet's errors (keyed by name); "
                    "relative mCE "
                    f"uses AlexNet clean error {metrics.ALEXNET_CLEAN_ERROR}.",
                    [d],
                    ["clean_error", "mce", "relative_mce", "corruption_error"]
                    + corr_cols
                    + extra_ce,
                    summary,
                    ours,
                    published,
                )
            )
        tables.append(
            _grid_table(
                f"{d}_clean_error",
                f"{title} clean test error by method x architecture",
                "",
                d,
                "clean_error",
                summary,
                ours,
                published,
            )
        )
        fp_cols = [
            "fp_" + p
            for p in _order(
                [k[3:] for k in present if k.startswith("fp_")],
                metrics.P_PERTURBATIONS_BY_KIND[dataset_kind(d)],
            )
        ]
        if fp_cols:
            norm = (
                "unnormalised mean flip probability (cifar-p-eval.py)"
                if dataset_kind(d) == "cifar"
                else "AlexNet-normalised mFR / mT5D where the "
                "AlexNet values are recorded (status U: mFR, mT5D absent otherwise); mFP is "
                "the unnormalised mean flip probability"
            )
            tables.append(
                _wide_table(
                    f"{d}_p",
                    f"{title}-P perturbation stability",
                    f"mFR: {norm}. Noise perturbations compare each frame with frame 0, others "
                    "consecutive frames.",
                    [d],
                    ["mfr", "mt5d", "mfp", "mean_t5d"] + fp_cols,
                    summary,
                    ours,
                    published,
                )
            )
    tables.append(
        _wide_table(
            "calibration",
            "Calibration: RMS calibration error and Brier score",
            f"RMS calibration error, adaptive bins of {bin_size}, mode '{calib_mode}'"
            + (
                " (reproduces outlier-exposure calib_err, which skips the highest-confidence bin)"
                if calib_mode == "reference"
                else " (all bins)"
            )
            + "; -C columns average the (corruption, severity) cells. Brier: multi-class form in "
            "[0, 2]. The 'reference bins' / 'all bins' columns are recomputed from "
            "predictions_clean.npz.",
            list(_order(summary.dataset, list(DATASET_TITLES))),
            [
                "rms_calib_clean",
                "rms_calib_c",
                "brier_clean",
                "brier_c",
                "rms_calib_clean_reference",
                "rms_calib_clean_corrected",
            ],
            summary,
            ours,
            published,
        )
    )
    return [t for t in tables if t is not None]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _fmt(metric: str, value: float, *, signed: bool = False) -> str:
    factor, decimals, _ = _render_spec(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value * factor:{'+' if signed else ''}.{decimals}f}"


def _cell_text(c: pd.Series) -> str:
    text = _fmt(c.metric, c.ours) + ("" if c.complete else "*")
    if not math.isnan(c.published):
        text += (
            f" ({_fmt(c.metric, c.published)} {c.flag}, {_fmt(c.metric, c['diff'], signed=True)})"
        )
    return text


def _grid(table: Table) -> list[list[str]]:
    lookup = {(c.row, c.column): _cell_text(c) for _, c in table.cells.iterrows()}
    return [[r] + [lookup.get((r, col), "") for col in table.col_labels] for r in table.row_labels]


_LEGEND = (
    "Cells: ours (published flag, ours - published). Errors in %, mCE/mFR/mT5D x 100, "
    "Brier and T5D raw. * = incomplete (fewer corruptions, severities or perturbations "
    "than the benchmark). Flags: T paper via RobustBench, Q paper quoted, A authors, "
    "M measurement by others."
)


def render_markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    header = [""] + table.col_labels
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] * len(header)) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in _grid(table)]
    return "\n".join(lines + ["", _LEGEND, ""])


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def render_latex(table: Table) -> str:
    cols = "l" + "r" * len(table.col_labels)
    lines = [
        f"% {_tex(table.title)}. {_tex(_LEGEND)}",
        r"\begin{tabular}{" + cols + "}",
        r"\hline",
        " & ".join([""] + [_tex(c) for c in table.col_labels]) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(_tex(x) for x in row) + r" \\" for row in _grid(table)]
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no pyplot, no global backend switch)
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: Path) -> Path:
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def plot_severity(ev: pd.DataFrame, path: Path, title: str) -> Path:
    """Error (%) against severity, one line per corruption; clean error dashed."""
    fig = _new_figure(7, 4.5)
    ax = fig.add_subplot()
    c = ev[ev.benchmark == "c"]
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors  # 15-19 lines: the default 10-colour cycle would repeat
    for i, name in enumerate(_order(c.corruption, metrics.ALL_CORRUPTIONS)):
        g = c[c.corruption == name].sort_values("severity")
        ax.plot(
            g.severity,
            100 * g.error,
            marker="o",
            ms=3,
            lw=1,
            label=name,
            color=colours[i % len(colours)],
        )
    ax.axhline(
        100 * float(ev[ev.benchmark == "clean"].error.iloc[0]),
        color="k",
        ls="--",
        lw=1,
        label="clean",
    )
    ax.set(xlabel="severity", ylabel="error (%)", title=title, xticks=[1, 2, 3, 4, 5])
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save_png(fig, path)


def plot_per_corruption(summary: pd.DataFrame, dataset: str, arch: str, path: Path) -> Path | None:
    """Grouped bars: error per corruption (%), one bar per method."""
    sub = summary[
        (summary.dataset == dataset)
        & (summary.arch == arch)
        & summary.metric.str.match(r"^error_[a-z_]+$")
        & ~summary.metric.str.match(r".*_s\d$")
    ]
    if sub.empty:
        return None
    names = _order([k[len("error_") :] for k in sub.metric], metrics.ALL_CORRUPTIONS)
    methods = _order(sub.method, REGISTRY_METHODS)
    fig = _new_figure(max(6, 0.6 * len(names) + 2), 4)
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    x = np.arange(len(names))
    for i, m in enumerate(methods):
        vals = sub[sub.method == m].set_index("metric").value
        ax.bar(
            x + i * width - 0.4 + width / 2,
            [100 * vals.get(f"error_{n}", np.nan) for n in names],
            width,
            label=METHOD_TITLES.get(m, m),
        )
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set(
        ylabel="error (%)",
        title=f"{DATASET_TITLES.get(dataset, dataset)}-C, "
        f"{ARCH_TITLES.get(arch, arch)}: error per corruption",
    )
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def plot_heatmap(summary: pd.DataFrame, dataset: str, metric: str, path: Path) -> Path | None:
    """Method x architecture heatmap of the headline metric, annotated in %."""
    sub = summary[(summary.dataset == dataset) & (summary.metric == metric)]
    if sub.empty:
        return None
    archs, methods = _order(sub.arch, REGISTRY_ARCHS), _order(sub.method, REGISTRY_METHODS)
    grid = np.full((len(methods), len(archs)), np.nan)
    for r in sub.itertuples(index=False):
        grid[methods.index(r.method), archs.index(r.arch)] = 100 * r.value
    fig = _new_figure(1.6 * len(archs) + 3, 0.5 * len(methods) + 1.5)
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(len(archs)), [ARCH_TITLES.get(a, a) for a in archs], fontsize=8)
    ax.set_yticks(range(len(methods)), [METHOD_TITLES.get(m, m) for m in methods], fontsize=8)
    ax.set_title(f"{DATASET_TITLES.get(dataset, dataset)}: {METRIC_TITLES.get(metric, metric)} (%)")
    fig.colorbar(im, ax=ax)
    return _save_png(fig, path)


def plot_reliability(confidence, correct, path: Path, title: str, *, n_bins: int = 15) -> Path:
    """Reliability diagram with equal-width confidence bins (display only; the RMS metric uses
    adaptive bins)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    acc = np.bincount(idx, weights=correct, minlength=n_bins) / np.maximum(count, 1)
    conf = np.bincount(idx, weights=confidence, minlength=n_bins) / np.maximum(count, 1)
    fig = _new_figure(4.5, 4.5)
    ax = fig.add_subplot()
    centres = (edges[:-1] + edges[1:]) / 2
    keep = count > 0
    ax.bar(centres[keep], acc[keep], width=1 / n_bins, edgecolor="k", lw=0.5, label="accuracy")
    ax.bar(
        centres[keep],
        conf[keep] - acc[keep],
        bottom=acc[keep],
        width=1 / n_bins,
        color="r",
        alpha=0.3,
        label="gap",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(fontsize=7, loc="upper left")
    return _save_png(fig, path)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _scale_section(results: Results) -> tuple[list[str], bool]:
    """Markdown lines describing the run scale, and whether it is reduced (not paper scale)."""
    models = results.evals[["dataset", "arch", "method"]].drop_duplicates()
    lines = [
        "| dataset | arch | method | epochs | n_train | n_test | device | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    reduced = False
    for d, a, m in models.itertuples(index=False):
        s = results.summaries.get((d, a, m))
        if s is None:
            reduced = True  # unknown scale: never present it as paper scale
            n_test = results.evals[
                (results.evals.dataset == d)
                & (results.evals.arch == a)
                & (results.evals.method == m)
                & (results.evals.benchmark == "clean")
            ].n.iloc[0]
            lines.append(f"| {d} | {a} | {m} | ? | ? | {n_test} | ? | ? |")
            continue
        paper_n = PAPER_TRAIN_SIZE.get(d)
        paper_e = PAPER_EPOCHS.get(a)
        if (
            paper_n is None
            or s.get("n_train", 0) < paper_n
            or (paper_e is not None and s.get("epochs", 0) < paper_e)
        ):
            reduced = True
        secs = s.get("seconds")
        lines.append(
            f"| {d} | {a} | {m} | {s.get('epochs', '?')} | {s.get('n_train', '?')} | "
            f"{s.get('n_test', '?')} | {s.get('device', '?')} | "
            f"{'?' if secs is None else f'{float(secs):.0f}'} |"
        )
    return lines, reduced


def _header(results: Results, calib_mode: str, published_path: Path | None, bin_size: int = 100) -> list[str]:
    scale, reduced = _scale_section(results)
    datasets = _order(results.evals.dataset, list(DATASET_TITLES))
    epochs = sorted({s.get("epochs") for s in results.summaries.values() if "epochs" in s})
    n_train = sorted({s.get("n_train") for s in results.summaries.values() if "n_train" in s})
    published_label = (
        "augmix/data/published.csv (packaged)"
        if published_path == PUBLISHED_CSV
        else str(published_path)
    )
    lines = ["# AugMix reproduction report", ""]
    if reduced:
        lines += [
            (
                "> **REDUCED-SCALE RUN: these numbers are NOT the paper's setting and must not be "
                "read as a reproduction of its tables.** At least one model was trained on a "
                "dataset, training-set size or epoch count below the paper's (or its scale is "
                "unknown). Published values are shown for orientation only."
            ),
            "",
        ]
    lines += (
        [
            f"* Datasets: {', '.join(datasets)}",
            f"* Epochs: {', '.join(map(str, epochs)) or 'unknown (no train_summary.json)'}",
            f"* Training-set sizes: {', '.join(map(str, n_train)) or 'unknown'}",
            f"* Calibration: RMS calibration error, adaptive bins of {bin_size} sorted by confidence, "
            f"mode **{calib_mode}**"
            + (
                " (as hendrycks/outlier-exposure calib_err: the highest-confidence bin is skipped)"
                if calib_mode == "reference"
                else " (every bin summed)"
            )
            + "; on -C the mean over (corruption, severity) cells (paper's rule unconfirmed).",
            (
                "* Corruption error: CIFAR-like datasets use the plain mean over the 15 benchmark "
                "corruptions x 5 severities; ImageNet uses AlexNet-normalised mCE."
            ),
            (
                f"* Published values: {published_label}; preference "
                "T > Q > A > M per (dataset, arch, method, metric)."
            ),
            "",
            "## Scale of this run",
            "",
        ]
        + scale
        + [""]
    )
    if results.skipped:
        lines += ["## Skipped model folders", ""]
        lines += [f"* `{k}`: {v}" for k, v in sorted(results.skipped.items())] + [""]
    return lines


def build_report(
    results_root: Path, out_dir: Path, *, calib_mode: str, published: Path | None = None,
    bin_size: int = 100,
) -> dict[str, Path]:
    """Build every table, plot and ``report.md`` from ``results_root``; return written files.

    Keys of the returned dict are paths relative to ``out_dir``. ``published`` defaults to the
    packaged ``augmix/data/published.csv``.
    """
    if calib_mode not in metrics.CALIB_MODES:
        raise ValueError(
            f"unknown calib_mode {calib_mode!r}; expected one of {metrics.CALIB_MODES}"
        )
    results_root, out_dir = Path(results_root), Path(out_dir)
    results = collect_results(results_root)
    published_path = PUBLISHED_CSV if published is None else Path(published)
    pub = select_published(load_published(published_path))
    summary = summarise(results, bin_size=bin_size)
    tables = build_tables(summary, pub, calib_mode=calib_mode, bin_size=bin_size)

    written: dict[str, Path] = {}

    def put(rel: str, path: Path | None) -> None:
        if path is not None:
            written[rel] = path

    put("summary.csv", io.write_csv(out_dir / "summary.csv", summary))
    all_cells = (
        pd.concat([t.cells for t in tables], ignore_index=True)
        if tables
        else pd.DataFrame(columns=CELL_COLUMNS)
    )
    put("cells.csv", io.write_csv(out_dir / "cells.csv", all_cells))
    body = []
    for t in tables:
        md = render_markdown(t)
        body.append(md)
        put(f"tables/{t.name}.md", io.write_text(out_dir / "tables" / f"{t.name}.md", md))
        put(f"tables/{t.name}.csv", io.write_csv(out_dir / "tables" / f"{t.name}.csv", t.cells))
        put(
            f"tables/{t.name}.tex",
            io.write_text(out_dir / "tables" / f"{t.name}.tex", render_latex(t)),
        )

    plots = []
    for (d, a, m), ev in results.evals.groupby(["dataset", "arch", "method"], sort=False):
        if (ev.benchmark == "c").any():
            rel = f"plots/{d}/{a}__{m}__severity.png"
            put(rel, plot_severity(ev, out_dir / rel, f"{d} / {a} / {m}: error by severity"))
            plots.append(rel)
        pred = results.predictions.get((d, a, m))
        if pred is not None:
            rel = f"plots/{d}/{a}__{m}__reliability.png"
            put(
                rel,
                plot_reliability(
                    pred["confidence"],
                    pred["correct"],
                    out_dir / rel,
                    f"{d} / {a} / {m}: reliability (clean)",
                ),
            )
            plots.append(rel)
    for d in _order(summary.dataset, list(DATASET_TITLES)):
        for a in _order(summary[summary.dataset == d].arch, REGISTRY_ARCHS):
            rel = f"plots/{d}/{a}__per_corruption.png"
            if plot_per_corruption(summary, d, a, out_dir / rel) is not None:
                put(rel, out_dir / rel)
                plots.append(rel)
        metric = "corruption_error" if dataset_kind(d) == "cifar" else "mce"
        rel = f"plots/{d}/heatmap_{metric}.png"
        if plot_heatmap(summary, d, metric, out_dir / rel) is not None:
            put(rel, out_dir / rel)
            plots.append(rel)

    lines = _header(results, calib_mode, published_path, bin_size)
    lines += ["## Tables", ""] + body + ["## Plots", ""] + [f"* [{p}]({p})" for p in plots] + [""]
    put("report.md", io.write_text(out_dir / "report.md", "\n".join(lines)))
    return written
