"""Geometry: where the runs sit on Wang & Isola's alignment–uniformity plane, and the similarity structure the
contrastive loss sees at one snapshot."""

import streamlit as st

from dashboard import cards, data, pending, picker, table_view
from dashboard.text import md, plot, plot_keys
from diagnostics.draw import figures
from diagnostics.draw.chart_style import title_name

st.title("Geometry")
names = picker.active_runs()
if not names:
    picker.wait_for_first_run()
tables = picker.runs_with_snapshots(names, "the geometry needs `log_snapshot` (embeddings and positives).")

plane_slot = st.container()  # the plane, drawn once the step chosen below is known
st.header("At one snapshot")
left, mid, right = st.columns([1, 1, 2])
focus = left.selectbox("Run", list(tables), key="geometry_run", bind="query-params", persist_state="session")
others = mid.multiselect(
    "Side by side with (up to 3)",
    [n for n in tables if n != focus],
    max_selections=3,
    key="geometry_with",
    bind="query-params",
    persist_state="session",
)
steps = [int(s) for s in tables[focus]["step"]]
step = right.select_slider(
    "Snapshot step", options=steps, value=steps[-1], key="geometry_step", bind="query-params", persist_state="session"
)
shown_runs = [focus] + [n for n in others if n in tables]
scaled = st.toggle(
    "Temperature-scaled (cos/τ, the logits the softmax sees)",
    key="geometry_scaled",
    bind="query-params",
    persist_state="session",
)
panels = []
for name in shown_runs:  # another run without a snapshot at this step shows its nearest one, and says so
    at = picker.nearest_step([int(s) for s in tables[name]["step"]], step)
    tau = cards.safe(name, data.temperature_at, name, at) or 0.1
    panels.append((name, at, tau, cards.safe(name, data.record, name, at)))
for col, (name, at, tau, rec) in zip(st.columns(len(panels)), panels):
    with col:
        numbers = rec.numbers if rec is not None else {}
        if rec is not None and rec.error:
            st.warning(f"Step {at} of {md(name)} could not be fully measured: {md(rec.error)}")
        if numbers.get("roc_auc") is None:
            st.caption(
                f"{md(name)}: no similarity structure at step {at}: the snapshot stores no positives "
                "(the second view), or it is not measured yet."
            )
            continue
        wide = len(panels) == 1
        negatives = rec.array("negative_cos_sample")
        cols = st.columns(3 if wide else 2)  # five in a row cut "3.101 nats" to "3.101…" at 1100 px
        # Labels of at most ~18 characters: a fifth of the page at 1100 px cut longer ones ("Top-1 (positive ranked f…")
        cols[0].metric(
            "AUC (pos. vs neg.)" if wide else "AUC", f"{numbers['roc_auc']:.3f}", help="P(positive cos > negative cos)"
        )
        cols[1].metric(
            "Top-1",
            f"{numbers['top1']:.1%}" if wide else f"{numbers['top1']:.0%}",
            help="the positive ranked first among all candidates",
        )
        more = st.columns(3 if wide else 2)
        if numbers.get("infonce") is not None:
            unit = " nats" if wide else ""  # a quarter-width column fits the number only; the help names the unit
            more[0].metric(
                f"InfoNCE at τ = {tau:g}" if wide else "InfoNCE",
                f"{numbers['infonce']:.3f}{unit}",
                help=f"nats, at τ = {tau:g}",
            )
            more[1].metric(
                "Bound log N − loss" if wide else "log N − loss", f"{numbers['infonce_bound']:.3f}{unit}", help="nats"
            )
        if wide:
            more[2].metric(
                "Negatives" + (" (sampled)" if numbers.get("negatives_sampled") else ""),
                f"{numbers.get('negative_pairs') or (0 if negatives is None else len(negatives)):,}",
            )
        nearest = "" if at == step else f" (nearest to {step})"
        label = plot(name) if wide else title_name(plot(name), 26)
        st.plotly_chart(
            figures.similarity_histogram_figure(
                data.histograms(rec, tau),
                scaled=scaled,
                temperature=tau,
                height=400 if wide else 360,
                narrow=not wide,
                x_range=None if scaled else (-1.0, 1.0),
                title_suffix=f" — {label}, step {at}{nearest}",
            ),
            theme="streamlit",
            key=f"histograms-{name}",
        )
# A run none of whose snapshots could be measured (every one unreadable) has records with errors and no
# alignment or uniformity column: the plane draws the others, its warning above says why.
plane = {n: t for n, t in tables.items() if {"uniformity", "alignment"} <= set(t.columns)}
with plane_slot:
    st.plotly_chart(figures.align_uniform_plane(plot_keys(plane), highlight_step=step), theme="streamlit", key="plane")
    st.caption(
        "x: uniformity loss, y: alignment loss (Wang & Isola 2020). Each line is a run's trajectory "
        "through its snapshots, in the run's colour; the markers are coloured by step (colour bar), the "
        "open circle is the first snapshot, the diamond the latest and the red ring the step chosen "
        "below. Lower-left is better: positives close together, everything else spread over the sphere."
    )

rec = panels[0][3]
if rec is not None and (rec.numbers or {}).get("roc_auc") is not None:
    st.subheader(f"Hardest negatives — {md(focus)}", anchor=False)  # no slug of a run name in an href
    st.caption(
        "The anchors whose most similar non-partner sits closest. Same-label pairs among them are "
        "probably false negatives: the loss pushes apart what belongs together."
    )
    hard = cards.safe(focus, data.hardest_negatives, focus, rec)
    if hard is not None:
        st.dataframe(hard, hide_index=True, key="hardest")

columns = cards.safe(focus, data.group_columns, focus, step) or []
if columns:
    st.subheader("Breakdown")
    by = st.selectbox("Group by", columns, key="geometry_by", bind="query-params", persist_state="session")
    table = cards.safe(focus, data.breakdown, focus, step, by)
    if table is None and data.record(focus, step) is None:
        pending.wait(
            f"The breakdown by {md(by)} arrives with the snapshot's record.",
            lambda: data.record(focus, step) is not None,
            key="breakdown",
        )
    elif table is not None:
        shown = table.assign(group=table["group"].map(plot))
        st.plotly_chart(figures.breakdown_figure(shown, plot(by)), theme="streamlit", key="breakdown")
        st.dataframe(table_view.styled(table_view.readable(table)), hide_index=True, key="breakdown_table")
else:
    st.caption("This snapshot has no labels or metadata to break the geometry down by.")
