"""Two result folders side by side, cell by cell: the difference of the seed means and whether it
exceeds the seeds' spread.

Spread rule: sigma = the pooled sample standard deviation of one run (both sides' seeds; one side
alone when the other has n = 1); the difference exceeds the spread when
|mean_b - mean_a| > 2 sigma sqrt(1/n_a + 1/n_b) (two standard errors of the difference). With one
seed on both sides there is no spread to compare with.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from augmix.report import aggregate, names, render
from augmix.report.reading import CELL, collect_results

COMPARE_METRICS = ("clean_error", "corruption_error", "mce", "relative_mce", "rms_calib_clean",
                   "rms_calib_c", "brier_clean", "brier_c", "mfp", "mfr", "mt5d", "cbar_error",
                   *(f"{n}_{k}" for n in names.NATURAL_TITLES for k in ("error", "gap")))
EXCEEDS, WITHIN, NO_SPREAD = "exceeds spread", "within spread", "no spread (n=1 on both sides)"
COMPARE_COLUMNS = [*CELL, "metric", "mean_a", "std_a", "n_a", "mean_b", "std_b", "n_b", "diff",
                   "threshold", "status"]


def pooled_std(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """Pooled sample std of one run from both sides' seeds; NaN when neither has two seeds."""
    dof = (n_a - 1 if n_a > 1 else 0) + (n_b - 1 if n_b > 1 else 0)
    if dof == 0:
        return math.nan
    ss = (n_a - 1) * std_a**2 if n_a > 1 else 0.0
    ss += (n_b - 1) * std_b**2 if n_b > 1 else 0.0
    return math.sqrt(ss / dof)


def spread_status(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int
                  ) -> tuple[float, str]:
    """(threshold, status) of one cell's difference b - a."""
    sigma = pooled_std(std_a, n_a, std_b, n_b)
    if math.isnan(sigma):
        return math.nan, NO_SPREAD
    threshold = 2.0 * sigma * math.sqrt(1.0 / n_a + 1.0 / n_b)
    return threshold, (EXCEEDS if abs(mean_b - mean_a) > threshold else WITHIN)


def _stats(root: Path, bin_size: int, calib_mode: str) -> pd.DataFrame:
    results = collect_results(root)
    return aggregate.over_seeds(aggregate.per_run(results, bin_size=bin_size, calib_mode=calib_mode))


def compare_cells(a: Path, b: Path, *, bin_size: int = 100, calib_mode: str = "reference",
                  metrics: tuple[str, ...] | None = COMPARE_METRICS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells in both, cells in one only) of results roots ``a`` and ``b``; ``metrics=None``: all."""
    sa, sb = _stats(Path(a), bin_size, calib_mode), _stats(Path(b), bin_size, calib_mode)
    if metrics is not None:
        sa, sb = sa[sa.metric.isin(metrics)], sb[sb.metric.isin(metrics)]
    keys = [*CELL, "metric"]
    both = sa.merge(sb, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    only = both[both._merge != "both"].assign(
        side=lambda f: f._merge.map({"left_only": "A", "right_only": "B"}).astype(str))[[*keys, "side"]]
    both = both[both._merge == "both"].reset_index(drop=True)
    rows = []
    for r in both.itertuples(index=False):
        threshold, status = spread_status(r.mean_a, r.std_a, int(r.n_a), r.mean_b, r.std_b, int(r.n_b))
        rows.append({**{k: getattr(r, k) for k in keys}, "mean_a": r.mean_a, "std_a": r.std_a,
                     "n_a": int(r.n_a), "mean_b": r.mean_b, "std_b": r.std_b, "n_b": int(r.n_b),
                     "diff": r.mean_b - r.mean_a, "threshold": threshold, "status": status})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS), only.reset_index(drop=True)


def _sort(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {
        "dataset": {v: i for i, v in enumerate(names.datasets(frame.dataset))},
        "arch": {v: i for i, v in enumerate(names.archs(frame.arch))},
        "method": {v: i for i, v in enumerate(names.methods(frame.method))},
        "model": {v: i for i, v in enumerate(names.models(frame.model))},
        "metric": {v: i for i, v in enumerate(names.order(frame.metric, COMPARE_METRICS))},
    }
    return frame.sort_values(list(rank), key=lambda col: col.map(rank[col.name]), kind="stable")


def compare(a: Path, b: Path, *, bin_size: int = 100, calib_mode: str = "reference",
            metrics: tuple[str, ...] | None = COMPARE_METRICS) -> str:
    """Markdown: every cell both roots hold (A, B, B - A, the spread threshold, its status), then
    the cells only one of them holds. Rule in this module's docstring."""
    cells, only = compare_cells(a, b, bin_size=bin_size, calib_mode=calib_mode, metrics=metrics)
    counts = {s: int((cells.status == s).sum()) for s in (EXCEEDS, WITHIN, NO_SPREAD)}
    lines = ["# Comparison of result folders", "", f"* A: `{a}`", f"* B: `{b}`",
             "* Rule: the difference B - A exceeds the spread when |B - A| > 2 sigma sqrt(1/n_A + "
             "1/n_B), sigma the pooled sample std of one run over both sides' seeds.",
             "* " + "; ".join(f"{s}: {n}" for s, n in counts.items()), ""]
    rows = [[names.dataset_title(r.dataset), names.arch_title(r.arch), names.method_title(r.method),
             r.model, names.metric_title(r.metric),
             render.ours_text(r.metric, r.mean_a, r.std_a, r.n_a),
             render.ours_text(r.metric, r.mean_b, r.std_b, r.n_b),
             render.fmt(r.metric, r.diff, signed=True),
             render.fmt(r.metric, r.threshold, extra_decimals=1), r.status]
            for r in _sort(cells).itertuples(index=False)]
    if rows:
        lines += render.markdown_table(["dataset", "arch", "method", "model", "metric", "A", "B",
                                        "B - A", "threshold", "status"], rows)
    else:
        lines.append("No cell is in both folders.")
    if not only.empty:
        lines += ["", "Cells in one folder only:", ""]
        lines += [f"* {r.side} only: {r.dataset} / {r.arch} / {names.row_title(r.method, r.model)} / "
                  f"{r.metric}" for r in _sort(only).itertuples(index=False)]
    return "\n".join(lines + [""])
