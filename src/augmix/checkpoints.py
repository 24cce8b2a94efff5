"""Load a model file, ours or a released one, into our architectures, ready to evaluate.

``load_checkpoint`` reads the file with ``torch.load(..., weights_only=True)`` (no pickled code
runs), works out (or is told) which of four layouts it has, maps its weight names onto
``augmix.models.build_model(arch, num_classes)`` and sets the model's input normalisation
(``model.normalize``) to the one the file's weights were trained with. Every problem is a
``CheckpointError`` with one line naming the file; nothing is returned half-loaded.

Formats (``FORMATS``; ``"auto"`` picks one from the object's structure, see ``detect_format``):

| format | what the file holds | weight names -> ours | normalisation |
| --- | --- | --- | --- |
| augmix | our ``model.pt`` (src/augmix/train.py): ``arch``, ``dataset``, ``method``, ``num_classes``, ``classes``, ``model`` (state dict), ``params``; also train.py's per-epoch resume file (``fingerprint``, ``epoch``, ``model``, ``optimizer``, ...) | unchanged | our architecture's own (what it trained with) |
| reference | google-research/augmix ``cifar.py``: ``epoch``, ``dataset``, ``model`` (``"wrn"``, ``"allconv"``, ``"densenet"``, ``"resnext"``), ``state_dict``, ``best_acc``, ``optimizer``; ``imagenet.py``: ``epoch``, ``model`` (``"resnet50"``), ``state_dict``, ``best_acc1``, ``optimizer`` | strip DataParallel's ``module.``; otherwise identical | CIFAR mean = std = (0.5, 0.5, 0.5) (cifar.py ``preprocess``); ResNet-50 ImageNet mean/std (imagenet.py ``main``) |
| robustbench | RobustBench ``Hendrycks2020AugMix_WRN`` / ``_ResNeXt`` (CIFAR-10 and -100 corruptions zoo), ``Hendrycks2020AugMix`` (ImageNet) | strip ``module.`` then ``model.`` (as robustbench/utils.py ``load_model``); ``convShortcut`` -> ``conv_shortcut`` | the file's ``mu``/``sigma`` (CIFAR wrappers) or ``normalize.mean``/``normalize.std`` (ImageNet ``normalize_model``) when present, else what those classes bake in: 0.5/0.5 (CIFAR), ImageNet mean/std |
| torchvision | a torchvision ResNet-50 state dict, bare or under ``state_dict`` / ``model``, maybe ``module.``-prefixed | strip ``module.`` | ImageNet mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) |

Architectures each format can hold (``Source.archs``): augmix any of ours; reference the REF-mirrored
ones (WRN-40-2 and the small WRNs, AllConvNet, both DenseNets, ResNeXt-29, ResNet-50); robustbench
wrn40_2, resnext29_4x32d, resnet50; torchvision resnet50. Without ``arch`` the file's own name for
it (``arch`` in ours, ``model``/``arch`` in REF's) narrows the choice, and the weights' shapes settle it.

Facts behind the table (google-research/augmix at 9b9824c, RobustBench/robustbench at 78fcc9e):

* REF's CIFAR models (models/cifar/allconv.py, third_party/WideResNet_pytorch/wideresnet.py,
  third_party/ResNeXt_DenseNet/models/{densenet,resnext}.py) use exactly our parameter and buffer
  names: our models were written to mirror them, and our ``normalize`` buffers are non-persistent,
  so they never appear in a state dict. REF's vendored WRN spells the projection shortcut
  ``conv_shortcut``; the xternalz original and RobustBench's copy
  (robustbench/model_zoo/architectures/wide_resnet.py) spell it ``convShortcut``.
* REF wraps every model in ``torch.nn.DataParallel`` before saving, hence ``module.`` on every key.
* RobustBench's AugMix CIFAR classes (robustbench/model_zoo/cifar10.py, cifar100.py) subclass its
  WideResNet(40, 2) / CifarResNeXt(29, 4, 32) and add persistent ``mu``/``sigma`` buffers of 0.5;
  its loader lists them among models whose download lacks ``mu``/``sigma`` (utils.py
  ``_safe_load_state_dict``), so the released files carry only the network. As that is the only
  mismatch it tolerates, its WRN download must name the shortcut ``convShortcut`` (inferred from the
  loader; the file itself was not read). A state dict saved from a RobustBench model object does
  carry ``mu``/``sigma``, and then those values are used.
* RobustBench's ImageNet entry wraps torchvision's ResNet-50 as ``Sequential(normalize, model)``
  with ImageNet mean/std (robustbench/model_zoo/imagenet.py, architectures/utils_architectures.py).
* ResNeXt files from REF and from RobustBench have the same names; without ``mu``/``sigma`` the two
  cannot be told apart, and ``auto`` calls them ``reference`` (same weights, same normalisation).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augmix.errors import CheckpointError
from augmix.models import ARCHS, build_model
from augmix.models.common import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, Normalize

FORMATS = ("auto", "augmix", "reference", "robustbench", "torchvision")

Stats = tuple[tuple[float, ...], tuple[float, ...]]
CIFAR_STATS: Stats = (CIFAR_MEAN, CIFAR_STD)  # REF cifar.py: Normalize([0.5] * 3, [0.5] * 3)
IMAGENET_STATS: Stats = (IMAGENET_MEAN, IMAGENET_STD)  # REF imagenet.py; torchvision; RobustBench imagenet.py

# What REF's checkpoints call their architecture (cifar.py --model, imagenet.py --model) -> our names.
# REF's "wrn" takes --layers/--widen-factor (default 40, 2), so the weights' shapes pick the variant.
REFERENCE_ARCHS: dict[str, tuple[str, ...]] = {
    "wrn": ("wrn40_2", "wrn16_2", "wrn16_1"),
    "allconv": ("allconv",),
    "densenet": ("densenet40_12", "densenet_bc100_12"),
    "resnext": ("resnext29_4x32d",),
    "resnet50": ("resnet50",),
}

# Top-level entries that hold training state rather than facts about the model; kept out of `meta`.
_BULK = frozenset({"optimizer", "scheduler", "lr_scheduler", "classes"})
# Entries REF's training loops write beside the weights (cifar.py and imagenet.py `checkpoint`).
_TRAINING_FIELDS = frozenset({"epoch", "best_acc", "best_acc1", "optimizer"})
# One key that only each REF CIFAR layout has (module prefixes already stripped).
_REFERENCE_SIGNATURES = ("block1.layer.0.conv1.weight", "conv_1_3x3.weight", "dense1.0.conv1.weight",
                         "features.0.weight")
_TORCHVISION_SIGNATURE = ("conv1.weight", "layer1.0.conv1.weight", "layer4.0.downsample.0.weight", "fc.weight")
_ROBUSTBENCH_STATS = (("mu", "sigma"), ("normalize.mean", "normalize.std"))


def _by_arch(imagenet: Stats, cifar: Stats) -> Callable[[str], Stats]:
    """The source's statistics: ResNet-50 is the ImageNet model, every other architecture a CIFAR one."""
    return lambda arch: imagenet if arch == "resnet50" else cifar


@dataclass(frozen=True)
class Source:
    """How one format stores its weights and what it normalises with."""

    containers: tuple[str, ...]  # top-level entries that may hold the state dict (else: the object itself)
    prefixes: tuple[str, ...]  # wrapper prefixes, stripped in this order when every key carries them
    renames: Mapping[str, str]  # dotted-name component -> ours
    stats_keys: tuple[tuple[str, str], ...]  # (mean, std) entries the weights may carry
    stats: Callable[[str], Stats | None]  # by our arch name; None keeps the architecture's own
    archs: tuple[str, ...]  # which of our architectures files of this format can hold
    arch_fields: tuple[str, ...] = ()  # top-level entries naming the architecture ...
    arch_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ... their values -> ours


SOURCES: dict[str, Source] = {
    "augmix": Source(("model",), (), {}, (), lambda arch: None, tuple(ARCHS), ("arch",),
                     {name: (name,) for name in ARCHS}),
    "reference": Source(("state_dict",), ("module.",), {}, (), _by_arch(IMAGENET_STATS, CIFAR_STATS),
                        tuple(dict.fromkeys(a for names in REFERENCE_ARCHS.values() for a in names)),
                        ("model", "arch"), REFERENCE_ARCHS),
    # RobustBench's AugMix entries: WideResNet(40, 2), CifarResNeXt(29, 4, 32), torchvision ResNet-50.
    "robustbench": Source(("state_dict",), ("module.", "model."), {"convShortcut": "conv_shortcut"},
                          _ROBUSTBENCH_STATS, _by_arch(IMAGENET_STATS, CIFAR_STATS),
                          ("wrn40_2", "resnext29_4x32d", "resnet50")),
    "torchvision": Source(("state_dict", "model"), ("module.",), {}, (), lambda arch: IMAGENET_STATS,
                          ("resnet50",)),
}


@dataclass(frozen=True)
class Loaded:
    model: nn.Module  # our architecture, eval mode, on the requested device, with the source's normalisation
    format: str  # the format used ("auto" resolved)
    arch: str
    num_classes: int
    classes: list[str]  # may be empty
    meta: dict[str, Any]  # what the file says about itself (epoch, best_acc, ...), JSON-safe


# --------------------------------------------------------------------------------------------------
# Reading the file


def _fail(path: Path | str, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {' '.join(problem.split())}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _utf8(head: bytes) -> str | None:
    """The head as UTF-8 text, allowing for a character cut at its end; None if it is not text."""
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _sniff(path: Path) -> bytes:
    """Refuse what is plainly not a PyTorch file from its first bytes; return the head."""
    if not path.is_file():
        raise _fail(path, "no such file")
    with path.open("rb") as f:
        head = f.read(512)
    if not head:
        raise _fail(path, "is empty (0 bytes): the download or copy did not finish")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype", b"<html")):
        raise _fail(path, "is an HTML page, not a checkpoint (Google Drive serves a 'virus scan warning' page "
                          "for large files): download it again, confirming the download or using the direct link")
    if head.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch >= 1.6) or pickle (the legacy format)
        return head
    text = _utf8(head)
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        raise _fail(path, f"is a text file, not a PyTorch checkpoint (it starts {text[:40]!r})")
    raise _fail(path, f"is not a PyTorch checkpoint (neither a zip archive nor a pickle; it starts {head[:8].hex(' ')})")


def _check_sha256(path: Path, expected: str) -> None:
    want = expected.strip().lower()
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise _fail(path, f"the expected SHA-256 {expected!r} is not 64 hex digits")
    with path.open("rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest()
    if got != want:
        raise _fail(path, f"SHA-256 {got} does not match the expected {want}: a damaged download or another file")


def _read(path: Path, head: bytes) -> Any:
    size = path.stat().st_size
    truncated = _fail(path, f"is truncated or damaged ({size} bytes): download or copy it again")
    if head.startswith(b"PK"):
        try:  # the zip directory sits at the end of the file: a cut-off file has none
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile:
            raise truncated from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        raise truncated from None
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text:
            named = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (first: {named.group(1)})" if named else ""
            raise _fail(path, f"holds pickled Python objects that a weights-only load refuses{what}: "
                              "re-save the weights alone (model.state_dict())") from None
        if "truncated" in text or "EOF" in text:
            raise truncated from None
        raise _fail(path, f"is not a readable PyTorch checkpoint ({_first_line(e)})") from None
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        if "EOF" in str(e) or "truncated" in str(e):
            raise truncated from None
        raise _fail(path, f"is not a readable PyTorch checkpoint ({_first_line(e)})") from None


# --------------------------------------------------------------------------------------------------
# Recognising the layout


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _find_state(obj: Any, containers: tuple[str, ...]) -> tuple[str | None, Mapping[str, torch.Tensor] | None]:
    """(entry name, state dict): the first container holding one, else the object itself if it is one."""
    if isinstance(obj, Mapping):
        for key in containers:
            if _is_state_dict(obj.get(key)):
                return key, obj[key]
    return (None, obj) if _is_state_dict(obj) else (None, None)


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _unprefixed_keys(obj: Any, source: Source) -> set[str]:
    _, state = _find_state(obj, source.containers)
    return set() if state is None else set(_unwrap(state, source)[0])


def _looks_augmix(obj: Any) -> bool:
    return isinstance(obj, Mapping) and _is_state_dict(obj.get("model")) and ("arch" in obj or "fingerprint" in obj)


def _looks_robustbench(obj: Any) -> bool:
    _, state = _find_state(obj, SOURCES["robustbench"].containers)
    if state is None:
        return False
    keys = set(_strip(dict(state), "module."))
    carries_stats = any(mean in keys and std in keys for mean, std in _ROBUSTBENCH_STATS)
    return carries_stats or any("convShortcut" in k.split(".") for k in keys)


def _looks_reference(obj: Any) -> bool:
    container, state = _find_state(obj, SOURCES["reference"].containers)
    if state is None:
        return False
    if container is not None and _TRAINING_FIELDS & set(obj):
        return True  # REF's training-loop dict, CIFAR or ImageNet
    keys = _unprefixed_keys(obj, SOURCES["reference"])
    return any(k in keys for k in _REFERENCE_SIGNATURES)


def _looks_torchvision(obj: Any) -> bool:
    keys = _unprefixed_keys(obj, SOURCES["torchvision"])
    return all(k in keys for k in _TORCHVISION_SIGNATURE)


# Tried in order; the first that recognises the object names its format.
DETECTORS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("augmix", _looks_augmix),
    ("robustbench", _looks_robustbench),
    ("reference", _looks_reference),
    ("torchvision", _looks_torchvision),
)


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj][:6]
        more = f", ... ({len(obj)} entries)" if len(obj) > 6 else ""
        return f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"
    return f"a {type(obj).__name__}"


def detect_format(obj: Any, *, name: str | Path = "checkpoint") -> str:
    """The format of a loaded checkpoint object (one of FORMATS[1:]); CheckpointError if none fits.

    ``name`` is the file the message names. Order matters: our own files are recognised by their
    ``arch``/``fingerprint`` entries; RobustBench by ``mu``/``sigma`` or ``normalize.*`` buffers or
    xternalz's ``convShortcut``; REF by its training-loop entries (epoch, best_acc, optimizer) or a
    REF CIFAR layout; torchvision by a ResNet's stem, stages and ``fc``.
    """
    for fmt, looks_like in DETECTORS:
        if looks_like(obj):
            return fmt
    raise _fail(name, f"cannot tell which format it is (it holds {_describe(obj)}); "
                      f"pass the format, one of: {', '.join(FORMATS[1:])}")


# --------------------------------------------------------------------------------------------------
# Fitting the weights to our architecture


def _take_stats(names: dict[str, torch.Tensor], pairs: tuple[tuple[str, str], ...]) -> Stats | None:
    for mean_key, std_key in pairs:
        if mean_key in names and std_key in names:
            mean, std = names.pop(mean_key), names.pop(std_key)
            return tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())
    return None


def _unwrap(state: Mapping[str, torch.Tensor], source: Source) -> tuple[dict[str, torch.Tensor], Stats | None]:
    """The state dict under our names, and the (mean, std) it carried, if any."""
    names, stats = dict(state), None
    for prefix in source.prefixes:  # e.g. module.normalize.mean beside module.model.conv1.weight
        stats = stats or _take_stats(names, source.stats_keys)
        names = _strip(names, prefix)
    stats = stats or _take_stats(names, source.stats_keys)
    if source.renames:
        names = {".".join(source.renames.get(part, part) for part in k.split(".")): v for k, v in names.items()}
    return names, stats


@cache
def _classifier_key(arch: str) -> str:
    """The state-dict key of the last Linear layer's weight, whose rows are the classes."""
    with torch.device("meta"):
        model = build_model(arch, 1)
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return f"{linears[-1]}.weight"


@cache
def _shapes(arch: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no random draws
        model = build_model(arch, num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _file_classes(state: Mapping[str, torch.Tensor], arch: str) -> int | None:
    weight = state.get(_classifier_key(arch))
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def _optional(key: str) -> bool:
    # BatchNorm's step counter only matters in training with momentum=None; files from PyTorch < 0.4.1
    # lack it, and it is filled with 0 (what BatchNorm itself does for such files).
    return key.endswith("num_batches_tracked")


def _misfit(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], few: int = 3) -> str:
    """'' when the weights fit exactly, else what does not: first few missing, unexpected, mis-shaped."""
    missing = [k for k in expected if k not in state and not _optional(k)]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} file {tuple(state[k].shape)} vs model {expected[k]}"
              for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - few} more)" if len(items) > few else ""
            parts.append(f"{label} {', '.join(items[:few])}{more}")
    return "; ".join(parts)


def _candidates(obj: Any, source: Source, fmt: str, arch: str | None, path: Path) -> tuple[str, ...]:
    """Our architectures the file may hold: the caller's, else what the file names, else the format's."""
    if arch is not None and arch not in ARCHS:
        raise _fail(path, f"unknown architecture {arch!r}; ours: {', '.join(ARCHS)}")
    if arch is not None and arch not in source.archs:
        raise _fail(path, f"the {fmt} format holds {', '.join(source.archs)}, not {arch}")
    fields = [obj[f] for f in source.arch_fields if isinstance(obj, Mapping) and isinstance(obj.get(f), str)]
    if not fields:
        return (arch,) if arch is not None else source.archs
    declared = fields[0]
    named = source.arch_names.get(declared)
    if named is None:
        raise _fail(path, f"holds a {declared!r} model, which none of our architectures mirrors "
                          f"(ours: {', '.join(ARCHS)})")
    if arch is not None and arch not in named:
        raise _fail(path, f"holds a {declared!r} model, not {arch}")
    return (arch,) if arch is not None else named


def _resolve_arch(state: Mapping[str, torch.Tensor], candidates: tuple[str, ...], fmt: str,
                  path: Path) -> tuple[str, int]:
    """The first candidate the weights fit exactly, with the file's class count."""
    for arch in candidates:
        n = _file_classes(state, arch)
        if n is not None and not _misfit(state, _shapes(arch, n)):
            return arch, n
    if len(candidates) == 1:
        arch = candidates[0]
        n = _file_classes(state, arch) or 1
        raise _fail(path, f"weights ({fmt} format) do not fit {arch}: {_misfit(state, _shapes(arch, n))}")
    raise _fail(path, f"weights ({fmt} format) fit none of {', '.join(candidates)}: pass the architecture")


# --------------------------------------------------------------------------------------------------
# What the file says about itself

_DROP = object()


def _plain(value: Any) -> Any:
    """A JSON-safe copy (one-element tensors become numbers), or _DROP for anything bulkier."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        return _plain(value.item()) if value.numel() == 1 else _DROP
    if isinstance(value, Mapping):
        items = {str(k): _plain(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _DROP}
    if isinstance(value, (list, tuple)):
        return [v for v in map(_plain, value) if v is not _DROP]
    return _DROP


def _meta(obj: Any, container: str | None) -> dict[str, Any]:
    if container is None or not isinstance(obj, Mapping):
        return {}
    kept = {str(k): _plain(v) for k, v in obj.items() if k != container and k not in _BULK}
    return {k: v for k, v in kept.items() if v is not _DROP}


def _classes(obj: Any) -> list[str]:
    names = obj.get("classes") if isinstance(obj, Mapping) else None
    return [str(c) for c in names] if isinstance(names, (list, tuple)) else []


# --------------------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path, *, arch: str | None, dataset: str | None, num_classes: int | None,
                    format: str = "auto", device: torch.device | str = torch.device("cpu"),
                    sha256: str | None = None) -> Loaded:
    """Load ``path`` as ``format`` into our ``arch`` for ``dataset`` with ``num_classes`` outputs.

    ``arch``/``dataset``/``num_classes`` None: taken from the file (the architecture from what the
    file names, else the one its weights fit). Given, they must agree with the file. ``sha256``:
    the file's expected SHA-256, checked before it is read.
    """
    path = Path(path)
    if format not in FORMATS:
        raise _fail(path, f"unknown checkpoint format {format!r}; formats: {', '.join(FORMATS)}")
    head = _sniff(path)
    if sha256 is not None:
        _check_sha256(path, sha256)
    obj = _read(path, head)
    fmt = detect_format(obj, name=path) if format == "auto" else format
    source = SOURCES[fmt]
    container, raw = _find_state(obj, source.containers)
    if raw is None:
        raise _fail(path, f"holds no weights where the {fmt} format keeps them (it holds {_describe(obj)})")
    state, file_stats = _unwrap(raw, source)

    declared_dataset = obj.get("dataset") if isinstance(obj, Mapping) else None
    if dataset is not None and isinstance(declared_dataset, str) and declared_dataset != dataset:
        raise _fail(path, f"was trained on {declared_dataset}, not {dataset}")
    arch, file_classes = _resolve_arch(state, _candidates(obj, source, fmt, arch, path), fmt, path)
    if num_classes is not None and file_classes != num_classes:
        target = f" for {dataset}" if dataset else ""
        raise _fail(path, f"has {file_classes} classes ({_classifier_key(arch)}), "
                          f"but {num_classes} are expected{target}")

    model = build_model(arch, file_classes, seed=0)  # seeded: the global RNG is left alone
    expected = model.state_dict()
    for key in expected:  # see _optional
        if _optional(key) and key not in state:
            state[key] = torch.zeros_like(expected[key])
    model.load_state_dict(state, strict=True)
    stats = file_stats or source.stats(arch)
    if stats is not None:
        model.normalize = Normalize(*stats)
    return Loaded(model=model.to(torch.device(device)).eval(), format=fmt, arch=arch, num_classes=file_classes,
                  classes=_classes(obj), meta=_meta(obj, container))
