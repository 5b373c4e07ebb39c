"""Home's table: one row per run under the root, its status, heartbeat and health at a glance."""
from __future__ import annotations

import time

import pandas as pd

from diagnostics import list_runs
from runformat.reader import Run

from . import data
from .text import readable

COLUMNS = ["run", "status", "heartbeat", "last step", "alignment", "uniformity", "effective rank",
           "verdict", "description", "notes"]


def age(seconds: float) -> str:
    """How long ago, in words a person reads at a glance."""
    seconds = max(seconds, 0.0)  # a heartbeat written after `now` was taken
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def heartbeat(run: Run, status: str, now: float) -> str:
    """The heartbeat's age while a run is running or stalled; when it stopped otherwise."""
    if status in ("running", "stalled"):
        return age(run.heartbeat_age(now))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(run.info.get("heartbeat", 0))))


def overview_row(run: Run, now: float | None = None) -> dict:
    """One Home row. Raises RunFormatError (naming the file) when the run cannot be read."""
    now = now or time.time()
    status = run.status
    frame = data.metrics(run.name)
    row = {"run": run.name, "status": status, "heartbeat": heartbeat(run, status, now),
           "last step": int(frame["step"].iloc[-1]) if len(frame) else None,
           "description": run.description, "notes": run.notes.strip()}
    steps = run.snapshot_steps()
    if steps:  # the latest snapshot's summary only: one cache entry per run, not the whole history
        last = data.summary(run.name, steps[-1])
        row.update({"alignment": last.get("alignment"), "uniformity": last.get("uniformity"),
                    "effective rank": last.get("effective_rank"),
                    "verdict": str(last.get("verdict", "")).replace("_", " ")})
    else:
        row["verdict"] = "no snapshot yet"
    return row


def overview() -> tuple[pd.DataFrame, dict[str, Exception]]:
    """Every readable run under the root as a Home row, and the runs that failed with their error."""
    rows, errors = [], {}
    now = time.time()
    for run in list_runs(data.runs_root()):
        if not readable(run.name):  # listed by data.unreadable_runs instead
            continue
        try:
            rows.append(overview_row(data.run(run.name), now))
        except Exception as e:  # noqa: BLE001 - listed in the error cards instead
            if type(e).__module__.startswith("streamlit"):
                raise
            errors[run.name] = e
    return pd.DataFrame(rows, columns=COLUMNS), errors
