"""Evaluation: predictions once per (model, split), every metric computed from arrays, tidy rows out.

Clean evaluation never touches the shared arrays (REF `test_c` overwrote the test set in place, so
clean accuracy had to be measured first); every corruption file is read into its own array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from augmix import imagenet, io, metrics
from augmix.config import Params
from augmix.corruptions.imagenet_p import read_video
from augmix.data import load_split
from augmix.errors import DataError
from augmix.predict import predict_logits


def _scores(logits: torch.Tensor, labels: np.ndarray, params: Params) -> dict[str, float]:
    probs = torch.softmax(logits.float(), 1).cpu().numpy()
    pred = probs.argmax(1)
    confidence = probs.max(1)
    correct = pred == labels
    return {
        "error": float(metrics.error(pred, labels)),
        "rms_calib": float(metrics.rms_calibration_error(
            confidence, correct, bin_size=params.eval.calib_bin_size, mode=params.eval.calib_mode)),
        "brier": float(metrics.brier_score(probs, labels)),
        "n": int(len(labels)),
    }


def _to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(x, copy=True)).permute(0, 3, 1, 2).to(device)  # copy: mmap is read-only


def evaluate_model(
    model: torch.nn.Module,
    params: Params,
    *,
    identity: dict[str, str],
    test: tuple[np.ndarray, np.ndarray],
    c_dir: Path | None,
    p_dir: Path | None,
    device: torch.device,
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """Rows (benchmark, corruption, severity, error, rms_calib, brier, n) and -P rows for one model."""
    # Evaluation runs in float32 (no autocast), as the reference: bf16 logits would coarsen the
    # confidences that calibration and top-5 distance read.
    bs = params.runtime.eval_batch_size
    x, y = test
    logits = predict_logits(model, _to_tensor(x, device), bs)
    rows = [{"benchmark": "clean", "corruption": "clean", "severity": 0, **_scores(logits, y, params)}]
    extras = _extras(logits, y)

    if c_dir is not None:
        labels_all = np.load(c_dir / "labels.npy")
        # Which severities the files stack (generated: the params' list; official: all five).
        stacked = json.loads((c_dir / "severities.json").read_text())["severities"]
        missing = sorted(set(params.corruptions.severities) - set(stacked))
        if missing:
            raise DataError(f"corruptions.severities: {missing} not in {c_dir} (it holds {stacked}); re-run corrupt")
        per = len(labels_all) // len(stacked)
        # The released files hold every test image per severity: score the same first `subset.test`
        # images the clean error uses (a generated set holds exactly those).
        take = min(per, len(y))
        for name in params.corruptions.names:
            images = np.load(c_dir / f"{name}.npy", mmap_mode="r")
            if len(images) != len(labels_all):
                raise DataError(f"{c_dir / name}.npy has {len(images)} images, labels.npy {len(labels_all)}")
            for severity in params.corruptions.severities:
                i = stacked.index(severity)
                block = slice(i * per, i * per + take)
                lg = predict_logits(model, _to_tensor(images[block], device), bs)
                rows.append({"benchmark": "c", "corruption": name, "severity": int(severity),
                             **_scores(lg, labels_all[block].astype(np.int64), params)})
    rows += _bar_rows(model, params, c_dir, device)
    rows += _natural_rows(model, params, c_dir, device)
    frame = _tidy(rows, identity)

    p_frame = None
    if p_dir is not None and params.corruptions.perturbations:
        p_rows = []
        for name in params.corruptions.perturbations:
            seqs = np.load(p_dir / f"{name}.npy", mmap_mode="r")  # (n_seq, T, H, W, 3) uint8
            n_seq, t = seqs.shape[:2]
            flat = np.asarray(seqs).reshape(n_seq * t, *seqs.shape[2:])
            lg = predict_logits(model, _to_tensor(flat, device), bs)
            p_rows.append(_p_row(identity, name, lg.cpu().numpy().reshape(n_seq, t, -1)))
        p_frame = pd.DataFrame(p_rows)

    return frame, p_frame, _summary(frame, p_frame, params, extras)


def _bar_rows(model: torch.nn.Module, params: Params, c_dir: Path | None, device: torch.device) -> list[dict]:
    """-C-bar rows (benchmark "cbar"), from <corrupted>/C-bar beside C (all five severities stacked)."""
    if c_dir is None or not params.corruptions.bar:
        return []
    bar = c_dir.parent / "C-bar"
    labels = np.load(bar / "labels.npy")
    per = len(labels) // 5
    rows = []
    for name in params.corruptions.bar:
        images = np.load(bar / f"{name}.npy", mmap_mode="r")
        for severity in range(1, 6):
            block = slice((severity - 1) * per, severity * per)
            lg = predict_logits(model, _to_tensor(images[block], device), params.runtime.eval_batch_size)
            rows.append({"benchmark": "cbar", "corruption": name, "severity": severity,
                         **_scores(lg, labels[block].astype(np.int64), params)})
    return rows


def _natural_rows(model: torch.nn.Module, params: Params, c_dir: Path | None, device: torch.device) -> list[dict]:
    """Natural-shift test sets (benchmark "natural", severity 0), e.g. CIFAR-10.1 for CIFAR-10 models."""
    rows = []
    for name in params.corruptions.natural:
        folder = c_dir.parent / "natural" / name if c_dir is not None else None
        if folder is None or not folder.is_dir():
            continue  # not built for this dataset (CIFAR-10.1 exists for CIFAR-10 only)
        x, y = load_split(folder, "test")
        lg = predict_logits(model, _to_tensor(x, device), params.runtime.eval_batch_size)
        rows.append({"benchmark": "natural", "corruption": name, "severity": 0, **_scores(lg, y, params)})
    return rows


def _tidy(rows: list[dict[str, Any]], identity: dict[str, str]) -> pd.DataFrame:
    """One row per (benchmark, corruption, severity), led by the run identity columns."""
    return pd.DataFrame([{**identity, **row} for row in rows])


def _p_row(identity: dict[str, str], name: str, logits: np.ndarray) -> dict[str, Any]:
    """Flip probability and top-5 distance of one perturbation from logits (n_seq, T, C)."""
    noise = metrics.is_noise_perturbation(name)
    return {**identity, "perturbation": name,
            "flip_prob": float(metrics.flip_probability(logits.argmax(-1), noise=noise)),
            "top5_dist": float(metrics.top5_distance(logits, noise=noise)) if logits.shape[-1] >= 5 else float("nan"),
            "n_sequences": int(logits.shape[0])}


def _summary(frame: pd.DataFrame, p_frame: pd.DataFrame | None, params: Params, extras: dict[str, np.ndarray],
             *, alexnet: bool = False) -> dict[str, Any]:
    """metrics.json: `metrics.summarize` (the one rule set the report also uses: headline over the 15
    benchmark corruptions, complete = all 15 at severities 1-5, mCE only with all five severities)
    plus the clean predictions under "extras" (written to predictions_clean.npz, not the JSON)."""
    summary = metrics.summarize(frame, p_frame, kind="imagenet" if alexnet else "cifar",
                                bin_size=params.eval.calib_bin_size, calib_mode=params.eval.calib_mode,
                                predictions=extras or None)
    summary["extras"] = extras
    return summary


def _extras(logits: torch.Tensor, labels: np.ndarray) -> dict[str, np.ndarray]:
    pred = logits.argmax(1).cpu().numpy()  # argmax of logits = argmax of softmax
    return {"confidence": torch.softmax(logits.float(), 1).amax(1).cpu().numpy(), "correct": pred == labels}


def imagenet_c_root(c_dir: Path) -> Path:
    """Where the ImageNet-C folders are: generated under C/, or the official copy C/source.json names."""
    pointer = c_dir / "source.json"
    return Path(json.loads(pointer.read_text())["dir"]) if pointer.is_file() else c_dir


def evaluate_folder_model(
    model: torch.nn.Module,
    params: Params,
    *,
    identity: dict[str, str],
    val_dir: Path,
    classes: list[str],
    c_dir: Path | None,
    p_dir: Path | None = None,
    device: torch.device,
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """ImageNet: clean error on val (Resize + CenterCrop), ImageNet-C on its JPEGs (CenterCrop only:
    docs/reference-facts.md, "Metrics"), both streamed, and ImageNet-P videos (one video per forward batch); the same
    tidy rows as `evaluate_model`. Flip rates stay unnormalised: the AlexNet ImageNet-P baselines are
    not recorded (metrics.py)."""
    p = params.imagenet
    kw = {"batch_size": params.runtime.eval_batch_size, "workers": params.runtime.workers,
          "device": device}  # float32, as evaluate_model
    val = imagenet.scan_folder(val_dir, classes, what="validation folder").subset(params.subset.test)
    logits, labels = imagenet.folder_logits(model, imagenet.EvalFolder(val, p.resize, p.image_size), **kw)
    y = labels.cpu().numpy()
    rows = [{"benchmark": "clean", "corruption": "clean", "severity": 0, **_scores(logits, y, params)}]
    if c_dir is not None:
        root = imagenet_c_root(c_dir)
        for name in params.corruptions.names:
            for severity in params.corruptions.severities:
                cell = imagenet.scan_folder(root / name / str(severity), classes,
                                            what=f"ImageNet-C folder ({name}, severity {severity})")
                cell = cell.subset(params.subset.test)
                lg, lb = imagenet.folder_logits(model, imagenet.EvalFolder(cell, 0, p.image_size), **kw)
                rows.append({"benchmark": "c", "corruption": name, "severity": int(severity),
                             **_scores(lg, lb.cpu().numpy(), params)})
    frame = _tidy(rows, identity)
    p_frame = None
    if p_dir is not None and params.corruptions.perturbations:

        p_rows = []
        for name in params.corruptions.perturbations:
            videos = sorted(f for f in (p_dir / name).glob("*/*") if f.suffix in (".npy", ".mp4"))
            if not videos:
                raise DataError(f"no ImageNet-P videos in {p_dir / name}: re-run `augmix corrupt --dataset "
                                        f"{identity['dataset']}` with corruptions.perturbations listing {name}")
            lg = [predict_logits(model, torch.from_numpy(read_video(f)).permute(0, 3, 1, 2).to(device),
                                 params.runtime.eval_batch_size).cpu().numpy() for f in videos]
            p_rows.append(_p_row(identity, name, np.stack(lg)))
        p_frame = pd.DataFrame(p_rows)
    return frame, p_frame, _summary(frame, p_frame, params, _extras(logits, y), alexnet=True)


def write_results(out_dir: Path, frame: pd.DataFrame, p_frame: pd.DataFrame | None,
                  summary: dict[str, Any]) -> list[Path]:
    extras = summary.pop("extras")
    written = [io.write_csv(out_dir / "eval.csv", frame)]
    if p_frame is not None:
        written.append(io.write_csv(out_dir / "eval_p.csv", p_frame))
    with io.atomic_path(out_dir / "predictions_clean.npz", suffix=".npz") as tmp:
        np.savez(tmp, **extras)
    written.append(out_dir / "predictions_clean.npz")
    written.append(io.write_json(out_dir / "metrics.json", summary))
    return written
