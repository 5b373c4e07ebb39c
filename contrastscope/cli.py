"""The `contrastscope` command (also `python -m contrastscope`).

    contrastscope dashboard [--runs DIR] [--port N]       # runs root: --runs, $CONTRASTSCOPE_RUNS or ./runs
    contrastscope summarize RUN [--step all] [--json] [--fail-on-collapse]
    contrastscope compute RUN_OR_ROOT [--methods pca,tsne,umap]
    contrastscope report RUN [RUN ...] -o report.html
    contrastscope import tensorboard LOGDIR [--runs DIR]  # TensorBoard scalars and projector logs -> runs
    contrastscope --version

Every command other than dashboard and import is `python -m diagnostics`'s (diagnostics/work/cli.py), passed through
unchanged, so a command added there is here too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from ._namespace import app_path, module

RUNS_ENV = "CONTRASTSCOPE_RUNS"
EXIT_ERROR = 2


def _missing(package: str, extra: str) -> int:
    print(f"error: this command needs {package}: pip install 'contrastscope[{extra}]'", file=sys.stderr)
    return EXIT_ERROR


def dashboard(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="contrastscope dashboard",
        description="Open the Streamlit dashboard on a folder of runs. Other "
        "--section.option flags are passed to `streamlit run`.",
    )
    p.add_argument(
        "--runs",
        default=os.environ.get(RUNS_ENV) or "runs",
        help=f"runs root: a folder or an fsspec URL (default: ${RUNS_ENV}, else ./runs)",
    )
    p.add_argument("--port", type=int, help="port to serve on (default 8501)")
    args, streamlit_flags = p.parse_known_args(argv)
    if importlib.util.find_spec("streamlit") is None:
        return _missing("streamlit", "dashboard")
    runs = args.runs if "://" in args.runs else os.path.abspath(args.runs)
    if "://" not in runs and not os.path.isdir(runs):
        print(f"note: {runs} does not exist yet; runs written there will appear on the Home page", file=sys.stderr)
    command = [sys.executable, "-m", "streamlit", "run", str(app_path())]
    if args.port is not None:
        command.append(f"--server.port={args.port}")
    command += [*streamlit_flags, "--", "--runs", runs]
    sys.stdout.flush()
    os.execv(sys.executable, command)  # Streamlit takes over this process: Ctrl-C and signals reach it directly


def import_logs(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="contrastscope import", description="Bring other tools' logs in as runs.")
    sub = p.add_subparsers(dest="source", required=True)
    tb = sub.add_parser(
        "tensorboard", help="scalars -> metrics, projector embeddings -> snapshots; one run per TensorBoard run"
    )
    tb.add_argument("logdir", metavar="LOGDIR", help="a TensorBoard log folder (searched recursively)")
    tb.add_argument("--runs", default=os.environ.get(RUNS_ENV) or "runs", help="runs root to write into")
    tb.add_argument("--prefix", default="tb-", help="prefix of the imported runs' names (default 'tb-')")
    tb.add_argument(
        "--follow",
        action="store_true",
        help="import again every 10 s while training writes the log, until its hparams session ends (Ctrl-C stops)",
    )
    tb.add_argument(
        "--finished",
        action="store_true",
        help="the training ended: mark runs whose log has no "
        "hparams session end `finished` (else they show `stalled` once their last event is old)",
    )
    args = p.parse_args(argv)
    if importlib.util.find_spec("tensorboard") is None:
        return _missing("tensorboard", "tensorboard")
    tensorboard_import = module("integrations.tensorboard_import")
    try:
        if args.follow:
            tensorboard_import.follow(args.logdir, args.runs, prefix=args.prefix)
            return 0
        written = tensorboard_import.import_logdir(args.logdir, args.runs, prefix=args.prefix, finished=args.finished)
    except KeyboardInterrupt:
        return 0
    except (tensorboard_import.TensorBoardLogError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    for name in written:
        print(f"wrote {os.path.join(args.runs, name)}")
    return 0


OWN = {
    "dashboard": (dashboard, "open the Streamlit dashboard on a folder of runs"),
    "import": (import_logs, "bring TensorBoard logs in as runs (import tensorboard LOGDIR --runs DIR)"),
}


def _usage() -> str:
    lines = ["usage: contrastscope [--version] COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in OWN.items()]
    try:
        parser = module("diagnostics.work.cli").build_parser(prog="contrastscope")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                lines += [f"  {a.dest:<11} {a.help or ''}" for a in action._get_subactions()]
    except ImportError as e:  # the base install: the diagnostics' dependencies (torch, ...) are absent
        lines.append(f"  (summarize, compute, report, ...: need pip install 'contrastscope[dashboard]': {e})")
    lines += ["", "`contrastscope COMMAND -h` describes one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_ERROR
    if argv[0] == "--version":
        from ._version import version

        print(f"contrastscope {version()}")
        return 0
    if argv[0] in OWN:
        return OWN[argv[0]][0](argv[1:])
    try:
        diagnostics_cli = module("diagnostics.work.cli")
    except ImportError as e:  # the base install reads runs; measuring them needs torch and friends
        return _missing(f"the diagnostics' dependencies ({e.name})", "dashboard")
    try:
        return diagnostics_cli.main(argv, prog="contrastscope")
    except ModuleNotFoundError as e:  # a command reached a module the base install lacks (torch, plotly, ...)
        extra = extra_for(e.name)
        if extra is None:
            raise
        return _missing(e.name.split(".")[0], extra)


# Top-level modules of the optional dependencies -> the pyproject extra that installs them.
EXTRAS = {
    "torch": "dashboard",
    "plotly": "dashboard",
    "streamlit": "dashboard",
    "sklearn": "dashboard",
    "umap": "dashboard",
    "openTSNE": "dashboard",
    "pyarrow": "dashboard",
    "fsspec": "dashboard",
    "lightning": "lightning",
    "transformers": "hf",
    "accelerate": "hf",
    "tensorboard": "tensorboard",
}


def extra_for(module_name: str | None) -> str | None:
    """The extra to install for a missing module (None: not one of ours to name)."""
    return EXTRAS.get((module_name or "").split(".")[0])
