"""Packaging: the wheel puts everything inside `contrastscope` and works from outside the repo; the
`contrastscope` command; the import rewrite; a clone the dashboard leaves clean."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from browser import _kill_group, _wait_healthy, free_port

from contrastscope._namespace import EXTRA_FILES, FOLDERS, rewrite_imports

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
SAMPLE = "healthy-infonce-tau0.1"


# -- the import rewrite -------------------------------------------------------------------------------


def test_rewrite_points_every_absolute_import_of_a_folder_into_the_namespace():
    source = (
        '"""from training import RunWriter stays: it is text."""\n'
        "from runformat import layout\n"
        "import numpy as np\n"
        "from diagnostics.collapse import (effective_rank,\n"
        "                                  normalized_std)\n"
        "from .cache import cached\n"
        "import diagnostics.cli as cli\n"
        "import dashboard\n"
        "from trainingwheels import x\n"
        "def f():\n"
        "    from  diagnostics import warmup  # two spaces\n"
    )
    out = rewrite_imports(source, "x.py")
    assert out == (
        '"""from training import RunWriter stays: it is text."""\n'
        "from contrastscope.runformat import layout\n"
        "import numpy as np\n"
        "from contrastscope.diagnostics.collapse import (effective_rank,\n"
        "                                  normalized_std)\n"
        "from .cache import cached\n"
        "import contrastscope.diagnostics.cli as cli\n"
        "from contrastscope import dashboard\n"
        "from trainingwheels import x\n"
        "def f():\n"
        "    from  contrastscope.diagnostics import warmup  # two spaces\n"
    )


def test_rewrite_points_module_names_in_strings_into_the_namespace():
    source = (
        'worker = [sys.executable, "-m", "diagnostics", "compute", root]\n'
        "mod = importlib.import_module('diagnostics.cache')\n"
        'label = ["-m", "not a module", "diagnostics"]\n'
        'CHILD = ("import runpy\\n"\n'
        "         \"runpy.run_module('diagnostics', run_name='__main__')\\n\")\n"
    )
    assert rewrite_imports(source, "x.py") == (
        'worker = [sys.executable, "-m", "contrastscope.diagnostics", "compute", root]\n'
        "mod = importlib.import_module('contrastscope.diagnostics.cache')\n"
        'label = ["-m", "not a module", "diagnostics"]\n'
        'CHILD = ("import runpy\\n"\n'
        "         \"runpy.run_module('contrastscope.diagnostics', run_name='__main__')\\n\")\n"
    )


@pytest.mark.parametrize("line", ["import diagnostics.cli", "import os, diagnostics"])
def test_rewrite_refuses_imports_it_cannot_map(line):
    with pytest.raises(SyntaxError, match="x.py:1"):
        rewrite_imports(line + "\n", "x.py")


# -- the wheel, installed outside the repo -------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a copy of the sources (the clone gets no build/ folder) and install it with
    --target into a folder that alone goes on PYTHONPATH; commands run from a folder outside the repo."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "contrastscope", *FOLDERS, *EXTRA_FILES):
        source, target = REPO / name, src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((base / "dist").glob("contrastscope-*.whl"))
    site = base / "site"
    done = subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(REPO / "sample_runs" / SAMPLE, elsewhere / "runs" / SAMPLE, ignore=shutil.ignore_patterns(".cache"))
    return {"wheel": wheel, "site": site, "cwd": elsewhere, "env": {**os.environ, "PYTHONPATH": str(site)}}


def _python(installed, code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        capture_output=True,
        text=True,
        cwd=installed["cwd"],
        env=installed["env"],
        timeout=timeout,
    )


def test_the_wheel_holds_one_top_level_package_and_pulls_numpy_and_pandas_only(installed):
    with zipfile.ZipFile(installed["wheel"]) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {n.split("/")[0] for n in names} == {"contrastscope", f"contrastscope-{VERSION}.dist-info"}
    for path in (
        "app.py",
        ".streamlit/config.toml",
        "pages/home.py",
        "runformat/writer.py",
        "diagnostics/work/cli.py",
        "integrations/tensorboard_import.py",
        "training/configs/healthy-infonce-tau0.1.toml",
    ):
        assert f"contrastscope/{path}" in names
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert [r for r in requires if "extra ==" not in r] == ["numpy>=1.26", "pandas>=2.2"]  # writer + reader
    assert any(r.startswith("streamlit") and 'extra == "dashboard"' in r for r in requires)
    assert "contrastscope = contrastscope.cli:main" in entry_points


def test_no_installed_module_imports_a_top_level_folder_name(installed):
    by_name = re.compile(r"""(run_module|import_module)\(\s*['"]|["']-m["'],\s*['"]""")
    package = installed["site"] / "contrastscope"
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.parent == package and path.name != "app.py":
            continue  # contrastscope's own modules: _namespace.py describes these very patterns
        for match in by_name.finditer(text):  # module names in strings (a child process's program included)
            assert text[match.end() :].split(".")[0].split("'")[0].split('"')[0] not in FOLDERS, (
                f"{path}: {text[match.start() : match.end() + 30]!r}"
            )
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] not in FOLDERS, f"{path}:{node.lineno}"
            elif isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] not in FOLDERS for a in node.names), f"{path}:{node.lineno}"


def test_writer_only_import_then_read_back_outside_the_repo(installed):
    code = """
import sys, numpy as np
from contrastscope import RunWriter
heavy = sorted(m for m in ('pandas', 'torch', 'streamlit') if m in sys.modules)
with RunWriter('runs', 'from-wheel', config={'tau': 0.1}) as w:
    w.log_metrics(1, {'loss': 0.5})
    w.log_snapshot(1, embeddings=np.eye(4, dtype=np.float32), labels=np.arange(4))
from contrastscope import open_run, list_runs, RunFormatError
import contrastscope
run = open_run('runs/from-wheel')
print(heavy, contrastscope.__file__, contrastscope.__version__, run.status, run.config, run.snapshot_steps(),
      sorted(r.name for r in list_runs('runs')),
      sorted({m.split(".")[0] for m in sys.modules} & %r))
""" % (set(FOLDERS),)
    out = _python(installed, code)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout.strip()
    assert text.startswith(f"[] {installed['site'] / 'contrastscope' / '__init__.py'} {VERSION} finished ")
    assert text.endswith(f"{{'tau': 0.1}} [1] ['from-wheel', '{SAMPLE}'] []")


# Only the base install's distributions (and the standard library, and the wheel) can be imported: every
# other top-level name found in the test environment's site-packages raises ModuleNotFoundError, as on a
# machine where `pip install contrastscope` installed numpy and pandas alone.
BASE_ONLY = """
import importlib.machinery, sys, sysconfig
SITE = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
BASE = {"numpy", "pandas", "dateutil", "six", "tzdata", "pytz"}
class BaseOnly:
    def find_spec(self, name, path=None, target=None):
        if "." in name or name in BASE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is not None and any(str(spec.origin or "").startswith(s) or
                                    any(str(p).startswith(s) for p in spec.submodule_search_locations or ())
                                    for s in SITE):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, BaseOnly())
"""


def test_the_base_install_writes_and_reads_runs(installed):
    """`pip install contrastscope`: numpy and pandas only. Writer, reader (metrics, snapshots, metadata) work."""
    code = (
        BASE_ONLY
        + """
import numpy as np
from contrastscope import RunWriter, open_run, list_runs
try:
    import torch
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("torch should be unreachable here")
with RunWriter('base-runs', 'base', config={'tau': 0.1}) as w:
    w.log_metrics(1, {'loss': 0.5})
    w.log_metrics(2, {'loss': 0.25})
    w.log_snapshot(2, embeddings=np.eye(4, dtype=np.float32), labels=np.arange(4), metadata={'domain': list('abab')})
run = open_run('base-runs/base')
snap = run.snapshot(2)
print(run.status, run.metrics()['loss'].tolist(), snap.embeddings.shape, snap.labels.tolist(),
      snap.metadata['domain'].tolist(), [r.name for r in list_runs('base-runs')])
"""
    )
    out = _python(installed, code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[0] == "finished [0.5, 0.25] (4, 4) [0, 1, 2, 3] ['a', 'b', 'a', 'b'] ['base']"


def test_the_base_install_names_the_extra_a_command_needs(installed):
    """A command that measures (torch) on the base install: exit 2 and the pip line, not a traceback."""
    code = (
        BASE_ONLY + "import runpy, sys\nsys.argv = ['contrastscope', *sys.argv[1:]]\n"
        "runpy.run_module('contrastscope', run_name='__main__')\n"
    )
    out = _python(installed, code, "summarize", f"runs/{SAMPLE}")
    assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-3000:])
    assert "pip install 'contrastscope[dashboard]'" in out.stderr and "Traceback" not in out.stderr
    usage = _python(installed, code, "--help")  # the reader is there, so the commands are listed
    assert usage.returncode == 0 and "\n  summarize " in usage.stdout, usage.stderr[-2000:]


def test_every_named_extra_exists_and_installs_that_module():
    from contrastscope.cli import EXTRAS

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distribution = {"sklearn": "scikit-learn", "umap": "umap-learn"}
    for module_name, extra in EXTRAS.items():
        names = {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower() for r in extras[extra]}
        assert distribution.get(module_name, module_name).lower() in names, (module_name, extra)


def test_every_installed_module_imports(installed):
    code = """
import importlib, importlib.util, pkgutil, sys
import contrastscope
optional = {'contrastscope.integrations.lightning': 'lightning', 'contrastscope.integrations.hf': 'transformers'}
names = [m.name for m in pkgutil.walk_packages(contrastscope.__path__, 'contrastscope.')
         if not m.name.startswith(('contrastscope.pages', 'contrastscope.app', 'contrastscope.__main__'))
         and not m.name.endswith('__main__')
         and importlib.util.find_spec(optional.get(m.name, 'numpy')) is not None]
for name in names:
    importlib.import_module(name)
print(len(names), sorted({m.split('.')[0] for m in sys.modules} & %r))
""" % (set(FOLDERS),)
    out = _python(installed, code)
    assert out.returncode == 0, out.stderr[-3000:]
    count, top_level = out.stdout.strip().split(" ", 1)
    assert int(count) >= 30 and top_level == "[]"
    for script in [
        "app.py",
        *(
            p.relative_to(installed["site"] / "contrastscope").as_posix()
            for p in (installed["site"] / "contrastscope" / "pages").glob("*.py")
        ),
    ]:
        compile((installed["site"] / "contrastscope" / script).read_text(), script, "exec")


def test_installed_command_version_and_summarize(installed):
    version = _python(installed, "", "-m", "contrastscope", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"contrastscope {VERSION}"
    ours = _python(installed, "", "-m", "contrastscope", "summarize", f"runs/{SAMPLE}", "--json")
    assert ours.returncode == 0, ours.stderr[-3000:]
    summary = json.loads(ours.stdout)
    assert summary["run"] == SAMPLE and summary["step"] == 600 and summary["verdict"] == "healthy"
    bad = _python(installed, "", "-m", "contrastscope", "summarize", "runs/nope")
    assert bad.returncode == 2 and "runs/nope" in bad.stderr


def test_installed_dashboard_starts_and_serves(installed):
    port = free_port()
    log_path = installed["cwd"] / "dashboard.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "contrastscope", "dashboard", "--runs", "runs", "--port", str(port)],
            cwd=installed["cwd"],
            env=installed["env"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc, 120, log_path)
        finally:
            _kill_group(proc)
    assert "127.0.0.1" in log_path.read_text()


# -- the command from a checkout -----------------------------------------------------------------------


def _repo_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contrastscope", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_checkout_command_reads_the_one_version_and_passes_other_commands_to_diagnostics():
    assert _repo_command("--version").stdout.strip() == f"contrastscope {VERSION}"
    usage = _repo_command("--help")
    assert usage.returncode == 0
    for command in ("dashboard", "import", "summarize", "compute", "report"):
        assert f"\n  {command} " in usage.stdout
    unknown = _repo_command("frobnicate")
    assert unknown.returncode == 2 and "frobnicate" in unknown.stderr


def test_checkout_namespace_names_are_the_very_modules_of_the_folders():
    """From a checkout, `contrastscope.<folder>.x` is the module `<folder>.x`: one object, one exception class."""
    code = (
        "import contrastscope.runformat.reader as a, runformat.reader as b\n"
        "import contrastscope.integrations.tensorboard_import as t, integrations.tensorboard_import as u\n"
        "from contrastscope import RunFormatError\n"
        "print(a is b, t is u, RunFormatError is b.RunFormatError, a.__spec__.name)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error::ImportWarning", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.stdout.split() == ["True", "True", "True", "runformat.reader"], out.stderr[-2000:]


# -- a clean clone -------------------------------------------------------------------------------------


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.skipif(
    shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").returncode != 0
    if shutil.which("git")
    else True,
    reason="needs a git checkout",
)
def test_what_the_dashboard_writes_beside_sample_runs_is_ignored():
    new_files = [
        f"sample_runs/{SAMPLE}/.cache/projections/0000000600-tsne-embeddings-new.npy",
        f"sample_runs/{SAMPLE}/.cache/records/0000000600-new/record.json",
        f"sample_runs/{SAMPLE}/.cache/worker.json",
        f"sample_runs/{SAMPLE}/notes.md",
        "runs/my-run/run.json",
        "build/lib/x.py",
    ]
    for path in new_files:
        assert _git("check-ignore", "-q", path).returncode == 0, f"{path} is not ignored"
    assert _git("check-ignore", "-q", f"sample_runs/{SAMPLE}/run.json").returncode == 1
    assert not _git("ls-files", f"sample_runs/{SAMPLE}/.cache").stdout.strip(), "no derived data is shipped"


def test_streamlit_watches_no_files():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
