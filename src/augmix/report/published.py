"""Published numbers (``augmix/data/published.csv``), their tolerances, and the verdict rule.

One row per published number::

    table           where it comes from: table1 (paper Table 1), ablation (paper Table 4, WRN-40-2),
                    paper_imagenet, released_weights*, imagenet_c_leaderboard,
                    imagenet_p_leaderboard, robustbench*, reproductions*, aggregators,
                    alexnet_baseline, cbar_authors (the -C-bar authors' README figure),
                    prime_readme (the PRIME authors' README table)
    dataset         cifar10, cifar100, imagenet (others, e.g. imagenet_r, for reference rows)
    arch, method    the code's names (augmix.models.ARCHS, augmix.training_methods.all_methods())
                    for models we train; other names for published models we do not train
    metric          clean_error; corruption_error (CIFAR: plain mean over 15 corruptions x 5
                    severities); mce (ImageNet, AlexNet-normalised ratio); ce_<corruption>;
                    error_<corruption>_s<k>; mfr, mt5d; rms_calib_*; corruption_error_std;
                    cbar_error (-C-bar: plain mean over its ten corruptions x 5 severities),
                    cbar_error_<corruption>; <set>_error of a natural shift (cifar101_error); ...
    value           a fraction (published percent / 100); normalised scores as ratios
    source          repository + path / issue / README where the number was read
    flag            A authors outside the paper, T paper number transcribed by RobustBench,
                    Q paper number quoted by third parties, M someone else's measurement,
                    U unconfirmed
    tolerance       (optional) the published number's own uncertainty, same unit as value
    tolerance_note  (optional) why that tolerance

Verdict of one cell (our mean over n seeds with sample std s, against published value p with
tolerance t): band = t + 2 s / sqrt(n) when n > 1 (t alone when n = 1: one seed has no spread);
``reproduced`` when |mean - p| <= band, ``differs`` otherwise, ``no published value`` when none is
known. A row without a tolerance counts as t = 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from augmix.errors import DataError

PUBLISHED_CSV = Path(__file__).resolve().parent.parent / "data" / "published.csv"
REQUIRED_COLUMNS = ("table", "dataset", "arch", "method", "metric", "value", "source", "flag")
TOLERANCE_COLUMNS = ("tolerance", "tolerance_note")
PUBLISHED_COLUMNS = REQUIRED_COLUMNS + TOLERANCE_COLUMNS
FLAG_PRIORITY = {"T": 0, "Q": 1, "A": 2, "M": 3, "U": 4}
KEY = ["dataset", "arch", "method", "metric"]

REPRODUCED, DIFFERS, NO_PUBLISHED = "reproduced", "differs", "no published value"
VERDICTS = (REPRODUCED, DIFFERS, NO_PUBLISHED)
BAND_RULE = (
    "band = tolerance + 2 x std / sqrt(n) over our n seeds (sample std, ddof = 1; tolerance alone "
    "when n = 1); reproduced when |ours - published| <= band"
)


class PublishedError(DataError, ValueError):
    """published.csv is malformed (also a ValueError)."""


def load_published(path: Path | None = None) -> pd.DataFrame:
    """Read ``published.csv`` (default: the packaged one) and check its columns and flags.

    The tolerance columns are optional: missing ones come back as NaN / "".
    """
    path = PUBLISHED_CSV if path is None else Path(path)
    frame = pd.read_csv(path, dtype={"value": float}, keep_default_na=False,
                        na_values={"value": [""], "tolerance": [""]})
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PublishedError(f"{path}: missing columns {missing}")
    bad = sorted(set(frame.flag) - set(FLAG_PRIORITY))
    if bad:
        raise PublishedError(f"{path}: unknown flags {bad}; expected one of {sorted(FLAG_PRIORITY)}")
    if "tolerance" not in frame.columns:
        frame["tolerance"] = np.nan
    if "tolerance_note" not in frame.columns:
        frame["tolerance_note"] = ""
    frame["tolerance"] = frame["tolerance"].astype(float)
    if (frame.tolerance < 0).any():
        raise PublishedError(f"{path}: negative tolerance in rows "
                             f"{list(np.flatnonzero(frame.tolerance < 0) + 2)}")
    return frame[list(PUBLISHED_COLUMNS) + [c for c in frame.columns if c not in PUBLISHED_COLUMNS]]


def select_published(published: pd.DataFrame) -> pd.DataFrame:
    """One published row per (dataset, arch, method, metric): best flag, then file order."""
    ranked = published.assign(_rank=published.flag.map(FLAG_PRIORITY), _pos=np.arange(len(published)))
    ranked = ranked.dropna(subset=["value"]).sort_values(["_rank", "_pos"], kind="stable")
    return ranked.drop_duplicates(KEY).drop(columns=["_rank", "_pos"]).set_index(KEY)


def band(tolerance: float, std: float, n: int) -> float:
    """Half-width of the interval around our mean in which the published value must lie."""
    tol = 0.0 if tolerance is None or math.isnan(tolerance) else float(tolerance)
    if n > 1 and std is not None and not math.isnan(std):
        return tol + 2.0 * float(std) / math.sqrt(n)
    return tol


def verdict(mean: float, std: float, n: int, published: float, tolerance: float) -> tuple[str, float]:
    """(verdict, band) of one cell; band is NaN without a published value."""
    if published is None or math.isnan(published):
        return NO_PUBLISHED, math.nan
    width = band(tolerance, std, n)
    # A hair of slack so a value exactly on the band's edge is not lost to float rounding.
    return (REPRODUCED if abs(mean - published) <= width + 1e-12 else DIFFERS), width
