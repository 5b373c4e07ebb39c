"""One implementation of each number (issue #21): production code reads the engine; the per-metric reference
the engine is tested against is imported only by tests and bench/; no module takes another's private helpers.
"""

from __future__ import annotations

import ast

from test_import_cycles import import_graph, modules

# The per-metric reference: one function per number, the engine's yardstick (diagnostics/measure/engine.py docstring).
REFERENCE = {
    "diagnostics.reference.geometry",
    "diagnostics.reference.probes",
    "diagnostics.reference.reference_collapse",
    "diagnostics.reference.reference_summary",
}


def test_production_code_never_imports_the_reference():
    graph = import_graph(modules())
    offenders = {m: sorted(graph[m] & REFERENCE) for m in graph if m not in REFERENCE and graph[m] & REFERENCE}
    assert not offenders, f"production modules importing the reference: {offenders}"


def test_the_reference_exists_and_the_engine_does_not_lean_on_it():
    mods = modules()
    assert REFERENCE <= set(mods)
    graph = import_graph(mods)
    for engine_side in (
        "diagnostics.measure.engine",
        "diagnostics.measure.sweep",
        "diagnostics.measure.spectrum",
        "diagnostics.measure.groups",
        "diagnostics.measure.crossmodal",
        "diagnostics.measure.neighbours",
    ):
        assert not graph[engine_side] & REFERENCE, engine_side


def test_no_module_imports_another_modules_private_names():
    """`from .geometry import _histogram` is how the engine and the reference got tangled: shared helpers live in
    a private module (_primitives, _tensor, _topk) under public names instead."""
    mods = modules()
    tops = {m.split(".")[0] for m in mods}
    found = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").split(".")[0] in tops):
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found += [
                f"{name}: from {'.' * node.level}{node.module or ''} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__") and f"{base}.{a.name}" not in mods
            ]
    assert not found, found  # importing a private *module* (from . import _topk) is how it is shared
