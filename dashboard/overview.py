"""Home's table: one row per run under the root, its status, heartbeat and health at a glance."""

from __future__ import annotations

import json
import math
import time

import pandas as pd

from diagnostics import list_runs
from runformat.reader import Run

from . import data, metric_roles

COLUMNS = [
    "run",
    "status",
    "verdict",
    "last step",
    "heartbeat",
    "alignment",
    "uniformity",
    "effective rank",
    "snapshot verdict",
    "description",
    "notes",
]
# The table rule (dashboard/tables.py): these first and always shown, on screen at 1100 px; the rest a reader
# picks (SHOWN_COLUMNS by default), with any config key.
KEY_COLUMNS = ["run", "status", "verdict", "last step", "heartbeat"]
FORMATS = {"alignment": "{:.4g}", "uniformity": "{:.4g}", "effective rank": "{:.1f}", "last step": "{:.0f}"}
SHOWN_COLUMNS = ["alignment", "uniformity", "effective rank", "snapshot verdict", "description", "notes"]


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
    stopped = float(run.info.get("heartbeat", 0))  # when it ended, and how long ago ("3.2 h ago, 12-07 14:02")
    return f"{age(now - stopped)}, {time.strftime('%m-%d %H:%M', time.localtime(stopped))}"


def overview_row(run: Run, now: float | None = None) -> dict:
    """One Home row. Raises RunFormatError (naming the file) when the run cannot be read. "verdict" is the
    run's state on the verdict ladder with the step it began ("collapsing since 300"), the same words the
    Collapse page shows at the latest step; "snapshot verdict" is the latest snapshot judged on its own."""
    now = now or time.time()
    status = run.status
    row = {
        "run": run.name,
        "status": status,
        "heartbeat": heartbeat(run, status, now),
        "last step": data.last_step(run.name),
        "description": run.description,
        "notes": run.notes.strip(),
    }
    if status == "crashed" and (error := metric_roles.error_text(run)):
        row["notes"] = f"crashed: {error}" + (f" · {row['notes']}" if row["notes"] else "")
    steps = run.snapshot_steps()
    state = data.run_state(run.name) if steps else None
    if state is None:
        row["verdict"] = "being measured…" if steps else "no snapshot yet"
        return row
    latest = state["latest"]  # the last ready snapshot; its numbers are shown once the newest is ready
    if int(latest["step"]) == steps[-1]:
        row.update(
            {
                "alignment": latest.get("alignment"),
                "uniformity": latest.get("uniformity"),
                "effective rank": latest.get("effective_rank"),
            }
        )
        own = latest.get("verdict")
        row["snapshot verdict"] = own.replace("_", " ") if isinstance(own, str) else ""
    if isinstance(latest.get("error"), str):  # the ladder cannot judge a snapshot the engine could not measure
        row["verdict"] = f"not measured: {latest['error']}"
    else:
        row["verdict"] = ladder_text(state["verdict"], state["since"], state["pending"])
    return row


def ladder_text(verdict: str, since: int, pending: list[int]) -> str:
    """ "collapsing since 300"; "healthy" (no alarm, no step); "… · 2 more being measured" while snapshots
    wait for their record (the worker measures the newest first, so the ladder may still move)."""
    text = verdict.replace("_", " ") + ("" if verdict == "healthy" else f" since {since}")
    return text + (f" · {len(pending)} more being measured" if pending else "")


def overview() -> tuple[pd.DataFrame, dict[str, Exception]]:
    """Every run under the root as a Home row, and the runs that failed with their error."""
    rows, errors = [], {}
    now = time.time()
    for run in list_runs(data.runs_root()):
        try:
            rows.append(overview_row(data.run(run.name), now))
        except Exception as e:  # noqa: BLE001 - listed in the error cards instead
            if type(e).__module__.startswith("streamlit"):
                raise
            errors[run.name] = e
    return pd.DataFrame(rows, columns=COLUMNS), errors


# -- config columns, search, grouping ------------------------------------------------------------------

STATUS_COLOURS = {"running": "#1CA71C", "stalled": "#E8890C", "finished": "#1F77B4", "crashed": "#D62728"}
KEY_METRICS = ["alignment", "uniformity", "effective rank"]
# The ladder's rungs (diagnostics.judge.alarms.LADDER) in the status colours: a slide under way orange, collapse
# red; a named cause where the geometry looks fine (judgement.CAUSE_VERDICTS) orange, as the warning it is.
VERDICT_COLOURS = {
    "temperature too high": "#E8890C",
    "temperature too low": "#E8890C",
    "reconstruction rising": "#E8890C",
    "degrading": "#E8890C",
    "narrowing": "#E8890C",
    "contracting": "#E8890C",
    "dimensional collapse": "#E8890C",
    "collapsing": "#D62728",
    "complete collapse": "#D62728",
}


def verdict_colour(verdict) -> str | None:
    """The colour of a Home "run verdict" cell ("collapsing since 300" -> red); None for healthy and the rest."""
    state = str(verdict).split(" since ")[0]
    return VERDICT_COLOURS.get(state)


def config_table(names: list[str]) -> pd.DataFrame:
    """One row per run, one column per flattened config key ("contrastive.weight"); numbers stay numbers so
    they sort and average, everything else is shown as its JSON text. A run whose config cannot be read
    has an empty row (its error card is on the page already)."""
    from diagnostics.draw.compare import flatten_config

    rows = {}
    for name in names:
        try:
            flat = flatten_config(data.run(name).config)
        except Exception:  # noqa: BLE001 - shown by the run's error card
            flat = {}
        rows[name] = {
            k: v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)
            for k, v in flat.items()
        }
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=sorted({k for r in rows.values() for k in r}))


def with_config(table: pd.DataFrame, configs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`table` with the chosen config keys as columns, after the verdict and before the long description
    and notes (keys a run lacks are blank)."""
    keys = [k for k in keys if k in configs.columns and k not in table.columns]
    picked = configs.reindex(index=table["run"], columns=keys).reset_index(drop=True)
    out = pd.concat([table.reset_index(drop=True), picked], axis=1)
    text = [c for c in ("description", "notes") if c in out.columns]
    return out[[c for c in out.columns if c not in text] + text]


def search(table: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows where every word of `query` appears (any case) in some cell: name, status, verdict,
    description, notes or a shown config value. "collapse tau0.1" finds collapsed runs at τ = 0.1."""
    words = query.lower().split()
    if not words:
        return table
    text = table.apply(lambda row: " ".join(map(str, row)).lower(), axis=1)  # NaN cells too (pandas 3)
    keep = text.apply(lambda t: all(w in t for w in words))
    return table[keep]


def mean_std(values: pd.Series) -> str:
    """ "0.312 ± 0.010 (n=3)": the spread across seeds (sample std, ddof=1); one run shows its value only."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.4g} (n=1)"
    return f"{values.mean():.4g} ± {values.std(ddof=1):.2g} (n={len(values)})"


def _group_label(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(not set)"
    if isinstance(value, float) and value.is_integer():  # a seed made float by a run that lacks it
        return str(int(value))
    return str(value)


def grouped(table: pd.DataFrame, configs: pd.DataFrame, key: str, metrics: list[str] = KEY_METRICS) -> pd.DataFrame:
    """One row per value of config `key`: how many runs, their names, and each metric's mean ± std across
    them (seeds of one setting). Runs without the key form the group "(not set)"."""
    values = configs.reindex(index=table["run"])[key] if key in configs.columns else pd.Series(index=table["run"])
    labels = values.map(_group_label)
    frame = table.assign(**{key: labels.to_numpy()})
    rows = []
    for value, group in frame.groupby(key, sort=True):
        row = {
            key: value,
            "runs": len(group),
            "names": ", ".join(group["run"]),
            "statuses": ", ".join(f"{n} {s}" for s, n in group["status"].value_counts().items()),
        }
        row.update({m: mean_std(group[m]) for m in metrics if m in group.columns})
        states = group["verdict"].astype(str).str.split(" since | · ", regex=True).str[0]  # "collapsing", not its step
        row["verdicts"] = ", ".join(f"{n} {v}" for v, n in states.value_counts().items())
        rows.append(row)
    return pd.DataFrame(rows)
