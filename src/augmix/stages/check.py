"""`augmix check`: the whole params file against the schema and the code's name tables, and the
paths the jobs will need, before any job runs. As the root of the DAG (`--stamp`), it writes a file
whose content never changes for valid params, so a valid change re-runs nothing through it, and an
invalid one stops the pipeline before any stage's outputs are removed."""

from __future__ import annotations

from pathlib import Path

from augmix import corruptions, io
from augmix.config import FOLDER_SOURCES, Params
from augmix.errors import ConfigError
from augmix.models import ARCHS


def problems(params: Params, root: Path = Path(".")) -> list[str]:
    """Every problem of `params` the schema cannot see; relative paths are read from `root`."""
    out = []
    for name in params.archs:
        if name not in ARCHS:
            out.append(f"archs.{name}: unknown architecture (known: {', '.join(ARCHS)})")
    for i, name in enumerate(params.imagenet.archs):
        if name not in ARCHS:
            out.append(f"imagenet.archs[{i}]: unknown architecture {name!r} (known: {', '.join(ARCHS)})")
    for i, name in enumerate(params.corruptions.names):
        if name not in corruptions.CORRUPTIONS:
            out.append(f"corruptions.names[{i}]: unknown corruption {name!r} "
                       f"(known: {', '.join(corruptions.CORRUPTIONS)})")
    for i, name in enumerate(params.corruptions.bar):
        if name not in corruptions.CBAR_CORRUPTIONS:
            out.append(f"corruptions.bar[{i}]: unknown -C-bar corruption {name!r} "
                       f"(known: {', '.join(corruptions.CBAR_CORRUPTIONS)})")
    for i, name in enumerate(params.corruptions.perturbations):
        if name not in corruptions.PERTURBATIONS:
            out.append(f"corruptions.perturbations[{i}]: unknown perturbation {name!r} "
                       f"(known: {', '.join(corruptions.PERTURBATIONS)})")
    for name, entry in params.external.items():
        if entry.arch not in ARCHS:
            out.append(f"external.{name}.arch: unknown architecture {entry.arch!r} (known: {', '.join(ARCHS)})")
        if not (root / entry.file).is_file():
            out.append(f"external.{name}.file: {entry.file} not found (put the released weights there)")
    used = {*params.grid.datasets, *(params.ablation.datasets if params.ablation.methods else [])}
    for name in sorted(used):
        entry = params.datasets[name]
        if params.corruptions.source == "official" and entry.source not in ("cifar10", "cifar100"):
            out.append(f"corruptions.source: official -C files exist for CIFAR-10 and CIFAR-100 only, not "
                       f"{name} (datasets.{name}.source: {entry.source}); use corruptions.source: generate")
        if entry.source in ("folder", "npz") and not (root / entry.path).exists():
            out.append(f"datasets.{name}.path: {entry.path} not found (your {entry.source} dataset: see the "
                       f"README, 'Your own data')")
    for name in params.imagenet.datasets:
        entry = params.datasets[name]
        if entry.source in FOLDER_SOURCES and entry.dir and not (root / entry.dir).is_dir():
            out.append(f"datasets.{name}.dir: folder {entry.dir} not found (ImageNet cannot be downloaded: "
                       f"point it at a folder with train/<class>/ and val/<class>/)")
        official = params.corruptions.source == "official" and entry.source in FOLDER_SOURCES
        if official and not (entry.c_dir and (root / entry.c_dir).is_dir()):
            out.append(f"datasets.{name}.c_dir: ImageNet-C folder {entry.c_dir!r} not found "
                       "(corruptions.source: official)")
    return out


def run(params: Params, where: str, stamp: Path | None = None, root: Path = Path(".")) -> str:
    found = problems(params, root)
    if found:
        head = f"{where}: {found[0]}" if len(found) == 1 else f"{where}: {len(found)} problems"
        raise ConfigError(head + ("".join(f"\n  {p}" for p in found) if len(found) > 1 else ""))
    if stamp is not None:
        io.write_text(stamp, "params ok\n")  # constant: downstream jobs never re-run because of it
    g, a, i = params.grid, params.ablation, params.imagenet
    n = len(g.datasets) * len(g.archs) * len(g.methods) * len(g.seeds)
    extra = len(a.datasets) * len(a.archs) * len(a.methods) * len(g.seeds)
    folders = len(i.datasets) * len(i.archs) * len(i.methods) * len(i.seeds)
    return (f"{where}: ok ({len(g.datasets)} datasets x {len(g.archs)} archs x {len(g.methods)} methods x "
            f"{len(g.seeds)} seeds = {n} cells; ablation {extra}, image-folder {folders}, "
            f"released models {len(params.external)})")
