"""Report: pick runs and sections, download one offline HTML file; the same as `python -m diagnostics report`.
Layout only (dashboard/review.py). Below the button, a preview of what the file will contain."""

import streamlit as st

from dashboard import chart, review
from diagnostics.draw import report
from diagnostics.draw.report import SECTION_TITLES, SECTIONS

st.title("Report")
names = review.require_runs()
st.caption(
    "One self-contained HTML file (works offline): the runs picked in the sidebar and the sections "
    "picked here. Metrics and smoothing are the ones chosen on Compare. Same runs in, same file out."
)
sections = review.sections_control()
datas = review.load_runs(names, with_snapshots=bool(review.SNAPSHOT_SECTIONS & set(sections)))
if not datas:
    st.stop()
with st.expander("Metrics and smoothing", expanded="metrics" in sections):
    metrics = review.metrics_control(datas)
    smoothing = review.smoothing_control()
review.report_download([d.name for d in datas], sections, metrics, smoothing)

st.divider()
preview = {
    "overview": lambda: st.dataframe(review.frame_of(datas), hide_index=True, key="overview"),
    "metrics": lambda: (review.metric_overlays(datas, metrics, "step", smoothing), review.final_table(datas, metrics)),
    "geometry": lambda: review.align_uniform(datas),
    "similarity": lambda: review.snapshot_figures(datas, "similarity"),
    "spectra": lambda: review.snapshot_figures(datas, "spectra"),
    "projections": lambda: review.snapshot_figures(datas, "projections"),
    "ablation": lambda: review.ablation(datas),
    "config": lambda: review.config_diff(datas),
    "verdicts": lambda: review.verdicts(datas),
    "alarms": lambda: chart.show(report.alarm_timeline(datas), key="alarms"),
    "notes": lambda: review.notes_view(datas),
}
for section in SECTIONS:  # the HTML file's order and headings
    if section in sections:
        st.subheader(SECTION_TITLES[section])
        preview[section]()
