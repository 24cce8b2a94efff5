# One training and one evaluation job per dataset x arch x method cell.

TRAIN_CODE = [
    *(f"src/augmix/{name}.py" for name in ("train", "methods", "training_methods", "augment", "ops", "rng", "losses")),
    "src/augmix/models",
]


rule train:
    output:
        model="results/{dataset}/{arch}/{method}/model.pt",
        resolved="results/{dataset}/{arch}/{method}/params.resolved.yaml",
        summary="results/{dataset}/{arch}/{method}/train_summary.json",
        log="results/{dataset}/{arch}/{method}/train_log.csv",
    input:
        f"{DATA}/raw/{{dataset}}",
        TRAIN_CODE,
    params:
        sections=sections("seed", "data", "augmix", "optim", "archs", "methods", "train"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=config["train"]["nproc"],  # train.nproc > 1: the job runs itself under torchrun
    shell:
        "augmix train --dataset {wildcards.dataset} --arch {wildcards.arch} --method {wildcards.method}"


rule evaluate:
    output:
        "results/{dataset}/{arch}/{method}/eval.csv",
        "results/{dataset}/{arch}/{method}/eval_p.csv",
        "results/{dataset}/{arch}/{method}/predictions_clean.npz",
        "results/{dataset}/{arch}/{method}/metrics.json",
    input:
        "results/{dataset}/{arch}/{method}/model.pt",
        f"{DATA}/raw/{{dataset}}",
        f"{DATA}/corrupted/{{dataset}}",
        "src/augmix/evaluate.py",
        "src/augmix/metrics.py",
    params:
        sections=sections("data", "corruptions", "eval", "train"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=1,
    shell:
        "augmix evaluate --dataset {wildcards.dataset} --arch {wildcards.arch} --method {wildcards.method}"


# ImageNet (REF imagenet.py recipe from the imagenet section). imagenet.nproc GPUs per training job:
# the same `augmix train` command starts itself under torchrun when nproc > 1.
use rule train as imagenet_train with:
    input:
        f"{DATA}/raw/{{dataset}}",
        TRAIN_CODE,
        "src/augmix/imagenet.py",
    params:
        sections=sections("seed", "data", "augmix", "methods", "train", "imagenet"),
    wildcard_constraints:
        dataset=FOLDER_DATASETS,
    resources:
        gpu=IMAGENET["nproc"],


use rule evaluate as imagenet_evaluate with:
    input:
        "results/{dataset}/{arch}/{method}/model.pt",
        f"{DATA}/raw/{{dataset}}",
        f"{DATA}/corrupted/{{dataset}}",
        "src/augmix/evaluate.py",
        "src/augmix/metrics.py",
        "src/augmix/imagenet.py",
    params:
        sections=sections("data", "corruptions", "eval", "train", "imagenet"),
    wildcard_constraints:
        dataset=FOLDER_DATASETS,
