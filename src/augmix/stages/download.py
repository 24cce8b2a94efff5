"""`augmix download --dataset D`: data/raw/<D> in its on-disk format (CIFAR's pickled batches; for an
image-folder dataset, a pointer to the folder)."""

from __future__ import annotations

from pathlib import Path

from augmix import data, layout
from augmix.config import FOLDER_SOURCES, Params
from augmix.jobs import Job
from augmix.stages.common import check_dataset, job_run


def run(params: Params, dataset: str) -> Path:
    check_dataset(params, dataset)
    job = Job("download", dataset)
    with job_run(params, job) as (p, tracked):
        entry = p.datasets[dataset]  # the job's view of its entry: the preparer reads what it needs
        out = data.prepare(dataset, entry, p.data.root, download=p.data.download)
        if entry.source not in FOLDER_SOURCES:
            n_train = len(data.load_split(out, "train")[1])
            n_test = len(data.load_split(out, "test")[1])
            tracked.log_metrics({"n_train": n_train, "n_test": n_test})
            print(f"[download] {dataset}: {n_train} train / {n_test} test images in {out}", flush=True)
    assert out == layout.raw(params.data.root, dataset)
    return out
