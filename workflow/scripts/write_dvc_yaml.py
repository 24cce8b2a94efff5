"""Write dvc.yaml from the job table (augmix.jobs) and the stages' import closures (augmix.codedeps).

dvc.yaml is committed and read by DVC as it is; this script is how it is kept exact when a stage's
keys or imports change (tests/test_dag.py fails, naming the difference, until it is re-run):

    python workflow/scripts/write_dvc_yaml.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from augmix import codedeps, jobs

ROOT = Path(__file__).resolve().parents[2]
CHECK = ".augmix/params-ok"
REPORT_PLOTS = "report/plots"  # augmix report's figures (PNG), inside the report stage's output

# The key groups of augmix.jobs, spelled with ${item.*} where the job table has the identity
# (tests/test_dag.py resolves every job and compares with jobs.keys).
TRAIN_NUMERICS = list(jobs.TRAIN_NUMERICS)
EVAL = list(jobs.EVAL_KEYS)
CORRUPT = list(jobs.CORRUPT_KEYS)
CIFAR_SHIFTS = list(jobs.CIFAR_SHIFTS)
FOLDER_SIZES = list(jobs.FOLDER_SIZES)
SECTIONS_CHECKED = ["grid", "ablation", "datasets", "archs", "methods", "train", "imagenet", "subset",
                    "corruptions", "eval", "external"]


def block(items: list[str], indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}- {item}\n" for item in items)


def cell_stage(name: str, stage: str, grid: str, *, folder: bool) -> str:
    seeds = "${imagenet.seeds}" if folder else "${grid.seeds}"
    item = "${item.dataset}/${item.arch}/${item.method}/seed${item.seed}"
    ident = "--dataset ${item.dataset} --arch ${item.arch} --method ${item.method} --seed ${item.seed}"
    code = codedeps.stage_files(stage)
    if stage == "train":
        params = ["datasets.${item.dataset}.source"] + (["imagenet.recipe", "imagenet.nproc", *FOLDER_SIZES] if folder
                  else ["archs.${item.arch}", "train.nproc"]) + ["methods.${item.method}", *TRAIN_NUMERICS,
                                                                 "subset.train", "subset.test"]
        deps = [CHECK, "${data.root}/raw/${item.dataset}", *code]
        outs = f"""    outs:
      - results/{item}/model.pt
      - results/{item}/params.resolved.yaml
    metrics:
      - results/{item}/train_summary.json:
          cache: false
    plots:
      - results/{item}/train_log.csv:
          cache: false
          x: epoch
          y: test_error
"""
    else:
        params = ["datasets.${item.dataset}.source", *EVAL, *(FOLDER_SIZES if folder else CIFAR_SHIFTS)]
        deps = [CHECK, f"results/{item}/model.pt", "${data.root}/raw/${item.dataset}",
                "${data.root}/corrupted/${item.dataset}", *code]
        outs = f"""    outs:
      - results/{item}/eval.csv
      - results/{item}/eval_p.csv
      - results/{item}/predictions_clean.npz
    metrics:
      - results/{item}/metrics.json:
          cache: false
"""
    return f"""  {name}:
    matrix:
      dataset: ${{{grid}.datasets}}
      arch: ${{{grid}.archs}}
      method: ${{{grid}.methods}}
      seed: {seeds}
    cmd: augmix {stage} {ident}
    deps:
{block(deps, 6)}    params:
{block(params, 6)}{outs}"""


def data_stage(name: str, stage: str, over: str, *, folder: bool) -> str:
    code = codedeps.stage_files(stage)
    if stage == "download":
        params = ["datasets.${item}.source", "datasets.${item}.dir"] if folder else ["datasets.${item}"]
        deps = [CHECK, *code]
        out = "${data.root}/raw/${item}"
    else:
        params = ["datasets.${item}.source", *CORRUPT,
                  *(["datasets.${item}.c_dir", *FOLDER_SIZES] if folder else CIFAR_SHIFTS)]
        deps = [CHECK, "${data.root}/raw/${item}", *code]
        out = "${data.root}/corrupted/${item}"
    return f"""  {name}:
    foreach: {over}
    do:
      cmd: augmix {stage} --dataset ${{item}}
      deps:
{block(deps, 8)}      params:
{block(params, 8)}      outs:
        - {out}
"""


def external_stage() -> str:
    code = codedeps.stage_files("external")
    deps = [CHECK, "${item.file}", "${data.root}/raw/${item.dataset}", "${data.root}/corrupted/${item.dataset}", *code]
    params = ["external.${key}", "datasets.${item.dataset}.source", *EVAL, *CIFAR_SHIFTS, *FOLDER_SIZES]
    out = "results/external/${key}"
    return f"""  # Released models (external: {{}} adds no job), evaluated by the evaluate stage's code.
  evaluate_external:
    foreach: ${{external}}
    do:
      cmd: augmix evaluate-external --name ${{key}}
      deps:
{block(deps, 8)}      params:
{block(params, 8)}      outs:
        - {out}/eval.csv
        - {out}/eval_p.csv
        - {out}/predictions_clean.npz
      metrics:
        - {out}/metrics.json:
            cache: false

"""


def render() -> str:
    head = """# The pipeline DAG for DVC, written by workflow/scripts/write_dvc_yaml.py from the job table
# (src/augmix/jobs.py) and each stage's import closure (src/augmix/codedeps.py); tests/test_dag.py checks
# it, and that the Snakefile plans the same jobs. Every command is one `augmix <stage>` call. Each job
# lists exactly the params keys it reads and the package files its command imports, so a change
# re-runs exactly the jobs whose result it can alter. `check` runs first: a bad value stops the
# pipeline before any stage's outputs are removed, and its output never changes for valid params.
stages:
"""
    check = f"""  check:
    cmd: augmix check --stamp {CHECK}
    deps:
{block(codedeps.stage_files("check"), 6)}    params:
{block(SECTIONS_CHECKED, 6)}    outs:
      - {CHECK}:
          cache: false

"""
    report_deps = [CHECK, "results", *codedeps.stage_files("report"), "src/augmix/data/published.csv"]
    report = f"""  report:
    cmd: augmix report
    deps:
{block(report_deps, 6)}    params:
      - eval.calib_bin_size
      - eval.calib_mode
    outs:
      - report:
          cache: false
"""
    # Top-level plots: every PNG under report/plots (a folder of images is an image plot per file), so
    # `dvc plots show` and `dvc plots diff <exp>` show the report's figures beside each cell's
    # train_log.csv curve.
    plots = f"""
# The report's figures as image plots (`dvc plots show`, `dvc plots diff`).
plots:
  - {REPORT_PLOTS}
"""
    parts = [
        check,
        data_stage("download", "download", "${grid.datasets}", folder=False), "\n",
        data_stage("corrupt", "corrupt", "${grid.datasets}", folder=False), "\n",
        cell_stage("train", "train", "grid", folder=False), "\n",
        cell_stage("evaluate", "evaluate", "grid", folder=False), "\n",
        "  # The paper's Table 4 rows the grid lacks (WRN-40-2); ablation.methods: [] adds no job.\n",
        cell_stage("train_ablation", "train", "ablation", folder=False), "\n",
        cell_stage("evaluate_ablation", "evaluate", "ablation", folder=False), "\n",
        "  # ImageNet (imagenet.datasets: [imagenet]; an empty list adds no job): the same commands, with\n"
        "  # the imagenet section's recipe and crop sizes among the keys they read.\n",
        data_stage("imagenet_download", "download", "${imagenet.datasets}", folder=True), "\n",
        data_stage("imagenet_corrupt", "corrupt", "${imagenet.datasets}", folder=True), "\n",
        cell_stage("imagenet_train", "train", "imagenet", folder=True), "\n",
        cell_stage("imagenet_evaluate", "evaluate", "imagenet", folder=True), "\n",
        external_stage(),
        report,
        plots,
    ]
    return head + "".join(parts)


if __name__ == "__main__":
    out = ROOT / "dvc.yaml"
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if out.read_text() == text else 1)
    out.write_text(text)
    print(f"wrote {out}")
