"""`augmix evaluate --dataset D --arch A --method M --seed S`: clean, -C and -P results of one model
into its results folder (eval.csv, eval_p.csv, predictions_clean.npz, metrics.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from augmix import evaluate, imagenet, layout
from augmix.checkpoints import load_checkpoint
from augmix.config import FOLDER_SOURCES, Params
from augmix.data import load_split, num_classes
from augmix.errors import ConfigError, DataError
from augmix.jobs import Job
from augmix.stages.common import check_dataset, check_inputs, job_run, provenance
from augmix.stages.corrupt import check_names
from augmix.device import pick_device

P_COLUMNS = ["perturbation", "flip_prob", "top5_dist", "n_sequences"]


def run(params: Params, dataset: str, arch: str, method: str, seed: int, *, model_path: Path | None = None,
        out_dir: Path | None = None, label: str = "ours", format: str = "auto", sha256: str | None = None,
        stage: str = "evaluate") -> dict[str, Any]:
    """Evaluate the cell's model (or `model_path`, a file in one of `checkpoints.FORMATS`) into `out_dir`.
    Every check of the file happens before a tracking run opens or anything is written."""
    check_dataset(params, dataset)
    model_path = Path(model_path or layout.cell(dataset, arch, method, seed) / "model.pt")
    out_dir = Path(out_dir or layout.cell(dataset, arch, method, seed))
    if not model_path.exists() and model_path == layout.cell(dataset, arch, method, seed) / "model.pt":
        raise DataError(f"model {model_path} not found: run `augmix train --dataset {dataset} --arch {arch} "
                        f"--method {method} --seed {seed}` first, or pass --checkpoint")
    check_inputs(params, dataset)
    loaded = load_checkpoint(model_path, arch=arch, dataset=dataset,
                             num_classes=num_classes(layout.raw(params.data.root, dataset)),
                             format=format, device=pick_device(params.runtime.device), sha256=sha256)
    if model_path.name != "model.pt" or loaded.format != "augmix":
        print(f"[evaluate] {model_path}: {loaded.format} format, {loaded.arch}, {loaded.num_classes} classes", flush=True)
    if params.datasets[dataset].source not in FOLDER_SOURCES:
        n_test = len(load_split(layout.raw(params.data.root, dataset), "test", params.subset.test)[1])
        if n_test < params.eval.calib_bin_size:
            raise ConfigError(f"eval.calib_bin_size: {params.eval.calib_bin_size} exceeds the {n_test} test images of "
                              f"{dataset}; the calibration error needs at least one bin (lower it)")
    job = Job(stage, dataset, arch, method, seed)
    identity = {**job.identity(), "model": label}
    with job_run(params, job) as (p, tracked):
        check_names(p)
        if p.train.threads:
            torch.set_num_threads(p.train.threads)
        device = pick_device(p.runtime.device)
        model, classes = loaded.model, list(loaded.classes) or None
        corrupted = layout.corrupted(p.data.root, dataset)
        c_dir, p_dir = corrupted / "C", corrupted / "P"
        c_dir, p_dir = (c_dir if c_dir.is_dir() else None), (p_dir if p_dir.is_dir() else None)
        raw = layout.raw(p.data.root, dataset)
        if p.datasets[dataset].source in FOLDER_SOURCES:
            val_dir = Path(imagenet.read_index(raw)["dir"]) / "val"
            frame, p_frame, summary = evaluate.evaluate_folder_model(
                model, p, identity=identity, val_dir=val_dir, classes=classes,
                c_dir=c_dir, p_dir=p_dir, device=device)
        else:
            frame, p_frame, summary = evaluate.evaluate_model(
                model, p, identity=identity, test=load_split(raw, "test", p.subset.test), c_dir=c_dir,
                p_dir=p_dir, device=device)
        if p_frame is None:
            p_frame = pd.DataFrame(columns=[*identity, *P_COLUMNS])
        summary.update({**identity, "provenance": provenance(params, job, device)})
        written = evaluate.write_results(out_dir, frame, p_frame, summary)
        tracked.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        tracked.log_metrics({f"ce_{k}": v for k, v in summary.get("per_corruption", {}).items()})
        for path in written:
            if path.suffix in (".csv", ".json"):
                tracked.log_artifact(path)
    line = f"[evaluate] {dataset}/{arch}/{method}/seed{seed}: clean error {summary['clean_error']:.4f}"
    if "corruption_error" in summary:
        line += f", corruption error {summary['corruption_error']:.4f}"
    print(line, flush=True)
    return json.loads(json.dumps(summary, default=str))
