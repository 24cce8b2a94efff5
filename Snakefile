# The pipeline DAG for Snakemake: the same `augmix <stage>` commands and paths as dvc.yaml
# (tests/test_dag.py checks that both plan the same commands). This root file must hold `rule all`
# (an included file's default target is not honoured, pipeline.md §4.2).
# Locally:   snakemake --cores 4 --resources gpu=1
# On SLURM:  snakemake --workflow-profile workflow/profiles/slurm --jobs 50
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "report",
