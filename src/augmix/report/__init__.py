"""The paper's tables and plots rebuilt from the result files, beside the published numbers.

Inputs (written by the ``evaluate`` stage; layouts and identity rules in ``reading``)::

    results/<dataset>/<arch>/<method>/seed<k>/   or   results/<dataset>/<arch>/<method>/
    results/external/<name>/
        eval.csv                required: dataset, arch, method, [seed, model], benchmark
                                ("clean" | "c" | "cbar" | "natural"), corruption, severity
                                (0 clean / natural, 1..5 -C / -C-bar), error, rms_calib, brier, n
        eval_p.csv              optional: dataset, arch, method, [seed, model], perturbation,
                                flip_prob, top5_dist, n_sequences
        metrics.json            optional: identity fallback (seed, model)
        train_summary.json      optional: run scale for the header
        predictions_clean.npz   optional: ``confidence``, ``correct``

Modules: ``reading`` (collect result files), ``aggregate`` (per-run metrics through
``augmix.metrics.summarize``, mean / std / n over seeds), ``published`` (published values,
tolerances, verdict rule), ``tables``, ``render`` (markdown / LaTeX), ``plots``, ``build``
(``build_report``), ``compare`` (two result folders cell by cell), ``names`` (order and titles
from the code's tables).
"""

from augmix.report.build import build_report
from augmix.report.compare import compare, compare_cells
from augmix.report.published import (
    BAND_RULE,
    PUBLISHED_COLUMNS,
    PUBLISHED_CSV,
    REQUIRED_COLUMNS,
    VERDICTS,
    band,
    load_published,
    select_published,
    verdict,
)
from augmix.report.reading import EVAL_COLUMNS, EVAL_P_COLUMNS, collect_results

__all__ = [
    "build_report", "compare", "compare_cells", "collect_results", "load_published",
    "select_published", "band", "verdict", "BAND_RULE", "VERDICTS", "PUBLISHED_COLUMNS",
    "PUBLISHED_CSV", "REQUIRED_COLUMNS", "EVAL_COLUMNS", "EVAL_P_COLUMNS",
]
