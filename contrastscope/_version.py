"""One version source: pyproject.toml's `version`, read from the installed metadata (or the checkout's file)."""

from __future__ import annotations

from ._namespace import REPO


def version() -> str:
    if REPO is not None:  # a checkout: its own pyproject.toml, even if another copy is installed
        import tomllib

        with open(REPO / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]["version"]
    from importlib.metadata import version as installed_version

    return installed_version("contrastscope")
