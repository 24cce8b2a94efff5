# The pipeline DAG for Snakemake: the same `augmix <stage>` commands and paths as dvc.yaml
# (tests/test_dag.py checks both plan the same jobs with the same params keys and code files). This
# root file must hold `rule all` (an included file's default target is not honoured).
# Locally:   snakemake --cores 4 --resources gpu=1
# On SLURM:  snakemake --workflow-profile workflow/profiles/slurm --jobs 50
import yaml
from snakemake.utils import validate

from augmix import config as augmix_config


configfile: "params.yaml"


# Every job reads params.yaml itself, so a value given by --config or another --configfile would not
# reach it: refuse it, in one line, before any job (edit params.yaml, or a work folder's overlay).
RAW = augmix_config.read_yaml("params.yaml")  # YAML 1.2 floats (2e-06), as augmix reads it
if config != yaml.safe_load(open("params.yaml")):
    raise ValueError("augmix: --config / --configfile values do not reach the jobs, which read params.yaml: "
                     "put them in params.yaml (dvc exp run -S edits it too) or in a work folder's overlay")
# The params schema exported from src/augmix/config.py (`augmix schema`), then the typed load itself
# (workflow/rules/common.smk), which adds the checks that span sections: a bad value stops here, before
# any job; names and paths are checked by `augmix check` when the run starts (common.smk, onstart).
validate(RAW, "workflow/schemas/params.schema.json")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "report",
