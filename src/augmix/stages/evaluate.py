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
from augmix.device import pick_device
from augmix.errors import ConfigError, DataError
from augmix.jobs import Job
from augmix.stages.common import check_dataset, check_inputs, job_run, provenance
from augmix.stages.corrupt import check_names

P_COLUMNS = ["perturbation", "flip_prob", "top5_dist", "n_sequences"]


def run(params: Params, dataset: str, arch: str, method: str, seed: int, *, model_path: Path | None = None,
        out_dir: Path | None = None, format: str = "auto", sha256: str | None = None) -> dict[str, Any]:
    """Evaluate the cell's model (or `model_path`, a file in one of `checkpoints.FORMATS`) into `out_dir`."""
    check_dataset(params, dataset)
    cell = layout.cell(dataset, arch, method, seed)
    if model_path is None:
        model_path = cell / "model.pt"
        if not model_path.exists():
            raise DataError(f"model {model_path} not found: run `augmix train --dataset {dataset} --arch {arch} "
                            f"--method {method} --seed {seed}` first, or pass --checkpoint")
        return _evaluate(params, Job("evaluate", dataset, arch, method, seed), model_path, Path(out_dir or cell),
                         label="ours", format=format, sha256=sha256)
    # Another model file: never into our cell's folder (a DVC output); labelled by its file name.
    model_path = Path(model_path)
    out = Path(out_dir) if out_dir else layout.external(model_path.stem)
    return _evaluate(params, Job("evaluate", dataset, arch, method, seed), model_path, out,
                     label=model_path.stem, format=format, sha256=sha256)


def run_external(params: Params, name: str) -> dict[str, Any]:
    """A released model declared under `external.<name>`, verified by its SHA-256, into results/external/<name>."""
    if name not in params.external:
        known = ", ".join(params.external) or "none"
        raise ConfigError(f"--name: no external model {name!r} in external (known: {known})")
    entry = params.external[name]
    check_dataset(params, entry.dataset)
    if not Path(entry.file).is_file():
        raise DataError(f"external.{name}.file: {entry.file} not found (download the released weights and put "
                        f"them there; the README's 'Released models' says where from)")
    return _evaluate(params, Job("external", entry.dataset, entry.arch, entry.method, None, name), Path(entry.file),
                     layout.external(name), label=entry.label, format=entry.format, sha256=entry.sha256)


def _evaluate(params: Params, job: Job, model_path: Path, out_dir: Path, *, label: str, format: str,
              sha256: str | None) -> dict[str, Any]:
    """Every check of the model file and the inputs happens before a tracking run opens or anything is written."""
    dataset, arch = job.dataset, job.arch
    check_inputs(params, dataset)
    loaded = load_checkpoint(model_path, arch=arch, dataset=dataset,
                             num_classes=num_classes(layout.raw(params.data.root, dataset)),
                             format=format, device=pick_device(params.runtime.device), sha256=sha256)
    if model_path.name != "model.pt" or loaded.format != "augmix":
        print(f"[evaluate] {model_path}: {loaded.format} format, {loaded.arch}, {loaded.num_classes} classes",
              flush=True)
    if params.datasets[dataset].source not in FOLDER_SOURCES:
        n_test = len(load_split(layout.raw(params.data.root, dataset), "test", params.subset.test)[1])
        if n_test < params.eval.calib_bin_size:
            raise ConfigError(f"eval.calib_bin_size: {params.eval.calib_bin_size} exceeds the {n_test} test images of "
                              f"{dataset}; the calibration error needs at least one bin (lower it)")
    identity = {"dataset": dataset, "arch": arch, "method": job.method, "seed": job.seed or 0, "model": label}
    with job_run(params, job) as (p, tracked):
        check_names(p, cifar=params.datasets[dataset].source not in FOLDER_SOURCES)
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
    line = f"[evaluate] {out_dir}: clean error {summary['clean_error']:.4f}"
    if "corruption_error" in summary:
        line += f", corruption error {summary['corruption_error']:.4f}"
    print(line, flush=True)
    return json.loads(json.dumps(summary, default=str))
