"""Report: pick runs and sections, download one offline HTML file; the same as `python -m diagnostics report`.
Layout only (dashboard/review.py). Below the button, a preview of what the file will contain."""
import streamlit as st

from dashboard import review

st.title("Report")
names = review.require_runs()
st.caption("One self-contained HTML file (works offline): the runs picked in the sidebar and the sections "
           "picked here. Metrics and smoothing are the ones chosen on Compare. Same runs in, same file out.")
sections = review.sections_control()
datas = review.load_runs(names, with_snapshots=bool(review.SNAPSHOT_SECTIONS & set(sections)))
if not datas:
    st.stop()
with st.expander("Metrics and smoothing", expanded="metrics" in sections):
    metrics = review.metrics_control(datas)
    smoothing = review.smoothing_control()
review.report_download([d.name for d in datas], sections, metrics, smoothing)

st.divider()
if "overview" in sections:
    st.subheader("Runs")
    st.dataframe(review.frame_of(datas), hide_index=True, key="overview")
if "metrics" in sections:
    st.subheader("Metrics")
    review.metric_overlays(datas, metrics, "step", smoothing)
    review.final_table(datas, metrics)
if "geometry" in sections:
    st.subheader("Alignment and uniformity")
    review.align_uniform(datas)
if "ablation" in sections:
    st.subheader("Does the contrastive term help the generator?")
    review.ablation(datas)
if "config" in sections:
    st.subheader("Config differences")
    review.config_diff(datas)
if "verdicts" in sections:
    st.subheader("Verdicts")
    review.verdicts(datas)
if "notes" in sections:
    st.subheader("Team notes")
    review.notes_view(datas)
