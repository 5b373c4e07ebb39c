"""No import circle among the project's modules, function-level imports included (issue #21).

Every `import` and `from … import` anywhere in a file counts, inside functions and `if TYPE_CHECKING:` blocks
too: a back-edge hidden in a function body is still a circle (it only shows at run time, in the order modules
happen to load). Tests, bench/ and scripts/ are not project modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runformat", "diagnostics", "dashboard", "training", "integrations", "contrastscope", "pages")


# Circles on main being removed by their owners' branches (#21): cache ↔ record ↔ summary ("records"),
# advice ↔ alarms ↔ collapse ("judge"). Delete an entry when its fix merges; then test_no_import_cycles passes.
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(REPO.glob("*.py")) + [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]:
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file (a name inside a module counts as it)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                r = resolve(target)
                # a package's __init__ loading its own submodules (a lazy namespace) is not a circle
                if r and r != m and not (path.name == "__init__.py" and r.startswith(m + ".")):
                    graph[m].add(r)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def test_the_walk_sees_function_level_imports(tmp_path):
    """The detector itself: a circle closed only by a function-level import (and one by a TYPE_CHECKING
    import) is found; a package __init__ loading its own submodule is not a circle."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "__init__": "from . import a\n",
        "a": "from . import b\n",
        "b": "def f():\n    from .c import g\n    return g\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",
        "d": "import pkg.a\n",
    }
    mods = {}
    for name, src in files.items():
        (pkg / f"{name}.py").write_text(src)
        mods["pkg" if name == "__init__" else f"pkg.{name}"] = pkg / f"{name}.py"
    graph = import_graph(mods)
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [{"pkg.a", "pkg.b", "pkg.c"}]
    (pkg / "b.py").write_text("import os\n")
    assert cycles(import_graph(mods)) == []


def test_no_import_cycles():
    found = [sorted(c) for c in cycles(import_graph(modules()))]
    assert not found, f"import circles: {found}"
