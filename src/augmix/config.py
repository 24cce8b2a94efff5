"""The strict, typed configuration: `params.yaml` as frozen pydantic models, every setting in one home.

`load(path)` reads the file once and checks it completely before any work starts. Every problem is
reported at once, each with its dotted key: an unknown key (with the known keys beside it), a missing
key, a value of the wrong type (no silent coercion: `"3"` is not an integer, `1` is not `true`), a value
out of range, a name that refers to nothing (a grid method without a `methods` section). A params file
in the layout used before this schema stops with one message per moved key naming its new place.

Why pydantic v2: it is installed with MLflow already, its strict mode refuses coercion, it collects
every error of a document in one pass with its location, and it exports a JSON schema that Snakemake
validates the same file with (`workflow/schemas/params.schema.json`, written by `augmix schema`).

Where a setting lives:

* `grid`, `ablation`, `imagenet.{datasets,archs,methods,seeds}`: which jobs exist (the job identity
  comes from the command line: dataset, arch, method, seed).
* `datasets.<name>`: how that dataset is made. `archs.<name>`: that architecture's whole CIFAR recipe;
  `imagenet.recipe`: the ImageNet recipe. `methods.<name>`: that method's hyperparameters, with its
  per-dataset values under `per_dataset` (Cutout's 8x8 hole on CIFAR-100, AugMix severity 1 on ImageNet).
* `train`, `eval`, `corruptions`, `subset`: the rest of the recipe (what can change a result).
* `runtime`, `tracking` and `data` (root folder, may it download): how and where to run; no job
  declares them, so changing them re-runs nothing (a new `data.root` moves the outputs, though).

Which keys each job reads is `augmix.jobs`; stages read params only through `jobs.view`, which refuses
a key the job did not declare.

This module imports no torch and no module of the package but `errors`: every command loads it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from augmix.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

PositiveInt = Annotated[int, Field(ge=1)]
Epochs = Annotated[int, Field(ge=1, le=10000)]
Rate = Annotated[float, Field(ge=0.0, le=10.0)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Concentration = Annotated[float, Field(ge=1e-3, le=100.0)]
Name = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A params section: frozen, unknown keys forbidden, no coercion between types."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# ---- which jobs exist ------------------------------------------------------------------------


class GridParams(Section):
    """The main grid (paper Table 1): one train and one evaluate job per dataset x arch x method x seed."""

    datasets: Annotated[list[Name], Field(min_length=1)]
    archs: Annotated[list[Name], Field(min_length=1)]
    methods: Annotated[list[Name], Field(min_length=1)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]  # REF cifar.py seeds with 1


class AblationParams(Section):
    """The paper's Table 4 rows that the main grid lacks (WRN-40-2): their own jobs, with grid.seeds."""

    datasets: list[Name]
    archs: list[Name]
    methods: list[Name]  # [] = no ablation jobs


# ---- datasets: how each is made --------------------------------------------------------------


class CifarSource(Section):
    source: Literal["cifar10", "cifar100"]  # torchvision's archive, md5-checked


class DigitsSource(Section):
    source: Literal["digits"]  # scikit-learn's 8x8 digits as 32x32 RGB in CIFAR's format
    test_fraction: Annotated[float, Field(ge=0.05, le=0.5)]
    split_seed: Annotated[int, Field(ge=0)]  # the stratified split's permutation


class ImageNetSource(Section):
    source: Literal["imagenet"]  # a folder you point to (ImageFolder layout); its jobs: the imagenet section
    dir: str  # <dir>/train/<class>/*.JPEG and <dir>/val/<class>/*.JPEG ("" = not set)
    c_dir: str  # official ImageNet-C: <c_dir>/<corruption>/<severity>/<class>/*.JPEG ("" = not set)


class OwnSource(Section):
    """Your own images: `folder` = <path>/train/<class>/* and <path>/test/<class>/*; `npz` = a file with
    x_train, y_train, x_test, y_test. Stored in CIFAR's format and corrupted, trained and evaluated as
    CIFAR is (src/augmix/owndata.py)."""

    source: Literal["folder", "npz"]
    path: Name
    size: Literal[32]  # side in pixels: CIFAR's on-disk format and the -C severity tables are 32 px


DatasetSource = Annotated[CifarSource | DigitsSource | ImageNetSource | OwnSource, Field(discriminator="source")]
FOLDER_SOURCES = ("imagenet",)  # streamed from an image folder: jobs come from the imagenet section


# ---- recipes -----------------------------------------------------------------------------------


class ArchRecipe(Section):
    """One architecture's CIFAR recipe (REF cifar.py: SGD, per-step cosine to lr_min; REF README commands)."""

    epochs: Epochs
    batch_size: Annotated[int, Field(ge=1, le=65536)]  # distinct samples per step (JSD: 3x images)
    lr: Rate  # peak learning rate
    lr_min: Rate  # cosine floor
    momentum: Unit
    nesterov: bool
    weight_decay: Unit  # on all parameters, BatchNorm included (REF)


class ImageNetRecipe(Section):
    """REF imagenet.py as committed: SGD, lr per 256 samples, step decay at E//3 and 2(E//3)."""

    epochs: Epochs
    batch_size: Annotated[int, Field(ge=1, le=65536)]  # distinct samples per step, all GPUs together
    lr: Rate  # per 256 samples: the step uses lr * batch_size / 256 (REF)
    lr_min: Rate  # cosine floor (schedule: cosine only), per 256 samples
    momentum: Unit
    nesterov: bool
    weight_decay: Unit
    schedule: Literal["step", "cosine"]


# ---- methods: each owns its section ----------------------------------------------------------


class StandardParams(Section):
    """Plain cross-entropy on the flipped and cropped images: no hyperparameters."""


class AugMixParams(Section):
    """REF cifar.py defaults. `fill` is the PIL fillcolor int shear and translate paint the area they
    uncover with: 0 (black) in the committed reference; 128 in the code that trained the released
    ImageNet ResNet-50, which Pillow paints as (128, 0, 0) (docs/reference-facts.md, "AugMix fill")."""

    severity: Annotated[int, Field(ge=1, le=10)]  # upper bound of the per-op level U(0.1, severity)
    width: Annotated[int, Field(ge=1, le=10)]  # chains mixed (k)
    depth: Annotated[int, Field(ge=-1, le=10)]  # ops per chain; -1 = uniform on {1, 2, 3} per chain
    alpha: Concentration  # Dirichlet and Beta concentration
    all_ops: bool  # add color/contrast/brightness/sharpness (they overlap the test corruptions)
    jsd_weight: Annotated[float, Field(ge=0.0, le=1000.0)]  # lambda of the JSD consistency loss
    backend: Literal["auto", "tensor", "pil"]  # auto = tensor (batched) on every device; pil = reference path
    fill: Annotated[int, Field(ge=0, le=255)]


class AugMixNoJSDParams(Section):
    """REF --no-jsd ("AugmentAndMix" in the paper's Table 4): one AugMix view, plain cross-entropy."""

    severity: Annotated[int, Field(ge=1, le=10)]
    width: Annotated[int, Field(ge=1, le=10)]
    depth: Annotated[int, Field(ge=-1, le=10)]
    alpha: Concentration
    all_ops: bool
    backend: Literal["auto", "tensor", "pil"]
    fill: Annotated[int, Field(ge=0, le=255)]


class CutoutParams(Section):
    length: Annotated[int, Field(ge=1, le=1024)]  # square side in pixels (DeVries & Taylor: 16 on CIFAR-10)


class MixupParams(Section):
    alpha: Concentration  # Beta(alpha, alpha) (Zhang et al.: 1 on CIFAR)


class CutMixParams(Section):
    alpha: Concentration  # Beta(alpha, alpha) for the box area
    prob: Unit  # probability of mixing a batch


class AutoAugmentParams(Section):
    policy: Literal["cifar10", "imagenet", "svhn"]


class PGDParams(Section):
    eps: Unit  # L-inf radius in [0, 1] pixel units
    step_size: Unit
    steps: Annotated[int, Field(ge=1, le=1000)]
    random_start: bool


class FMixParams(Section):
    alpha: Concentration
    decay_power: Annotated[float, Field(ge=0.0, le=10.0)]
    reference_spectrum: bool  # FMix's real-only spectrum quirk (false: corrected)


# ---- the paper's ablation (Table 4) and AugMix's successors (src/augmix/ablation.py, successors/)


class AutoAugmentStarParams(Section):
    """AutoAugment without the ops that overlap the test corruptions (ablation.py: [unconfirmed] reading)."""

    policy: Literal["cifar10", "imagenet", "svhn"]
    drop: Literal["op", "subpolicy"]  # a removed op's slot becomes a no-op, or its sub-policies go


class RandomAutoAugmentStarParams(Section):
    """Random chains of the non-overlapping ops, no learned policy (ablation.py: [unconfirmed] reading)."""

    space: Literal["augmix", "autoaugment"]
    depth: Annotated[int, Field(ge=-1, le=10)]  # -1: 1..3 ops per chain
    severity: Annotated[float, Field(gt=0.1, le=10.0)]


class RandomAutoAugmentStarJSDParams(RandomAutoAugmentStarParams):
    jsd_weight: Annotated[float, Field(ge=0.0, le=1000.0)]


class RandAugmentParams(Section):
    """Cubuk et al. 2020 as torchvision defines it (its defaults: 2 ops, magnitude 9 of 31 bins)."""

    num_ops: Annotated[int, Field(ge=1, le=10)]
    magnitude: Annotated[int, Field(ge=0, le=100)]
    num_bins: Annotated[int, Field(ge=2, le=101)]


class TrivialAugmentParams(Section):
    """Müller & Hutter 2021, the wide magnitude space, as torchvision defines it (31 bins)."""

    num_bins: Annotated[int, Field(ge=2, le=101)]


class PrimeParams(Section):
    """Modas et al. 2022, amodas/PRIME-augmentations config/cifar10_cfg.py (= cifar100_cfg.py)."""

    width: Annotated[int, Field(ge=1, le=10)]
    depth: Annotated[int, Field(ge=-1, le=10)]
    max_depth: Annotated[int, Field(ge=1, le=10)]
    transforms: Annotated[list[Literal["diffeo", "color", "filter"]], Field(min_length=1)]
    diffeo_s_t: Annotated[float, Field(ge=0.0)]
    diffeo_r_t: Annotated[float, Field(ge=0.0)]
    diffeo_s_cut: Annotated[float, Field(ge=0.0)]
    diffeo_r_cut: Annotated[float, Field(ge=0.0)]
    diffeo_cut_min: Annotated[int, Field(ge=1)]
    diffeo_cut_max: Annotated[int, Field(ge=2)]
    diffeo_alpha: Annotated[float, Field(ge=0.0)]
    color_cut: Annotated[int, Field(ge=1)]
    color_t: Annotated[float, Field(ge=0.0)]
    filter_kernel_size: Annotated[int, Field(ge=1, le=31)]
    filter_sigma: Annotated[float, Field(ge=0.0)]
    filter_centre: bool  # false: the reference's off-centre identity tap (successors/prime.py)
    shared_draws: bool  # true: the reference's draws shared by a batch (views then made per step)


class PrimeJSDParams(PrimeParams):
    jsd_weight: Annotated[float, Field(ge=0.0, le=1000.0)]


class FractalSet(Section):
    """Mixing pictures made by code: seeded IFS fractals (successors/fractals.py). NOT the PixMix
    paper's fractal and feature-visualisation set, which is not distributed with this project."""

    source: Literal["fractals"]
    n: Annotated[int, Field(ge=1, le=1_000_000)]
    size: Annotated[int, Field(ge=16, le=1024)]  # side in pixels (PixMix on CIFAR: 36, cropped to 32)
    seed: Annotated[int, Field(ge=0)]


class FolderSet(Section):
    """Your own mixing pictures: every image file under `path`, resized to `size` pixels."""

    source: Literal["folder"]
    path: Name
    size: Annotated[int, Field(ge=16, le=1024)]


MixingSet = Annotated[FractalSet | FolderSet, Field(discriminator="source")]


class PixMixParams(Section):
    """Hendrycks et al. 2022, andyzoujm/pixmix cifar.py defaults and its README's CIFAR recipe."""

    k: Annotated[int, Field(ge=0, le=10)]
    beta: Annotated[float, Field(gt=0.0, le=100.0)]
    aug_severity: Annotated[float, Field(gt=0.1, le=10.0)]
    all_ops: bool
    mixing: MixingSet


def _override_model(cls: type[Section]) -> type[Section]:
    """The same keys as `cls`, each optional: the values one dataset changes."""
    def optional(f: Any) -> Any:
        return (Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation) | None

    fields = {name: (optional(f), None) for name, f in cls.model_fields.items()}
    return create_model(f"{cls.__name__}PerDataset", __base__=Section, **fields)


def _with_per_dataset(cls: type[Section]) -> type[Section]:
    """`cls` plus `per_dataset: {<dataset>: {<key>: value}}` (default: none)."""
    override = _override_model(cls)
    return create_model(cls.__name__, __base__=cls, __doc__=cls.__doc__,
                        per_dataset=(dict[str, override], Field(default_factory=dict)))


# Method name -> its params model. The method table (augmix.training_methods) must name the same
# methods; tests/test_config.py checks both ways.
METHOD_PARAMS: dict[str, type[Section]] = {
    name: _with_per_dataset(cls)
    for name, cls in {
        "standard": StandardParams,
        "augmix": AugMixParams,
        "augmix_nojsd": AugMixNoJSDParams,
        "cutout": CutoutParams,
        "mixup": MixupParams,
        "cutmix": CutMixParams,
        "autoaugment": AutoAugmentParams,
        "pgd": PGDParams,
        "fmix": FMixParams,
        "autoaugment_star": AutoAugmentStarParams,
        "random_autoaugment_star": RandomAutoAugmentStarParams,
        "random_autoaugment_star_jsd": RandomAutoAugmentStarJSDParams,
        "randaugment": RandAugmentParams,
        "randaugment_no_overlap": RandAugmentParams,
        "trivialaugment": TrivialAugmentParams,
        "trivialaugment_no_overlap": TrivialAugmentParams,
        "prime": PrimeJSDParams,
        "prime_nojsd": PrimeParams,
        "pixmix": PixMixParams,
    }.items()
}

MethodsParams = create_model(
    "MethodsParams", __base__=Section, __doc__="One section per training method (its hyperparameters).",
    **{name: (cls, ...) for name, cls in METHOD_PARAMS.items()},
)


# ---- the rest of the recipe, and how to run ----------------------------------------------------


class TrainParams(Section):
    """Numerics of training that can change its result (bf16, memory layout, compilation, threads, DDP)."""

    bf16: bool  # bf16 autocast around the network in training, on CUDA (ignored on CPU)
    channels_last: bool  # channels-last memory format
    compile: bool  # torch.compile the network
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"]  # reduce-overhead: CUDA graphs
    cudnn_benchmark: bool  # cuDNN times its conv algorithms (CUDA; not run-to-run deterministic there)
    threads: Annotated[int, Field(ge=0, le=1024)]  # torch CPU threads (0 = torch default): float sums depend on it
    nproc: Annotated[int, Field(ge=1, le=64)]  # processes (GPUs) per CIFAR train job; BatchNorm is per rank


class ImageNetParams(Section):
    """ResNet-50 on ImageNet (REF imagenet.py): its own grid and recipe."""

    datasets: list[Name]  # image-folder datasets to run ([] = none); [imagenet] adds its jobs (datasets.imagenet.dir)
    archs: Annotated[list[Name], Field(min_length=1)]
    methods: Annotated[list[Name], Field(min_length=1)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    recipe: ImageNetRecipe
    image_size: Annotated[int, Field(ge=16, le=1024)]  # RandomResizedCrop and CenterCrop side (224)
    resize: Annotated[int, Field(ge=16, le=2048)]  # test-time Resize of the shorter side (256)
    nproc: Annotated[int, Field(ge=1, le=64)]  # GPUs per ImageNet train job (DDP through torchrun)


class DataParams(Section):
    """Where data lives and whether it may be fetched: run-time (the archives are md5-checked, so a
    download and a placed archive give the same bytes; a new root moves every output)."""

    root: Name  # raw/ and corrupted/ below it, relative to the work folder
    download: bool  # fetch CIFAR when the archive is absent


class SubsetParams(Section):
    """The first N images of each split, for quick runs (0 = all)."""

    train: Annotated[int, Field(ge=0)]  # training images
    test: Annotated[int, Field(ge=0)]  # test images, and the -C / -P sets built from them


class CorruptionParams(Section):
    source: Literal["generate", "official"]  # official: the released CIFAR-10-C / CIFAR-100-C files
    names: Annotated[list[Name], Field(min_length=1)]
    severities: Annotated[list[Annotated[int, Field(ge=1, le=5)]], Field(min_length=1)]
    perturbations: list[Name]  # -P sets to build ([] = none); CIFAR-100 too (the authors released none)
    seed: Annotated[int, Field(ge=0)]
    bar: list[Name]  # -C-bar corruptions (Mintun et al. 2021) built beside -C, CIFAR-format data ([] = none)
    natural: list[Literal["cifar101"]]  # natural shifts evaluated beside -C: CIFAR-10.1 v6 (CIFAR-10 models)


class EvalParams(Section):
    calib_bin_size: PositiveInt  # adaptive bins of this many samples (REF: 100)
    calib_mode: Literal["reference", "corrected"]  # reference skips the last bin


class RuntimeParams(Section):
    """How and where to run. No job declares these keys, so changing them re-runs nothing."""

    device: Literal["auto", "cpu", "cuda"]  # training, evaluation and corruption builds; auto = CUDA when present
    log_every: PositiveInt  # a plain progress line every N steps when not on a terminal
    eval_batch_size: Annotated[int, Field(ge=1, le=65536)]  # images per forward pass in evaluation (memory)
    workers: Annotated[int, Field(ge=0, le=256)]  # JPEG-decoding processes per GPU (folder datasets)


class ExternalModel(Section):
    """A released model evaluated beside ours (`augmix evaluate-external NAME`, into results/external/NAME)."""

    label: Name  # its row in the report, e.g. "released AugMix WRN-40-2"
    file: Name  # where you put the weights (a DVC input of its job)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # refused unless the file has this hash
    arch: Name  # our architecture its weights fit
    dataset: Name  # the dataset it is evaluated on (a datasets key)
    method: Name  # how it was trained (the report's row), e.g. augmix
    format: Literal["auto", "augmix", "reference", "robustbench", "torchvision"]  # augmix.checkpoints


class TrackingParams(Section):
    enabled: bool
    experiment: Name


class Params(Section):
    grid: GridParams
    ablation: AblationParams
    datasets: dict[Name, DatasetSource]
    archs: dict[Name, ArchRecipe]
    methods: MethodsParams
    train: TrainParams
    imagenet: ImageNetParams
    data: DataParams
    subset: SubsetParams
    corruptions: CorruptionParams
    eval: EvalParams
    external: dict[Name, ExternalModel]
    runtime: RuntimeParams
    tracking: TrackingParams

    def digest(self, keys: Iterable[str]) -> str:
        """Short hash of the values of `keys` (dotted): a job's identity for tags and resume."""
        return digest(select(to_dict(self), keys))


RUNTIME_SECTIONS = ("runtime", "tracking", "data")  # read by any job, declared by none


# --------------------------------------------------------------------------------------------
# The layout before this schema: one message per moved key
# --------------------------------------------------------------------------------------------

MOVED: dict[str, str] = {
    "seed": "grid.seeds (a list: each seed is its own train and evaluate job)",
    "optim": "archs.<arch> (each architecture owns its whole recipe: epochs, batch_size, lr, lr_min, "
             "momentum, nesterov, weight_decay)",
    "augmix": "methods.augmix (and methods.augmix_nojsd for the no-JSD method)",
    "train.device": "runtime.device",
    "train.log_every": "runtime.log_every",
    "eval.batch_size": "runtime.eval_batch_size",
    "imagenet.workers": "runtime.workers",
    "imagenet.augmix_severity": "methods.augmix.per_dataset.imagenet.severity",
    "imagenet.augmix_fill": "methods.augmix.per_dataset.imagenet.fill",
    "imagenet.epochs": "imagenet.recipe.epochs",
    "imagenet.batch_size": "imagenet.recipe.batch_size",
    "imagenet.lr": "imagenet.recipe.lr",
    "imagenet.lr_min": "imagenet.recipe.lr_min",
    "imagenet.momentum": "imagenet.recipe.momentum",
    "imagenet.nesterov": "imagenet.recipe.nesterov",
    "imagenet.weight_decay": "imagenet.recipe.weight_decay",
    "imagenet.schedule": "imagenet.recipe.schedule",
    "data.imagenet_dir": "datasets.imagenet.dir",
    "data.imagenet_c_dir": "datasets.imagenet.c_dir",
    "data.digits_test_fraction": "datasets.digits.test_fraction",
    "methods.cutout.length_cifar100": "methods.cutout.per_dataset.cifar100.length",
    "data.max_train": "subset.train",
    "data.max_test": "subset.test",
}


def _moved(raw: Mapping[str, Any]) -> list[str]:
    found = []
    for old, new in MOVED.items():
        node: Any = raw
        for part in old.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, Mapping) else _ABSENT
        if node is not _ABSENT:
            found.append(f"{old}: moved to {new}")
    return found


_ABSENT = object()


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _dotted(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as a dotted key (list positions as [i]; union tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "params"


def _strip_tags(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """Drop the discriminator tags pydantic inserts for tagged unions (datasets.<name>.<source>.key)."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
            out.append(part)
        elif isinstance(node, Mapping) and node.get("source") == part:
            continue  # the union tag
        else:
            out.append(part)
            node = None
    return tuple(out)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at `loc` (for an unknown-key message); [] where it cannot tell."""
    model: Any = Params
    skip_key = False
    for part in loc:
        if skip_key:  # a mapping's own key (an arch, a dataset name): the value model follows
            skip_key = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        if getattr(model, "__origin__", None) is dict:
            model, skip_key = model.__args__[1], True
    return list(getattr(model, "model_fields", {})) if not skip_key else []


def _problems(exc: ValidationError, raw: Any) -> list[str]:
    out = []
    for err in exc.errors():
        loc = _strip_tags(tuple(err["loc"]), raw)
        key = _dotted(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            known = _known_keys(loc[:-1])
            hint = f" (known keys in {_dotted(loc[:-1])}: {', '.join(known)})" if known else ""
            out.append(f"{key}: unknown key{hint}")
        elif kind == "missing":
            out.append(f"{key}: missing key")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            out.append(f"{key}.source: {err['msg'].lower()}")
        else:
            out.append(f"{key}: {err['msg'][0].lower()}{err['msg'][1:]}, got {err.get('input')!r}")
    return out


def _cross_checks(p: Params) -> list[str]:
    """Checks that span sections (names that must refer to something, bounds between keys)."""
    out = []
    cifar_like = [n for n, d in p.datasets.items() if d.source not in FOLDER_SOURCES]
    for section, grid in (("grid", p.grid), ("ablation", p.ablation)):
        for i, name in enumerate(grid.datasets):
            if name not in p.datasets:
                out.append(f"{section}.datasets[{i}]: no dataset {name!r} in datasets (known: {', '.join(p.datasets)})")
            elif name not in cifar_like:
                out.append(f"{section}.datasets[{i}]: {name} is an image-folder dataset; its jobs are listed in "
                           f"imagenet.datasets (with the recipe of the imagenet section)")
        for i, name in enumerate(grid.archs):
            if name not in p.archs:
                out.append(f"{section}.archs[{i}]: {name!r} has no recipe in archs (known: {', '.join(p.archs)})")
        for i, name in enumerate(grid.methods):
            if name not in METHOD_PARAMS:
                out.append(f"{section}.methods[{i}]: unknown method {name!r} (known: {', '.join(METHOD_PARAMS)})")
    if p.ablation.methods:
        for i, name in enumerate(p.ablation.datasets):
            if name not in p.grid.datasets:
                out.append(f"ablation.datasets[{i}]: {name} is not in grid.datasets (its data and -C set come "
                           f"from the grid's download and corrupt jobs)")
    for key, values in (("grid.datasets", p.grid.datasets), ("grid.archs", p.grid.archs),
                        ("grid.methods", p.grid.methods), ("grid.seeds", p.grid.seeds),
                        ("ablation.datasets", p.ablation.datasets), ("ablation.archs", p.ablation.archs),
                        ("ablation.methods", p.ablation.methods), ("imagenet.datasets", p.imagenet.datasets),
                        ("imagenet.archs", p.imagenet.archs), ("imagenet.methods", p.imagenet.methods),
                        ("imagenet.seeds", p.imagenet.seeds), ("corruptions.names", p.corruptions.names),
                        ("corruptions.severities", p.corruptions.severities),
                        ("corruptions.perturbations", p.corruptions.perturbations),
                        ("corruptions.bar", p.corruptions.bar)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            out.append(f"{key}: {', '.join(repeated)} listed more than once")
    main = {(d, a, m) for d in p.grid.datasets for a in p.grid.archs for m in p.grid.methods}
    for d in p.ablation.datasets:
        for a in p.ablation.archs:
            for m in p.ablation.methods:
                if (d, a, m) in main:
                    out.append(f"ablation: the cell {d}/{a}/{m} is also in grid; list it in one of them")
    for i, name in enumerate(p.imagenet.methods):
        if name not in METHOD_PARAMS:
            out.append(f"imagenet.methods[{i}]: unknown method {name!r} (known: {', '.join(METHOD_PARAMS)})")
    for name in p.imagenet.datasets:
        entry = p.datasets.get(name)
        if entry is None or entry.source not in FOLDER_SOURCES:
            out.append(f"imagenet.datasets: {name!r} needs a datasets.{name} entry with source: imagenet")
        elif not entry.dir:
            out.append(f"datasets.{name}.dir: required when imagenet.datasets lists {name}")
    for name, arch in p.archs.items():
        if arch.lr_min > arch.lr:
            out.append(f"archs.{name}.lr_min: {arch.lr_min} exceeds archs.{name}.lr {arch.lr}")
    r = p.imagenet.recipe
    if r.lr_min > r.lr:
        out.append(f"imagenet.recipe.lr_min: {r.lr_min} exceeds imagenet.recipe.lr {r.lr}")
    if p.imagenet.image_size > p.imagenet.resize:
        out.append(f"imagenet.image_size: {p.imagenet.image_size} exceeds imagenet.resize {p.imagenet.resize} "
                   f"(the test crop is taken from the resized image)")
    for name, entry in p.external.items():
        if entry.dataset not in p.datasets:
            out.append(f"external.{name}.dataset: no dataset {entry.dataset!r} in datasets")
        elif entry.dataset not in {*p.grid.datasets, *p.imagenet.datasets}:
            grid = "imagenet.datasets" if p.datasets[entry.dataset].source in FOLDER_SOURCES else "grid.datasets"
            out.append(f"external.{name}.dataset: {entry.dataset} has no jobs (add it to {grid}) to make its "
                       f"data and -C set")
    for method in METHOD_PARAMS:
        for dataset in getattr(p.methods, method).per_dataset:
            if dataset not in p.datasets:
                out.append(f"methods.{method}.per_dataset.{dataset}: no dataset {dataset!r} in datasets")
    return out


def parse(raw: Any, *, where: str = "params") -> Params:
    """Validate a params mapping; ConfigError lists every problem, each with its dotted key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
    moved = _moved(raw)
    if moved:
        raise ConfigError(_report(where, moved, "params in the layout before the one-home schema"))
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_report(where, _problems(exc, raw))) from None
    problems = _cross_checks(params)
    if problems:
        raise ConfigError(_report(where, problems))
    return params


def _report(where: str, problems: list[str], what: str = "") -> str:
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    head = f"{where}: {len(problems)} problem{'s' if len(problems) > 1 else ''}" + (f" ({what})" if what else "")
    return head + "".join(f"\n  {p}" for p in problems)


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `2e-06` (what `dvc exp run -S lr_min=2e-6` writes)
    is a number, not the string YAML 1.1 makes of an exponent without a dot."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def loads_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Yaml12Loader)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found (run from the work folder, or name the file)")
    try:
        return loads_yaml(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None


def load(path: str | Path = "params.yaml") -> Params:
    return parse(read_yaml(path), where=str(path))


# --------------------------------------------------------------------------------------------
# Overlays: small files holding only the keys that differ from params.yaml
# --------------------------------------------------------------------------------------------


def merge(base: Any, overlay: Any) -> Any:
    """`overlay` over `base`: mappings merge key by key; any other value (a list too) replaces."""
    if isinstance(base, Mapping) and isinstance(overlay, Mapping):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


def compose_text(base_path: str | Path, overlay_path: str | Path) -> str:
    """The YAML of params.yaml with an overlay applied, headed by where it came from; validated."""
    base_raw, overlay_raw = read_yaml(base_path), read_yaml(overlay_path) or {}
    raw = merge(base_raw, overlay_raw)
    parse(raw, where=f"{overlay_path} over {base_path}")
    head = (f"# Composed by augmix from {Path(base_path).name} and the overlay {Path(overlay_path)}:\n"
            f"# edit this file freely (dvc exp run -S ... edits it too); re-running the demo recomposes it.\n")
    return head + yaml.safe_dump(raw, sort_keys=False)


# --------------------------------------------------------------------------------------------
# Keys and values
# --------------------------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return {name: to_dict(getattr(obj, name)) for name in type(obj).model_fields}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def get(tree: Any, key: str) -> Any:
    node = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def select(tree: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The nested sub-tree of `tree` holding exactly `keys` (dotted)."""
    out: dict[str, Any] = {}
    for key in sorted(keys):
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(get(tree, key))
    return out


def leaf_keys(tree: Any, prefix: str = "") -> Iterator[str]:
    """Every leaf's dotted key; lists and empty mappings are leaves."""
    if isinstance(tree, Mapping) and tree:
        for k, v in tree.items():
            yield from leaf_keys(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their JSON text (MLflow params are strings)."""
    return {k: (json.dumps(v) if isinstance(v, list) else v)
            for k in leaf_keys(tree, prefix)
            for v in [get(tree, k.removeprefix(prefix + ".")) if prefix else get(tree, k)]}


def digest(tree: Any) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:12]


def json_schema() -> dict[str, Any]:
    """The params schema as JSON Schema (draft 2020-12), for Snakemake's `validate`."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Params.model_json_schema()}
    schema["$comment"] = "Generated by `augmix schema` from src/augmix/config.py; do not edit."
    return schema
