"""The strict, typed configuration: `params.yaml` mirrored by frozen dataclasses.

`load(path)` reads the file once and checks it completely before any work starts: an unknown key,
a missing key, a value of the wrong type or out of range raises `ConfigError` naming the dotted key
and what was expected. Run identity (dataset, arch, method) is not configuration: it comes from the
command line (see `cli.py`).
"""

from __future__ import annotations

from augmix.errors import ConfigError  # noqa: F401  (re-exported)

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml




def _check(**rules: Any) -> dict[str, Any]:
    """Field metadata: min / max (inclusive), choices, nonempty."""
    return {"check": rules}


def spec(default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    if default is dataclasses.MISSING:
        return field(metadata=_check(**rules))
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=_check(**rules))
    return field(default=default, metadata=_check(**rules))


# --------------------------------------------------------------------------------------------
# Sections. Names follow the paper and the reference (augmix.md §1); units in comments.
# --------------------------------------------------------------------------------------------

DATASETS = ("cifar10", "cifar100", "digits", "imagenet")
FOLDER_DATASETS = ("imagenet",)  # streamed from an image folder; their jobs come from the imagenet section
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "digits": 10, "imagenet": 1000}


@dataclass(frozen=True)
class DataParams:
    root: str = spec(nonempty=True)  # folder for raw and derived data, relative to the repo root
    download: bool = spec()  # fetch CIFAR when the archive is absent (needs internet)
    imagenet_dir: str = spec()  # folder with train/ and val/ class folders ("" = not used)
    imagenet_c_dir: str = spec()  # ImageNet-C folder: <corruption>/<severity>/<class>/*.JPEG
    digits_test_fraction: float = spec(min=0.05, max=0.5)  # demo split, deterministic
    max_train: int = spec(min=0)  # keep the first N training images (0 = all); for smoke runs
    max_test: int = spec(min=0)  # keep the first N test images (0 = all)


@dataclass(frozen=True)
class AugMixParams:
    severity: int = spec(min=1, max=10)  # upper bound of the per-op level U(0.1, severity)
    width: int = spec(min=1, max=10)  # number of chains mixed (k)
    depth: int = spec(min=-1, max=10)  # ops per chain; -1 = uniform on {1, 2, 3} per chain
    alpha: float = spec(min=1e-3, max=100.0)  # Dirichlet and Beta concentration
    all_ops: bool = spec()  # add color/contrast/brightness/sharpness (overlap ImageNet-C)
    jsd_weight: float = spec(min=0.0, max=1000.0)  # lambda of the JSD consistency loss (12 in REF)
    backend: str = spec(choices=("auto", "tensor", "pil"))  # auto: tensor on GPU, pil on CPU


@dataclass(frozen=True)
class OptimParams:
    lr: float = spec(min=0.0, max=10.0)  # peak learning rate per batch of `batch_size`
    lr_min: float = spec(min=0.0, max=10.0)  # cosine floor (REF: 1e-6)
    momentum: float = spec(min=0.0, max=1.0)
    nesterov: bool = spec()
    weight_decay: float = spec(min=0.0, max=1.0)  # on all parameters, BN included (REF)
    batch_size: int = spec(min=1, max=65536)  # distinct samples per step (JSD: 3x images)
    epochs: int = spec(min=1, max=10000)


@dataclass(frozen=True)
class ArchRecipe:
    epochs: int = spec(min=1, max=10000)
    weight_decay: float = spec(min=0.0, max=1.0)


@dataclass(frozen=True)
class CutoutParams:
    length: int = spec(min=1, max=1024)  # square side in pixels (DeVries & Taylor: 16 on CIFAR-10)
    length_cifar100: int = spec(min=1, max=1024)  # the side on CIFAR-100 (DeVries & Taylor: 8)


@dataclass(frozen=True)
class MixupParams:
    alpha: float = spec(min=1e-3, max=100.0)  # Beta(alpha, alpha) (Zhang et al.: 1 on CIFAR)


@dataclass(frozen=True)
class CutMixParams:
    alpha: float = spec(min=1e-3, max=100.0)  # Beta(alpha, alpha) for the box area
    prob: float = spec(min=0.0, max=1.0)  # probability of applying CutMix to a batch


@dataclass(frozen=True)
class AutoAugmentParams:
    policy: str = spec(choices=("cifar10", "imagenet", "svhn"))


@dataclass(frozen=True)
class PGDParams:
    eps: float = spec(min=0.0, max=1.0)  # L-inf radius in [0, 1] pixel units
    step_size: float = spec(min=0.0, max=1.0)
    steps: int = spec(min=1, max=1000)
    random_start: bool = spec()


@dataclass(frozen=True)
class FMixParams:
    alpha: float = spec(min=1e-3, max=100.0)
    decay_power: float = spec(min=0.0, max=10.0)
    reference_spectrum: bool = spec()  # FMix's real-only spectrum quirk (False: corrected)


@dataclass(frozen=True)
class MethodParams:
    cutout: CutoutParams = spec()
    mixup: MixupParams = spec()
    cutmix: CutMixParams = spec()
    autoaugment: AutoAugmentParams = spec()
    pgd: PGDParams = spec()
    fmix: FMixParams = spec()


@dataclass(frozen=True)
class GridParams:
    datasets: list[str] = spec(nonempty=True, choices=DATASETS)
    archs: list[str] = spec(nonempty=True)
    methods: list[str] = spec(nonempty=True)


@dataclass(frozen=True)
class ImageNetParams:
    """ResNet-50 on ImageNet: REF imagenet.py as committed (augmix.md §9.2), its own grid and recipe."""

    datasets: list[str] = spec(choices=FOLDER_DATASETS)  # [] = no ImageNet jobs; [imagenet] adds them
    archs: list[str] = spec(nonempty=True)
    methods: list[str] = spec(nonempty=True)
    epochs: int = spec(min=1, max=10000)
    batch_size: int = spec(min=1, max=65536)  # distinct samples per step over all GPUs (JSD: 3x images)
    lr: float = spec(min=0.0, max=10.0)  # per 256 samples: the step uses lr * batch_size / 256 (REF)
    lr_min: float = spec(min=0.0, max=10.0)  # cosine floor (schedule: cosine only)
    momentum: float = spec(min=0.0, max=1.0)
    nesterov: bool = spec()
    weight_decay: float = spec(min=0.0, max=1.0)
    schedule: str = spec(choices=("step", "cosine"))  # step: x1, x0.1, x0.01 from epochs E//3, 2E//3
    augmix_severity: int = spec(min=1, max=10)  # REF imagenet.py: 1 (CIFAR: 3)
    # PIL fillcolor int shear/translate paint the area they uncover with (rotate: 0). 128: the code
    # that trained the released ResNet-50 (REF-#3, augmix.md §6), which Pillow paints (128, 0, 0);
    # 0: imagenet.py as committed.
    augmix_fill: int = spec(min=0, max=255)
    image_size: int = spec(min=16, max=1024)  # RandomResizedCrop and CenterCrop side (224)
    resize: int = spec(min=16, max=2048)  # test-time Resize of the shorter side before CenterCrop (256)
    workers: int = spec(min=0, max=256)  # JPEG-decoding processes per training process
    nproc: int = spec(min=1, max=64)  # GPUs per ImageNet train job; > 1 runs it under torchrun


@dataclass(frozen=True)
class TrainParams:
    device: str = spec(choices=("auto", "cpu", "cuda"))
    bf16: bool = spec()  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = spec()  # channels-last memory format (CUDA and CPU)
    compile: bool = spec()  # torch.compile the model
    compile_mode: str = spec(choices=("default", "reduce-overhead", "max-autotune"))  # reduce-overhead: CUDA graphs
    cudnn_benchmark: bool = spec()  # let cuDNN time its conv algorithms for our fixed shapes (CUDA only)
    threads: int = spec(min=0, max=1024)  # torch CPU threads (0 = torch default)
    nproc: int = spec(min=1, max=64)  # processes per train job (GPUs); > 1 runs it under torchrun
    log_every: int = spec(min=1)  # plain progress line every N steps when not on a terminal


@dataclass(frozen=True)
class CorruptionParams:
    source: str = spec(choices=("generate", "official"))  # official: the released CIFAR-C files
    names: list[str] = spec(nonempty=True)
    severities: list[int] = spec(nonempty=True, min=1, max=5)
    perturbations: list[str] = spec()  # -P sets to build ([] = none)
    seed: int = spec(min=0)


@dataclass(frozen=True)
class EvalParams:
    batch_size: int = spec(min=1, max=65536)
    calib_bin_size: int = spec(min=1)  # adaptive bins of this many samples (REF: 100)
    calib_mode: str = spec(choices=("reference", "corrected"))  # reference skips the last bin


@dataclass(frozen=True)
class TrackingParams:
    enabled: bool = spec()
    experiment: str = spec(nonempty=True)


@dataclass(frozen=True)
class Params:
    seed: int = spec(min=0)
    data: DataParams = spec()
    grid: GridParams = spec()
    augmix: AugMixParams = spec()
    optim: OptimParams = spec()
    archs: dict[str, ArchRecipe] = spec()
    methods: MethodParams = spec()
    train: TrainParams = spec()
    imagenet: ImageNetParams = spec()
    corruptions: CorruptionParams = spec()
    eval: EvalParams = spec()
    tracking: TrackingParams = spec()

    # ---- derived views -------------------------------------------------------------------
    def recipe(self, arch: str) -> ArchRecipe:
        """Per-architecture epochs and weight decay (REF README commands), optim as fallback."""
        return self.archs.get(arch, ArchRecipe(self.optim.epochs, self.optim.weight_decay))

    def section(self, name: str) -> Any:
        return to_dict(getattr(self, name))

    def digest(self, sections: typing.Iterable[str]) -> str:
        """Short hash of the named sections: run identity for tags and checkpoint validity."""
        blob = json.dumps({s: self.section(s) for s in sorted(sections)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_NAMES.get(tp, str(tp))


def _scalar(value: Any, tp: type, key: str) -> Any:
    # YAML gives bool for true/false; bool is an int subclass in Python, so reject it explicitly.
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - schema error, not user error
        raise TypeError(f"unsupported schema type {tp} at {key}")
    if not ok:
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _rules(value: Any, rules: dict[str, Any], key: str) -> None:
    items = value if isinstance(value, list) else [value]
    if rules.get("nonempty") and (value == "" or value == [] or value == {}):
        raise ConfigError(f"{key}: must not be empty")
    for v in items:
        if "choices" in rules and v not in rules["choices"]:
            raise ConfigError(f"{key}: {v!r} is not one of {', '.join(map(str, rules['choices']))}")
        if "min" in rules and v < rules["min"]:
            raise ConfigError(f"{key}: {v!r} is below the minimum {rules['min']}")
        if "max" in rules and v > rules["max"]:
            raise ConfigError(f"{key}: {v!r} is above the maximum {rules['max']}")


def _convert(value: Any, tp: Any, key: str, rules: dict[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        out = _build(tp, value, key)
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        out = [_convert(v, item_tp, f"{key}[{i}]", {}) for i, v in enumerate(value)]
        if len(set(map(str, out))) != len(out):
            raise ConfigError(f"{key}: duplicate entries in {out}")
    elif origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp)
        out = {str(k): _convert(v, val_tp, f"{key}.{k}", {}) for k, v in value.items()}
    elif origin in (typing.Union, types.UnionType):
        raise TypeError("optional fields are not used in the schema")  # pragma: no cover
    else:
        out = _scalar(value, tp, key)
    _rules(out, rules, key)
    return out


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, raw)) - set(fields))
    if unknown:
        dotted = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in unknown)
        raise ConfigError(f"unknown key {dotted} (known keys in {where}: {', '.join(fields)})")
    missing = [k for k in fields if k not in raw]
    if missing:
        dotted = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in missing)
        raise ConfigError(f"missing key {dotted}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(raw[name], hints[name], key, f.metadata.get("check", {}))
    return cls(**kwargs)


def _cross_checks(p: Params) -> None:
    """Checks that span sections: names must exist in the code's registries."""
    from augmix import registry  # late: registries import torch

    for i, arch in enumerate(p.grid.archs):
        if arch not in registry.arch_names():
            raise ConfigError(
                f"grid.archs[{i}]: unknown architecture {arch!r} "
                f"(known: {', '.join(registry.arch_names())})"
            )
    for i, method in enumerate(p.grid.methods):
        if method not in registry.method_names():
            raise ConfigError(
                f"grid.methods[{i}]: unknown method {method!r} "
                f"(known: {', '.join(registry.method_names())})"
            )
    for section in ("imagenet.archs", "imagenet.methods"):
        known_names = registry.arch_names() if section.endswith("archs") else registry.method_names()
        for i, name in enumerate(getattr(p.imagenet, section.split(".")[1])):
            if name not in known_names:
                raise ConfigError(f"{section}[{i}]: unknown name {name!r} (known: {', '.join(known_names)})")
    for arch in p.archs:
        if arch not in registry.arch_names():
            raise ConfigError(f"archs.{arch}: unknown architecture {arch!r}")
    known = registry.corruption_names()
    for i, name in enumerate(p.corruptions.names):
        if name not in known:
            raise ConfigError(
                f"corruptions.names[{i}]: unknown corruption {name!r} (known: {', '.join(known)})"
            )
    known_p = registry.perturbation_names()
    for i, name in enumerate(p.corruptions.perturbations):
        if name not in known_p:
            raise ConfigError(
                f"corruptions.perturbations[{i}]: unknown perturbation {name!r} "
                f"(known: {', '.join(known_p)})"
            )
    if p.optim.lr_min > p.optim.lr:
        raise ConfigError(f"optim.lr_min: {p.optim.lr_min} exceeds optim.lr {p.optim.lr}")
    for i, name in enumerate(p.grid.datasets):
        if name in FOLDER_DATASETS:
            raise ConfigError(f"grid.datasets[{i}]: {name} jobs are listed in imagenet.datasets (with the "
                              f"ResNet-50 recipe of the imagenet section), not in grid.datasets")
    if p.imagenet.datasets and not p.data.imagenet_dir:
        raise ConfigError("data.imagenet_dir: required when imagenet.datasets lists imagenet")
    if p.imagenet.lr_min > p.imagenet.lr:
        raise ConfigError(f"imagenet.lr_min: {p.imagenet.lr_min} exceeds imagenet.lr {p.imagenet.lr}")
    if p.imagenet.image_size > p.imagenet.resize:
        raise ConfigError(f"imagenet.image_size: {p.imagenet.image_size} exceeds imagenet.resize "
                          f"{p.imagenet.resize} (the test crop is taken from the resized image)")


def parse(raw: Any, *, check_names: bool = True) -> Params:
    params = _build(Params, raw, "")
    if check_names:
        _cross_checks(params)
    return params


def load(path: str | Path = "params.yaml", *, check_names: bool = True) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found (run from the repository root or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    try:
        return parse(raw, check_names=check_names)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their JSON text (MLflow params are strings)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = json.dumps(d) if isinstance(d, list) else d
    return out
