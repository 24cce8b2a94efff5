"""`augmix <stage>`: the one entry point. Each subcommand only translates arguments into a library call.

Errors: the project's user errors (`augmix.errors.UserError`: a bad params value, a missing file, a
refused checkpoint) end with `augmix: error: ...` naming the problem and exit status 2, before any work
starts where they can be found early. SIGINT and SIGTERM end a stage with one line and status 130 /
143, its checkpoint kept and its tracking run marked KILLED. Anything else is a bug: it keeps its
traceback.

Each stage's module is imported only when that stage runs (`STAGES`), so a command's code is the
import closure of its stage module plus this file, `config`, `jobs` and `errors`
(tests/test_imports.py checks dvc.yaml and the Snakefile list exactly those files).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from augmix import __version__, config
from augmix.errors import Interrupted, PipelineError, UserError

STAGES = {name: f"augmix.stages.{name}" for name in ("download", "corrupt", "train", "evaluate", "report", "check")}


def _stage(name: str) -> Any:
    return importlib.import_module(STAGES[name])


def _params(args: argparse.Namespace) -> config.Params:
    return config.load(args.params)


def _seed(params: config.Params, args: argparse.Namespace) -> int:
    """--seed, else the first seed of the grid the dataset's jobs come from."""
    if args.seed is not None:
        return args.seed
    folder = args.dataset in params.datasets and params.datasets[args.dataset].source in config.FOLDER_SOURCES
    return (params.imagenet.seeds if folder else params.grid.seeds)[0]


def cmd_download(args: argparse.Namespace) -> None:
    _stage("download").run(_params(args), args.dataset)


def cmd_corrupt(args: argparse.Namespace) -> None:
    _stage("corrupt").run(_params(args), args.dataset)


def cmd_train(args: argparse.Namespace) -> None:
    params = _params(args)
    folder = args.dataset in params.datasets and params.datasets[args.dataset].source in config.FOLDER_SOURCES
    nproc = params.imagenet.nproc if folder else params.train.nproc
    seed = _seed(params, args)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        # The same command under torchrun, so dvc.yaml and the Snakefile need no second form.
        _stage("train").check_cell(params, args.dataset, args.arch, args.method)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "augmix", "train", "--params", str(args.params), "--dataset", args.dataset,
               "--arch", args.arch, "--method", args.method, "--seed", str(seed),
               *(["--stop-after-epoch", str(args.stop_after_epoch)] if args.stop_after_epoch else [])]
        rc = subprocess.run(cmd).returncode
        if rc:
            raise PipelineError(f"torchrun exited with status {rc}")
        return
    _stage("train").run(params, args.dataset, args.arch, args.method, seed, stop_after_epoch=args.stop_after_epoch)


def cmd_evaluate(args: argparse.Namespace) -> None:
    params = _params(args)
    _stage("evaluate").run(params, args.dataset, args.arch, args.method, _seed(params, args),
                           model_path=args.checkpoint, out_dir=args.out, format=args.format, sha256=args.sha256)


def cmd_evaluate_external(args: argparse.Namespace) -> None:
    _stage("evaluate").run_external(_params(args), args.name)


def cmd_report(args: argparse.Namespace) -> None:
    if args.compare:
        print(_stage("report").compare(*args.compare, out=args.out))
        return
    _stage("report").run(_params(args))


def cmd_check(args: argparse.Namespace) -> None:
    print(_stage("check").run(_params(args), str(args.params), stamp=args.stamp))


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(config.json_schema(), indent=2) + "\n"
    if args.out:
        importlib.import_module("augmix.io").write_text(args.out, text)
    else:
        print(text, end="")


def cmd_repro(args: argparse.Namespace) -> None:
    pipeline = importlib.import_module("augmix.pipeline")
    pipeline.repro(runner=args.runner, cwd=Path("."), jobs=args.jobs, force=args.force, extra=args.extra)


def cmd_workdir(args: argparse.Namespace) -> None:
    pipeline = importlib.import_module("augmix.pipeline")
    folder = pipeline.prepare_workdir(Path("."), args.folder, args.overlay)
    print(f"{folder}: the pipeline with params.yaml{' + ' + str(args.overlay) if args.overlay else ''}; "
          f"cd there and run `dvc repro` (or snakemake, `dvc exp run -S key=value`)")


def cmd_demo(args: argparse.Namespace) -> None:
    pipeline = importlib.import_module("augmix.pipeline")
    pipeline.demo(repo=Path("."), workdir=args.workdir, runner=args.runner, overlay=args.demo_params,
                  jobs=args.jobs, force=args.force)


def cmd_exps(args: argparse.Namespace) -> None:
    experiments = importlib.import_module("augmix.experiments")
    print(experiments.exps(Path("."), csv_out=args.csv, all_cells=args.all_cells, all_commits=args.all_commits), end="")


def cmd_plan(args: argparse.Namespace) -> None:
    experiments = importlib.import_module("augmix.experiments")
    jobs = experiments.plan(Path("."))
    print(experiments.plan_json(jobs) if args.json else experiments.format_plan(jobs, commands=args.commands), end="")


def cmd_ui(args: argparse.Namespace) -> None:
    importlib.import_module("augmix.tracking").ui(port=args.port)


# Per benchmark: what --quick means, and how --device is passed.
BENCH_MODULES = {"augment": "augmix.bench_augment", "successors": "augmix.bench_successors",
                 "corrupt": "augmix.corruptions.bench", "train": "augmix.bench_train", "eval": "augmix.bench_eval"}
BENCH_QUICK = {"augment": {"repeats": 1, "sizes": (32,)}, "successors": {"repeats": 1},
               "corrupt": {"n": 100}, "train": {"quick": True}, "eval": {"quick": True}}


def cmd_bench(args: argparse.Namespace) -> None:
    module = importlib.import_module(BENCH_MODULES[args.what])
    kwargs: dict[str, Any] = dict(BENCH_QUICK[args.what]) if args.quick else {}
    if args.device:
        kwargs.update({"devices": [args.device]} if args.what in ("augment", "successors") else {"device": args.device})
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
            p.add_argument("--params", type=Path, default=Path("params.yaml"),
                           help="params file (default: params.yaml)")
        if "d" in cell:
            p.add_argument("--dataset", required=True, help="a key of the datasets section, e.g. cifar10, digits")
        if "a" in cell:
            p.add_argument("--arch", required=True, help="architecture name, e.g. wrn40_2")
        if "m" in cell:
            p.add_argument("--method", required=True, help="training method name, e.g. augmix")
            p.add_argument("--seed", type=int, default=None,
                           help="the run's seed (default: the first of grid.seeds, or imagenet.seeds)")
        p.set_defaults(fn=fn)
        return p

    add("download", cmd_download, "Fetch or build a dataset into data/raw/<dataset>.", cell="d")
    add("corrupt", cmd_corrupt, "Build (or fetch) the -C and -P sets into data/corrupted/<dataset>.", cell="d")
    p = add("train", cmd_train, "Train one dataset x arch x method x seed cell into results/.", cell="dam")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p = add("evaluate", cmd_evaluate, "Evaluate a trained model on clean, -C and -P data.", cell="dam")
    p.add_argument("--checkpoint", type=Path, default=None, help="a model file to evaluate (default: the pipeline's)")
    p.add_argument("--format", default="auto", choices=("auto", "augmix", "reference", "robustbench", "torchvision"),
                   help="--checkpoint's format (auto: detected, and said which)")
    p.add_argument("--sha256", default=None, help="refuse --checkpoint unless its SHA-256 is this")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the cell's; with --checkpoint: results/external/<file stem>)")
    p = add("evaluate-external", cmd_evaluate_external,
            "Evaluate a released model declared under external.<name> into results/external/<name>.")
    p.add_argument("--name", required=True, help="a key of the external section")
    p = add("report", cmd_report, "Assemble the paper's tables, verdicts and plots into report/.")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="compare two result folders cell by cell instead")
    p.add_argument("--out", type=Path, default=None, help="--compare: also write the comparison here")
    p = add("check", cmd_check, "Validate a params file (schema, names, paths) and exit.")
    p.add_argument("--stamp", type=Path, default=None, help=argparse.SUPPRESS)
    p = add("schema", cmd_schema, "Print the params JSON schema (Snakemake validates params.yaml with it).",
            params=False)
    p.add_argument("--out", type=Path, default=None, help="write it here instead")
    p = add("repro", cmd_repro, "Run the whole pipeline (dvc repro or snakemake) under one MLflow parent run.",
            params=False)
    p.add_argument("--runner", choices=["dvc", "snakemake"], default="dvc")
    p.add_argument("--jobs", type=int, default=1, help="parallel jobs (snakemake)")
    p.add_argument("--force", action="store_true", help="re-run every stage")
    p.add_argument("extra", nargs="*", help="extra arguments for the orchestrator (after --)")
    p = add("workdir", cmd_workdir, "Make a work folder: the pipeline files with params.yaml plus an overlay.",
            params=False)
    p.add_argument("folder", type=Path, help="the work folder (created or updated)")
    p.add_argument("--overlay", type=Path, default=None, help="a small params file of the keys that differ")
    p = add("demo", cmd_demo, "Run the whole pipeline on the offline demo config in a work folder.", params=False)
    p.add_argument("--runner", choices=["dvc", "snakemake"], default="dvc")
    p.add_argument("--workdir", type=Path, default=Path("demo"))
    p.add_argument("--demo-params", type=Path, default=Path("workflow/params/demo.yaml"),
                   help="the demo's overlay over params.yaml")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--force", action="store_true")
    p = add("exps", cmd_exps, "The DVC experiments of this folder: changed params and headline numbers per cell.",
            params=False)
    p.add_argument("--csv", action="store_true", help="one CSV row per experiment and cell instead")
    p.add_argument("--all-cells", action="store_true", help="list every cell, not only those whose numbers changed")
    p.add_argument("--all-commits", action="store_true", help="experiments of every commit, not only HEAD's")
    p = add("plan", cmd_plan, "The jobs `dvc repro` would run here and why (works where inputs are missing).",
            params=False)
    p.add_argument("--commands", action="store_true", help="print each job's command too")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p = add("ui", cmd_ui, "Browse the project's MLflow runs in a web browser (mlflow ui on 127.0.0.1).",
            params=False)
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
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


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted("SIGTERM")


EXIT_INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}


def _run_the_folders_code() -> None:
    """A work folder (demo/, `augmix workdir`) holds a copy of the code, src/augmix, which its dvc.yaml
    and Snakefile hash as each stage's dependencies: run that copy, so the code that runs is the code
    they recorded (re-run `augmix workdir` or `make demo` to bring a folder up to date)."""
    here = Path.cwd() / "src" / "augmix" / "cli.py"
    if not here.is_file() or here.resolve() == Path(__file__).resolve():
        return
    src = str(here.parent.parent.resolve())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)}
    os.execve(sys.executable, [sys.executable, "-m", "augmix", *sys.argv[1:]], env)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the console script: a work folder runs its own copy of the code
        _run_the_folders_code()
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args.fn(args)
    except KeyboardInterrupt:
        print("augmix: interrupted (SIGINT); a training job keeps its checkpoint and resumes from it", file=sys.stderr)
        return EXIT_INTERRUPTED["SIGINT"]
    except Interrupted as exc:
        print(f"augmix: interrupted ({exc}); a training job keeps its checkpoint and resumes from it", file=sys.stderr)
        return EXIT_INTERRUPTED.get(str(exc), 143)
    except UserError as exc:
        print(f"augmix: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
