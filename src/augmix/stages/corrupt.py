"""`augmix corrupt --dataset D`: data/corrupted/<D>/C (the -C set: CIFAR-C files or ImageNet-C folders,
plus severities.json) and P (the -P sets), generated from the test images or taken from the released
files. Corruption builds run on `runtime.device` (auto: the GPU when present)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from augmix import cifar101, corruptions, imagenet, io, layout
from augmix.config import FOLDER_SOURCES, Params
from augmix.data import load_split
from augmix.device import pick_device
from augmix.errors import ConfigError
from augmix.jobs import Job
from augmix.stages.common import check_dataset, check_inputs, job_run


def run(params: Params, dataset: str) -> Path:
    check_dataset(params, dataset)
    check_inputs(params, dataset)
    out = layout.corrupted(params.data.root, dataset)
    job = Job("corrupt", dataset)
    with job_run(params, job) as (p, tracked):
        check_names(p, cifar=params.datasets[dataset].source not in FOLDER_SOURCES)
        device = pick_device(p.runtime.device)
        with io.atomic_dir(out) as tmp:
            (tmp / "C").mkdir()
            if p.datasets[dataset].source in FOLDER_SOURCES:
                _folder_dataset(p, dataset, tmp, device)
            else:
                _array_dataset(p, dataset, tmp, device)
            (tmp / "P").mkdir(exist_ok=True)
        sheet = out / "C" / "contact_sheet.png"
        if sheet.exists():
            tracked.log_artifact(sheet)
    cp = params.corruptions
    print(f"[corrupt] {dataset}: {len(cp.names)} corruptions x {len(cp.severities)} severities in {out}", flush=True)
    return out


def check_names(p: Params, *, cifar: bool = True) -> None:
    """Corruption and perturbation names the code knows (the config schema does not import the tables);
    -C-bar names only where a CIFAR-format job reads them."""
    tables = [("corruptions.names", p.corruptions.names, corruptions.CORRUPTIONS),
              ("corruptions.perturbations", p.corruptions.perturbations, corruptions.PERTURBATIONS)]
    if cifar:
        tables.append(("corruptions.bar", p.corruptions.bar, corruptions.CBAR_CORRUPTIONS))
    for key, names, known in tables:
        for i, name in enumerate(names):
            if name not in known:
                raise ConfigError(f"{key}[{i}]: unknown name {name!r} (known: {', '.join(known)})")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # the official files are 2-3 GB: share the bytes when the disk allows
    except OSError:
        shutil.copy2(src, dst)


# The builders take the device as a string: "cpu" runs the NumPy path (the reference's arithmetic), a
# GPU the torch path, which writes the same bytes (exceptions on CUDA: docs/corruptions.md, "Randomness
# of our builds").


def _test_split(p: Params, dataset: str):
    return load_split(layout.raw(p.data.root, dataset), "test", p.subset.test)


def _array_dataset(p: Params, dataset: str, tmp: Path, device) -> None:
    """CIFAR-C layout: the released files (source: official) or generated from the test split."""
    cp = p.corruptions
    source = p.datasets[dataset].source
    if cp.source == "official":
        if source not in ("cifar10", "cifar100"):
            raise ConfigError(f"corruptions.source: official files exist for cifar10 and cifar100 only, "
                              f"not {dataset}; use source: generate")
        src = corruptions.fetch_official_cifar_c(source, Path(p.data.root) / "downloads", download=p.data.download)
        for name in [*cp.names, "labels"]:
            _link_or_copy(src / f"{name}.npy", tmp / "C" / f"{name}.npy")
        stacked = [1, 2, 3, 4, 5]  # the released files always hold all five severities
    else:
        corruptions.build_c_set(*_test_split(p, dataset), tmp / "C", names=list(cp.names),
                                severities=list(cp.severities), seed=cp.seed, table="cifar", device=str(device))
        stacked = list(cp.severities)
    io.write_json(tmp / "C" / "severities.json", {"severities": stacked})
    if cp.perturbations:  # -P: generated from the test images whatever the -C source (none were released)
        corruptions.build_p_set(_test_split(p, dataset)[0], tmp / "P", names=list(cp.perturbations), seed=cp.seed)
    if cp.bar:  # -C-bar: generated from the same test images, all five severities (no official files exist)
        x, y = _test_split(p, dataset)
        corruptions.build_c_set(x, y, tmp / "C-bar", names=list(cp.bar), severities=list(SEVERITIES), seed=cp.seed,
                                table="cifar", device=str(device))
        io.write_json(tmp / "C-bar" / "severities.json", {"severities": list(SEVERITIES)})
    for name in cp.natural:
        NATURAL[name](p, dataset, tmp / "natural" / name)


SEVERITIES = (1, 2, 3, 4, 5)


def _cifar101(p: Params, dataset: str, out: Path) -> None:
    if p.datasets[dataset].source != "cifar10":
        return  # CIFAR-10.1 tests CIFAR-10 models only
    cifar101.fetch_cifar101(out, downloads=Path(p.data.root) / "downloads", download=p.data.download)


NATURAL = {"cifar101": _cifar101}  # corruptions.natural: a natural distribution shift beside -C


def _folder_dataset(p: Params, dataset: str, tmp: Path, device) -> None:
    """ImageNet-C layout (<corruption>/<severity>/<wnid>/<name>.JPEG): the official copy in
    datasets.<D>.c_dir (checked, then recorded in C/source.json) or generated from val images
    (Resize + CenterCrop, then the ImageNet severity table, JPEG quality 85)."""
    cp, size, resize = p.corruptions, p.imagenet.image_size, p.imagenet.resize
    index = imagenet.read_index(layout.raw(p.data.root, dataset))
    val = imagenet.scan_folder(Path(index["dir"]) / "val", what=f"{dataset} val folder").subset(p.subset.test)
    c_dir = p.datasets[dataset].c_dir
    if cp.source == "official":
        root = Path(c_dir)
        if not c_dir or not root.is_dir():
            raise ConfigError(f"datasets.{dataset}.c_dir: ImageNet-C folder {root} not found; download ImageNet-C "
                              f"(Hendrycks & Dietterich, zenodo.org/record/2235448) and point datasets.{dataset}.c_dir "
                              f"at it, or set corruptions.source: generate")
        for name in cp.names:
            for severity in cp.severities:
                if not (root / name / str(severity)).is_dir():
                    raise ConfigError(f"datasets.{dataset}.c_dir: {root / name / str(severity)} is missing")
        io.write_json(tmp / "C" / "source.json", {"dir": str(root.resolve())})
    else:
        if size != corruptions.SCALES["imagenet"]:
            raise ConfigError(f"imagenet.image_size: generating ImageNet-C uses the reference's "
                              f"{corruptions.SCALES['imagenet']}-pixel severity table, but image_size is {size}; "
                              f"use {corruptions.SCALES['imagenet']} or corruptions.source: official with "
                              f"datasets.{dataset}.c_dir")
        images, _ = imagenet.load_eval_array(val, resize, size)
        corruptions.build_imagenet_c_folder(
            images, [path.parent.name for path in val.paths], [path.name for path in val.paths], tmp / "C",
            names=list(cp.names), severities=list(cp.severities), seed=cp.seed, table="imagenet",
            device=str(device))
    io.write_json(tmp / "C" / "severities.json", {"severities": list(cp.severities)})
    if cp.perturbations:  # ImageNet-P from the val images (lossless npy videos; mp4 is lossy)
        corruptions.build_imagenet_p_folder([(f.parent.name, f.name, f) for f in val.paths], tmp / "P",
                                            names=list(cp.perturbations), seed=cp.seed, resize=resize,
                                            crop=size, format="npy")
