# One training and one evaluation job per dataset x arch x method x seed cell.

CELL = "results/{dataset}/{arch}/{method}/seed{seed}"
IDENTITY = "--dataset {wildcards.dataset} --arch {wildcards.arch} --method {wildcards.method} --seed {wildcards.seed}"


rule train:
    output:
        model=f"{CELL}/model.pt",
        resolved=f"{CELL}/params.resolved.yaml",
        summary=f"{CELL}/train_summary.json",
        log=f"{CELL}/train_log.csv",
    input:
        f"{DATA}/raw/{{dataset}}",
        code("train"),
    params:
        job=job_params("train"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=PARAMS.train.nproc,  # train.nproc > 1: the job runs itself under torchrun
    shell:
        f"augmix train {IDENTITY}"


rule evaluate:
    output:
        f"{CELL}/eval.csv",
        f"{CELL}/eval_p.csv",
        f"{CELL}/predictions_clean.npz",
        f"{CELL}/metrics.json",
    input:
        f"{CELL}/model.pt",
        f"{DATA}/raw/{{dataset}}",
        f"{DATA}/corrupted/{{dataset}}",
        code("evaluate"),
    params:
        job=job_params("evaluate"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=1,
    shell:
        f"augmix evaluate {IDENTITY}"


# ImageNet (the imagenet section's recipe): imagenet.nproc GPUs per training job; the same
# `augmix train` command starts itself under torchrun when nproc > 1.
use rule train as imagenet_train with:
    wildcard_constraints:
        dataset=FOLDER_DATASETS,
    resources:
        gpu=PARAMS.imagenet.nproc,


use rule evaluate as imagenet_evaluate with:
    wildcard_constraints:
        dataset=FOLDER_DATASETS,


# Released models (the external section): the evaluate stage's code on a declared file.
def external_inputs(wildcards):
    entry = PARAMS.external[wildcards.name]
    return [entry.file, f"{DATA}/raw/{entry.dataset}", f"{DATA}/corrupted/{entry.dataset}"]


rule evaluate_external:
    output:
        "results/external/{name}/eval.csv",
        "results/external/{name}/eval_p.csv",
        "results/external/{name}/predictions_clean.npz",
        "results/external/{name}/metrics.json",
    input:
        external_inputs,
        code("external"),
    params:
        job=job_params("external"),
    resources:
        gpu=1,
    shell:
        "augmix evaluate-external --name {wildcards.name}"
