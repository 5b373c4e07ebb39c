"""Command line: `python -m diagnostics summarize|compute|report ...`.

    python -m diagnostics summarize runs/a                      # latest snapshot, as a table
    python -m diagnostics summarize runs/a --step all --json    # every snapshot + trend alarms, as JSON
    python -m diagnostics summarize runs/a --fail-on critical   # exit 3 on a critical finding (CI, train.sh)
    python -m diagnostics summarize runs/a --step all --wide    # every snapshot, every column
    python -m diagnostics compute runs --methods pca,tsne,umap  # fill every run's cache for the dashboard
    python -m diagnostics watch runs                            # the dashboard's background worker

Exit status: 0 ok; 2 bad arguments or an unreadable run (the message on stderr names the file);
3 (summarize --fail-on critical|warning) the run's judgement (diagnostics.judge.judgement, over every snapshot
whatever --step shows) has a current finding of that severity or worse: critical for collapsing, complete or
dimensional collapse, diverged (NaN/inf) or unmeasurable snapshots; warning adds a slide under way and a
mis-set τ. --fail-on-collapse is --fail-on critical.
Each verdict is the run ladder's at that step (alarms.run_verdicts, with the τ findings) and the suggestions
name the config switch behind a change. Reader warnings print as one `warning: ...` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

from runformat import layout
from runformat.bounds import RunFormatWarning
from runformat.reader import Run, RunFormatError, list_runs, open_run

EXIT_OK, EXIT_ERROR, EXIT_COLLAPSE = 0, 2, 3
TABLE_SKIP = ("explanation", "suggestions")  # long text: printed below the table, not in it
# `--step all` without --wide: the columns a reader scans first (~90 characters a line, not ~500)
NARROW = {
    "step": "step",
    "verdict": "verdict",
    "std_ratio": "spread",
    "effective_rank": "rank",
    "knn_accuracy": "kNN",
    "alignment": "alignment",
    "uniformity": "uniformity",
}


# -- summarize ----------------------------------------------------------------------------------------


def _steps_to_summarise(run: Run, step: str) -> list[int]:
    run.info  # a broken run.json is reported as such, not as "no snapshots"  # noqa: B018
    steps = run.snapshot_steps()
    if not steps:
        raise RunFormatError(f"{run.storage.display(run.file(layout.SNAPSHOT_DIR))}: no committed snapshots yet")
    if step == "latest":
        return steps[-1:]
    if step == "all":
        return steps
    try:
        wanted = int(step)
    except ValueError:
        raise ValueError(f"--step: an integer, 'latest' or 'all', got {step!r}") from None
    if wanted not in steps:
        raise ValueError(
            f"--step: {run.name} has no snapshot at step {wanted} (steps: "
            f"{', '.join(map(str, steps[:10]))}{' ...' if len(steps) > 10 else ''})"
        )
    return [wanted]


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _judge(run: Run, summaries: list[dict]):
    """(the run table, its findings, the run's judgement) over every summarised snapshot (diagnostics.judge.judgement)."""  # noqa: E501
    from ..judge.advice import RunContext
    from ..judge.judgement import findings, judge_run
    from ..judge.summary import run_table

    table, ctx = run_table(summaries), RunContext.of_run(run)
    return table, ctx, findings(table, ctx), judge_run(table, ctx)


def _with_verdicts(summaries: list[dict], table, found, ctx) -> list[dict]:
    """Each summary's verdict and explanation as every page shows them at its step (judgement.judged); a
    summary without a verdict (an error record) keeps none."""
    from ..judge.judgement import judged

    out = []
    for s in summaries:
        v = judged(table, s["step"], found, ctx) if "verdict" in s else None
        out.append({**s, "verdict": v["verdict"], "explanation": v["explanation"]} if v else s)
    return out


def cmd_summarize(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..judge.judgement import fails
    from ..judge.summary import summary_of
    from ..store import record

    run = open_run(args.run)
    steps = _steps_to_summarise(run, args.step)
    every = run.snapshot_steps()
    # verdicts come from records checked against their snapshot (record.load), computed here when missing; the
    # judgement reads every snapshot, so the latest alone cannot hide a collapse that began before it
    by_step = {s: summary_of(record.readable(record.get_or_compute(run, s))) for s in every}
    table, ctx, found, judgement = _judge(run, list(by_step.values()))
    summaries = _with_verdicts([by_step[s] for s in steps], table, found, ctx)
    if args.json:
        out = (
            {"run": run.name, **summaries[0]}
            if len(steps) == 1
            else {"run": run.name, "summaries": summaries, "alarms": [asdict(a) for a in found]}
        )
        print(json.dumps({**out, "judgement": judgement}, indent=1, default=str))
    elif len(steps) == 1:
        s = summaries[0]
        print(f"{run.name}  step {s.get('step')}")
        width = max(len(k) for k in s)
        for key, value in s.items():
            if key not in TABLE_SKIP:
                print(f"  {key:<{width}}  {_format_value(value)}")
        print(f"\n{s.get('explanation', '')}")
        for tip in s.get("suggestions") or []:
            print(f"  - {tip}")
    else:
        import pandas as pd

        rows = [{k: v for k, v in s.items() if k not in TABLE_SKIP} for s in summaries]
        if not args.wide:
            rows = [{NARROW[k]: r.get(k) for k in NARROW} for r in rows]
        table = pd.DataFrame.from_records(rows)
        print(f"{run.name}: {len(steps)} snapshots" + ("" if args.wide else " (--wide for every column)"))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for a in found:
            print(f"[{a.severity}] {a.message}")
    level = args.fail_on or ("critical" if args.fail_on_collapse else None)
    if level and fails(judgement, level):
        print(
            f"{run.name}: the run's judgement is {judgement['verdict']} since step {judgement['since']} "
            f"(severity {judgement['severity']}); exiting with status {EXIT_COLLAPSE} (--fail-on {level})",
            file=sys.stderr,
        )
        return EXIT_COLLAPSE
    return EXIT_OK


# -- compute ------------------------------------------------------------------------------------------


class TextProgress:
    """A one-line progress bar on stderr ('\\r'-redrawn on a terminal, a line per item otherwise)."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.stream = max(total, 1), 0, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_draw = 0.0

    def update(self, label: str, fraction: float = 0.0, message: str = "") -> None:
        now = time.perf_counter()
        if self.tty and fraction not in (0.0, 1.0) and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        overall = (self.done + min(max(fraction, 0.0), 1.0)) / self.total
        bar = "#" * int(24 * overall)
        line = f"[{bar:<24}] {100 * overall:5.1f}%  {now - self.started:6.1f}s  {label}  {message}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
        elif fraction == 0.0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish_item(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def _runs_at(path: str) -> list[Run]:
    if layout.is_url(path) or os.path.exists(os.path.join(path, layout.RUN_FILE)):
        try:
            return [open_run(path)]
        except RunFormatError:
            if not layout.is_url(path):
                raise
    runs = list_runs(path) if layout.is_url(path) or os.path.isdir(path) else []
    if not runs:
        raise RunFormatError(f"{path}: neither a run (no {layout.RUN_FILE}) nor a folder of runs")
    return runs


def cmd_compute(args: argparse.Namespace) -> int:
    from ..measure.projection import METHODS
    from .worker import Task, run_task

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"--methods: unknown {', '.join(bad)}; choose from {','.join(METHODS)}")
    if "umap" in methods:  # compile while the summaries and the other layouts are computed
        from ..measure.warmup import start_umap_warmup

        start_umap_warmup()
    runs = _runs_at(args.target)
    plan = []
    for run in runs:
        try:
            run.info  # noqa: B018
            steps = run.snapshot_steps()
        except (RunFormatError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            continue
        plan.append((run, steps))
    bar = TextProgress(sum(len(steps) * (1 + len(methods)) for _, steps in plan))
    failed = len(runs) - len(plan)
    for run, steps in plan:
        try:
            for s in steps:  # records first, then one method at a time: each layout walks the steps in order
                bar.update(f"{run.name} step {s}", 0.0, "record")
                run_task(Task("record", run, s))
                bar.finish_item()
            for method in methods:
                for prev, s in zip([None] + steps[:-1], steps):
                    label = f"{run.name} step {s} {method}"
                    bar.update(label, 0.0, "")
                    run_task(
                        Task("projection", run, s, method, args.source, args.seed, init_from_step=prev),
                        progress=lambda f, m, label=label: bar.update(label, f, m),
                    )
                    bar.finish_item()
        except (RunFormatError, OSError, ValueError, KeyError) as e:
            bar.close()
            print(f"error: {run.name}: {e}", file=sys.stderr)
            failed += 1
    bar.close()
    print(f"cached {len(plan) - failed}/{len(runs)} runs in {time.perf_counter() - bar.started:.1f}s", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from .task_limits import TaskBudget
    from .worker import watch

    if not args.poll > 0:
        raise ValueError(f"--poll: a positive number of seconds, got {args.poll}")
    budget = TaskBudget.from_args(args.task_seconds, args.task_memory_gb)
    try:
        watch(args.root, once=args.once, poll_s=args.poll, workers=args.workers, budget=budget, cluster=args.cluster)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# -- parser -------------------------------------------------------------------------------------------


def build_parser(prog: str = "python -m diagnostics") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summarize", help="every diagnostic of a snapshot, as a table or JSON")
    p.add_argument("run", metavar="RUN", help="run folder (or fsspec URL)")
    p.add_argument("--step", default="latest", help="snapshot step, 'latest' (default) or 'all'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--fail-on",
        choices=("critical", "warning"),
        help=f"exit {EXIT_COLLAPSE} when the run's judgement has a current finding this severe or worse",
    )
    p.add_argument("--fail-on-collapse", action="store_true", help="the same as --fail-on critical")
    p.add_argument("--wide", action="store_true", help="with --step all: every column, not the narrow table")
    p.set_defaults(handler=cmd_summarize)

    p = sub.add_parser("compute", help="precompute and cache summaries and layouts of every snapshot")
    p.add_argument("target", metavar="RUN_OR_ROOT", help="a run folder, or a folder of runs")
    p.add_argument("--methods", default="pca,tsne,umap", help="comma-separated: pca,tsne,umap (default all)")
    p.add_argument("--source", default="embeddings", choices=("embeddings", "features"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_compute)

    p = sub.add_parser("watch", help="background worker: compute records and default layouts as snapshots land")
    p.add_argument("root", metavar="ROOT", help="a folder of runs")
    p.add_argument("--once", action="store_true", help="exit once nothing is left to do")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between scans when idle (default 1)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="task processes (default 1); any number of watchers may share a root: each record is computed once",
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="also run record tasks on this Dask scheduler (tcp://host:8786; the root must be shared)",
    )
    p.add_argument("--task-seconds", type=float, default=None, help="kill a task after this long (default 1800)")
    p.add_argument(
        "--task-memory-gb",
        type=float,
        default=None,
        help="kill a task past this resident memory (default: half the RAM, at most 8)",
    )
    p.set_defaults(handler=cmd_watch)

    try:  # written separately; registered only when it is there
        from ..draw import report
    except ImportError:
        report = None
    if report is not None and hasattr(report, "add_report_arguments") and hasattr(report, "run_report"):
        p = sub.add_parser("report", help="one self-contained HTML file about a set of runs")
        report.add_report_arguments(p)
        p.set_defaults(handler=report.run_report)
    return parser


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A reader warning (a skipped metrics line, a bad notes file) as `warning: <message>`, not Python's
    two-line `file:line: Category: message` + source line."""
    print(f"warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None, prog: str = "python -m diagnostics") -> int:
    args = build_parser(prog).parse_args(argv)
    with warnings.catch_warnings():  # restores showwarning on the way out (main is also called in-process)
        python_show = warnings.showwarning

        def show(message, category, *rest, **kw):
            (_one_line if issubclass(category, RunFormatWarning) else python_show)(message, category, *rest, **kw)

        warnings.showwarning = show
        try:
            return int(args.handler(args) or 0)
        except (RunFormatError, FileNotFoundError, ValueError, KeyError) as e:
            print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
            return EXIT_ERROR
