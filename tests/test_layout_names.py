"""runformat/layout.py is the one module that spells a run folder's file and folder names (issue #21), and the
one list of a snapshot's fields: a literal run-file name anywhere else in the project fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

from test_import_cycles import modules

from runformat import layout
from runformat.reader import Snapshot
from runformat.writer import RunWriter

# Every name layout.py gives a file or folder of a run or of a runs root's .cache.
NAMES = {
    getattr(layout, k): k
    for k in (
        "RUN_FILE",
        "CONFIG_FILE",
        "METRICS_FILE",
        "SNAPSHOT_DIR",
        "NOTES_FILE",
        "LOCK_FILE",
        "GENERATED_FILE",
        "CACHE_DIR",
        "RUN_STATE_FILE",
        "RECORDS_DIR",
        "RECORD_COMMIT_FILE",
        "RECORD_NUMBERS_FILE",
        "RECORD_GROUPS_FILE",
        "PROJECTIONS_DIR",
        "WORKER_STATUS_FILE",
        "REQUESTS_DIR",
    )
}
# Spellings still outside layout.py in files other sessions own (#21): each is switched to the layout name in
# the comment at merge time, then its entry here is deleted. Module -> the literals it may still hold
# ("+.json": a sidecar name built as snapshot_dirname(step) + ".json", now layout.snapshot_sidecar_name).
EXEMPT = {
    "diagnostics.store.record": {"records", "record.json", "numbers.json", "groups.json"},  # RECORDS_DIR, RECORD_*_FILE
    "diagnostics.store.cache": {"projections"},  # PROJECTIONS_DIR
    "diagnostics.work.viewing": {"+.json"},  # its own <viewer hash>.json files in .cache/viewing
    "dashboard.data": {"+.json"},  # snapshot_sidecar_name
    "runformat.writer": {"+.json"},  # folder + ".json": snapshot_sidecar_name
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


# Folder names are ordinary words ("records", "projections": also page and section names), so they count
# where they name a path: an argument of a path-building call, or a *_DIR / *_FILE constant.
FOLDERS = {layout.SNAPSHOT_DIR, layout.RECORDS_DIR, layout.PROJECTIONS_DIR, layout.REQUESTS_DIR}
PATH_CALLS = {"file", "join", "_cache_path", "cache_path", "makedirs", "exists"}


def spelled_names(path) -> set[str]:
    """The run-file names a module spells as string literals (docstrings aside), and "+.json" for a sidecar
    name glued together."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    in_path = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in PATH_CALLS:
                in_path |= {id(a) for a in node.args}
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.endswith(("_DIR", "_FILE")) for t in node.targets
        ):
            in_path |= {id(n) for n in ast.walk(node.value)}
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Tuple) for t in node.targets):
            names = [e.id for t in node.targets if isinstance(t, ast.Tuple) for e in t.elts if isinstance(e, ast.Name)]
            if any(n.endswith(("_DIR", "_FILE")) for n in names):
                in_path |= {id(n) for n in ast.walk(node.value)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in NAMES and (node.value not in FOLDERS or id(node) in in_path):
                found.add(node.value)
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and isinstance(node.right, ast.Constant)
            and node.right.value == layout.SIDECAR_SUFFIX
        ):
            found.add("+.json")
    return found


def test_the_check_sees_a_spelled_name(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        '"""run.json in a docstring is prose."""\nP = "metrics.jsonl"\nPAGE = "records"\n'
        'X_DIR = "records"\ndef f(run, step):\n    run.file("projections", "x")\n'
        '    return layout.snapshot_dirname(step) + ".json"\n'
    )
    assert spelled_names(path) == {"metrics.jsonl", "records", "projections", "+.json"}


def test_no_run_file_name_is_spelled_outside_layout():
    offenders = {}
    for name, path in modules().items():
        if name == "runformat.layout":
            continue
        extra = spelled_names(path) - EXEMPT.get(name, set())
        if extra:
            offenders[name] = sorted(extra)
    assert not offenders, f"use the runformat.layout names instead: {offenders}"


def test_exemptions_are_still_needed():
    """An exemption whose literal is gone must be deleted (so the list only shrinks)."""
    mods = modules()
    stale = {
        m: sorted(allowed - spelled_names(mods[m])) for m, allowed in EXEMPT.items() if allowed - spelled_names(mods[m])
    }
    assert not stale, f"delete these from EXEMPT: {stale}"


def test_one_field_list():
    """layout.FIELD_SHAPES names every array field: the reader's Snapshot attributes and the writer's
    log_snapshot arguments are those names (plus metadata)."""
    fields = set(layout.SNAPSHOT_ARRAY_FIELDS)
    assert fields == set(layout.FIELD_SHAPES) and layout.PAIRED_FIELD in fields and set(layout.IMAGE_FIELDS) <= fields
    snapshot_attrs = {f.name for f in dataclasses.fields(Snapshot)}
    assert fields <= snapshot_attrs
    assert snapshot_attrs - fields == {"step", "metadata", "wall_time", "info"}
    writer_args = set(inspect.signature(RunWriter.log_snapshot).parameters)
    assert fields <= writer_args
    assert writer_args - fields == {"self", "step", "metadata", "modality_names", "wall_time"}
