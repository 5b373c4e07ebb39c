"""Live: training curves that refresh themselves, reading only what the writer appended since the last look,
with each run's status and heartbeat age (a killed run turns "stalled" by itself)."""

import time

import streamlit as st

from dashboard import cards, chart, data, metric_roles, overview, pending, picker
from dashboard.downsample import rows_to_draw
from dashboard.text import md, plot_keys
from diagnostics.draw import figures
from diagnostics.draw.chart_style import step_grid
from diagnostics.judge import advice

st.title("Live")
left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
every = left.select_slider(
    "Refresh every (seconds)",
    options=[1, 2, 5, 10, 30, 60],
    value=5,
    key="live_every",
    bind="query-params",
    persist_state="session",
)
paused = middle.toggle("Pause", key="live_paused", bind="query-params", persist_state="session")
log_loss = right.toggle("Log-scale losses", value=True, key="live_log", bind="query-params", persist_state="session")
shown = data.run_names()
names = picker.active_runs()
if not names:
    picker.wait_for_first_run()


def status_line(name: str, frame) -> str | None:
    """ "run: step 120, 121 metric lines, running, heartbeat 3 s ago" (Markdown-safe), read now."""
    run = cards.safe(name, data.run, name)
    status = cards.safe(name, lambda: run.status) if run is not None else None
    if status is None:
        return None
    step = int(frame["step"].iloc[-1]) if frame is not None and len(frame) else "–"
    lines = len(frame) if frame is not None else 0
    beat = overview.heartbeat(run, status, time.time())
    error = metric_roles.error_text(run) if status == "crashed" else None
    return (
        f"**{md(name)}**: step {step}, {lines} metric lines, **{status}**, "
        + (f"heartbeat {beat}" if status in ("running", "stalled") else f"ended {beat}")
        + (f": {md(error)}" if error else "")
    )


@st.fragment(run_every=None if paused else every)
def live_view() -> None:
    if not picker.selected_runs():  # showing the first runs under the root: follow new ones
        picker.rerun_when_runs_change(shown)
    frames = {n: f for n in names if (f := cards.safe(n, data.metrics, n)) is not None}
    for name in frames:
        cards.skipped_lines_warning(name, data.run(name).skipped_metric_lines)
        cards.skipped_keys_warning(name, data.run(name).metric_keys)
        cards.safe(name, lambda: data.run(name).config)  # a refused config.json: its card, once  # noqa: B023
    found = {n: t for n in names if (t := cards.safe(n, data.run_table, n)) is not None}
    tables = {n: table for n, (table, _) in found.items()}
    if any(waiting for _, waiting in found.values()):  # this fragment reruns anyway: no fragment of its own
        pending.show_progress("Snapshots being measured; their numbers appear here when ready.")
    for name, table in tables.items():
        cards.alarm_banner(name, cards.safe(name, cards.alarms, name, table) or [])
    lines = [line for n in names if (line := status_line(n, frames.get(n))) is not None]
    st.caption(
        "  \n".join(lines)
        + f"  \nRead {time.strftime('%H:%M:%S')}"
        + (" (paused)" if paused else f", every {every} s")
        + (  # what stalled means, said only beside a stalled run
            ". Stalled: no heartbeat for longer than the writer's stall_after_s (killed or hung)."
            if any(", **stalled**, " in line for line in lines)
            else "."
        )
    )
    onsets = plot_keys({n: cards.safe(n, cards.alarms, n, t) or [] for n, t in tables.items()})
    events = plot_keys({n: advice.run_events(data.config(n), f) for n, f in frames.items()})
    picked = st.multiselect(
        "More metrics",
        metric_roles.pickable(frames),
        key="live_metrics",
        bind="query-params",
        persist_state="session",
        placeholder="add any logged metric",
        help="Loss, its parts, lr, τ and gradient norm are charted under their usual "
        "names (docs/integrations.md); pick any other metric a run logs here.",
    )
    frames = {n: rows_to_draw(f) for n, f in metric_roles.charted_frames(frames).items()}
    frames, tables = plot_keys(frames), plot_keys(tables)
    panels = figures.live_panels(frames, tables, log_loss=log_loss) + metric_roles.picked_panels(frames, picked)
    chart.show(step_grid(figures.add_markers(panels, onsets, events)), theme="streamlit", key="live-grid")
    st.caption(
        "One colour per run on every page; line styles name the quantities in each panel's title. "
        "The panels share the step axis: zoom one and all follow; double-click to reset."
    )


live_view()
