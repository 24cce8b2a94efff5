# Shared values: the grid from params.yaml and the data root; params sections per stage (the same
# sections dvc.yaml lists, so a params change re-runs the same jobs under both orchestrators).
DATA = config["data"]["root"]
GRID = config["grid"]
CELLS = expand(
    "{dataset}/{arch}/{method}",
    dataset=GRID["datasets"],
    arch=GRID["archs"],
    method=GRID["methods"],
)


wildcard_constraints:
    dataset=r"[^/]+",
    arch=r"[^/]+",
    method=r"[^/]+",


def sections(*names):
    return {name: config[name] for name in names}


localrules:
    download,
    report,
