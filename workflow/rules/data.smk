# Datasets and their corruption benchmarks.


rule download:
    output:
        directory(f"{DATA}/raw/{{dataset}}"),
    input:
        code("download"),
    params:
        job=job_params("download"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    shell:
        "augmix download --dataset {wildcards.dataset}"


rule corrupt:
    output:
        directory(f"{DATA}/corrupted/{{dataset}}"),
    input:
        f"{DATA}/raw/{{dataset}}",
        code("corrupt"),
    params:
        job=job_params("corrupt"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=1,
    shell:
        "augmix corrupt --dataset {wildcards.dataset}"


# Image-folder datasets (ImageNet): the same commands; `download` checks and records the folder,
# `corrupt` points at the official ImageNet-C or generates it from the val images.
use rule download as imagenet_download with:
    wildcard_constraints:
        dataset=FOLDER_DATASETS,


use rule corrupt as imagenet_corrupt with:
    wildcard_constraints:
        dataset=FOLDER_DATASETS,
