# Shared values. The cells come from the typed params; each rule's `params:` is the job's own keys
# and values (augmix.jobs, the table dvc.yaml spells too) and its code inputs are its command's import
# closure (augmix.codedeps), so a change re-runs the same jobs under both orchestrators.
import re

from augmix import codedeps, jobs

PARAMS = augmix_config.parse(RAW, where="params.yaml")
DATA = PARAMS.data.root


def cells(grid, seeds):
    return [f"{d}/{a}/{m}/seed{s}" for d in grid.datasets for a in grid.archs for m in grid.methods for s in seeds]


CELLS = cells(PARAMS.grid, PARAMS.grid.seeds) + cells(PARAMS.ablation, PARAMS.grid.seeds)
IMAGENET_CELLS = cells(PARAMS.imagenet, PARAMS.imagenet.seeds)
_FOLDER = [re.escape(n) for n, d in PARAMS.datasets.items() if d.source in augmix_config.FOLDER_SOURCES]
FOLDER_DATASETS = "|".join(_FOLDER) or r"(?!x)x"  # never matches when there is none
ARRAY_DATASET = rf"(?!(?:{FOLDER_DATASETS})(?:/|$))[^/]+"  # every other dataset (CIFAR layout)


wildcard_constraints:
    dataset=r"[^/]+",
    arch=r"[^/]+",
    method=r"[^/]+",
    seed=r"\d+",
    name=r"[^/]+",


def job_params(stage):
    """The job's params keys and values, from its wildcards (Snakemake re-runs a job when they change)."""

    def values(wildcards):
        if "name" in wildcards.keys():  # an external model: its identity is in its entry
            entry = PARAMS.external[wildcards.name]
            job = jobs.Job(stage, entry.dataset, entry.arch, entry.method, None, wildcards.name)
        else:
            job = jobs.Job(stage, wildcards.get("dataset", ""), wildcards.get("arch", ""),
                           wildcards.get("method", ""), int(wildcards.seed) if "seed" in wildcards.keys() else None)
        return jobs.values(job, PARAMS)

    return values


def code(stage):
    return codedeps.stage_files(stage)


localrules:
    download,
    report,


# The check DVC runs as its root stage (`augmix check`: the whole file against the code's tables and the
# paths jobs will need) runs here before any job starts, so a bad value stops the run before any output
# is removed. It is not a rule: a rule whose output every job reads makes Snakemake 9 skip the other jobs'
# params-change checks whenever it re-runs (dag.py masks the jobs downstream of a job that must run).
onstart:
    shell("augmix check")
