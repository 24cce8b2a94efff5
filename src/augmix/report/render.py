"""Tables as markdown and LaTeX text; the verdict summary; number formatting.

Errors are fractions in the files and percent in rendered text (mCE, mFR, mT5D x 100); Brier and
T5D stay raw.
"""

from __future__ import annotations

import math

import pandas as pd

from augmix.report import names
from augmix.report.published import BAND_RULE, VERDICTS
from augmix.report.tables import HEADLINE_METRICS, MEAN_COLUMN, Table

# How a metric is rendered: (factor, decimals, unit). Default: percent with 1 decimal.
_RENDER_PREFIX = {"brier": (1.0, 3, ""), "mean_t5d": (1.0, 3, ""), "t5d_": (1.0, 3, "")}
_DEFAULT_RENDER = (100.0, 1, "%")


def render_spec(metric: str) -> tuple[float, int, str]:
    for prefix, spec in _RENDER_PREFIX.items():
        if metric.startswith(prefix):
            return spec
    return _DEFAULT_RENDER


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(metric: str, value: float, *, signed: bool = False, extra_decimals: int = 0) -> str:
    factor, decimals, _ = render_spec(metric)
    if _missing(value):
        return ""
    return f"{value * factor:{'+' if signed else ''}.{decimals + extra_decimals}f}"


def ours_text(metric: str, mean: float, std: float, n: int, complete: bool = True) -> str:
    """'35.9 ± 0.10 (n=3)'; one seed: '35.9 (n=1)'; '*' marks an incomplete set."""
    text = fmt(metric, mean) + ("" if complete else "*")
    if n > 1 and not _missing(std):
        text += f" ± {fmt(metric, std, extra_decimals=1)}"
    return text + f" (n={n})"


def cell_text(c: pd.Series) -> str:
    if _missing(c.ours):
        text = "–"
    elif c.column == MEAN_COLUMN:
        text = fmt(c.metric, c.ours) + ("" if c.complete else "*")
    else:
        text = ours_text(c.metric, c.ours, c["std"], int(c.n), bool(c.complete))
    if not _missing(c.published):
        text += f" [{fmt(c.metric, c.published)} {c.flag}"
        if not _missing(c.ours) and c.column != MEAN_COLUMN:
            text += f", {fmt(c.metric, c['diff'], signed=True)}, {c.verdict}"
        text += "]"
    return text


def _grid(table: Table) -> list[list[str]]:
    lookup = {(c.row, c.column): cell_text(c) for _, c in table.cells.iterrows()}
    return [[r] + [lookup.get((r, col), "") for col in table.col_labels] for r in table.row_labels]


LEGEND = (
    "Cells: ours as mean ± sample std over n seeds (n=1: no std), then [published flag, ours - "
    "published, verdict]. Errors in %, mCE/mFR/mT5D x 100, Brier and T5D raw. * = incomplete "
    "(fewer corruptions, severities or perturbations than the benchmark). Flags: T paper via "
    "RobustBench, Q paper quoted, A authors, M measurement by others, U unconfirmed. Verdict: " + BAND_RULE + "."
)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines += markdown_table([""] + table.col_labels, _grid(table))
    return "\n".join(lines + ["", LEGEND, ""])


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "±": r"$\pm$", "–": "--",
}


def tex(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def render_latex(table: Table) -> str:
    lines = [
        f"% {tex(table.title)}. {tex(LEGEND)}",
        r"\begin{tabular}{" + "l" + "r" * len(table.col_labels) + "}",
        r"\hline",
        " & ".join([""] + [tex(c) for c in table.col_labels]) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(tex(x) for x in row) + r" \\" for row in _grid(table)]
    return "\n".join(lines + [r"\hline", r"\end{tabular}", ""])


def verdict_counts(judged: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{"headline"|"all": {verdict: count}} over distinct judged cells."""
    head = judged[judged.metric.isin(HEADLINE_METRICS)]
    return {scope: {v: int((frame.verdict == v).sum()) for v in VERDICTS}
            for scope, frame in (("headline", head), ("all", judged))}


def _judged_rows(cells: pd.DataFrame, notes: dict[str, int]) -> list[list[str]]:
    rows = []
    for c in cells.itertuples(index=False):
        note = str(c.tolerance_note)
        ref = notes.setdefault(note, len(notes) + 1) if note else None
        rows.append([
            names.dataset_title(c.dataset), names.arch_title(c.arch), names.method_title(c.method),
            c.model, names.metric_title(c.metric),
            ours_text(c.metric, c.ours, c.std, int(c.n), bool(c.complete)),
            f"{fmt(c.metric, c.published)} {c.flag}", fmt(c.metric, c.diff, signed=True),
            fmt(c.metric, c.band, extra_decimals=1) + (f" [{ref}]" if ref else ""), f"**{c.verdict}**",
        ])
    return rows


_JUDGED_HEADER = ["dataset", "arch", "method", "model", "metric", "ours", "published", "diff", "band",
                  "verdict"]


def verdict_section(judged: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the summary at the top of report.md: counts and the headline cells with a published value;
    the section listing every other judged cell, for further down)."""
    counts = verdict_counts(judged)
    lines = ["## Verdicts", "",
             f"Rule: {BAND_RULE}. Tolerances and their reasons are per published row "
             "(augmix/data/published.csv, columns tolerance, tolerance_note).", ""]
    lines += markdown_table(
        ["verdict", f"headline cells ({', '.join(HEADLINE_METRICS)})", "all table cells"],
        [[v, str(counts["headline"][v]), str(counts["all"][v])] for v in VERDICTS])
    with_pub = judged[judged.verdict.isin(VERDICTS[:2])]
    head = with_pub[with_pub.metric.isin(HEADLINE_METRICS)]
    rest = with_pub[~with_pub.metric.isin(HEADLINE_METRICS)]
    notes: dict[str, int] = {}
    if head.empty:
        lines += ["", "No headline cell has a published value to compare with."]
    else:
        lines += ["", "Headline cells with a published value:", ""]
        lines += markdown_table(_JUDGED_HEADER, _judged_rows(head, notes))
    more: list[str] = []
    if not rest.empty:
        more = ["## Other cells with a published value", ""]
        more += markdown_table(_JUDGED_HEADER, _judged_rows(rest, notes)) + [""]
    if notes:
        lines += ["", "Tolerance notes (numbered in the band column, here and below):", ""]
        lines += [f"{i}. {note}" for note, i in notes.items()]
    return lines + [""], more
