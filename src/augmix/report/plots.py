"""Figures (matplotlib's object API with the Agg canvas: no pyplot, no global backend switch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from augmix import io, metrics
from augmix.report import names


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


def headline_metric(dataset: str) -> str:
    """corruption_error on CIFAR-like sets, the AlexNet-normalised mCE on ImageNet."""
    return "corruption_error" if metrics.dataset_kind(dataset) == "cifar" else "mce"


def _bar_rows(sub: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = list(dict.fromkeys(zip(sub.method, sub.model)))
    return [(m, model) for m in names.methods(p[0] for p in pairs)
            for model in names.models(mod for mm, mod in pairs if mm == m)]


def headline_panels(stats: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, metric) of every headline panel with data: each dataset's -C headline, then its
    -C-bar error and natural-shift errors where evaluated."""
    out = []
    for d in names.datasets(stats.dataset):
        present = set(stats[stats.dataset == d].metric)
        wanted = [headline_metric(d), "cbar_error"]
        wanted += [f"{n}_error" for n in names.natural_sets(present)]
        out += [(d, k) for k in wanted if k in present]
    return out


def _panel_title(dataset: str, metric: str) -> tuple[str, str]:
    """(panel title, y label) of one headline panel."""
    if metric == "mce":
        return f"{names.benchmark_title(dataset, 'c')}: mCE", "mCE (x100)"
    if metric == "corruption_error":
        return f"{names.benchmark_title(dataset, 'c')}: corruption error", "corruption error (%)"
    if metric == "cbar_error":
        return f"{names.benchmark_title(dataset, 'cbar')}: corruption error", "-C-bar error (%)"
    return f"{names.metric_title(metric)} ({names.dataset_title(dataset)} models)", "error (%)"


def plot_headline(stats: pd.DataFrame, published: pd.DataFrame | None, path: Path) -> Path | None:
    """Corruption error (mCE on ImageNet) by architecture and method, then the -C-bar and natural-
    shift errors where evaluated: bars = mean over seeds, error bars = sample std over seeds (none
    for one seed), black diamonds = published values. External models are hatched. One panel per
    (dataset, benchmark)."""
    keys = headline_panels(stats)
    if not keys:
        return None
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    panels = [stats[(stats.dataset == d) & (stats.metric == k)] for d, k in keys]
    everyone = _bar_rows(pd.concat(panels))  # one colour per row in every panel
    width_in = max(6.0, max(1.2 * sub.arch.nunique() * max(1, len(_bar_rows(sub))) ** 0.5 + 3
                            for sub in panels))
    fig = _new_figure(width_in, 3.6 * len(keys))
    for i, ((d, metric), sub) in enumerate(zip(keys, panels)):
        ax = fig.add_subplot(len(keys), 1, i + 1)
        archs = names.archs(sub.arch)
        rows = _bar_rows(sub)
        width = 0.8 / len(rows)
        marked = False
        for j, (m, model) in enumerate(rows):
            r = sub[(sub.method == m) & (sub.model == model)].set_index("arch")
            x = np.array([archs.index(a) for a in r.index]) - 0.4 + (j + 0.5) * width
            std = np.nan_to_num(100 * r["std"].to_numpy(dtype=float))
            ax.bar(x, 100 * r["mean"].to_numpy(dtype=float), width, yerr=std, capsize=2,
                   color=colours[everyone.index((m, model)) % len(colours)], edgecolor="k", lw=0.4,
                   hatch=None if model == names.OURS else "//", label=names.row_title(m, model),
                   error_kw={"elinewidth": 0.8})
            for xi, a in zip(x, r.index):
                key = (d, a, m, metric)
                if published is not None and key in published.index:
                    ax.plot(xi, 100 * float(published.loc[key, "value"]), "D", color="k", ms=4,
                            label=None if marked else "published")
                    marked = True
        ax.set_xticks(range(len(archs)), [names.arch_title(a) for a in archs], fontsize=8)
        title, unit = _panel_title(d, metric)
        ax.set(ylabel=unit, title=f"{title} (mean ± std over seeds; ◆ published)")
        ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save_png(fig, path)


def plot_severity(sev: pd.DataFrame, path: Path, title: str, *, benchmark: str = "c") -> Path:
    """Error (%) against severity, one line per corruption of ``benchmark`` ("c" or "cbar"; mean
    over seeds, ± std shaded when there are several seeds); clean error dashed."""
    from matplotlib import colormaps

    fig = _new_figure(7, 4.5)
    ax = fig.add_subplot()
    c = sev[sev.benchmark == benchmark]
    preferred = names.CBAR_ORDER if benchmark == "cbar" else metrics.ALL_CORRUPTIONS
    colours = colormaps["tab20"].colors  # 15-19 lines: the default 10-colour cycle would repeat
    for i, name in enumerate(names.order(c.corruption, preferred)):
        g = c[c.corruption == name].sort_values("severity")
        colour = colours[i % len(colours)]
        ax.plot(g.severity, 100 * g.error, marker="o", ms=3, lw=1, label=name, color=colour)
        std = 100 * g["std"].to_numpy(dtype=float)
        if np.isfinite(std).any():
            mean = 100 * g.error.to_numpy(dtype=float)
            ax.fill_between(g.severity, mean - np.nan_to_num(std), mean + np.nan_to_num(std),
                            color=colour, alpha=0.15, lw=0)
    ax.axhline(100 * float(sev[sev.benchmark == "clean"].error.iloc[0]), color="k", ls="--", lw=1,
               label="clean")
    ax.set(xlabel="severity", ylabel="error (%)", title=title, xticks=[1, 2, 3, 4, 5])
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save_png(fig, path)


def plot_per_corruption(stats: pd.DataFrame, dataset: str, arch: str, path: Path) -> Path | None:
    """Grouped bars: error per corruption (%), one bar per method / model, std over seeds."""
    sub = stats[(stats.dataset == dataset) & (stats.arch == arch)
                & stats.metric.str.match(r"^error_[a-z_]+$") & ~stats.metric.str.match(r".*_s\d$")]
    if sub.empty:
        return None
    corr = names.order([k[len("error_"):] for k in sub.metric], metrics.ALL_CORRUPTIONS)
    rows = _bar_rows(sub)
    fig = _new_figure(max(6, 0.6 * len(corr) + 2), 4)
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    x = np.arange(len(corr))
    for i, (m, model) in enumerate(rows):
        r = sub[(sub.method == m) & (sub.model == model)].set_index("metric")
        mean = [100 * r["mean"].get(f"error_{n}", np.nan) for n in corr]
        std = [100 * r["std"].get(f"error_{n}", np.nan) for n in corr]
        ax.bar(x + i * width - 0.4 + width / 2, mean, width, yerr=np.nan_to_num(std), capsize=1.5,
               hatch=None if model == names.OURS else "//", label=names.row_title(m, model))
    ax.set_xticks(x, corr, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="error (%)", title=f"{names.dataset_title(dataset)}-C, {names.arch_title(arch)}: "
           "error per corruption (mean ± std over seeds)")
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def plot_heatmap(stats: pd.DataFrame, dataset: str, metric: str, path: Path) -> Path | None:
    """Method x architecture heatmap of the headline metric (mean over seeds), annotated."""
    sub = stats[(stats.dataset == dataset) & (stats.metric == metric)]
    if sub.empty:
        return None
    archs, rows = names.archs(sub.arch), _bar_rows(sub)
    grid = np.full((len(rows), len(archs)), np.nan)
    for r in sub.itertuples(index=False):
        grid[rows.index((r.method, r.model)), archs.index(r.arch)] = 100 * r.mean
    fig = _new_figure(1.6 * len(archs) + 3, 0.5 * len(rows) + 1.5)
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(len(archs)), [names.arch_title(a) for a in archs], fontsize=8)
    ax.set_yticks(range(len(rows)), [names.row_title(m, model) for m, model in rows], fontsize=8)
    ax.set_title(f"{names.dataset_title(dataset)}: {names.metric_title(metric)} (%)")
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
    ax.bar(centres[keep], conf[keep] - acc[keep], bottom=acc[keep], width=1 / n_bins, color="r",
           alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(fontsize=7, loc="upper left")
    return _save_png(fig, path)
