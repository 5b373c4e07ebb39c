"""Build configuration beyond pyproject.toml: the repo's folders go *inside* the `contrastscope` namespace.

Each folder in contrastscope/_namespace.py's FOLDERS becomes `contrastscope.<folder>` (nothing generic such as
`training` lands in site-packages), its absolute imports are rewritten to that namespace, and app.py and the
Streamlit config are copied beside pages/ so `contrastscope dashboard` runs the same app.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_namespace", ROOT / "contrastscope" / "_namespace.py")
namespace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(namespace)


def _packages() -> list[str]:
    """Each folder of FOLDERS and every package folder below it (diagnostics' rooms: diagnostics.measure, ...)."""
    below = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for folder in namespace.FOLDERS
        for init in (ROOT / folder).rglob("*/__init__.py")
    }
    return [*namespace.FOLDERS, *sorted(below)]


class BuildIntoNamespace(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "contrastscope"
        for name in namespace.EXTRA_FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target / name)
        # the folders' code and app.py; contrastscope's own modules are written for the namespace already
        for path in sorted([*(p for f in namespace.FOLDERS for p in (target / f).rglob("*.py")), target / "app.py"]):
            source = path.read_text(encoding="utf-8")
            rewritten = namespace.rewrite_imports(source, str(path.relative_to(target)))
            if rewritten != source:
                path.write_text(rewritten, encoding="utf-8")


setup(
    packages=[
        "contrastscope",
        *(f"contrastscope.{package}" for package in _packages()),
        "contrastscope.training.configs",
    ],
    package_dir={"contrastscope": "contrastscope", **{f"contrastscope.{f}": f for f in namespace.FOLDERS}},
    package_data={"contrastscope.training.configs": ["*.toml"]},
    cmdclass={"build_py": BuildIntoNamespace},
)
