"""Live: training curves that refresh themselves, reading only what the writer appended since the last look."""
import time

import streamlit as st

from dashboard import common
from diagnostics import advice, figures

st.title("Live")
left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
every = left.select_slider("Refresh every (seconds)", options=[1, 2, 5, 10, 30, 60], value=5, key="live_every",
                           bind="query-params", persist_state="session")
paused = middle.toggle("Pause", key="live_paused", bind="query-params", persist_state="session")
log_loss = right.toggle("Log-scale losses", value=True, key="live_log", bind="query-params",
                        persist_state="session")
names = common.active_runs()
if not names:
    st.info(f"No runs under `{common.runs_root()}`.")
    st.markdown(common.MAKE_A_RUN)
    st.stop()


@st.fragment(run_every=None if paused else every)
def live_view() -> None:
    frames = {n: f for n in names if (f := common.safe(n, common.metrics, n)) is not None}
    tables = {n: t for n in names if (t := common.safe(n, common.snapshot_table, n)) is not None}
    for name, table in tables.items():
        common.alarm_banner(name, common.safe(name, common.alarms, table) or [])
    st.caption(" · ".join(f"**{n}**: step {int(f['step'].iloc[-1]) if len(f) else '–'}, {len(f)} records"
                          for n, f in frames.items())
               + f" — read {time.strftime('%H:%M:%S')}" + (" (paused)" if paused else f", every {every} s"))
    onsets = {n: common.safe(n, common.alarms, t) or [] for n, t in tables.items()}
    events = {n: advice.run_events(common.run_handle(n).config, f) for n, f in frames.items()}
    common.chart_grid(figures.add_markers([
        figures.loss_figure(frames, log_y=log_loss),
        figures.loss_ratio_figure(frames),
        figures.lines(frames, ["temperature"], "Temperature τ", "τ (logit scale = 1/τ)"),
        figures.lines(frames, ["lr"], "Learning rate", "learning rate"),
        figures.lines(frames, ["grad_norm"], "Gradient norm", "‖∇θ‖₂ (before clipping)"),
        figures.batch_cosine_figure(frames),
        figures.lines(frames, ["batch/top1"], "Positive top-1 accuracy in the batch", "fraction",
                      labels={"batch/top1": "top-1"}),
        figures.snapshot_metric_figure(tables, ["alignment"], "Alignment over snapshots",
                                       "E‖x̂−x̂⁺‖² (lower is better)"),
        figures.snapshot_metric_figure(tables, ["uniformity"], "Uniformity over snapshots",
                                       "log E exp(−2‖x̂−ŷ‖²) (nats, lower is better)"),
        figures.snapshot_metric_figure(tables, ["effective_rank"], "Effective rank over snapshots",
                                       "effective rank (dimensions)"),
    ], onsets, events), key="live")


live_view()
