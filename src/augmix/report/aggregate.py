"""Per-run metrics (from `metrics.summarize`, the one rule set evaluate also uses) and their
mean, sample standard deviation and count over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from augmix import metrics
from augmix.report import names
from augmix.report.reading import CELL, Results, run_key

RUN_COLUMNS = ["dataset", "arch", "method", "model", "seed", "metric", "value", "complete"]
CELL_STAT_COLUMNS = [*CELL, "metric", "mean", "std", "n", "seeds", "complete"]


def summary_rows(summary: dict) -> list[tuple[str, float, bool]]:
    """(metric, value, complete) rows of one `metrics.summarize` result.

    Metric names: clean_error, rms_calib_clean, brier_clean; error_<c>_s<k> (one cell); error_<c>
    (mean over severities); ce_<c> (CIFAR: error_<c>; ImageNet: AlexNet-normalised CE);
    corruption_error, rms_calib_c, brier_c, mce, relative_mce; fp_<p>, t5d_<p>, mfp, mean_t5d,
    mfr, mt5d; rms_calib_clean_<mode>.
    """
    out = [(k, float(summary[k]), True) for k in ("clean_error", "rms_calib_clean", "brier_clean")]
    per_severity = summary.get("per_severity", {})
    for name, by_sev in per_severity.items():
        out += [(f"error_{name}_s{s}", float(e), True) for s, e in by_sev.items()]
        out.append((f"error_{name}", float(summary["per_corruption"][name]),
                    tuple(by_sev) == metrics.SEVERITIES))
    complete = bool(summary.get("corruption_error_complete", False))
    out += [(k, float(summary[k]), complete) for k in ("corruption_error", "rms_calib_c", "brier_c")
            if k in summary]
    if "ce" in summary:  # ImageNet: normalised, defined only at all five severities
        out += [(f"ce_{n}", float(v), True) for n, v in summary["ce"].items()]
        out += [(k, float(summary[k]), complete) for k in ("mce", "relative_mce") if k in summary]
    else:
        out += [(f"ce_{n}", float(summary["per_corruption"][n]), tuple(s) == metrics.SEVERITIES)
                for n, s in per_severity.items()]
    if "flip_prob" in summary:
        out += _p_rows(summary)
    out += [(f"rms_calib_clean_{m}", float(summary[f"rms_calib_clean_{m}"]), True)
            for m in metrics.CALIB_MODES if f"rms_calib_clean_{m}" in summary]
    return out


def _p_rows(summary: dict) -> list[tuple[str, float, bool]]:
    p_complete = bool(summary["p_complete"])
    out = [(f"fp_{p}", float(v), True) for p, v in summary["flip_prob"].items()]
    out += [(f"t5d_{p}", float(v), True) for p, v in summary["top5_dist"].items()]
    out.append(("mfp", float(summary["mean_flip_prob"]), p_complete))
    return out + [(k, float(summary[k]), p_complete) for k in ("mean_t5d", "mfr", "mt5d") if k in summary]


def shift_rows(summary: dict, eval_frame: pd.DataFrame) -> list[tuple[str, float, bool]]:
    """(metric, value, complete) rows of the benchmarks beside -C, from `metrics.shift_summary`'s
    part of ``summary`` and the model's eval.csv rows (for the names and severities present).

    -C-bar: cbar_error (complete: all ten corruptions at severities 1..5, the summary's rule),
    cbar_error_<c> (mean over severities; complete: severities 1..5), cbar_minus_c (cbar_error -
    corruption_error, as the authors' figure's delta column). Natural shift <set> (e.g. cifar101):
    <set>_error and <set>_gap = <set>_error - clean_error, per run so the seeds give the gap a std.
    """
    out: list[tuple[str, float, bool]] = []
    if "cbar_error" in summary:
        complete = bool(summary["cbar_complete"])
        out.append(("cbar_error", float(summary["cbar_error"]), complete))
        bar = eval_frame[eval_frame.benchmark == "cbar"]
        severities = {str(n): tuple(sorted(int(s) for s in g.severity)) for n, g in bar.groupby("corruption")}
        out += [(f"{names.CBAR_PREFIX}{n}", float(v), severities.get(n) == metrics.SEVERITIES)
                for n, v in summary["cbar_per_corruption"].items()]
        if "corruption_error" in summary:
            out.append(("cbar_minus_c", float(summary["cbar_error"]) - float(summary["corruption_error"]),
                        complete and bool(summary.get("corruption_error_complete", False))))
    for name in dict.fromkeys(eval_frame[eval_frame.benchmark == "natural"].corruption.astype(str)):
        err = float(summary[f"{name}_error"])
        out += [(f"{name}_error", err, True), (f"{name}_gap", err - float(summary["clean_error"]), True)]
    return out


def perturbation_rows(p_frame: pd.DataFrame, kind: str) -> list[tuple[str, float, bool]]:
    """The -P rows (fp_<p>, t5d_<p>, mfp, mean_t5d, mfr, mt5d) of one model's eval_p.csv rows."""
    return _p_rows(metrics.perturbation_summary(p_frame, kind))


def per_run(results: Results, *, bin_size: int = 100, calib_mode: str = "reference") -> pd.DataFrame:
    """Tidy metrics of every run: dataset, arch, method, model, seed, metric, value, complete."""
    rows = []
    pert = results.perturbations
    p_groups = {} if pert is None else {run_key(dict(zip(("dataset", "arch", "method", "model", "seed"), k))): g
                                         for k, g in pert.groupby(["dataset", "arch", "method", "model", "seed"],
                                                                  sort=False)}
    for k, ev in results.evals.groupby(["dataset", "arch", "method", "model", "seed"], sort=False):
        key = run_key(dict(zip(("dataset", "arch", "method", "model", "seed"), k)))
        summary = metrics.summarize(ev, p_groups.get(key), kind=metrics.dataset_kind(key[0]),
                                    bin_size=bin_size, calib_mode=calib_mode,
                                    predictions=results.predictions.get(key))
        d, a, m, model, seed = key
        rows += [{"dataset": d, "arch": a, "method": m, "model": model, "seed": seed,
                  "metric": name, "value": value, "complete": complete}
                 for name, value, complete in summary_rows(summary) + shift_rows(summary, ev)]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof = 1; NaN for one seed), n and the seeds of every (cell, metric).

    A cell is complete when every seed's value is.
    """
    keys = [*CELL, "metric"]
    if runs.empty:
        return pd.DataFrame(columns=CELL_STAT_COLUMNS)
    grouped = runs.groupby(keys, sort=False)
    stats = grouped.agg(mean=("value", "mean"), std=("value", lambda v: v.std(ddof=1)),
                        n=("value", "size"), complete=("complete", "all"))
    stats["seeds"] = grouped.seed.agg(lambda s: ",".join(str(int(x)) for x in sorted(s)))
    stats = stats.reset_index()
    stats["n"] = stats["n"].astype(int)
    stats["complete"] = stats["complete"].astype(bool)
    return stats[CELL_STAT_COLUMNS]


def lookup(stats: pd.DataFrame) -> dict[tuple, dict]:
    """(dataset, arch, method, model, metric) -> {mean, std, n, seeds, complete}."""
    return {(r.dataset, r.arch, r.method, r.model, r.metric):
            {"mean": float(r.mean), "std": float(r.std), "n": int(r.n), "seeds": r.seeds,
             "complete": bool(r.complete)}
            for r in stats.itertuples(index=False)}


def severity_means(results: Results) -> pd.DataFrame:
    """eval.csv rows averaged over seeds per (cell, benchmark, corruption, severity), with std."""
    ev = results.evals
    g = ev.groupby([*CELL, "benchmark", "corruption", "severity"], sort=False).error
    return g.agg(error="mean", std=lambda v: v.std(ddof=1), n="size").reset_index()


def pooled_predictions(results: Results) -> dict[tuple, dict[str, np.ndarray]]:
    """Clean predictions of every cell, pooled over its seeds (for reliability diagrams)."""
    pooled: dict[tuple, dict[str, list]] = {}
    for (d, a, m, model, _seed), pred in results.predictions.items():
        slot = pooled.setdefault((d, a, m, model), {"confidence": [], "correct": [], "n": 0})
        slot["confidence"].append(np.asarray(pred["confidence"], dtype=float))
        slot["correct"].append(np.asarray(pred["correct"], dtype=float))
        slot["n"] += 1
    return {k: {"confidence": np.concatenate(v["confidence"]), "correct": np.concatenate(v["correct"]),
                "n_seeds": v["n"]} for k, v in pooled.items()}
