"""CIFAR-10-C / CIFAR-100-C / ImageNet-C corruptions and CIFAR-10-P perturbations.

Batched, seeded re-implementations of hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py`,
`make_imagenet_c.py` and `ImageNet-P/create_p/make_cifar_p.py` (quirks and sources:
docs/corruptions.md).

Modules: `functions` (the 19 corruptions and their severity tables; the NumPy path),
`torch_backend` (the device path of the same corruptions), `kernels` (operators and tables both
paths share; imports neither), `draws` (every corruption's random draws, keyed per image),
`imagemagick` (motion blur without ImageMagick), `frost` (verified frost textures), `cbar` (the -C-bar
corruptions), `perturbations` and `imagenet_p` (-P sequences), `build` (writers), `official` (Zenodo
archives), `bench`.
"""

from .build import build_c_set, build_imagenet_c_folder, is_complete
from .cbar import CBAR_CORRUPTIONS
from .cbar import register as _register_cbar
from .functions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    DEVICE_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SCALES,
    corrupt,
)
from .imagenet_p import build_imagenet_p_folder, read_video, write_video
from .official import fetch_official_cifar_c
from .perturbations import PERTURBATIONS, build_p_set, perturb

_register_cbar(CORRUPTIONS)  # CIFAR-10-C-bar's ten, after the 19 of -C (cbar.py)

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "CBAR_CORRUPTIONS",
    "CORRUPTIONS",
    "DEVICE_CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "PERTURBATIONS",
    "SCALES",
    "build_c_set",
    "build_imagenet_c_folder",
    "build_imagenet_p_folder",
    "build_p_set",
    "corrupt",
    "fetch_official_cifar_c",
    "is_complete",
    "perturb",
    "read_video",
    "write_video",
]
