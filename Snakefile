# The pipeline DAG for Snakemake: the same `augmix <stage>` commands and paths as dvc.yaml
# (tests/test_dag.py checks both plan the same jobs with the same params keys and code files). This
# root file must hold `rule all` (an included file's default target is not honoured).
# Locally:   snakemake --cores 4 --resources gpu=1
# On SLURM:  snakemake --workflow-profile workflow/profiles/slurm --jobs 50
from snakemake.utils import validate


configfile: "params.yaml"


# The params schema exported from src/augmix/config.py (`augmix schema`), then the typed load itself
# (workflow/rules/common.smk), which adds the checks that span sections: a bad value stops here, before
# any job; names and paths are checked by `augmix check` when the run starts (common.smk, onstart).
validate(config, "workflow/schemas/params.schema.json")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "report",
