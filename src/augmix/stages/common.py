"""What every stage does around its work: check the job's names, open its view and tracking run, and
say what made a result (provenance)."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from augmix import jobs, layout, tracking
from augmix.config import FOLDER_SOURCES, Params
from augmix.errors import ConfigError, DataError
from augmix.jobs import Job

LIBRARIES = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "pillow": "Pillow",
             "opencv": "opencv-python-headless"}


def check_dataset(params: Params, dataset: str, *, folder: bool | None = None) -> None:
    """--dataset must name a datasets entry (of the right kind, where the stage cares)."""
    if dataset not in params.datasets:
        raise ConfigError(f"--dataset: no dataset {dataset!r} in datasets (known: {', '.join(params.datasets)})")
    if folder is not None and (params.datasets[dataset].source in FOLDER_SOURCES) != folder:
        raise ConfigError(f"--dataset: {dataset} is not {'an image-folder' if folder else 'a CIFAR-format'} dataset")


def check_inputs(params: Params, dataset: str) -> None:
    """The folders a job reads exist (refused before a tracking run opens or anything is removed)."""
    raw = layout.raw(params.data.root, dataset)
    if not raw.is_dir():
        raise DataError(f"{raw} not found: run `augmix download --dataset {dataset}` first")


def library_versions() -> dict[str, str]:
    out = {}
    for name, dist in LIBRARIES.items():
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def device_name(device: Any) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(params: Params, job: Job, device: Any = "cpu") -> dict[str, Any]:
    """What made a result file: code (git commit, dirty flag), libraries, device, seed and the digest
    of the keys the job read (the same digest the tracking run's params_hash tag carries)."""
    git = tracking.git_info()
    return {"git_commit": git["git_commit"], "git_dirty": git["git_dirty"] == "true",
            "libraries": library_versions(), "device": device_name(device), "python": platform.python_version(),
            "seed": job.seed, "params_digest": params.digest(jobs.keys(job, params)),
            "params_keys": jobs.keys(job, params)}


@contextmanager
def job_run(params: Params, job: Job) -> Iterator[tuple[jobs.View, Any]]:
    """The job's params view and its tracking run (a child of the pipeline's parent run, if any)."""
    view = jobs.view(params, job)
    with tracking.stage_run(params, job) as run:
        yield view, run
