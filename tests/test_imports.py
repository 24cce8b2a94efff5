"""The import graph of our packages has no cycles.

`import_graph(package)` reads every module of a package with `ast` (nothing is imported or run):
each `import` and `from ... import` statement, at the top level or inside a function, becomes an
edge to the module of ours it names (relative imports resolved; `from pkg import name` points at
the submodule `pkg.name` where there is one, else at `pkg`). An edge to a package's `__init__` is
not implied by importing a submodule, so a package may import its own submodules.
`augmix.codedeps.find_cycles` returns the strongly connected components of that graph with more
than one module (or a module importing itself). To check another package, add its name to
PACKAGES ("augmix" checks them all).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import augmix
from augmix.codedeps import find_cycles

SRC = Path(augmix.__file__).resolve().parent.parent  # the folder holding the `augmix` package
PACKAGES = ["augmix.corruptions"]


def _module_files(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for `package` and everything below it."""
    root = SRC / Path(*package.split("."))
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of a `from ... import` statement's module."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules in `known` that `module` imports anywhere in its file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a function or class: its module
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (see the module docstring)."""
    files = _module_files(package)
    known = set(files)
    return {name: _targets(name, path, known) for name, path in files.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    graph = import_graph(package)
    assert len(graph) > 1
    assert find_cycles(graph) == []


def test_corruption_kernels_are_a_leaf():
    """Both corruption backends import the shared kernels; the kernels import no module of ours,
    and the torch backend does not import the NumPy one."""
    graph = import_graph("augmix.corruptions")
    kernels, numpy_path, torch_path = (f"augmix.corruptions.{m}" for m in ("kernels", "functions", "torch_backend"))
    assert graph[kernels] == set()
    assert kernels in graph[numpy_path] and kernels in graph[torch_path]
    assert numpy_path not in graph[torch_path]


def test_the_graph_sees_every_kind_of_import(tmp_path, monkeypatch):
    """Relative, absolute, in-function and `from package import submodule` imports are edges; a
    cycle through any of them is found."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from . import b\n\ndef f():\n    return b\n")
    (pkg / "b.py").write_text("def g():\n    from toy.sub import c\n    return c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import toy.a\nfrom ..b import g\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    graph = import_graph("toy")
    assert graph == {
        "toy": {"toy.a"},
        "toy.a": {"toy.b"},
        "toy.b": {"toy.sub.c"},
        "toy.sub": set(),
        "toy.sub.c": {"toy.a", "toy.b"},
    }
    assert find_cycles(graph) == [["toy.a", "toy.b", "toy.sub.c"]]
    assert find_cycles({"x": {"x"}, "y": set()}) == [["x"]]
