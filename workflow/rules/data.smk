# Datasets and their corruption benchmarks.


rule download:
    output:
        directory(f"{DATA}/raw/{{dataset}}"),
    input:
        "src/augmix/data.py",
    params:
        sections=sections("seed", "data"),
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
    resources:
        gpu=1,
    shell:
        "augmix corrupt --dataset {wildcards.dataset}"
