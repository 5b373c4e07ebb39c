"""The dashboard's shared state: which runs root, which runs are selected, cached loaders, error cards.

Selection and page settings are widgets bound to URL query parameters (`bind="query-params"`), so a link
pasted into a meeting chat reopens the same view, and the selection follows the user from page to page.

Caching: a `Run` object per (root, name) lives for the server's lifetime (`st.cache_resource`), so its
metrics byte offset survives reruns and only new lines are parsed. Everything derived from snapshots is keyed
by what identifies the files (the committed snapshot steps, a sidecar's (path, size, mtime)), and the numbers
themselves come from the on-disk diagnostics cache (`diagnostics.cache`), so a second visit recomputes nothing.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from diagnostics import RunFormatError, list_runs, open_run
from runformat import layout
from runformat.reader import Run

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "sample_runs"
RUNS_ENV = "CONTRASTSCOPE_RUNS"
# CONTRASTSCOPE_UMAP_WARMUP=0 skips the background UMAP compile (tests of pages that never run UMAP: the
# compile holds the GIL for a minute and slows every other page while it runs).
WARMUP_ENV = "CONTRASTSCOPE_UMAP_WARMUP"
# Pages without a selection show every run under the root, up to this many.
FALLBACK_RUNS = 6
log = logging.getLogger("contrastscope.dashboard")

MAKE_A_RUN = """\
No runs here yet. Make one:

```bash
python -m training.train --config training/configs/healthy.toml
```

or write one from your own loop:

```python
from training import RunWriter
with RunWriter("runs", "my-run", config={"description": "what this run shows"}) as w:
    for step in range(1000):
        w.log_metrics(step, {"loss/total": loss})
        if step % 100 == 0:
            w.log_snapshot(step, embeddings=z, positives=z_pos, labels=y)
```

then `streamlit run app.py -- --runs runs`."""


def runs_root() -> str:
    """`-- --runs DIR` on the streamlit command line, else $CONTRASTSCOPE_RUNS, else the shipped sample_runs/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs or os.environ.get(RUNS_ENV) or str(DEFAULT_ROOT)


def start_background_work() -> None:
    """Warm UMAP's numba JIT once per server process so nobody waits for it on the Projections page."""
    if os.environ.get(WARMUP_ENV, "1") == "0":
        return
    try:
        from diagnostics import warmup
    except ImportError:
        return
    warmup.start_umap_warmup()


def run_names() -> list[str]:
    return [r.name for r in list_runs(runs_root())]


def get_run(name: str) -> Run:
    return open_run(name, root=runs_root())


def sidebar_run_picker() -> list[str]:
    names = run_names()
    with st.sidebar:
        st.caption(f"Runs root: `{runs_root()}`")
        st.multiselect("Runs", names, key="runs", bind="query-params", persist_state="session",
                       placeholder="Pick runs on Home or here")
    return selected_runs()


def selected_runs() -> list[str]:
    return list(st.session_state.get("runs") or [])


def active_runs() -> list[str]:
    """The selected runs; with none selected, the first runs under the root, running ones first (and a
    caption saying so)."""
    chosen = selected_runs()
    if chosen:
        return chosen
    names = sorted(run_names(), key=lambda name: not _is_live(name))[:FALLBACK_RUNS]  # running ones first
    if names:
        st.caption(f"No runs selected: showing {', '.join(names)}. Pick runs on Home or in the sidebar.")
    return names


def _is_live(name: str) -> bool:
    try:
        return get_run(name).status in ("running", "stalled")
    except (RunFormatError, OSError):
        return False


# -- errors ----------------------------------------------------------------------------------------

def error_card(run_name: str, error: Exception) -> None:
    """A run that fails to load gets a card naming the file and the problem; never a traceback."""
    if isinstance(error, (RunFormatError, OSError, ValueError, KeyError)):
        text = str(error).strip("'\"")
    else:  # an unexpected failure: the type helps a bug report; the traceback goes to the server log
        text = f"{type(error).__name__}: {error}"
    st.error(f"**{run_name}** could not be loaded: {text}", icon=":material/error:")


def safe(run_name: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), or None after an error card. Streamlit's own control flow passes through."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one broken run must never take the page down
        if type(e).__module__.startswith("streamlit"):
            raise
        if not isinstance(e, (RunFormatError, OSError, ValueError, KeyError)):
            log.exception("loading %s failed", run_name)
        error_card(run_name, e)
        return None


# -- layout helpers ---------------------------------------------------------------------------------

def alarm_banner(run_name: str, alarms: list) -> None:
    """One banner per run with collapse or divergence alarms: where the trouble started, the first alarm and
    what to try; the other alarms in an expander below it."""
    if not alarms:
        return
    critical = [a for a in alarms if a.severity == "critical"]
    lead = (critical or alarms)[0]
    start = min(a.step_started for a in alarms)
    kinds = ", ".join(dict.fromkeys(a.kind.replace("_", " ") for a in alarms))
    if all(a.severity == "info" for a in alarms):  # a collapse that training undid: say so quietly
        st.info(f"**{run_name}: {kinds} at step {start}, since recovered.** {lead.message}",
                icon=":material/history:")
        return
    (st.error if critical else st.warning)(
        f"**{run_name}: {kinds} — trouble since step {start}.** {lead.message}  \n**Try:** {lead.suggestion}",
        icon=":material/crisis_alert:" if critical else ":material/warning:")
    if len(alarms) > 1:
        with st.expander(f"All {len(alarms)} alarms for {run_name}"):
            st.markdown("\n".join(f"- **{a.kind.replace('_', ' ')}** (started step {a.step_started}, detected "
                                   f"step {a.step_detected}): {a.message} *Try:* {a.suggestion}" for a in alarms))


VERDICT_STYLE = {"healthy": (st.success, ":material/check_circle:"),
                 "dimensional_collapse": (st.warning, ":material/warning:"),
                 "complete_collapse": (st.error, ":material/crisis_alert:")}


def verdict_card(run_name: str, table: pd.DataFrame, step: int) -> None:
    """The collapse verdict at `step` from the run table: verdict, explanation, what to try."""
    rows = table[table["step"] == step]
    if rows.empty:
        st.info(f"{run_name}: no snapshot at step {step}.")
        return
    row = rows.iloc[-1]
    verdict = str(row.get("verdict") or "unknown")
    show, icon = VERDICT_STYLE.get(verdict, (st.info, ":material/info:"))
    tips = row.get("suggestions")
    tips = list(tips) if isinstance(tips, (list, tuple)) or hasattr(tips, "tolist") else []
    text = f"**{run_name}, step {step}.** {row.get('explanation') or verdict.replace('_', ' ')}"
    if tips:
        text += "\n\n**What to try:**\n" + "\n".join(f"- {t}" for t in tips)
    show(text, icon=icon)


def embedding_dims(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """{run: embedding width d} from the run tables' `dim` column, where known."""
    return {n: int(t["dim"].iloc[-1]) for n, t in tables.items() if "dim" in t and pd.notna(t["dim"].iloc[-1])}


def chart_grid(figs: list, key: str, columns: int = 2) -> None:
    """Plotly figures in a grid, skipping those with nothing to draw (metrics this run never logged)."""
    figs = [f for f in figs if len(f.data)]
    for i in range(0, len(figs), columns):
        for col, fig in zip(st.columns(columns), figs[i:i + columns]):
            col.plotly_chart(fig, theme="streamlit", key=f"{key}-{i}-{fig.layout.title.text}")


# -- cached loaders --------------------------------------------------------------------------------

@dataclass
class _Handle:
    run: Run
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(max_entries=1024, show_spinner=False)
def _handle(root: str, name: str) -> _Handle:
    return _Handle(open_run(name, root=root))


def run_handle(name: str) -> Run:
    return _handle(runs_root(), name).run


def metrics(name: str) -> pd.DataFrame:
    """The run's metrics; a rerun reads only the bytes appended since the last one (sessions share it)."""
    handle = _handle(runs_root(), name)
    with handle.lock:
        return handle.run.metrics()


def snapshot_key(run: Run) -> tuple[int, ...]:
    """Committed snapshots never change, so the list of steps identifies everything derived from them."""
    return tuple(run.snapshot_steps())


@st.cache_data(max_entries=512, show_spinner=False)
def _run_table(root: str, name: str, steps: tuple[int, ...]) -> pd.DataFrame:
    from diagnostics import cache
    return cache.cached_run_table(open_run(name, root=root))


def run_table(name: str) -> pd.DataFrame:
    """One row per snapshot step (alignment, uniformity, effective rank, verdict, ...) from the disk cache."""
    run = run_handle(name)
    return _run_table(runs_root(), name, snapshot_key(run))


def snapshot_table(name: str) -> pd.DataFrame:
    """`run_table`, or an empty table (just `step`) while the run has no snapshot yet."""
    run = run_handle(name)
    return run_table(name) if run.snapshot_steps() else pd.DataFrame(columns=["step"])


def snapshot_tables(names: list[str], needs: str) -> dict[str, pd.DataFrame]:
    """The per-snapshot tables of the runs that have snapshots (error cards for the broken ones); a page with
    none of them says what it `needs` and stops."""
    tables = {n: t for n in names if (t := safe(n, snapshot_table, n)) is not None and len(t)}
    if not tables:
        st.info(f"None of these runs has a snapshot yet: {needs}")
        st.stop()
    return tables


def alarms(table: pd.DataFrame) -> list:
    from diagnostics.collapse import trend_alarms
    return trend_alarms(table) if len(table) else []


@st.cache_data(max_entries=256, show_spinner=False)
def _summary(root: str, name: str, step: int, sidecar: tuple) -> dict:
    from diagnostics import cache
    return cache.cached_summary(open_run(name, root=root), step)


def _sidecar(name: str, step: int) -> tuple:
    run = run_handle(name)
    return run.storage.identity(run.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(int(step)) + ".json"))


def summary(name: str, step: int) -> dict:
    return _summary(runs_root(), name, int(step), _sidecar(name, step))


@st.cache_data(max_entries=32, show_spinner="Measuring similarities…")
def _similarity(root: str, name: str, step: int, sidecar: tuple, temperature: float):
    from diagnostics import geometry
    snap = open_run(name, root=root).snapshot(step, fields=("positives",))
    if snap.positives is None:
        raise ValueError(f"{name}: the snapshot at step {step} has no positives (the second view), "
                         "so positive and negative pairs cannot be told apart")
    return geometry.similarity_stats(snap.embeddings, snap.positives, temperature=temperature)


def similarity(name: str, step: int, temperature: float):
    """geometry.similarity_stats of (embeddings, positives) at one snapshot, τ-scaled."""
    return _similarity(runs_root(), name, int(step), _sidecar(name, step), float(temperature))


# A column with more distinct values than this is continuous (a score, an id): not a grouping.
MAX_GROUPS = 50


@st.cache_data(max_entries=32, show_spinner=False)
def _snapshot_columns(root: str, name: str, step: int, sidecar: tuple) -> list[str]:
    run = open_run(name, root=root)
    fields = run.snapshot_info(step)["fields"]
    meta = [k[len(layout.METADATA_PREFIX):] for k in fields if k.startswith(layout.METADATA_PREFIX)]
    snap = run.snapshot(step, fields=("labels", *meta))
    groupable = [c for c in meta if snap.metadata[c].nunique(dropna=False) <= MAX_GROUPS]
    return (["label"] if snap.labels is not None else []) + groupable


def group_columns(name: str, step: int) -> list[str]:
    """What the geometry breakdown can group by: "label" and the metadata columns with few distinct values."""
    return _snapshot_columns(runs_root(), name, int(step), _sidecar(name, step))


def hardest_negatives(name: str, step: int, temperature: float, rows: int = 15) -> pd.DataFrame:
    """The anchors with the most similar negatives: anchor, its hardest negative, both cosines, labels."""
    stats = similarity(name, step, temperature)
    hard = stats.hardest_negative_cos[:, 0]
    order = hard.argsort()[::-1][:rows]
    table = pd.DataFrame({"anchor": order, "hardest negative": stats.hardest_negative_index[order, 0],
                          "negative cos": hard[order], "positive cos": stats.positive_cos[order],
                          "positive rank": stats.positive_rank[order]})
    labels = run_handle(name).snapshot(step, fields=("labels",)).labels
    if labels is not None:
        table["anchor label"] = labels[table["anchor"]]
        table["negative label"] = labels[table["hardest negative"]]
        table["same label"] = table["anchor label"] == table["negative label"]
    return table


@st.cache_data(max_entries=32, show_spinner="Breaking down by group…")
def _breakdown(root: str, name: str, step: int, column: str, sidecar: tuple) -> pd.DataFrame:
    from diagnostics import geometry
    fields = ("positives", "labels") if column == "label" else ("positives", column)
    snap = open_run(name, root=root).snapshot(step, fields=fields)
    groups = snap.labels if column == "label" else snap.metadata[column].to_numpy()
    if groups is None:
        raise ValueError(f"{name}: the snapshot at step {step} has no {column!r} to group by")
    return geometry.breakdown(snap.embeddings, snap.positives, groups)


def breakdown(name: str, step: int, column: str) -> pd.DataFrame:
    """Alignment and uniformity per group of `column` ("label" or a metadata column) at one snapshot."""
    return _breakdown(runs_root(), name, int(step), column, _sidecar(name, step))


def temperature_at(name: str, step: int) -> float | None:
    """τ in force at `step` (the logged `temperature`, else the config's), via summary.temperature_for."""
    from diagnostics.summary import temperature_for
    handle = _handle(runs_root(), name)
    with handle.lock:
        return temperature_for(handle.run, int(step))


@st.cache_data(max_entries=512, show_spinner=False)
def _spectrum(root: str, name: str, step: int, sidecar: tuple):
    from diagnostics.collapse import singular_spectrum
    return singular_spectrum(open_run(name, root=root).snapshot(step, fields=()).embeddings)


def spectra(name: str, steps: list[int], most: int = 10) -> dict:
    """{step: singular values of the centred embeddings} at up to `most` steps spread over `steps`."""
    if len(steps) > most:
        steps = [steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)]
    return {s: _spectrum(runs_root(), name, int(s), _sidecar(name, s)) for s in steps}


# -- Home ------------------------------------------------------------------------------------------

OVERVIEW_COLUMNS = ["run", "status", "heartbeat", "last step", "alignment", "uniformity", "effective rank",
                    "verdict", "description", "notes"]


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)  # a heartbeat written after `now` was taken
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def overview_row(run: Run, now: float | None = None) -> dict:
    """One Home row. Raises RunFormatError (naming the file) when the run cannot be read."""
    info = run.info
    now = now or time.time()
    status = run.status
    frame = metrics(run.name)
    row = {"run": run.name, "status": status,
           "heartbeat": _age(run.heartbeat_age(now)) if status in ("running", "stalled") else
           time.strftime("%Y-%m-%d %H:%M", time.localtime(float(info.get("heartbeat", 0)))),
           "last step": int(frame["step"].iloc[-1]) if len(frame) else None,
           "description": run.description, "notes": run.notes.strip()}
    steps = run.snapshot_steps()
    if steps:  # the latest snapshot's summary only: one cache entry per run, not the whole history
        last = summary(run.name, steps[-1])
        row.update({"alignment": last.get("alignment"), "uniformity": last.get("uniformity"),
                    "effective rank": last.get("effective_rank"),
                    "verdict": str(last.get("verdict", "")).replace("_", " ")})
    else:
        row["verdict"] = "no snapshot yet"
    return row


def overview(root: str | None = None) -> tuple[pd.DataFrame, dict[str, Exception]]:
    """Every run under the root as a Home row, and the runs that failed with their error."""
    rows, errors = [], {}
    now = time.time()
    for run in list_runs(root or runs_root()):
        try:
            rows.append(overview_row(run, now))
        except Exception as e:  # noqa: BLE001 - listed in the error cards instead
            if type(e).__module__.startswith("streamlit"):
                raise
            errors[run.name] = e
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS), errors
