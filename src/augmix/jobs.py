"""Which params keys each job reads: the one table behind dvc.yaml, the Snakefile, resume and tracking.

A job is a stage with its identity (dataset, arch, method, seed). `keys(job, params)` lists the dotted
keys it reads; dvc.yaml spells the same list with `${item.*}` (tests/test_dag.py resolves every job of
both orchestrators against this table), the Snakefile calls `values()` for its rules' `params:`, the
resume checkpoint's fingerprint and the tracking run's params are made from the same keys, and stages
read params only through `view()`, which refuses any other key. Run-time sections (`runtime`,
`tracking`, `data`) are readable by every job and declared by none: changing them re-runs nothing.

Why each job reads what it reads (the README's "What re-runs when you change X" is checked against it):

* download: its dataset's entry (`datasets.<d>`). Every other job of a dataset reads its `source`
  (the kind of data: which code path reads it).
* corrupt: the corruption recipe and `subset.test` (the -C set is built from the test images); an
  ImageNet-style dataset also its folder entry and crop sizes.
* train: its architecture's recipe (or `imagenet.recipe`), its method's section, the training
  numerics (`train.*`; ImageNet jobs take `imagenet.nproc` instead of `train.nproc`) and the subset
  sizes (the per-epoch test error is part of its log).
* evaluate: which corruptions, severities and perturbations to read, the calibration settings, the
  thread count (float sums) and `subset.test`; ImageNet also its crop sizes. The corruption *data*
  (source, seed) is a file dependency, not a params one.
* external: a released model's entry (`external.<name>`: its file, hash, format) and what evaluate reads.
* report: the calibration settings it prints (the numbers come from the result files).
* check: everything (its output never changes for valid params, so it re-runs nothing downstream).

This module imports only `config` and `errors`: the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from augmix import config
from augmix.config import FOLDER_SOURCES, Params

# Key groups; dvc.yaml's writer (workflow/scripts/write_dvc_yaml.py) and train.NUMERICS use these.
TRAIN_NUMERICS = ("train.bf16", "train.channels_last", "train.compile", "train.compile_mode",
                  "train.cudnn_benchmark", "train.threads")
CORRUPT_KEYS = ("corruptions.source", "corruptions.names", "corruptions.severities", "corruptions.perturbations",
                "corruptions.seed", "subset.test")
EVAL_KEYS = ("corruptions.names", "corruptions.severities", "corruptions.perturbations", "eval.calib_bin_size",
             "eval.calib_mode", "train.threads", "subset.test")
CIFAR_SHIFTS = ("corruptions.bar", "corruptions.natural")  # -C-bar and CIFAR-10.1: CIFAR-format data only
FOLDER_SIZES = ("imagenet.image_size", "imagenet.resize")


@dataclass(frozen=True)
class Job:
    stage: str  # download, corrupt, train, evaluate, report, check
    dataset: str = ""
    arch: str = ""
    method: str = ""
    seed: int | None = None
    name: str = ""  # an external model's name (stage "external")

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("name", "dataset", "arch", "method") if getattr(self, k)}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def _folder(params: Params, dataset: str) -> bool:
    entry = params.datasets.get(dataset)
    return entry is not None and entry.source in FOLDER_SOURCES


def _download(job: Job, params: Params) -> list[str]:
    if _folder(params, job.dataset):  # the folder it records (its ImageNet-C folder is the corrupt job's)
        return [f"datasets.{job.dataset}.source", f"datasets.{job.dataset}.dir"]
    return [f"datasets.{job.dataset}"]


def _corrupt(job: Job, params: Params) -> list[str]:
    if _folder(params, job.dataset):
        return [f"datasets.{job.dataset}.source", *CORRUPT_KEYS, f"datasets.{job.dataset}.c_dir", *FOLDER_SIZES]
    return [f"datasets.{job.dataset}.source", *CORRUPT_KEYS, *CIFAR_SHIFTS]


def _train(job: Job, params: Params) -> list[str]:
    if _folder(params, job.dataset):
        recipe = ["imagenet.recipe", "imagenet.nproc", *FOLDER_SIZES]
    else:
        recipe = [f"archs.{job.arch}", "train.nproc"]
    return [f"datasets.{job.dataset}.source", *recipe, f"methods.{job.method}", *TRAIN_NUMERICS, "subset.train",
            "subset.test"]


def _evaluate(job: Job, params: Params) -> list[str]:
    kind = FOLDER_SIZES if _folder(params, job.dataset) else CIFAR_SHIFTS
    return [f"datasets.{job.dataset}.source", *EVAL_KEYS, *kind]


def _external(job: Job, params: Params) -> list[str]:
    # One stage serves CIFAR-format and image-folder datasets, so both kinds' keys are declared.
    return [f"external.{job.name}", f"datasets.{job.dataset}.source", *EVAL_KEYS, *CIFAR_SHIFTS, *FOLDER_SIZES]


def _report(job: Job, params: Params) -> list[str]:
    return ["eval.calib_bin_size", "eval.calib_mode"]


def _check(job: Job, params: Params) -> list[str]:
    return [k for k in type(params).model_fields if k not in config.RUNTIME_SECTIONS]


KEYS: dict[str, Callable[[Job, Params], list[str]]] = {
    "download": _download, "corrupt": _corrupt, "train": _train, "evaluate": _evaluate,
    "external": _external, "report": _report, "check": _check,
}


def keys(job: Job, params: Params) -> list[str]:
    """The dotted params keys `job` reads, in declaration order."""
    return KEYS[job.stage](job, params)


def values(job: Job, params: Params) -> dict[str, Any]:
    """{key: value} of the job's keys (Snakemake's params; the resume fingerprint)."""
    tree = config.to_dict(params)
    return {k: config.get(tree, k) for k in keys(job, params)}


def resolved(job: Job, params: Params) -> dict[str, Any]:
    """The job's keys as a nested tree, for params.resolved.yaml, model.pt and tracking."""
    return config.select(config.to_dict(params), keys(job, params))


def fingerprint(job: Job, params: Params) -> str:
    ident = "/".join(str(v) for v in job.identity().values())
    return f"{job.stage}:{ident}:{config.digest(resolved(job, params))}"


# --------------------------------------------------------------------------------------------
# Reading params as a job: declared keys and run-time sections only, every read recorded
# --------------------------------------------------------------------------------------------


class UndeclaredKey(AssertionError):
    """A job read a params key it does not declare: a bug in the code or in `KEYS` (not user input)."""


@dataclass
class Reads:
    allowed: tuple[str, ...]
    seen: set[str] = field(default_factory=set)

    def touch(self, key: str) -> None:
        if key.split(".")[0] in config.RUNTIME_SECTIONS:
            return
        if not any(key == a or key.startswith(a + ".") for a in self.allowed):
            raise UndeclaredKey(f"this job reads params key {key} but does not declare it (augmix.jobs.KEYS)")
        self.seen.add(key)


class View:
    """Attribute access to a params (sub)tree that records each leaf read and refuses undeclared ones.

    Sections come back as views, mappings of sections as `MappingView`s; a leaf value (number, string,
    list) is recorded under its dotted key. `dump()` reads a whole (sub)tree as plain data."""

    __slots__ = ("_obj", "_prefix", "_reads")

    def __init__(self, obj: Any, prefix: str, reads: Reads) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_reads", reads)

    def _key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def __getattr__(self, name: str) -> Any:
        return _wrap(getattr(self._obj, name), self._key(name), self._reads)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")

    def dump(self) -> Any:
        for key in config.leaf_keys(config.to_dict(self._obj), self._prefix):
            self._reads.touch(key)
        return config.to_dict(self._obj)

    def model(self) -> Any:
        """The typed section itself (every key under it counts as read)."""
        self.dump()
        return self._obj

    def __repr__(self) -> str:
        return f"View({self._prefix or 'params'})"


class MappingView(View):
    def __getitem__(self, name: str) -> Any:
        return _wrap(self._obj[name], self._key(name), self._reads)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._obj else default

    def __contains__(self, name: str) -> bool:
        return name in self._obj

    def __iter__(self):
        return iter(self._obj)

    def keys(self):
        return self._obj.keys()


def _wrap(value: Any, key: str, reads: Reads) -> Any:
    if isinstance(value, BaseModel):
        return View(value, key, reads)
    if isinstance(value, Mapping) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return MappingView(value, key, reads)
    reads.touch(key)
    return value


def view(params: Params, job: Job) -> View:
    """`params` as `job` may read them."""
    return View(params, "", Reads(tuple(keys(job, params))))


def reads(v: View) -> set[str]:
    return set(v._reads.seen)


def declared_leaves(params: Params, job: Job) -> set[str]:
    """Every leaf key under the job's declared keys (what a complete run should read)."""
    tree = config.to_dict(params)
    return {leaf for k in keys(job, params) for leaf in config.leaf_keys(config.get(tree, k), k)}
