"""Geometry: where the runs sit on Wang & Isola's alignment–uniformity plane, and the similarity structure the
contrastive loss sees at one snapshot."""
import streamlit as st

from dashboard import cards, data, picker
from dashboard.text import plot, plot_keys
from diagnostics import figures

st.title("Geometry")
names = picker.active_runs()
if not names:
    picker.wait_for_first_run()
tables = picker.runs_with_snapshots(names, "the geometry needs `log_snapshot` (embeddings and positives).")

st.plotly_chart(figures.align_uniform_plane(plot_keys(tables)), theme="streamlit", key="plane")
st.caption("x: uniformity loss, y: alignment loss (Wang & Isola 2020). Each line is a run's trajectory through "
           "its snapshots; the large marker is the latest. Lower-left is better: positives close together, "
           "everything else spread over the sphere.")

st.header("At one snapshot")
left, right = st.columns([1, 3])
focus = left.selectbox("Run", list(tables), key="geometry_run", bind="query-params", persist_state="session")
steps = [int(s) for s in tables[focus]["step"]]
step = right.select_slider("Snapshot step", options=steps, value=steps[-1], key="geometry_step",
                           bind="query-params", persist_state="session")
tau = cards.safe(focus, data.temperature_at, focus, step) or 0.1
stats = cards.safe(focus, data.similarity, focus, step, tau)
if stats is not None:
    cols = st.columns(5)
    cols[0].metric("Positive vs negative AUC", f"{stats.roc_auc:.3f}", help="P(positive cos > negative cos)")
    cols[1].metric("Top-1 (positive ranked first)", f"{stats.top1_accuracy:.1%}")
    cols[2].metric(f"InfoNCE at τ = {tau:g}", f"{stats.infonce:.3f} nats")
    cols[3].metric("Bound log N − loss", f"{stats.infonce_bound:.3f} nats")
    cols[4].metric("Negative pairs" + (" (sampled)" if stats.negatives_sampled else ""), f"{len(stats.negative_cos):,}")
    scaled = st.toggle("Temperature-scaled (cos/τ, the logits the softmax sees)", key="geometry_scaled",
                       bind="query-params", persist_state="session")
    st.plotly_chart(figures.similarity_histogram_figure(stats.histograms, scaled=scaled, temperature=tau,
                                                        title_suffix=f" — {plot(focus)}, step {step}"),
                    theme="streamlit", key="histograms")
    st.subheader("Hardest negatives")
    st.caption("The anchors whose most similar non-partner sits closest. Same-label pairs among them are "
               "probably false negatives: the loss pushes apart what belongs together.")
    hard = cards.safe(focus, data.hardest_negatives, focus, step, tau)
    if hard is not None:
        st.dataframe(hard, hide_index=True, key="hardest")
else:
    st.caption("No similarity structure at this snapshot: it stores no positives (the second view), or it "
               "could not be read.")

columns = cards.safe(focus, data.group_columns, focus, step) or []
if columns:
    st.subheader("Breakdown")
    by = st.selectbox("Group by", columns, key="geometry_by", bind="query-params", persist_state="session")
    table = cards.safe(focus, data.breakdown, focus, step, by)
    if table is not None:
        shown = table.assign(group=table["group"].map(plot))
        st.plotly_chart(figures.breakdown_figure(shown, plot(by)), theme="streamlit", key="breakdown")
        st.dataframe(table, hide_index=True, key="breakdown_table")
else:
    st.caption("This snapshot has no labels or metadata to break the geometry down by.")
