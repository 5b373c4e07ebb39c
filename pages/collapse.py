"""Collapse: how many directions the embeddings use over training, before and after the projection head, and
the verdict in plain words."""
import streamlit as st

from dashboard import common
from diagnostics import advice, alarms, figures

st.title("Collapse")
names = common.active_runs()
tables = common.snapshot_tables(names, "collapse is measured on the embeddings `log_snapshot` writes.")

focus = st.selectbox("Run", list(tables), key="collapse_run", bind="query-params", persist_state="session")
table = tables[focus]
steps = [int(s) for s in table["step"]]
step = st.select_slider("Verdict at step", options=steps, value=steps[-1], key="collapse_step",
                        bind="query-params", persist_state="session")
common.verdict_card(focus, alarms.with_run_verdicts(table), step)  # the run's ladder: contracting, collapsing…
st.plotly_chart(figures.alarm_timeline_figure({focus: common.safe(focus, common.alarms, table) or []},
                                              {focus: advice.run_events(common.run_handle(focus).config)},
                                              {focus: steps[-1]}), key="alarm_timeline")

spectra = common.safe(focus, common.spectra, focus, steps)
if spectra:
    st.plotly_chart(figures.spectrum_figure(spectra, run=focus), theme="streamlit", key="spectrum")
    st.caption("Singular values of the centred embeddings, divided by the largest. A slow decay uses many "
               "directions; a cliff is dimensional collapse (Jing et al. 2022); one value left is complete collapse.")
common.chart_grid([figures.effective_rank_figure(tables, dims=common.embedding_dims(tables)),
                   figures.std_figure(tables)], key="collapse")
st.caption("Effective rank: exp of the entropy of the normalised singular values (RankMe). If the embeddings "
           "(after the head) fall while the features (before it) hold, the head is collapsing. The std of the "
           "ℓ2-normalised embeddings is 1/√d when they spread over the sphere and 0 when they collapse to a point.")
