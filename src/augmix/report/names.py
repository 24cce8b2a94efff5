"""Which names exist and in what order come from the code's own tables; this module only adds titles.

Architectures: ``augmix.models.ARCHS``; methods: ``augmix.config.METHOD_PARAMS`` (the params schema's
method table, which tests/test_config.py keeps equal to ``training_methods.METHODS``: the report does
not import the methods' code, so editing a method does not re-run the report); both in their table
order (the paper's order). A name the tables do not hold (an older run, a published
reference model) sorts after them, alphabetically. Titles are looked up by name and default to the
name itself, so a new architecture or method shows up without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from augmix.config import METHOD_PARAMS
from augmix.models import ARCHS

DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet",
    "digits": "Digits (demo set)",
}
ARCH_TITLES = {
    "allconv": "AllConvNet",
    "densenet40_12": "DenseNet-40-12",
    "densenet_bc100_12": "DenseNet-BC-100-12",
    "wrn40_2": "WRN-40-2",
    "resnext29_4x32d": "ResNeXt-29 4x32d",
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
}
# The paper's row names (Tables 1 and 4); what its AutoAugment* asterisk means is unconfirmed.
METHOD_TITLES = {
    "standard": "Standard",
    "cutout": "Cutout",
    "mixup": "Mixup",
    "cutmix": "CutMix",
    "autoaugment": "AutoAugment",
    "autoaugment_star": "AutoAugment*",
    "random_autoaugment_star": "Random AutoAugment*",
    "random_autoaugment_star_jsd": "Random AutoAugment* + JSD",
    "pgd": "Adversarial Training",
    "fmix": "FMix",
    "augmix": "AugMix",
    "augmix_nojsd": "AugmentAndMix (no JSD)",
    "randaugment": "RandAugment",
    "randaugment_no_overlap": "RandAugment (no overlap)",
    "trivialaugment": "TrivialAugment",
    "trivialaugment_no_overlap": "TrivialAugment (no overlap)",
    "prime": "PRIME",
    "prime_nojsd": "PRIME (no JSD)",
    "pixmix": "PixMix (fractals)",
}
METRIC_TITLES = {
    "clean_error": "clean error",
    "corruption_error": "corruption error",
    "mce": "mCE",
    "relative_mce": "relative mCE",
    "rms_calib_clean": "RMS calib (clean)",
    "rms_calib_c": "RMS calib (-C)",
    "brier_clean": "Brier (clean)",
    "brier_c": "Brier (-C)",
    "mfr": "mFR",
    "mt5d": "mT5D",
    "mfp": "mFP",
    "mean_t5d": "mean T5D",
    "rms_calib_clean_reference": "RMS calib clean, reference bins",
    "rms_calib_clean_corrected": "RMS calib clean, all bins",
    "cbar_error": "C-bar error",
    "cbar_minus_c": "C-bar - C error",
}
# Benchmarks beside -C (eval.csv's benchmark column) and the sets of the natural shifts.
BENCHMARK_TITLES = {"clean": "clean", "c": "-C", "cbar": "-C-bar", "natural": "natural shift"}
NATURAL_TITLES = {"cifar101": "CIFAR-10.1"}
# The ten -C-bar corruptions in the column order of the authors' figure
# (facebookresearch/augmentation-corruption figs/table.png); the corruption code's own table is
# augmix.corruptions.cbar.LEVELS (not imported: the report does not depend on the corruption code).
CBAR_ORDER = (
    "blue_noise_sample", "brownish_noise", "checkerboard_cutout", "circular_motion_blur",
    "inverse_sparkles", "lines", "pinch_and_twirl", "ripple", "sparkles",
    "transverse_chromatic_abberation",
)
CBAR_PREFIX = "cbar_error_"  # cbar_error_<corruption>: -C-bar error of one corruption
OURS = "ours"  # the `model` label of the cells we train; anything else is an external model


@cache
def arch_names() -> tuple[str, ...]:
    return tuple(ARCHS)


@cache
def method_names() -> tuple[str, ...]:
    return tuple(METHOD_PARAMS)


def order(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """Distinct ``values``: those in ``preferred`` in its order, then the rest sorted."""
    values = list(dict.fromkeys(values))
    preferred = list(preferred)
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def datasets(values: Iterable[str]) -> list[str]:
    return order(values, DATASET_TITLES)


def archs(values: Iterable[str]) -> list[str]:
    return order(values, arch_names())


def methods(values: Iterable[str]) -> list[str]:
    return order(values, method_names())


def models(values: Iterable[str]) -> list[str]:
    """Our cells first, then external models by name."""
    return order(values, [OURS])


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def arch_title(name: str) -> str:
    return ARCH_TITLES.get(name, name)


def method_title(name: str) -> str:
    return METHOD_TITLES.get(name, name)


def natural_title(name: str) -> str:
    return NATURAL_TITLES.get(name, name)


def benchmark_title(dataset: str, benchmark: str) -> str:
    """'CIFAR-10-C', 'CIFAR-100-C-bar', ...; a natural shift set by its own title ('CIFAR-10.1')."""
    if benchmark in NATURAL_TITLES:
        return natural_title(benchmark)
    return dataset_title(dataset) + BENCHMARK_TITLES.get(benchmark, f" {benchmark}")


def cbar_corruptions(values: Iterable[str]) -> list[str]:
    return order(values, CBAR_ORDER)


def natural_sets(metric_names: Iterable[str]) -> list[str]:
    """The natural-shift sets among metric names: each run gives <set>_error and <set>_gap."""
    return order([k.removesuffix("_gap") for k in metric_names if k.endswith("_gap")], NATURAL_TITLES)


def metric_title(name: str) -> str:
    """A known title; the corruption / perturbation name of a ce_/fp_/cbar_error_ metric;
    '<set> error' / '<set> - clean error' of a natural shift's <set>_error / <set>_gap."""
    if name in METRIC_TITLES:
        return METRIC_TITLES[name]
    for prefix in ("ce_", "fp_", CBAR_PREFIX):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    for suffix, text in (("_error", "{} error"), ("_gap", "{} - clean error")):
        if name.endswith(suffix) and name.removesuffix(suffix) in NATURAL_TITLES:
            return text.format(natural_title(name.removesuffix(suffix)))
    return name


def row_title(method: str, model: str) -> str:
    """A table row: the method's title for our cells, with the external model's label otherwise."""
    return method_title(method) if model == OURS else f"{method_title(method)} ({model})"
