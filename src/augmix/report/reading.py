"""Collect the result files under a results root into one set of tidy frames.

Layouts read (any depth; a folder is a run when it holds one of ``RUN_FILES``)::

    results/<dataset>/<arch>/<method>/                 trained cell, one seed (older layout)
    results/<dataset>/<arch>/<method>/seed<k>/         trained cell, seed k
    results/external/<name>/                           a released model, evaluated only

Identity comes from the files, never from the path: eval.csv's columns dataset, arch, method, seed
and model; a column missing there is taken from metrics.json, then (seed only) from a ``seed<k>``
folder name, then defaults to seed 1 / model "ours" (an ``external/<name>`` folder: model <name>,
seed 0). Where the path follows the trained layout, it must agree with the columns (a file copied
into the wrong folder is an error, not a silently renamed cell).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from augmix import metrics
from augmix.errors import DataError
from augmix.report.names import OURS

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
# eval.csv's benchmark column: clean (severity 0), -C ("c", severity 1..5), -C-bar ("cbar", one of
# the ten C-bar corruptions, severity 1..5), natural shifts ("natural", e.g. cifar101, severity 0).
BENCHMARKS = ("clean", "c", "cbar", "natural")
IDENTITY = metrics.IDENTITY_COLUMNS  # dataset, arch, method, seed, model
CELL = ("dataset", "arch", "method", "model")  # a cell: identity without the seed
RUN_FILES = (
    "eval.csv",
    "eval_p.csv",
    "train_summary.json",
    "predictions_clean.npz",
    "model.pt",
    "metrics.json",
)
EXTERNAL_DIR = "external"
DEFAULT_SEED = 1  # the reference's seed (REF cifar.py: torch.manual_seed(1))
EXTERNAL_SEED = 0
_SEED_DIR = re.compile(r"^seed(\d+)$")


class ResultsError(DataError, ValueError):
    """A result file that is malformed or disagrees with its folder (also a ValueError)."""


class NoResultsError(DataError, FileNotFoundError):
    """No eval.csv at all under the results root."""


RunKey = tuple[str, str, str, str, int]  # dataset, arch, method, model, seed


@dataclass
class Results:
    """Everything read from a results root; every frame carries the IDENTITY columns."""

    evals: pd.DataFrame  # all eval.csv rows
    perturbations: pd.DataFrame | None  # all non-empty eval_p.csv rows
    summaries: dict[RunKey, dict] = field(default_factory=dict)  # train_summary.json per run
    predictions: dict[RunKey, dict[str, np.ndarray]] = field(default_factory=dict)
    folders: dict[RunKey, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # folder -> reason

    def runs(self) -> list[RunKey]:
        return list(self.folders)


def run_key(row) -> RunKey:
    """(dataset, arch, method, model, seed) of a mapping or a named tuple."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return (str(get("dataset")), str(get("arch")), str(get("method")), str(get("model")),
            int(get("seed")))


def run_dirs(results_root: Path) -> list[Path]:
    """Every folder under ``results_root`` that holds at least one run file."""
    found = {p.parent for name in RUN_FILES for p in results_root.rglob(name) if p.is_file()}
    return sorted(found)


def _path_identity(rel: Path) -> dict[str, object]:
    """What the folder names say: trained layout <d>/<a>/<m>[/seed<k>], or external/<name>."""
    parts = rel.parts
    if parts and parts[0] == EXTERNAL_DIR:
        return {"model": parts[1]} if len(parts) == 2 else {}
    seed = _SEED_DIR.match(parts[-1]) if parts else None
    if seed and len(parts) == 4:
        return dict(zip(("dataset", "arch", "method"), parts[:3])) | {"seed": int(seed[1])}
    if len(parts) == 3:
        return dict(zip(("dataset", "arch", "method"), parts))
    return {}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: missing columns {missing}")


def _one_value(frame: pd.DataFrame, col: str, path: Path):
    values = frame[col].dropna().unique()
    if len(values) > 1:
        raise ResultsError(f"{path}: column {col!r} holds several values {sorted(map(str, values))}; "
                           "one file holds one model")
    return values[0] if len(values) else None


def _identity(d: Path, rel: Path, ev: pd.DataFrame, metrics_json: dict) -> dict[str, object]:
    """The run's identity from eval.csv's columns, then metrics.json, then the fallbacks."""
    from_path = _path_identity(rel)
    external = bool(rel.parts) and rel.parts[0] == EXTERNAL_DIR
    ident: dict[str, object] = {}
    for col in IDENTITY:
        value = _one_value(ev, col, d / "eval.csv") if col in ev.columns else None
        if value is None:
            value = metrics_json.get(col)
        if value is None and col in ("seed", "model"):
            fallback = {"seed": EXTERNAL_SEED if external else DEFAULT_SEED,
                        "model": from_path.get("model", OURS)}
            value = from_path.get(col, fallback[col]) if col == "seed" else fallback[col]
        ident[col] = value
    ident["seed"] = int(ident["seed"])
    ident = {k: (v if k == "seed" else str(v)) for k, v in ident.items()}
    for col, expected in from_path.items():
        if col == "model" or (col == "seed" and col not in ev.columns and "seed" not in metrics_json):
            continue
        if str(ident[col]) != str(expected):
            raise ResultsError(f"{d / 'eval.csv'}: column {col!r} holds {ident[col]!r}, "
                               f"but the folder says {expected!r}")
    return ident


def _check_eval(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    bad = sorted(set(frame.benchmark) - set(BENCHMARKS))
    if bad:
        raise ResultsError(f"{path}: unknown benchmark values {bad}; expected one of {list(BENCHMARKS)}")
    n_clean = int((frame.benchmark == "clean").sum())
    if n_clean != 1:
        raise ResultsError(f"{path}: expected exactly one clean row, got {n_clean}")
    err = frame.error.to_numpy(dtype=float)
    if np.any((err < 0) | (err > 1)):
        raise ResultsError(f"{path}: errors must be fractions in [0, 1]; got range "
                           f"[{np.nanmin(err)}, {np.nanmax(err)}]")
    for bench in ("c", "cbar"):
        c = frame[frame.benchmark == bench]
        if c.severity.lt(1).any() or c.severity.gt(5).any():
            raise ResultsError(f"{path}: {bench!r} corruption severities must lie in 1..5")
        dup = c.duplicated(["corruption", "severity"])
        if dup.any():
            raise ResultsError(f"{path}: duplicated {bench!r} (corruption, severity) rows: "
                               f"{c[dup][['corruption', 'severity']].values.tolist()}")
    natural = frame[frame.benchmark == "natural"]
    dup = natural.duplicated(["corruption"])
    if dup.any():
        raise ResultsError(f"{path}: duplicated 'natural' rows: {sorted(natural[dup].corruption)}")
    return frame.astype({"severity": int})


def _with_identity(frame: pd.DataFrame, ident: dict[str, object], path: Path) -> pd.DataFrame:
    """Fill the identity columns a file lacks; a column it has must agree with the run's identity."""
    for col, value in ident.items():
        if col in frame.columns:
            found = {str(v) for v in frame[col].dropna().unique()}
            if found - {str(value)}:  # an empty file (header only) passes: nothing to attribute
                raise ResultsError(f"{path}: column {col!r} holds {sorted(found)}, but the run is "
                                   f"{value!r}")
    return frame.assign(**ident)


def read_run(d: Path, rel: Path) -> tuple[dict[str, object], dict[str, object]]:
    """One run folder -> (identity, its frames and files). Needs eval.csv."""
    metrics_json = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
    ev = pd.read_csv(d / "eval.csv")
    _require(ev, EVAL_COLUMNS, d / "eval.csv")
    ident = _identity(d, rel, ev, metrics_json)
    ev = _check_eval(_with_identity(ev, ident, d / "eval.csv"), d / "eval.csv")
    found: dict[str, object] = {"eval": ev}
    if (d / "eval_p.csv").is_file():
        # The evaluate stage writes a header-only eval_p.csv when there is no -P set.
        pp = pd.read_csv(d / "eval_p.csv")
        _require(pp, EVAL_P_COLUMNS, d / "eval_p.csv")
        if not pp.empty:
            found["p"] = _with_identity(pp, ident, d / "eval_p.csv").astype(
                {"flip_prob": float, "top5_dist": float})
    if (d / "train_summary.json").is_file():
        found["train_summary"] = _read_json(d / "train_summary.json")
    if (d / "predictions_clean.npz").is_file():
        with np.load(d / "predictions_clean.npz") as npz:
            if {"confidence", "correct"} <= set(npz.files):
                found["predictions"] = {"confidence": npz["confidence"], "correct": npz["correct"]}
    return ident, found


def collect_results(results_root: Path) -> Results:
    """Read every run folder under ``results_root``; raise if no eval.csv exists at all."""
    results_root = Path(results_root)
    evals, perts = [], []
    out = Results(evals=pd.DataFrame(), perturbations=None)
    for d in run_dirs(results_root):
        rel = d.relative_to(results_root)
        if not (d / "eval.csv").is_file():
            out.skipped[str(rel)] = "no eval.csv (model not evaluated)"
            warnings.warn(f"report: skipping {d}: no eval.csv", stacklevel=2)
            continue
        ident, found = read_run(d, rel)
        key = run_key(ident)
        if key in out.folders:
            cell = dict(zip(("dataset", "arch", "method", "model", "seed"), key))
            raise ResultsError(f"{d} and {out.folders[key]} both hold {cell}; "
                               "give each run its own seed or model label")
        out.folders[key] = d
        evals.append(found["eval"])
        if "p" in found:
            perts.append(found["p"])
        if "train_summary" in found:
            out.summaries[key] = found["train_summary"]
        if "predictions" in found:
            out.predictions[key] = found["predictions"]
    if not evals:
        raise NoResultsError(
            f"no eval.csv under {results_root.resolve()} (results/<dataset>/<arch>/<method>[/seed<k>]/ "
            "or results/external/<name>/); run the evaluate stage first")
    out.evals = pd.concat(evals, ignore_index=True)
    out.perturbations = pd.concat(perts, ignore_index=True) if perts else None
    return out
