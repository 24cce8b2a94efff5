"""`augmix train --dataset D --arch A --method M --seed S`: one cell into results/<D>/<A>/<M>/seed<S>/
(model.pt, params.resolved.yaml, train_log.csv, train_summary.json), resumable from checkpoints/."""

from __future__ import annotations

from typing import Any

import torch.distributed
import yaml

from augmix import codedeps, io, jobs, layout, train
from augmix.config import FOLDER_SOURCES, Params
from augmix.device import pick_device
from augmix.errors import ConfigError
from augmix.jobs import Job
from augmix.models import ARCHS
from augmix.stages.common import check_dataset, check_inputs, job_run, provenance
from augmix.training_methods import METHODS


def check_cell(params: Params, dataset: str, arch: str, method: str) -> None:
    check_dataset(params, dataset)
    folder = params.datasets[dataset].source in FOLDER_SOURCES
    if arch not in ARCHS:
        raise ConfigError(f"--arch: unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    if not folder and arch not in params.archs:
        raise ConfigError(f"--arch: {arch} has no recipe in archs (add archs.{arch})")
    if method not in METHODS:
        raise ConfigError(f"--method: unknown method {method!r} (known: {', '.join(METHODS)})")


def run(params: Params, dataset: str, arch: str, method: str, seed: int, *,
        stop_after_epoch: int | None = None) -> dict[str, Any]:
    check_cell(params, dataset, arch, method)
    check_inputs(params, dataset)
    job = Job("train", dataset, arch, method, seed)
    out = layout.cell(dataset, arch, method, seed)
    resolved = jobs.resolved(job, params)
    with job_run(params, job) as (p, tracked):
        result = train.train(p, job, raw_dir=layout.raw(params.data.root, dataset), out_dir=out,
                             checkpoint=layout.checkpoint(dataset, arch, method, seed),
                             fingerprint=f"{jobs.fingerprint(job, params)}:{codedeps.code_digest('train')}",
                             job_params=resolved, run=tracked,
                             stop_after_epoch=stop_after_epoch)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if "stopped_after_epoch" in result or "rank" in result:  # only rank 0 of a finished run writes
            return result
        summary = {**result, **provenance(params, job, pick_device(params.runtime.device))}
        io.write_json(out / "train_summary.json", summary)
        io.write_text(out / "params.resolved.yaml", _yaml(job, resolved))
        for name in ("train_log.csv", "train_summary.json", "params.resolved.yaml"):
            tracked.log_artifact(out / name)
        tracked.set_tags({"model_sha256": io.file_digest(out / "model.pt", "sha256")})
        tracked.log_metrics({"seconds_total": result["seconds"]})
    return summary


def _yaml(job: Job, resolved: dict[str, Any]) -> str:
    head = (f"# The params keys {job.stage} {'/'.join(str(v) for v in job.identity().values())} read, and "
            f"their values (augmix.jobs): nothing else can change its result.\n")
    return head + yaml.safe_dump({"job": job.identity(), "params": resolved}, sort_keys=False)
