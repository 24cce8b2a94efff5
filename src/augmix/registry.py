"""The name-keyed tables of the code, gathered for config validation and the CLI.

Each table lives with its code (models.ARCHS, methods.METHODS, corruptions.CORRUPTIONS, ...); this
module only imports them lazily, so reading params does not pay for torch until names are checked.
"""

from __future__ import annotations


def arch_names() -> list[str]:
    from augmix.models import ARCHS

    return sorted(ARCHS)


def method_names() -> list[str]:
    from augmix.training_methods import all_methods

    return sorted(all_methods())


def corruption_names() -> list[str]:
    from augmix import corruptions

    return list(corruptions.CORRUPTIONS)


def perturbation_names() -> list[str]:
    from augmix import corruptions

    return list(getattr(corruptions, "PERTURBATIONS", {}))
