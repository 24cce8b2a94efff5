# Shared values: the grid from params.yaml and the data root; params sections per stage (the same
# sections dvc.yaml lists, so a params change re-runs the same jobs under both orchestrators).
DATA = config["data"]["root"]
GRID = config["grid"]
IMAGENET = config["imagenet"]
CELLS = expand(
    "{dataset}/{arch}/{method}",
    dataset=GRID["datasets"],
    arch=GRID["archs"],
    method=GRID["methods"],
)
# ImageNet cells (imagenet.datasets: [] adds none); their rules are the imagenet_* copies below.
IMAGENET_CELLS = expand(
    "{dataset}/{arch}/{method}",
    dataset=IMAGENET["datasets"],
    arch=IMAGENET["archs"],
    method=IMAGENET["methods"],
)
FOLDER_DATASETS = r"imagenet"  # src/augmix/config.py FOLDER_DATASETS
ARRAY_DATASET = rf"(?!(?:{FOLDER_DATASETS})(?:/|$))[^/]+"  # every other dataset (CIFAR layout)


wildcard_constraints:
    dataset=r"[^/]+",
    arch=r"[^/]+",
    method=r"[^/]+",


def sections(*names):
    return {name: config[name] for name in names}


localrules:
    download,
    report,
