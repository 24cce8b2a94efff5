# Datasets and their corruption benchmarks.


rule download:
    output:
        directory(f"{DATA}/raw/{{dataset}}"),
    input:
        "src/augmix/data.py",
    params:
        sections=sections("seed", "data"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    shell:
        "augmix download --dataset {wildcards.dataset}"


rule corrupt:
    output:
        directory(f"{DATA}/corrupted/{{dataset}}"),
    input:
        f"{DATA}/raw/{{dataset}}",
        "src/augmix/corruptions",
    params:
        sections=sections("data", "corruptions"),
    wildcard_constraints:
        dataset=ARRAY_DATASET,
    resources:
        gpu=1,
    shell:
        "augmix corrupt --dataset {wildcards.dataset}"


# ImageNet: the same commands; `download` checks and records data.imagenet_dir, `corrupt` points at
# data.imagenet_c_dir or generates ImageNet-C from the val images.
use rule download as imagenet_download with:
    params:
        sections=sections("seed", "data"),
    wildcard_constraints:
        dataset=FOLDER_DATASETS,


use rule corrupt as imagenet_corrupt with:
    input:
        f"{DATA}/raw/{{dataset}}",
        "src/augmix/corruptions",
        "src/augmix/imagenet.py",
    params:
        sections=sections("data", "corruptions", "imagenet"),
    wildcard_constraints:
        dataset=FOLDER_DATASETS,
