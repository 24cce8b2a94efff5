"""Where every stage reads and writes, relative to the work folder (both orchestrators spell the same).

data/raw/<dataset>, data/corrupted/<dataset>/{C,P}, results/<dataset>/<arch>/<method>/seed<k>/,
report/. Resume checkpoints live in checkpoints/, outside DVC's outputs, so DVC's removal of a stage's
outputs before it re-runs cannot delete them.
"""

from __future__ import annotations

from pathlib import Path

REPORT = Path("report")
RESULTS = Path("results")


def raw(root: str, dataset: str) -> Path:
    return Path(root) / "raw" / dataset


def corrupted(root: str, dataset: str) -> Path:
    return Path(root) / "corrupted" / dataset


def cell(dataset: str, arch: str, method: str, seed: int) -> Path:
    return RESULTS / dataset / arch / method / f"seed{seed}"


def external(name: str) -> Path:
    return RESULTS / "external" / name


def checkpoint(dataset: str, arch: str, method: str, seed: int) -> Path:
    return Path("checkpoints") / dataset / arch / method / f"seed{seed}" / "last.pt"
