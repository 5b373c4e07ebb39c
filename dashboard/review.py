"""Widgets and cached loaders for the Review pages (Compare, Report).

Every setting is a widget bound to a URL query parameter and kept for the session, so a pasted link reopens
the same view and the Report page reuses what was chosen on Compare (same keys on both pages).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from diagnostics.draw import compare, final_values, report
from diagnostics.draw.chart_style import step_grid, title_name
from diagnostics.draw.report import RunData

from . import chart, data, picker, table_view
from .cards import safe
from .text import md

SMOOTHING_KEY, X_AXIS_KEY, METRICS_KEY, SECTIONS_KEY = "smoothing", "x_axis", "metrics", "sections"
FINAL_VALUE_KEY, GROUP_KEY, NO_GROUP = "final_value", "compare_group", "(no grouping)"
# The option text is what the URL carries (?x_axis=wall+time), so the options are the labels themselves.
X_AXES = {"step": "step", "wall time": "wall_time"}
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default
SNAPSHOT_SECTIONS = set(report.SNAPSHOT_SECTIONS)


# -- loading ------------------------------------------------------------------------------------------
def load_run(name: str, with_snapshots: bool = True) -> RunData | None:
    """One run through the dashboard's data layer; a broken part shows an error card."""
    run = safe(name, data.run, name)
    if run is None:
        return None
    found = RunData(name=name)
    for attr, read in (
        ("config", lambda: run.config),
        ("description", lambda: run.description),
        ("status", lambda: run.status),
        ("metrics", lambda: data.metrics(name)),
        ("notes", lambda: run.notes),
    ):
        value = safe(name, read)
        if value is not None:
            setattr(found, attr, value)
    steps = safe(name, run.snapshot_steps) or []
    if with_snapshots and steps:
        table, _ = safe(name, data.run_table, name) or (None, [])
        found.snapshots = table if table is not None and len(table) else None
        found.summary, found.summary_step = safe(name, data.summary, name, steps[-1]), steps[-1]
    return found


def load_runs(names: list[str], with_snapshots: bool = True) -> list[RunData]:
    return [d for d in (load_run(n, with_snapshots) for n in names) if d is not None]


def require_runs() -> list[str]:
    """The selected runs (or, with none selected, the first few under the root, as on the other pages)."""
    names = picker.active_runs()
    if not names:
        picker.wait_for_first_run()
    return names


# -- settings (bound to the URL) --------------------------------------------------------------------------
def x_axis_control() -> str:
    label = st.radio(
        "x-axis", list(X_AXES), horizontal=True, key=X_AXIS_KEY, bind="query-params", persist_state="session"
    )
    return X_AXES.get(label, "step")


def smoothing_control() -> float:
    return float(
        st.slider(
            "Smoothing (EMA weight, as in TensorBoard)",
            0.0,
            0.99,
            DEFAULT_SMOOTHING,
            0.01,
            key=SMOOTHING_KEY,
            bind="query-params",
            persist_state="session",
        )
    )


def metrics_control(datas: list[RunData]) -> list[str]:
    available = compare.metric_columns({d.name: d.metrics for d in datas})
    return st.multiselect(
        "Metrics",
        available,
        default=report.report_metrics(datas),
        key=METRICS_KEY,
        bind="query-params",
        persist_state="session",
    )


def sections_control() -> list[str]:
    chosen = st.pills(
        "Sections",
        list(report.SECTIONS),
        selection_mode="multi",
        default=list(report.SECTIONS),
        format_func=report.SECTION_TITLES.get,
        key=SECTIONS_KEY,
        bind="query-params",
        persist_state="session",
    )
    return [s for s in report.SECTIONS if s in (chosen or [])]


# -- views ------------------------------------------------------------------------------------------------
def metric_overlays(datas: list[RunData], metrics: list[str], x: str, smoothing: float) -> None:
    """The chosen metrics as one figure: panels sharing the x-axis (zoom one, all follow), one legend."""
    if not metrics:
        return
    frames = {d.name: d.metrics for d in datas}
    panels = [compare.metric_overlay_figure(frames, metric, x, smoothing) for metric in metrics]
    chart.show(
        step_grid(panels, x_title="step" if x == "step" else "wall time (s since start)", row_height=280),
        key="overlays",
    )


def align_uniform(datas: list[RunData]) -> None:
    tables = {d.name: d.snapshots for d in datas if d.snapshots is not None}
    if not tables:
        st.caption("No snapshots yet: alignment and uniformity are measured on snapshots.")
        return
    st.plotly_chart(compare.align_uniform_figure(tables), key="align_uniform")


def final_table(datas: list[RunData], metrics: list[str]) -> None:
    """One row per run (diagnostics.draw.final_values): each chosen metric's last or best value and the latest
    snapshot's numbers, the run's colour beside its name; sortable by any column. Grouped by a config key,
    one row per value with the mean ± std across its runs (Home's grouping: seeds of one setting)."""
    from diagnostics.draw.chart_style import run_colours

    from . import overview

    left, right = st.columns([1, 2], vertical_alignment="bottom")
    which = (
        left.segmented_control(
            "Value",
            ["last", "best"],
            default="last",
            key=FINAL_VALUE_KEY,
            bind="query-params",
            persist_state="session",
            help="best: the minimum of losses and errors, the maximum of accuracies and PSNR; "
            "metrics without a best (lr, λ, τ) show their last value",
        )
        or "last"
    )
    names = [d.name for d in datas]
    configs = overview.config_table(names)
    group = right.selectbox(
        "Group by",
        [NO_GROUP, *configs.columns],
        key=GROUP_KEY,
        bind="query-params",
        persist_state="session",
        help="One row per value: mean ± std across its runs",
    )
    judged = report.latest_verdicts(
        datas
    )  # the run's verdict (diagnostics.judge.judgement), as Home and Collapse say it
    table = final_values.key_first(
        final_values.run_rows(
            {d.name: d.metrics for d in datas},
            metrics,
            {d.name: {**(d.summary or {}), **judged.get(d.name, {})} for d in datas},
            {d.name: d.status for d in datas},
            which,
        )
    )
    colours = run_colours(names)
    numbers = [c for c in table.columns if c not in ("run", "status", "last step", "verdict")]
    table.insert(0, "colour", "●")  # the run's colour on every chart, as a swatch
    formats = {
        "last step": "{:.0f}",
        **{c: "{:.1%}" if c in final_values.FRACTION_COLUMNS else "{:.4g}" for c in numbers},
    }  # a metric a run never logged reads "—"
    styled = table_view.styled(table, formats).apply(
        lambda col: [f"color: {colours[n]}" for n in table["run"]], subset=["colour"]
    )
    st.dataframe(
        styled,
        hide_index=True,
        key="final_metrics",
        column_config={
            "colour": st.column_config.TextColumn("", width=28, help="the run's colour in every chart"),
            "run": st.column_config.TextColumn("run", pinned=True),
            "verdict": st.column_config.TextColumn("verdict", help="the latest snapshot's verdict"),
            "last step": st.column_config.NumberColumn("last step"),
            **{c: st.column_config.NumberColumn(c) for c in numbers},
        },
    )
    if group != NO_GROUP:
        st.caption(f"Grouped by {md(group)}: mean ± sample std across the runs of each value.")
        grouped = overview.grouped(table, configs, group, metrics=numbers)
        first = [group, "runs", *(c for c in numbers if c in grouped.columns)]  # the numbers before the names
        st.dataframe(
            grouped[first + [c for c in grouped.columns if c not in first]], hide_index=True, key="final_grouped"
        )


def config_diff(datas: list[RunData]) -> None:
    diff = compare.config_diff({d.name: d.config for d in datas})
    if diff.empty:
        st.caption("The configs do not differ." if len(datas) > 1 else "One run: nothing to diff.")
    else:
        # One row per run, one column per differing key: runs never scroll out of sight (the index is pinned)
        st.dataframe(diff.T.rename_axis("run"), key="config_diff")


def ablation(datas: list[RunData]) -> None:
    table = report.ablation(datas)
    st.info(compare.ablation_sentence(table), icon="⚖️")
    chart.show(compare.ablation_figure(table), key="ablation")
    with st.expander("The numbers"):
        st.dataframe(
            table,
            hide_index=True,
            key="ablation_table",
            column_config={
                "lambda": st.column_config.NumberColumn("λ"),
                "recon_mse": st.column_config.NumberColumn("final recon MSE", format="%.4g"),
                "knn_accuracy": st.column_config.NumberColumn("kNN accuracy", format="percent"),
            },
        )


def snapshot_figures(datas: list[RunData], section: str) -> None:
    """The Report preview of the per-run snapshot sections: latest-snapshot histograms or spectra, two
    per row (the projections are drawn into the file only: the Projections page is their live view)."""
    from diagnostics.draw import figures

    from .text import plot

    shown = [d for d in datas if d.summary_step is not None]
    if section == "projections":
        st.caption(
            "In the file: a PCA scatter of each run's latest snapshot, coloured by label "
            f"({report.PROJECTION_POINTS:,} points at most per run)."
        )
        return
    cols = st.columns(2)
    for i, d in enumerate(shown):
        if section == "similarity":
            rec = safe(d.name, data.record, d.name, d.summary_step)
            hists = data.histograms(rec, None) if rec is not None else {}
            fig = (
                figures.similarity_histogram_figure(  # narrow: the title is the run and step, as in the file
                    hists,
                    x_range=(-1.0, 1.0),
                    height=340,
                    narrow=True,
                    title_suffix=f"{title_name(plot(d.name))}, step {d.summary_step}",
                )
                if hists
                else None
            )
        else:
            steps = [int(s) for s in d.snapshots["step"]] if d.snapshots is not None else []
            spectra, _ = (
                (safe(d.name, data.spectra, d.name, steps, report.SPECTRUM_STEPS) or ({}, [])) if steps else ({}, [])
            )
            fig = figures.spectrum_figure(spectra, run=title_name(plot(d.name), 32), narrow=True) if spectra else None
        if fig is not None:
            cols[i % 2].plotly_chart(fig, key=f"{section}:{d.name}")


def verdicts(datas: list[RunData]) -> None:
    """Each run's verdict at its latest snapshot as the Collapse page and the report judge it
    (report.latest_verdicts: the ladder over its history, what to try from its alarms)."""
    judged = report.latest_verdicts(datas)
    for d in datas:
        with st.container(border=True):
            s = judged.get(d.name) or d.summary
            if not s:
                st.markdown(
                    f"**{md(d.name)}**: "
                    + (
                        "no snapshot yet."
                        if d.summary_step is None
                        else f"step {d.summary_step} is still being measured."
                    )
                )
                continue
            verdict = str(s.get("verdict", "")).replace("_", " ")
            st.markdown(f"**{md(d.name)}** · step {d.summary_step} · **{md(verdict)}**")
            st.markdown(md(s.get("explanation", "")))
            for tip in s.get("suggestions") or []:
                st.markdown(f"- {md(tip)}")


def notes_view(datas: list[RunData]) -> None:
    for d in datas:
        with st.container(border=True):
            st.markdown(f"**{md(d.name)}**")
            st.text(d.notes) if d.notes.strip() else st.caption("No notes.")


def notes_editor(datas: list[RunData]) -> None:
    """One form per run: a text area and a save button; saved beside the run (notes.md), shown everywhere."""
    cols = st.columns(min(len(datas), 3) or 1)
    for i, d in enumerate(datas):
        with cols[i % len(cols)], st.form(key=f"notes-form:{d.name}", border=True):
            text = st.text_area(
                f"Notes · {md(d.name)}",
                value=d.notes,
                key=f"notes:{d.name}",
                height=120,
                placeholder="What did this run show? What should we try next?",
            )
            if st.form_submit_button("Save notes"):
                run = data.run(d.name)
                safe(d.name, run.save_notes, text)
                if safe(d.name, lambda: run.notes) == text:  # noqa: B023 (called at once)
                    d.notes = text
                    st.toast(f"Notes saved for {md(d.name)}", icon="📝")


def report_html(names: list[str], sections: list[str], metrics: list[str], smoothing: float) -> str:
    """The report file from the records the worker has written: compute=False, so a page never computes one."""
    return report.build_report(
        [data.run(n) for n in names], sections, metrics=metrics, smoothing=smoothing, compute=False
    )


def report_download(names: list[str], sections: list[str], metrics: list[str], smoothing: float) -> None:
    """The download builds the report only when clicked (it inlines ~4 MB of plotly.js)."""

    def build() -> str:
        return report_html(names, sections, metrics, smoothing)

    st.download_button(
        "Download report (HTML)",
        data=build,
        file_name="contrastscope-report.html",
        mime="text/html",
        icon=":material/download:",
        type="primary",
        on_click="ignore",
        key="download_report",
        disabled=not sections,
    )


def frame_of(datas: list[RunData]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"run": d.name, "status": d.status, "λ": compare.contrastive_weight(d.config), "description": d.description}
            for d in datas
        ]
    )
