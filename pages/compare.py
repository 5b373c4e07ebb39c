"""Compare: several runs overlaid, and the one question the ablation answers. Layout only (dashboard/review.py)."""

import streamlit as st

from dashboard import chart, review
from diagnostics.draw import report

st.title("Compare runs")
names = review.require_runs()
datas = review.load_runs(names)
if not datas:
    st.stop()

st.subheader("Does the contrastive term help the generator?")
review.ablation(datas)

st.subheader("Metrics")
left, mid = st.columns([1, 2])
with left:
    x = review.x_axis_control()
with mid:
    smoothing = review.smoothing_control()
metrics = review.metrics_control(datas)
review.metric_overlays(datas, metrics, x, smoothing)

st.subheader("Final values (last and best)")
review.final_table(datas, metrics)

st.subheader("Alignment and uniformity")
review.align_uniform(datas)

st.subheader("Alarms and config events")
chart.show(report.alarm_timeline(datas), key="alarm_timeline")

st.subheader("Config differences")
review.config_diff(datas)

st.subheader("Team notes")
review.notes_editor(datas)
