"""`augmix <stage>`: the one entry point. Each subcommand only translates arguments into a library call.

Bad input (params, names, missing files) ends with one line `augmix: error: ...` on stderr and exit
status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from augmix import __version__


def _params(args: argparse.Namespace) -> Any:
    from augmix import config

    return config.load(args.params)


def _check_cell(params: Any, args: argparse.Namespace) -> None:
    """Run identity must name a dataset, arch and method the code knows (the grid may be a subset)."""
    from augmix import registry
    from augmix.config import DATASETS

    checks = [("--dataset", getattr(args, "dataset", None), list(DATASETS))]
    if hasattr(args, "arch"):
        checks.append(("--arch", args.arch, registry.arch_names()))
    if hasattr(args, "method"):
        checks.append(("--method", args.method, registry.method_names()))
    for flag, value, known in checks:
        if value is not None and value not in known:
            raise KeyError(f"{flag}: unknown name {value!r} (known: {', '.join(known)})")


def cmd_download(args: argparse.Namespace) -> None:
    from augmix import stages

    params = _params(args)
    _check_cell(params, args)
    stages.download(params, args.dataset)


def cmd_corrupt(args: argparse.Namespace) -> None:
    from augmix import stages

    params = _params(args)
    _check_cell(params, args)
    stages.corrupt(params, args.dataset)


def cmd_train(args: argparse.Namespace) -> None:
    import os
    import subprocess

    from augmix import stages

    from augmix.config import FOLDER_DATASETS

    params = _params(args)
    _check_cell(params, args)
    nproc = params.imagenet.nproc if args.dataset in FOLDER_DATASETS else params.train.nproc
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        # The same command under torchrun, so dvc.yaml and the Snakefile need no second form.
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "augmix", "train", "--params", str(args.params), "--dataset", args.dataset,
               "--arch", args.arch, "--method", args.method]
        rc = subprocess.run(cmd).returncode
        if rc:
            from augmix.pipeline import PipelineError

            raise PipelineError(f"torchrun exited with status {rc}")
        return
    stages.train(params, args.dataset, args.arch, args.method, stop_after_epoch=args.stop_after_epoch)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from augmix import stages

    params = _params(args)
    _check_cell(params, args)
    stages.evaluate(params, args.dataset, args.arch, args.method, model_path=args.checkpoint, out_dir=args.out)


def cmd_report(args: argparse.Namespace) -> None:
    from augmix import stages

    stages.report(_params(args))


def cmd_repro(args: argparse.Namespace) -> None:
    from augmix import pipeline

    pipeline.repro(runner=args.runner, cwd=Path("."), jobs=args.jobs, force=args.force, extra=args.extra)


def cmd_demo(args: argparse.Namespace) -> None:
    from augmix import pipeline

    pipeline.demo(repo=Path("."), workdir=args.workdir, runner=args.runner, params_file=args.demo_params,
                  jobs=args.jobs, force=args.force)


def cmd_check(args: argparse.Namespace) -> None:
    params = _params(args)
    print(f"{args.params}: ok ({len(params.grid.datasets)} datasets x {len(params.grid.archs)} archs x "
          f"{len(params.grid.methods)} methods)")


# Per benchmark: what --quick means, and how --device is passed.
BENCH_MODULES = {"augment": "augmix.bench_augment", "corrupt": "augmix.corruptions.bench", "train": "augmix.bench_train",
                 "eval": "augmix.bench_eval"}
BENCH_QUICK = {"augment": {"repeats": 1, "sizes": (32,)}, "corrupt": {"n": 100}, "train": {"quick": True},
               "eval": {"quick": True}}


def cmd_bench(args: argparse.Namespace) -> None:
    import importlib

    module = importlib.import_module(BENCH_MODULES[args.what])
    kwargs: dict[str, Any] = dict(BENCH_QUICK[args.what]) if args.quick else {}
    if args.device:
        kwargs.update({"devices": [args.device]} if args.what == "augment" else {"device": args.device})
    if args.what == "train":
        kwargs.update({k: v for k, v in (("arch", args.arch), ("method", args.method), ("batch_size", args.batch_size),
                                         ("steps", args.steps), ("compile", args.compile or None)) if v is not None})
    if args.what == "corrupt" and args.end_to_end:
        kwargs["end_to_end"] = True
    if args.what == "eval":
        kwargs.update({k: v for k, v in (("arch", args.arch), ("batch_size", args.batch_size)) if v is not None})
    result = module.run(**kwargs)
    print(json.dumps(result, indent=2, default=str) if args.json else module.format_table(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augmix", description="AugMix reproduction pipeline stages.")
    parser.add_argument("--version", action="version", version=f"augmix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str, *, cell: str = "",
            params: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if params:  # repro and demo run whole pipelines, which read the params.yaml of their folder
            p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
        if "d" in cell:
            p.add_argument("--dataset", required=True, help="dataset name, e.g. cifar10, cifar100, digits")
        if "a" in cell:
            p.add_argument("--arch", required=True, help="architecture name, e.g. wrn40_2")
        if "m" in cell:
            p.add_argument("--method", required=True, help="training method name, e.g. augmix")
        p.set_defaults(fn=fn)
        return p

    add("download", cmd_download, "Fetch or build a dataset into data/raw/<dataset>.", cell="d")
    add("corrupt", cmd_corrupt, "Build (or fetch) the -C and -P sets into data/corrupted/<dataset>.", cell="d")
    p = add("train", cmd_train, "Train one dataset x arch x method cell into results/.", cell="dam")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p = add("evaluate", cmd_evaluate, "Evaluate a trained model on clean, -C and -P data.", cell="dam")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model.pt to evaluate (default: the pipeline's)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the model's results folder)")
    add("report", cmd_report, "Assemble the paper's tables and plots into report/.")
    add("check", cmd_check, "Validate a params file and exit.")
    p = add("repro", cmd_repro, "Run the whole pipeline (dvc repro or snakemake) under one MLflow parent run.",
            params=False)
    p.add_argument("--runner", choices=["dvc", "snakemake"], default="dvc")
    p.add_argument("--jobs", type=int, default=1, help="parallel jobs (snakemake)")
    p.add_argument("--force", action="store_true", help="re-run every stage")
    p.add_argument("extra", nargs="*", help="extra arguments for the orchestrator (after --)")
    p = add("demo", cmd_demo, "Run the whole pipeline on the offline demo config in a work folder.", params=False)
    p.add_argument("--runner", choices=["dvc", "snakemake"], default="dvc")
    p.add_argument("--workdir", type=Path, default=Path("demo"))
    p.add_argument("--demo-params", type=Path, default=Path("workflow/params/demo.yaml"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("bench", help="Print throughput figures.", description="Print throughput figures.")
    p.add_argument("what", choices=list(BENCH_MODULES))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--arch", default=None, help="train, eval: architecture (default wrn40_2)")
    p.add_argument("--method", default=None, help="train: method (default augmix)")
    p.add_argument("--batch-size", type=int, default=None, help="train: distinct samples per step")
    p.add_argument("--steps", type=int, default=None, help="train: timed steps")
    p.add_argument("--compile", action="store_true", help="train: torch.compile the model")
    p.add_argument("--end-to-end", action="store_true",
                   help="corrupt: time a real CIFAR-C build (files written) and project it to 10,000 images")
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from augmix.config import ConfigError
    from augmix.data import DataError
    from augmix.pipeline import PipelineError

    try:
        args.fn(args)
    except (ConfigError, DataError, PipelineError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"augmix: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
