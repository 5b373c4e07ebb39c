"""Collapse: how many directions the embeddings use over training, before and after the projection head, and
the verdict in plain words."""

import streamlit as st

from dashboard import cards, chart, data, picker
from dashboard.text import plot, plot_keys
from diagnostics.draw import figures
from diagnostics.draw.chart_style import step_grid
from diagnostics.judge import advice

st.title("Collapse")
names = picker.active_runs()
if not names:
    picker.wait_for_first_run()
tables = picker.runs_with_snapshots(names, "collapse is measured on the embeddings `log_snapshot` writes.")

focus = st.selectbox("Run", list(tables), key="collapse_run", bind="query-params", persist_state="session")
table = tables[focus]
steps = [int(s) for s in table["step"]]
step = st.select_slider(
    "Verdict at step", options=steps, value=steps[-1], key="collapse_step", bind="query-params", persist_state="session"
)
cards.safe(focus, lambda: data.run(focus).config)  # a refused config.json: its card, once
found = cards.safe(focus, cards.alarms, focus, table) or []
cards.verdict_card(focus, table, step, found)  # the ladder's verdict: contracting, collapsing…
chart.show(
    figures.alarm_timeline_figure(
        {plot(focus): found},
        {plot(focus): advice.run_events(data.config(focus))},
        {plot(focus): steps[-1]},
        {plot(focus): data.last_step(focus)},
    ),
    key="alarm_timeline",
)

spectra, _ = cards.safe(focus, data.spectra, focus, steps) or ({}, [])
if spectra:
    st.plotly_chart(figures.spectrum_figure(spectra, run=plot(focus)), theme="streamlit", key="spectrum")
    st.caption(
        "Singular values of the centred embeddings, divided by the largest. A slow decay uses many "
        "directions; a cliff is dimensional collapse (Jing et al. 2022); one value left is complete collapse."
    )
shown = plot_keys(tables)
# One figure of two linked panels, one above the other, with one legend of runs: side by side, each with its
# own legend, the plots were ~60 px wide at 1100 px and the std title ran out of its cell.
chart.show(
    step_grid(
        [figures.effective_rank_figure(shown, dims=cards.embedding_dims(shown)), figures.std_figure(shown)],
        columns=1,
        row_height=300,
    ),
    theme="streamlit",
    key="collapse",
)
st.caption(
    "Effective rank: exp of the entropy of the normalised singular values (RankMe). If the embeddings "
    "(after the head) fall while the features (before it) hold, the head is collapsing. The std of the "
    "ℓ2-normalised embeddings is 1/√d when they spread over the sphere and 0 when they collapse to a point."
)
