"""The report's tables as tidy cells: ours (mean, std, n over seeds) beside the published value,
the difference, the band and the verdict (rule in `augmix.report.published`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from augmix import metrics
from augmix.report import names
from augmix.report.published import NO_PUBLISHED, verdict

CELL_COLUMNS = [
    "table", "dataset", "row", "column", "arch", "method", "model", "metric",
    "ours", "std", "n", "seeds", "published", "diff", "band", "verdict",
    "flag", "source", "tolerance", "tolerance_note", "complete",
]
MEAN_COLUMN = "mean"  # the paper's mean-over-architectures column: an aggregate, never judged
ABLATION_ARCH = "wrn40_2"  # paper Table 4 is on WRN-40-2
ABLATION_DATASETS = ("cifar10", "cifar100")


@dataclass
class Table:
    name: str
    title: str
    note: str
    cells: pd.DataFrame  # tidy: one row per cell, CELL_COLUMNS
    row_labels: list[str]
    col_labels: list[str]


def _published_row(published: pd.DataFrame | None, key: tuple) -> pd.Series | None:
    if published is None or key not in published.index:
        return None
    return published.loc[key]


def make_cell(table: str, dataset: str, row: str, column: str, arch: str, method: str, model: str,
              metric: str, stat: dict | None, pub: pd.Series | None) -> dict:
    """One table cell. ``stat``: {mean, std, n, seeds, complete} or None (not run by us);
    ``pub``: the published row (value, flag, source, tolerance, tolerance_note) or None."""
    ours = math.nan if stat is None else stat["mean"]
    std = math.nan if stat is None else stat["std"]
    n = 0 if stat is None else stat["n"]
    value = math.nan if pub is None else float(pub["value"])
    tol = math.nan if pub is None else float(pub["tolerance"])
    if stat is None:
        judged, width = "", math.nan  # nothing of ours to judge
    elif column == MEAN_COLUMN:
        judged, width = NO_PUBLISHED, math.nan
    else:
        judged, width = verdict(ours, std, n, value, tol)
    return {
        "table": table, "dataset": dataset, "row": row, "column": column, "arch": arch,
        "method": method, "model": model, "metric": metric, "ours": ours, "std": std, "n": n,
        "seeds": "" if stat is None else stat["seeds"], "published": value, "diff": ours - value,
        "band": width, "verdict": judged,
        "flag": "" if pub is None else pub["flag"], "source": "" if pub is None else pub["source"],
        "tolerance": tol, "tolerance_note": "" if pub is None else pub["tolerance_note"],
        "complete": True if stat is None else stat["complete"],
    }


def _rows_of(stats: pd.DataFrame) -> list[tuple[str, str]]:
    """(method, model) rows in the code's method order, our cells before external models."""
    pairs = list(dict.fromkeys(zip(stats.method, stats.model)))
    out = []
    for m in names.methods(p[0] for p in pairs):
        out += [(m, model) for model in names.models(mod for mm, mod in pairs if mm == m)]
    return out


def grid_table(name: str, title: str, note: str, dataset: str, metric: str, stats: pd.DataFrame,
               ours: dict, published: pd.DataFrame | None) -> Table | None:
    """Rows = methods (and external models), columns = architectures, one metric (paper Table 1)."""
    sub = stats[(stats.dataset == dataset) & (stats.metric == metric)]
    if sub.empty:
        return None
    archs = names.archs(sub.arch)
    rows = _rows_of(sub)
    cells = []
    for m, model in rows:
        label = names.row_title(m, model)
        for a in archs:
            key = (dataset, a, m, model, metric)
            if key in ours:
                cells.append(make_cell(name, dataset, label, names.arch_title(a), a, m, model, metric,
                                       ours[key], _published_row(published, (dataset, a, m, metric))))
        if len(archs) > 1 and model == names.OURS:  # the paper's mean over the architectures we have
            vals = [ours[(dataset, a, m, model, metric)] for a in archs
                    if (dataset, a, m, model, metric) in ours]
            stat = {"mean": float(np.mean([v["mean"] for v in vals])), "std": math.nan,
                    "n": min(v["n"] for v in vals), "seeds": "",
                    "complete": len(vals) == len(archs) and all(v["complete"] for v in vals)}
            cells.append(make_cell(name, dataset, label, MEAN_COLUMN, MEAN_COLUMN, m, model, metric,
                                   stat, None))
    cols = [names.arch_title(a) for a in archs] + ([MEAN_COLUMN] if len(archs) > 1 else [])
    return Table(name, title, note, pd.DataFrame(cells, columns=CELL_COLUMNS),
                 [names.row_title(m, model) for m, model in rows], cols)


def wide_table(name: str, title: str, note: str, datasets: list[str], metric_list: list[str],
               stats: pd.DataFrame, ours: dict, published: pd.DataFrame | None) -> Table | None:
    """Rows = (dataset, arch, method, model), columns = metrics."""
    sub = stats[stats.dataset.isin(datasets) & stats.metric.isin(metric_list)]
    if sub.empty:
        return None
    present = [k for k in metric_list if k in set(sub.metric)]
    cells, rows = [], []
    for d in names.datasets(sub.dataset):
        sd = sub[sub.dataset == d]
        for a in names.archs(sd.arch):
            for m, model in _rows_of(sd[sd.arch == a]):
                row = " / ".join(([names.dataset_title(d)] if len(datasets) > 1 else [])
                                 + [names.arch_title(a), names.row_title(m, model)])
                rows.append(row)
                for k in present:
                    if (d, a, m, model, k) in ours:
                        cells.append(make_cell(name, d, row, names.metric_title(k), a, m, model, k,
                                               ours[(d, a, m, model, k)],
                                               _published_row(published, (d, a, m, k))))
    return Table(name, title, note, pd.DataFrame(cells, columns=CELL_COLUMNS), rows,
                 [names.metric_title(k) for k in present])


def ablation_table(stats: pd.DataFrame, ours: dict, raw_published: pd.DataFrame) -> Table | None:
    """Paper Table 4 (WRN-40-2, CIFAR-10-C / CIFAR-100-C error): its six rows in the published
    order, each beside our cells (and external WRN-40-2 models of the same methods)."""
    rows_pub = raw_published[(raw_published.table == "ablation") & (raw_published.arch == ABLATION_ARCH)]
    have = stats[(stats.arch == ABLATION_ARCH) & stats.dataset.isin(ABLATION_DATASETS)
                 & (stats.metric == "corruption_error")]
    if rows_pub.empty or have.empty:
        return None
    order = list(dict.fromkeys(rows_pub.method))
    pub = rows_pub.drop_duplicates(["dataset", "method"]).set_index(["dataset", "method"])
    rows: list[tuple[str, str]] = []
    for m in order:
        rows.append((m, names.OURS))
        rows += [(m, model) for model in names.models(have[have.method == m].model) if model != names.OURS]
    cells = []
    for m, model in rows:
        label = names.row_title(m, model)
        for d in ABLATION_DATASETS:
            stat = ours.get((d, ABLATION_ARCH, m, model, "corruption_error"))
            p = pub.loc[(d, m)] if (d, m) in pub.index else None
            if stat is None and (p is None or model != names.OURS):
                continue
            cells.append(make_cell("ablation", d, label, f"{names.dataset_title(d)}-C", ABLATION_ARCH,
                                   m, model, "corruption_error", stat, p))
    return Table(
        "ablation",
        "Ablation (paper Table 4): WRN-40-2 corruption error",
        "Rows in the paper's order; a row we have not run shows the published value only. "
        "Published values from published.csv table 'ablation' (flags there).",
        pd.DataFrame(cells, columns=CELL_COLUMNS),
        [names.row_title(m, model) for m, model in rows],
        [f"{names.dataset_title(d)}-C" for d in ABLATION_DATASETS],
    )


def build_tables(stats: pd.DataFrame, ours: dict, published: pd.DataFrame | None,
                 raw_published: pd.DataFrame | None, *, calib_mode: str, bin_size: int = 100) -> list[Table]:
    """All report tables for the datasets present in ``stats`` (aggregate.over_seeds)."""
    tables: list[Table | None] = []
    corr_cols = [f"ce_{c}" for c in metrics.ALL_CORRUPTIONS]
    for d in names.datasets(stats.dataset):
        title = names.dataset_title(d)
        kind = metrics.dataset_kind(d)
        present = set(stats[stats.dataset == d].metric)
        extra_ce = sorted(k for k in present if k.startswith("ce_") and k not in corr_cols)
        if kind == "cifar":
            tables.append(grid_table(
                f"{d}_corruption_error", f"{title}-C corruption error by method x architecture",
                "Plain mean over the 15 benchmark corruptions x 5 severities, no AlexNet "
                "normalisation (the paper's CIFAR 'mCE'; paper Table 1).",
                d, "corruption_error", stats, ours, published))
            if any(k.startswith("ce_") for k in present):
                tables.append(wide_table(
                    f"{d}_per_corruption", f"{title}-C error per corruption (mean over severities)",
                    "Published per-corruption values are measurements by others (M).",
                    [d], ["clean_error", "corruption_error"] + corr_cols + extra_ce, stats, ours, published))
        else:
            tables.append(grid_table(
                f"{d}_mce", f"{title}-C mCE by method x architecture",
                "AlexNet-normalised mean corruption error x 100 (AlexNet = 100).",
                d, "mce", stats, ours, published))
            tables.append(wide_table(
                f"{d}_imagenet", f"{title}: clean error, mCE, relative mCE and per-corruption CE",
                "CE per corruption normalised by AlexNet's errors (keyed by name); relative mCE uses "
                f"AlexNet clean error {metrics.ALEXNET_CLEAN_ERROR}.",
                [d], ["clean_error", "mce", "relative_mce", "corruption_error"] + corr_cols + extra_ce,
                stats, ours, published))
        tables.append(grid_table(f"{d}_clean_error", f"{title} clean test error by method x architecture",
                                 "", d, "clean_error", stats, ours, published))
        fp_cols = ["fp_" + p for p in names.order([k[3:] for k in present if k.startswith("fp_")],
                                                   metrics.P_PERTURBATIONS_BY_KIND[kind])]
        if fp_cols:
            norm = ("unnormalised mean flip probability (cifar-p-eval.py)" if kind == "cifar"
                    else "AlexNet-normalised mFR / mT5D where the AlexNet values are recorded (status U: "
                    "mFR, mT5D absent otherwise); mFP is the unnormalised mean flip probability")
            tables.append(wide_table(
                f"{d}_p", f"{title}-P perturbation stability",
                f"mFR: {norm}. Noise perturbations compare each frame with frame 0, others consecutive "
                "frames.", [d], ["mfr", "mt5d", "mfp", "mean_t5d"] + fp_cols, stats, ours, published))
    if raw_published is not None:
        tables.append(ablation_table(stats, ours, raw_published))
    tables.append(wide_table(
        "calibration", "Calibration: RMS calibration error and Brier score",
        f"RMS calibration error, adaptive bins of {bin_size}, mode '{calib_mode}'"
        + (" (reproduces outlier-exposure calib_err, which skips the highest-confidence bin)"
           if calib_mode == "reference" else " (all bins)")
        + "; -C columns average the (corruption, severity) cells. Brier: multi-class form in [0, 2]. "
        "The 'reference bins' / 'all bins' columns are recomputed from predictions_clean.npz.",
        names.datasets(stats.dataset),
        ["rms_calib_clean", "rms_calib_c", "brier_clean", "brier_c",
         "rms_calib_clean_reference", "rms_calib_clean_corrected"],
        stats, ours, published))
    return [t for t in tables if t is not None]


HEADLINE_METRICS = ("clean_error", "corruption_error", "mce", "mfr")


def judged_cells(tables: list[Table]) -> pd.DataFrame:
    """Every distinct judged cell (dataset, arch, method, model, metric) of the tables."""
    frames = [t.cells for t in tables if not t.cells.empty]
    if not frames:
        return pd.DataFrame(columns=CELL_COLUMNS)
    cells = pd.concat(frames, ignore_index=True)
    cells = cells[(cells.column != MEAN_COLUMN) & (cells.verdict != "")]
    return cells.drop_duplicates(["dataset", "arch", "method", "model", "metric"]).reset_index(drop=True)
