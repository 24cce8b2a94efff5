"""report.md and its files from a results root: read, aggregate over seeds, judge, render, plot."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from augmix import io, metrics
from augmix.errors import ConfigError
from augmix.report import aggregate, names, plots, render
from augmix.report.published import PUBLISHED_CSV, load_published, select_published
from augmix.report.reading import Results, collect_results
from augmix.report.tables import CELL_COLUMNS, build_tables, judged_cells

# Paper-scale training (the paper's CIFAR recipe, google-research/augmix cifar.py default 100 epochs; WRN-40-2 /
# AllConvNet, 200 ResNeXt / DenseNet; full training sets). Used only to label a run as reduced
# scale in the report header.
PAPER_TRAIN_SIZE = {"cifar10": 50_000, "cifar100": 50_000, "imagenet": 1_281_167}
PAPER_EPOCHS = {"allconv": 100, "wrn40_2": 100, "densenet40_12": 200, "resnext29_4x32d": 200}
HEADLINE_FIGURE = "plots/corruption_error.png"


def slug(text: str) -> str:
    """A file-name-safe form of an external model's label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "model"


def cell_stem(arch: str, method: str, model: str) -> str:
    """<arch>__<method> for our cells, <arch>__<method>__<model slug> for external models."""
    return f"{arch}__{method}" + ("" if model == names.OURS else f"__{slug(model)}")


def _scale_section(results: Results) -> tuple[list[str], bool]:
    """Markdown lines describing the scale of every run, and whether any is reduced."""
    header = ["dataset", "arch", "method", "epochs", "n_train", "n_test", "device", "seconds", "seed", "model"]
    rows, reduced = [], False
    clean = results.evals[results.evals.benchmark == "clean"]
    for r in clean.itertuples(index=False):
        key = (r.dataset, r.arch, r.method, r.model, int(r.seed))
        s = results.summaries.get(key)
        tail = [str(int(r.seed)), str(r.model)]
        if s is None:
            if r.model == names.OURS:
                reduced = True  # unknown scale: never present it as paper scale
            rows.append([r.dataset, r.arch, r.method, "?", "?", str(r.n), "?", "?", *tail])
            continue
        paper_n, paper_e = PAPER_TRAIN_SIZE.get(r.dataset), PAPER_EPOCHS.get(r.arch)
        if paper_n is None or s.get("n_train", 0) < paper_n or (paper_e is not None and s.get("epochs", 0) < paper_e):
            reduced = True
        secs = s.get("seconds")
        rows.append([r.dataset, r.arch, r.method, str(s.get("epochs", "?")), str(s.get("n_train", "?")),
                     str(s.get("n_test", "?")), str(s.get("device", "?")),
                     "?" if secs is None else f"{float(secs):.0f}", *tail])
    return render.markdown_table(header, rows), reduced


def _shift_lines(results: Results) -> list[str]:
    """Header lines for the benchmarks beside -C that the results hold."""
    bench = set(results.evals.benchmark)
    lines = []
    if "cbar" in bench:
        lines.append("* -C-bar error: the plain mean over its ten corruptions x 5 severities (the authors' "
                     "test_c_bar.py); complete (no *) = all ten at severities 1-5.")
    if "natural" in bench:
        sets = names.order(results.evals[results.evals.benchmark == "natural"].corruption, names.NATURAL_TITLES)
        lines.append(f"* Natural shifts: {', '.join(names.natural_title(n) for n in sets)}: the error on that "
                     "test set, and its gap to the clean test error (per run, then over seeds).")
    return lines


def _header(results: Results, calib_mode: str, published_path: Path, bin_size: int) -> list[str]:
    scale, reduced = _scale_section(results)
    summaries = results.summaries.values()
    epochs = sorted({s["epochs"] for s in summaries if "epochs" in s})
    n_train = sorted({s["n_train"] for s in summaries if "n_train" in s})
    label = ("augmix/data/published.csv (packaged)" if published_path == PUBLISHED_CSV
             else str(published_path))
    lines = ["# AugMix reproduction report", ""]
    if reduced:
        lines += ["> **REDUCED-SCALE RUN: these numbers are NOT the paper's setting and must not be "
                  "read as a reproduction of its tables.** At least one model was trained on a dataset, "
                  "training-set size or epoch count below the paper's (or its scale is unknown). "
                  "Published values are shown for orientation only.", ""]
    lines += [
        f"* Datasets: {', '.join(names.datasets(results.evals.dataset))}",
        f"* Epochs: {', '.join(map(str, epochs)) or 'unknown (no train_summary.json)'}",
        f"* Training-set sizes: {', '.join(map(str, n_train)) or 'unknown'}",
        f"* Calibration: RMS calibration error, adaptive bins of {bin_size} sorted by confidence, "
        f"mode **{calib_mode}**"
        + (" (as hendrycks/outlier-exposure calib_err: the highest-confidence bin is skipped)"
           if calib_mode == "reference" else " (every bin summed)")
        + "; on -C the mean over (corruption, severity) cells (paper's rule unconfirmed).",
        "* Corruption error: CIFAR-like datasets use the plain mean over the 15 benchmark corruptions "
        "x 5 severities; ImageNet uses AlexNet-normalised mCE. Complete (no *) = all 15 at severities 1-5.",
        *_shift_lines(results),
        "* Seeds: every cell is the mean over its seeds with the sample standard deviation (ddof = 1) "
        "and n; external (released) models are their own rows (seed 0).",
        f"* Published values: {label}; preference T > Q > A > M > U per (dataset, arch, method, metric).",
        "",
    ]
    return lines, scale


def build_report(results_root: Path, out_dir: Path, *, calib_mode: str, bin_size: int = 100,
                 published_path: Path | None = None) -> dict[str, Path]:
    """Build every table, plot and ``report.md`` from ``results_root``; return the written files
    keyed by their path relative to ``out_dir``. ``published_path`` defaults to the packaged
    ``augmix/data/published.csv``.

    Written: report.md (verdict summary and headline figure first, every table, every plot
    embedded), summary.csv (per run), cells.csv (every table cell with its verdict),
    seeds.csv (mean / std / n per cell and metric), tables/<name>.{md,csv,tex},
    plots/corruption_error.png and plots/<dataset>/*.png.
    """
    if calib_mode not in metrics.CALIB_MODES:
        raise ConfigError(f"eval.calib_mode: unknown calib_mode {calib_mode!r}; expected one of "
                          f"{metrics.CALIB_MODES}")
    results_root, out_dir = Path(results_root), Path(out_dir)
    results = collect_results(results_root)
    published_path = PUBLISHED_CSV if published_path is None else Path(published_path)
    raw_pub = load_published(published_path)
    pub = select_published(raw_pub)
    runs = aggregate.per_run(results, bin_size=bin_size, calib_mode=calib_mode)
    stats = aggregate.over_seeds(runs)
    ours = aggregate.lookup(stats)
    tables = build_tables(stats, ours, pub, raw_pub, calib_mode=calib_mode, bin_size=bin_size)

    written: dict[str, Path] = {}

    def put(rel: str, path: Path | None) -> str | None:
        if path is None:
            return None
        written[rel] = path
        return rel

    put("summary.csv", io.write_csv(out_dir / "summary.csv", runs))
    put("seeds.csv", io.write_csv(out_dir / "seeds.csv", stats))
    all_cells = (pd.concat([t.cells for t in tables], ignore_index=True) if tables
                 else pd.DataFrame(columns=CELL_COLUMNS))
    put("cells.csv", io.write_csv(out_dir / "cells.csv", all_cells))
    body = []
    for t in tables:
        md = render.render_markdown(t)
        body.append(md)
        put(f"tables/{t.name}.md", io.write_text(out_dir / "tables" / f"{t.name}.md", md))
        put(f"tables/{t.name}.csv", io.write_csv(out_dir / "tables" / f"{t.name}.csv", t.cells))
        put(f"tables/{t.name}.tex", io.write_text(out_dir / "tables" / f"{t.name}.tex", render.render_latex(t)))

    headline = put(HEADLINE_FIGURE, plots.plot_headline(stats, pub, out_dir / HEADLINE_FIGURE))
    figures: list[tuple[str, str]] = []  # (caption, relative path)
    sev = aggregate.severity_means(results)
    pooled = aggregate.pooled_predictions(results)
    for (d, a, m, model), g in sev.groupby(["dataset", "arch", "method", "model"], sort=False):
        stem = cell_stem(a, m, model)
        n = int(g.n.max())
        for bench, suffix in (("c", "severity"), ("cbar", "cbar_severity")):
            if (g.benchmark == bench).any():
                rel = f"plots/{d}/{stem}__{suffix}.png"
                title = (f"{names.benchmark_title(d, bench)} / {a} / {names.row_title(m, model)}: error by "
                         f"severity (n={n})")
                put(rel, plots.plot_severity(g, out_dir / rel, title, benchmark=bench))
                figures.append((title, rel))
        pred = pooled.get((d, a, m, model))
        if pred is not None:
            rel = f"plots/{d}/{stem}__reliability.png"
            title = f"{d} / {a} / {names.row_title(m, model)}: reliability (clean, {pred['n_seeds']} seed(s) pooled)"
            put(rel, plots.plot_reliability(pred["confidence"], pred["correct"], out_dir / rel, title))
            figures.append((title, rel))
    for d in names.datasets(stats.dataset):
        for a in names.archs(stats[stats.dataset == d].arch):
            rel = f"plots/{d}/{a}__per_corruption.png"
            if put(rel, plots.plot_per_corruption(stats, d, a, out_dir / rel)):
                figures.append((f"{d} / {a}: error per corruption", rel))
        metric = plots.headline_metric(d)
        rel = f"plots/{d}/heatmap_{metric}.png"
        if put(rel, plots.plot_heatmap(stats, d, metric, out_dir / rel)):
            figures.append((f"{d}: {names.metric_title(metric)} heatmap", rel))

    lines, scale = _header(results, calib_mode, published_path, bin_size)
    if headline:
        lines += ["![Corruption error by method and architecture, mean ± std over seeds, published "
                  f"values marked]({headline})", ""]
    summary, other_cells = render.verdict_section(judged_cells(tables))
    lines += summary
    lines += ["## Scale of this run", ""] + scale + [""]
    if results.skipped:
        lines += ["## Skipped model folders", ""]
        lines += [f"* `{k}`: {v}" for k, v in sorted(results.skipped.items())] + [""]
    lines += other_cells + ["## Tables", ""] + body + ["## Plots", ""]
    lines += [f"![{caption}]({rel})\n" for caption, rel in figures]
    put("report.md", io.write_text(out_dir / "report.md", "\n".join(lines)))
    return written
