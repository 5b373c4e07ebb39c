"""The `contrastscope` namespace: which of the repo's top-level folders it holds, and how their imports resolve.

The repo keeps its design's folders at the top (`runformat/`, `training/`, `diagnostics/`, ...) and their code
imports each other by those absolute names (`from runformat import layout`). An installed wheel must not put
such generic names into site-packages, where they would clash with a user's own `training` module. So:

- in a built wheel every folder lives *inside* the namespace (`contrastscope/runformat/`, ...) and the build
  rewrote each absolute import of a folder name into `contrastscope.<name>` (`rewrite_imports`, run by
  setup.py's build step): the installed code never looks up a top-level `runformat` at all;
- in a checkout (or an editable install) the folders sit beside `contrastscope/`, the repo root goes on the
  *end* of sys.path (a user's own modules still win) and the names resolve as they always have; there
  `contrastscope.<folder>.x` is made the very module `<folder>.x` (CheckoutAliases), so code and docs written
  against the installed names work unchanged in a checkout.

Why a build-time rewrite and not a sys.modules alias or an import hook: an alias has to claim the top-level
names `training`/`diagnostics` process-wide, so whichever of the user's module and ours is imported first
silently wins for everyone; and aliasing submodules through a meta-path finder creates a second module object
(a second `RunFormatError` class that `except` clauses no longer match) unless every edge is handled. The
rewrite leaves one name per module and touches no file in the repo.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.util
import re
import sys
from pathlib import Path

# The repo's folders that become `contrastscope.<name>` (each a package; `pages` holds the dashboard's scripts).
FOLDERS = ("runformat", "training", "diagnostics", "dashboard", "integrations", "pages")
# Repo files copied into the namespace's folder beside them, keeping their relative paths: the dashboard's
# entry point next to its pages/, and the Streamlit config Streamlit reads from beside the main script.
EXTRA_FILES = ("app.py", ".streamlit/config.toml")

HERE = Path(__file__).resolve().parent
INSTALLED = (HERE / "runformat" / "__init__.py").is_file()
PREFIX = "contrastscope." if INSTALLED else ""
REPO = None if INSTALLED else HERE.parent

if REPO is not None and REPO not in {Path(p or ".").resolve() for p in sys.path}:
    sys.path.append(str(REPO))


class CheckoutAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Checkout only: import `contrastscope.runformat.reader` as the module object `runformat.reader` itself.

    One object under two names, never a second copy: a second copy would carry a second RunFormatError class
    that `except` clauses written against the first no longer catch.
    """

    def __init__(self):
        self._real_specs = {}

    def find_spec(self, fullname, path=None, target=None):
        head, _, real = fullname.partition(".")
        if head != "contrastscope" or real.split(".")[0] not in FOLDERS:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        real = importlib.import_module(spec.name.partition(".")[2])
        self._real_specs[spec.name] = real.__spec__
        return real

    def exec_module(self, module):
        module.__spec__ = self._real_specs.pop(module.__spec__.name)  # the import system set the alias's spec


if not INSTALLED and not any(isinstance(f, CheckoutAliases) for f in sys.meta_path):
    sys.meta_path.insert(0, CheckoutAliases())  # before PathFinder, which would load a second copy


def module(name: str):
    """Import one of the folders' modules by its repo name, e.g. module("runformat.writer")."""
    return importlib.import_module(PREFIX + name)


def app_path() -> Path:
    """The dashboard's Streamlit entry point (pages/ and .streamlit/ lie beside it)."""
    return (HERE if INSTALLED else REPO) / "app.py"


# -- build time ---------------------------------------------------------------------------------------

_FROM = re.compile(r"from(\s+)(" + "|".join(FOLDERS) + r")\b")


# A module named by a string, in code or inside code kept in a string (a child process's `-c` program):
# run_module("diagnostics"), import_module('diagnostics.cache').
_BY_NAME = re.compile(r"\b(run_module|import_module)\((\s*)(['\"])(" + "|".join(FOLDERS) + r")\b")


def rewrite_imports(source: str, filename: str) -> str:
    """Point every absolute import of a FOLDERS name at `contrastscope.<name>`; refuse forms it cannot map.

    `from diagnostics.x import y` -> `from contrastscope.diagnostics.x import y`;
    `import diagnostics.x as d` -> `import contrastscope.diagnostics.x as d`; `import diagnostics` ->
    `from contrastscope import diagnostics`; `["-m", "diagnostics"]`, `import_module("diagnostics.x")` and
    `run_module('diagnostics')` (also inside a `-c` program kept in a string) get the prefix too. A bare
    `import diagnostics.x` (which binds the top-level name) or a mixed `import os, diagnostics` raises, so the
    build fails instead of shipping an import that breaks later.
    """
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (line index, start col, end col, replacement)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] in FOLDERS
        ):
            line = lines[node.lineno - 1]
            match = _FROM.match(line, _char_col(line, node.col_offset))
            if match is None:
                raise SyntaxError(f"{filename}:{node.lineno}: cannot rewrite this import for the wheel")
            edits.append(
                (node.lineno - 1, match.start(), match.end(), f"from{match.group(1)}contrastscope.{match.group(2)}")
            )
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in FOLDERS for a in node.names):
            if len(node.names) != 1 or node.lineno != node.end_lineno:
                raise SyntaxError(f"{filename}:{node.lineno}: import our folders on a line of their own")
            alias = node.names[0]
            if alias.asname is not None:
                new = f"import contrastscope.{alias.name} as {alias.asname}"
            elif "." not in alias.name:
                new = f"from contrastscope import {alias.name}"
            else:
                raise SyntaxError(
                    f"{filename}:{node.lineno}: `import {alias.name}` binds a top-level name; "
                    f"write `from {alias.name.rsplit('.', 1)[0]} import {alias.name.rsplit('.', 1)[1]}`"
                )
            line = lines[node.lineno - 1]
            start, end = _char_col(line, node.col_offset), _char_col(line, node.end_col_offset)
            edits.append((node.lineno - 1, start, end, new))
        for constant in _module_name_strings(node):
            line = lines[constant.lineno - 1]
            start, end = _char_col(line, constant.col_offset), _char_col(line, constant.end_col_offset)
            quoted = line[start:end]
            if constant.lineno != constant.end_lineno or quoted[0] not in "'\"":
                raise SyntaxError(f"{filename}:{constant.lineno}: write the module name as a plain one-line string")
            edits.append((constant.lineno - 1, start, end, quoted[0] + "contrastscope." + quoted[1:]))
    for index, start, end, new in sorted(edits, reverse=True):
        lines[index] = lines[index][:start] + new + lines[index][end:]
    return _BY_NAME.sub(r"\1(\2\3contrastscope.\4", "".join(lines))


def _module_name_strings(node: ast.AST) -> list[ast.Constant]:
    """A module name in a command line, `[sys.executable, "-m", "diagnostics", ...]`: the wheel must run
    `-m contrastscope.diagnostics` (each folder keeps its __main__.py inside the namespace)."""

    def ours(n):
        return (
            isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and n.value.split(".")[0] in FOLDERS
            and all(part.isidentifier() for part in n.value.split("."))
        )

    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            b for a, b in zip(node.elts, node.elts[1:]) if isinstance(a, ast.Constant) and a.value == "-m" and ours(b)
        ]
    return []


def _char_col(line: str, utf8_offset: int) -> int:
    """ast's col_offset counts UTF-8 bytes; str slicing counts characters."""
    return len(line.encode("utf-8")[:utf8_offset].decode("utf-8"))
