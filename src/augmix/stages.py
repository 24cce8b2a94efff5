"""The pipeline stages: each opens its tracking run, calls the library, writes its outputs.

Paths are fixed here and shared by both orchestrators (dvc.yaml and workflow/rules/*.smk spell the
same ones): data/raw/<dataset>, data/corrupted/<dataset>/{C,P}, results/<dataset>/<arch>/<method>,
report/. Checkpoints for resuming live in checkpoints/, outside DVC's outputs, so DVC's cleaning of
outputs before a re-run cannot delete them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augmix import io, tracking
from augmix.config import FOLDER_DATASETS, ConfigError, Params, to_dict

DOWNLOAD_SECTIONS = ["seed", "data"]
CORRUPT_SECTIONS = ["data", "corruptions"]
IMAGENET_CORRUPT_SECTIONS = ["data", "corruptions", "imagenet"]  # + the Resize/CenterCrop sizes
REPORT_SECTIONS = ["grid", "eval"]


@dataclass(frozen=True)
class Paths:
    params: Params

    def raw(self, dataset: str) -> Path:
        return Path(self.params.data.root) / "raw" / dataset

    def corrupted(self, dataset: str) -> Path:
        return Path(self.params.data.root) / "corrupted" / dataset

    def results(self, dataset: str, arch: str, method: str) -> Path:
        return Path("results") / dataset / arch / method

    def checkpoint(self, dataset: str, arch: str, method: str) -> Path:
        return Path("checkpoints") / dataset / arch / method / "last.pt"

    report = Path("report")


def download(params: Params, dataset: str) -> Path:
    from augmix import data

    with tracking.stage_run(params, stage="download", sections=DOWNLOAD_SECTIONS,
                            identity={"dataset": dataset}) as run:
        out = data.prepare(dataset, params.data.root, download=params.data.download,
                           test_fraction=params.data.digits_test_fraction, seed=params.seed,
                           imagenet_dir=params.data.imagenet_dir)
        if dataset != "imagenet":
            n_train = len(data.load_split(out, "train")[1])
            n_test = len(data.load_split(out, "test")[1])
            run.log_metrics({"n_train": n_train, "n_test": n_test})
            print(f"[download] {dataset}: {n_train} train / {n_test} test images in {out}", flush=True)
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    import os
    import shutil

    try:
        os.link(src, dst)  # the official files are 2-3 GB: share the bytes when the disk allows
    except OSError:
        shutil.copy2(src, dst)


def corrupt(params: Params, dataset: str) -> Path:
    """data/corrupted/<dataset>/C (CIFAR-C layout or ImageNet-C folders, + severities.json) and P."""
    paths = Paths(params)
    out = paths.corrupted(dataset)
    cp = params.corruptions
    sections = IMAGENET_CORRUPT_SECTIONS if dataset in FOLDER_DATASETS else CORRUPT_SECTIONS
    with tracking.stage_run(params, stage="corrupt", sections=sections,
                            identity={"dataset": dataset}) as run:
        with io.atomic_dir(out) as tmp:
            (tmp / "C").mkdir()
            if dataset in FOLDER_DATASETS:
                _corrupt_folder_dataset(params, dataset, tmp)
            else:
                _corrupt_array_dataset(params, dataset, tmp)
            (tmp / "P").mkdir(exist_ok=True)
        sheet = out / "C" / "contact_sheet.png"
        if sheet.exists():
            run.log_artifact(sheet)
    print(f"[corrupt] {dataset}: {len(cp.names)} corruptions x {len(cp.severities)} severities in {out}", flush=True)
    return out


def _corrupt_array_dataset(params: Params, dataset: str, tmp: Path) -> None:
    """CIFAR-C layout: the released files (source: official) or generated from the test split."""
    from augmix import corruptions, data

    cp = params.corruptions
    if cp.source == "official":
        if dataset not in ("cifar10", "cifar100"):
            raise ConfigError(f"corruptions.source: official files exist for cifar10 and cifar100 only, "
                              f"not {dataset}; use source: generate")
        src = corruptions.fetch_official_cifar_c(dataset, Path(params.data.root) / "downloads",
                                                 download=params.data.download)
        for name in [*cp.names, "labels"]:
            _link_or_copy(src / f"{name}.npy", tmp / "C" / f"{name}.npy")
        stacked = [1, 2, 3, 4, 5]  # the released files always hold all five severities
    else:
        x, y = data.load_split(Paths(params).raw(dataset), "test", params.data.max_test)
        corruptions.build_c_set(x, y, tmp / "C", names=list(cp.names), severities=list(cp.severities),
                                seed=cp.seed, table="cifar")
        stacked = list(cp.severities)
        if cp.perturbations:
            corruptions.build_p_set(x, tmp / "P", names=list(cp.perturbations), seed=cp.seed)
    io.write_json(tmp / "C" / "severities.json", {"severities": stacked})


def _corrupt_folder_dataset(params: Params, dataset: str, tmp: Path) -> None:
    """ImageNet-C layout (<corruption>/<severity>/<wnid>/<name>.JPEG): the official copy in
    data.imagenet_c_dir (checked, then recorded in C/source.json) or generated from val images
    (Resize + CenterCrop, then the ImageNet severity table, JPEG quality 85)."""
    from augmix import corruptions, imagenet

    cp, p = params.corruptions, params.imagenet
    index = imagenet.read_index(Paths(params).raw(dataset))
    val = imagenet.scan_folder(Path(index["dir"]) / "val", what=f"{dataset} val folder").subset(params.data.max_test)
    if cp.source == "official":
        root = Path(params.data.imagenet_c_dir)
        if not params.data.imagenet_c_dir or not root.is_dir():
            raise ConfigError(f"data.imagenet_c_dir: ImageNet-C folder {root} not found; download ImageNet-C "
                              f"(Hendrycks & Dietterich, zenodo.org/record/2235448) and point data.imagenet_c_dir at "
                              f"it, or set corruptions.source: generate")
        for name in cp.names:
            for severity in cp.severities:
                if not (root / name / str(severity)).is_dir():
                    raise ConfigError(f"data.imagenet_c_dir: {root / name / str(severity)} is missing")
        io.write_json(tmp / "C" / "source.json", {"dir": str(root.resolve())})
    else:
        from augmix.corruptions import SCALES

        if p.image_size != SCALES["imagenet"]:
            raise ConfigError(f"imagenet.image_size: generating ImageNet-C uses the reference's "
                              f"{SCALES['imagenet']}-pixel severity table, but image_size is {p.image_size}; "
                              f"use {SCALES['imagenet']} or corruptions.source: official with data.imagenet_c_dir")
        images, _ = imagenet.load_eval_array(val, p.resize, p.image_size)
        corruptions.build_imagenet_c_folder(
            images, [path.parent.name for path in val.paths], [path.name for path in val.paths], tmp / "C",
            names=list(cp.names), severities=list(cp.severities), seed=cp.seed, table="imagenet")
    io.write_json(tmp / "C" / "severities.json", {"severities": list(cp.severities)})
    if cp.perturbations:  # ImageNet-P from the val images (lossless npy videos; mp4 is lossy)
        corruptions.build_imagenet_p_folder([(f.parent.name, f.name, f) for f in val.paths], tmp / "P",
                                            names=list(cp.perturbations), seed=cp.seed, resize=p.resize,
                                            crop=p.image_size, format="npy")


def train(params: Params, dataset: str, arch: str, method: str, *, stop_after_epoch: int | None = None) -> dict[str, Any]:
    from augmix import train as training

    paths = Paths(params)
    out = paths.results(dataset, arch, method)
    identity = {"dataset": dataset, "arch": arch, "method": method}
    with tracking.stage_run(params, stage="train", sections=training.train_sections(dataset), identity=identity) as run:
        summary = training.train(params, dataset=dataset, arch=arch, method=method, raw_dir=paths.raw(dataset),
                                 out_dir=out, checkpoint=paths.checkpoint(dataset, arch, method), run=run,
                                 stop_after_epoch=stop_after_epoch)
        import torch.distributed

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if "stopped_after_epoch" not in summary and "rank" not in summary:  # rank 0 writes
            io.write_text(out / "params.resolved.yaml", _yaml(to_dict(params)))
            run.log_artifact(out / "train_log.csv")
            run.log_artifact(out / "train_summary.json")
            run.log_artifact(out / "params.resolved.yaml")
            run.set_tags({"model_md5": io.file_digest(out / "model.pt")})
    return summary


def evaluate(params: Params, dataset: str, arch: str, method: str, *, model_path: Path | None = None,
             out_dir: Path | None = None) -> dict[str, Any]:
    import torch

    from augmix import data
    from augmix import evaluate as ev
    from augmix.train import load_model, pick_device

    paths = Paths(params)
    model_path = model_path or paths.results(dataset, arch, method) / "model.pt"
    out_dir = out_dir or paths.results(dataset, arch, method)
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"model {model_path} not found: run `augmix train --dataset {dataset} "
                                f"--arch {arch} --method {method}` first, or pass --checkpoint")
    identity = {"dataset": dataset, "arch": arch, "method": method}
    with tracking.stage_run(params, stage="evaluate", sections=ev.IMAGENET_EVAL_SECTIONS if dataset in FOLDER_DATASETS else ev.EVAL_SECTIONS,
                            identity=identity) as run:
        if params.train.threads:
            torch.set_num_threads(params.train.threads)
        device = pick_device(params.train.device)
        model, state = load_model(Path(model_path), device)
        c_dir = paths.corrupted(dataset) / "C"
        p_dir = paths.corrupted(dataset) / "P"
        if dataset in FOLDER_DATASETS:
            from augmix import imagenet

            val_dir = Path(imagenet.read_index(paths.raw(dataset))["dir"]) / "val"
            frame, p_frame, summary = ev.evaluate_folder_model(
                model, params, identity=identity, val_dir=val_dir, classes=list(state.get("classes") or []) or None,
                c_dir=c_dir if c_dir.is_dir() else None, p_dir=p_dir if p_dir.is_dir() else None, device=device)
        else:
            test = data.load_split(paths.raw(dataset), "test", params.data.max_test)
            frame, p_frame, summary = ev.evaluate_model(
                model, params, identity=identity, test=test, c_dir=c_dir if c_dir.is_dir() else None,
                p_dir=p_dir if p_dir.is_dir() else None, device=device)
        if p_frame is None:
            import pandas as pd

            p_frame = pd.DataFrame(columns=[*identity, "perturbation", "flip_prob", "top5_dist", "n_sequences"])
        written = ev.write_results(out_dir, frame, p_frame, summary)
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        run.log_metrics({f"ce_{k}": v for k, v in summary.get("per_corruption", {}).items()})
        for path in written:
            if path.suffix in (".csv", ".json"):
                run.log_artifact(path)
    line = f"[evaluate] {dataset}/{arch}/{method}: clean error {summary['clean_error']:.4f}"
    if "corruption_error" in summary:
        line += f", corruption error {summary['corruption_error']:.4f}"
    print(line, flush=True)
    return summary


def report(params: Params) -> dict[str, Path]:
    from augmix import report as rep

    with tracking.stage_run(params, stage="report", sections=REPORT_SECTIONS) as run:
        files = rep.build_report(Path("results"), Paths.report, calib_mode=params.eval.calib_mode,
                                 bin_size=params.eval.calib_bin_size)
        run.log_artifacts(Paths.report)
    print(f"[report] tables and plots in {Paths.report.resolve()}", flush=True)
    return files


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)
