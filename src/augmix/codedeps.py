"""The package's import graph read from source (ast): every `import` of an `augmix` module, at module
top or inside a function, resolved to its file.

A stage's code dependencies are the import closure of `augmix.cli` and its stage module
(`stage_files`): the Snakefile declares them from here, dvc.yaml lists the same files (tests/test_dag.py
checks they are equal), so editing a module re-runs exactly the stages that import it. `cycles` finds
import cycles (tests/test_dag.py keeps the package free of them)."""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Modules of the package that `path` imports (with the packages they sit in)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "augmix":
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, ...
                if module_file(".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    found.discard(module_name(path))
    return frozenset(found)


def closure(*modules: str) -> set[Path]:
    """Files of every package module that importing `modules` runs (transitively)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = module_file(name)
        if path is not None:
            todo.extend(imports_of(path))
    return {module_file(n) for n in seen if module_file(n) is not None}


STAGE_MODULES = {"external": "evaluate"}  # CLI commands served by another stage's module


def stage_files(stage: str) -> list[str]:
    """The files `augmix <stage>` runs, as paths relative to the work folder (src/augmix/...)."""
    files = closure("augmix.cli", f"augmix.stages.{STAGE_MODULES.get(stage, stage)}")
    return sorted(str(Path("src") / p.relative_to(SRC)) for p in files)


def code_digest(stage: str) -> str:
    """SHA-256 of the files `augmix <stage>` runs (their paths and bytes): a resume checkpoint written
    by other code is not resumed from."""
    h = hashlib.sha256()
    for path in sorted(closure("augmix.cli", f"augmix.stages.{STAGE_MODULES.get(stage, stage)}")):
        h.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, without the edges to its own parent packages
    (Python runs a package's __init__ before its submodules; that order is not a cycle)."""
    out = {}
    for p in (SRC / "augmix").rglob("*.py"):
        name = module_name(p)
        out[name] = {m for m in imports_of(p) if not name.startswith(m + ".")}
    return out


def cycles() -> list[list[str]]:
    """The package's import cycles (`find_cycles` of `graph`)."""
    return find_cycles(graph())


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of `g` (Tarjan) with more than one module, or a module importing
    itself: each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in g.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)
