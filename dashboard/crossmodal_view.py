"""The Cross-modal page's widgets: modality gap and cross-modal recall over snapshots (read from the records),
a generator's gen/* metrics, one joint projection of both modalities with selected pairs linked, and the
latest generated-sample grid.

Nothing here runs the N×N retrieval pass: those numbers come from the snapshot records the worker writes.
The one thing computed in the page is a PCA of both modalities' stacked unit rows (a d×d eigenproblem,
linear in the rows), over at most MAX_PAIRS_SHOWN pairs, cached per snapshot.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from diagnostics.draw import crossmodal_figures as xf
from diagnostics.draw import figures
from diagnostics.draw.chart_style import narrow
from runformat import layout
from runformat.reader import Snapshot

from . import data
from .cards import chart_grid, safe
from .pending import wait_for_records
from .text import md, plot, plot_keys

GAP, RECALL = "modality_gap", tuple(f"cross_modal_recall@{k}" for k in (1, 5, 10))
DIRECTIONS = ("cross_modal_recall@1_a_to_b", "cross_modal_recall@1_b_to_a")
GEN_METRICS = {
    "gen/conditional_accuracy": ("Generation: conditional accuracy", "fraction the judge reads as the caption's digit"),
    "gen/diversity": ("Generation: diversity", "per-class feature variance"),
    "gen/frechet_distance": ("Generation: Fréchet distance", "judge feature space (lower is closer)"),
}
# The scatter sends every shown point's coordinates and hover text to the browser: 10k pairs (20k points,
# 0.9 MB of JSON, built in ~0.6 s) draw in well under a second. The PCA is fitted on the same pairs.
MAX_PAIRS_SHOWN = 10_000
SELECTION_KEY, PAIRS_KEY = "crossmodal_joint", "crossmodal_pairs"


# -- which runs ------------------------------------------------------------------------------------


def paired_runs(names: list[str]) -> dict[str, tuple[str, str]]:
    """{run: (its two modality names)} for the runs whose latest snapshot stores `paired_embeddings`
    (error cards for runs that cannot be read)."""
    out = {}
    for name in names:
        steps = safe(name, data.committed_steps, name)
        info = safe(name, data.run(name).snapshot_info, steps[-1]) if steps else None
        if info is not None and layout.PAIRED_FIELD in info["fields"]:
            out[name] = Snapshot(step=steps[-1], embeddings=np.empty((0, 0)), info=info).modality_names
    return out


def shared_names(paired: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The modality names when every run agrees on them, else the neutral ("a", "b")."""
    names = set(paired.values())
    return next(iter(names)) if len(names) == 1 else ("a", "b")


# -- over training ---------------------------------------------------------------------------------


def measured_tables(paired: dict) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """({run: its run table's rows that carry cross-modal numbers}, the runs with none yet); a progress line
    while the worker measures pending snapshots."""
    tables, missing, pending = {}, [], {}
    for name in paired:
        found = safe(name, data.run_table, name)
        if found is None:
            continue
        table, waiting = found
        if waiting:
            pending[name] = waiting
        rows = table[table[GAP].notna()] if GAP in table else table.iloc[:0]
        if len(rows):
            tables[name] = rows
        else:
            missing.append(name)
    wait_for_records(pending)
    return tables, missing


def numbers_over_training(paired: dict) -> None:
    tables, missing = measured_tables(paired)
    if missing:
        st.info(
            f"Modality gap and cross-modal recall are not measured yet for {', '.join(md(n) for n in missing)}"
            ". The background worker writes them into each snapshot's record (retrieval is an N×N pass, "
            "which no page runs); they appear here as soon as it has.",
            icon=":material/hourglass_top:",
        )
    if not tables:
        return
    a, b = (plot(n) for n in shared_names(paired))
    shown = plot_keys(tables)
    chart_grid(
        [
            narrow(f)
            for f in [
                figures.snapshot_metric_figure(
                    shown, [GAP], "Modality gap", "‖centroid of one − centroid of other‖", y_min=0
                ),
                figures.snapshot_metric_figure(
                    shown,
                    list(RECALL),
                    "Cross-modal recall@k (mean of both directions)",
                    "fraction whose partner ranks ≤ k",
                    labels={c: c.split("_")[-1] for c in RECALL},
                    y_min=0,
                ),
                figures.snapshot_metric_figure(
                    shown,
                    list(DIRECTIONS),
                    "Recall@1 by direction",
                    "fraction",
                    labels={DIRECTIONS[0]: f"{a} → {b}", DIRECTIONS[1]: f"{b} → {a}"},
                ),
                figures.snapshot_metric_figure(
                    shown,
                    ["uniformity_a", "uniformity_b"],
                    "Uniformity per modality",
                    "log E exp(−2‖x−y‖²)",
                    labels={"uniformity_a": a, "uniformity_b": b},
                ),
                figures.snapshot_metric_figure(
                    shown,
                    ["effective_rank_a", "effective_rank_b"],
                    "Effective rank per modality",
                    "exp(entropy of singular values)",
                    labels={"effective_rank_a": a, "effective_rank_b": b},
                ),
            ]
        ],
        key="crossmodal",
    )
    st.caption(
        "Modality gap: distance between the two modalities' centroids on the unit sphere (Liang et al. "
        "2022), 0 when they share one, up to 2. Recall@k: the fraction of rows whose partner in the other "
        "modality is among its k most similar, averaged over both directions."
    )


def generation_metrics(names: list[str]) -> None:
    """The gen/* metrics a conditional generator logs at evaluation steps, one chart each."""
    frames = {}
    for name in names:
        frame = safe(name, data.metrics, name)
        if frame is not None and any(c in frame for c in GEN_METRICS):
            frames[name] = frame
    if not frames:
        st.caption(
            "None of these runs logs gen/* metrics (a conditional generator logs them at evaluation "
            "steps: conditional accuracy, diversity, Fréchet distance)."
        )
        return
    shown = plot_keys(frames)
    chart_grid(
        [narrow(figures.snapshot_metric_figure(shown, [c], title, y)) for c, (title, y) in GEN_METRICS.items()],
        key="crossmodal_gen",
    )  # two a row: the run legend sits right of each plot


# -- one snapshot ----------------------------------------------------------------------------------


def shown_rows(n: int) -> np.ndarray:
    """The rows drawn: all of them up to MAX_PAIRS_SHOWN, else a seeded sample (the same at every step)."""
    if n <= MAX_PAIRS_SHOWN:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_PAIRS_SHOWN, replace=False))


@st.cache_data(max_entries=8, show_spinner="Projecting both modalities…")
def _joint_layout(root: str, name: str, step: int, sidecar: tuple) -> tuple[np.ndarray, np.ndarray]:
    # Here rather than in data.py only while that file is being reworked; keyed like its loaders.
    snap = data.snapshot(name, step)
    rows = shown_rows(snap.n)
    # float32 first: numpy has no float16 arithmetic of its own, and stored snapshots are float16
    return xf.joint_projection(
        np.asarray(snap.embeddings[rows], dtype=np.float32),
        np.asarray(snap.paired_embeddings[rows], dtype=np.float32),
        method="pca",
    )


def joint_layout(name: str, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(m×2, m×2) for the m = len(shown_rows(N)) rows drawn: a PCA of both modalities' unit rows stacked
    (2m×d), so the gap shows as a shift. Fitting on the drawn sample keeps it exact for what is drawn and
    bounded at any N."""
    return _joint_layout(data.runs_root(), name, int(step), data._sidecar(name, step))


def hover_text(snap, rows: np.ndarray) -> list[str]:
    """Per shown row: its label and caption when the snapshot has them (escaped by the figure)."""
    parts = []
    if snap.labels is not None:
        parts.append([f"label {v}" for v in np.asarray(snap.labels)[rows]])
    if "caption" in snap.metadata:
        parts.append([str(v) for v in snap.metadata["caption"].to_numpy()[rows]])
    return [" · ".join(p) for p in zip(*parts)] if parts else [f"row {i}" for i in rows]


def _remember_selection(name: str, step: int) -> None:
    """on_select: keep the selected rows (positions among the shown ones) for this run and step. A callback,
    not the chart's return value: the chart redrawn with the links is a new element whose selection starts
    empty, and only a real selection change should drop the links."""
    try:
        points = st.session_state[SELECTION_KEY].selection.points
    except (KeyError, AttributeError):
        points = []
    positions = sorted({int(p["point_index"]) for p in points if p.get("curve_number") in (0, 1)})
    st.session_state[PAIRS_KEY] = {"run": name, "step": int(step), "positions": positions}


def selected_positions(name: str, step: int) -> list[int]:
    kept = st.session_state.get(PAIRS_KEY) or {}
    return list(kept.get("positions") or []) if (kept.get("run"), kept.get("step")) == (name, int(step)) else []


def snapshot_numbers(name: str, step: int) -> None:
    """The step's modality gap and recall@k as tiles, when its record carries them."""
    found = safe(name, data.run_table, name)
    rows = found[0] if found is not None else pd.DataFrame()
    rows = rows[rows["step"] == int(step)] if GAP in rows else rows.iloc[:0]
    if rows.empty or pd.isna(rows[GAP].iloc[-1]):
        return
    row = rows.iloc[-1]
    cols = st.columns(1 + len(RECALL))
    cols[0].metric("Modality gap", f"{row[GAP]:.3f}", help="‖mean of one modality's unit vectors − the other's‖")
    for col, key in zip(cols[1:], RECALL):
        col.metric(
            key.replace("cross_modal_recall", "Recall"),
            f"{row[key]:.1%}",
            help="Rows whose partner is among the k most similar of the other modality, both directions",
        )


def joint_projection(name: str, step: int) -> None:
    snap = data.snapshot(name, step)
    if snap.paired_embeddings is None:
        st.info(f"Step {step} of {md(name)} stores no second modality.")
        return
    xy_a, xy_b = joint_layout(name, step)
    rows = shown_rows(snap.n)
    hover = hover_text(snap, rows)
    selected = selected_positions(name, step)
    title = f"PCA of both modalities · {name} · step {step}"
    fig = xf.joint_projection_figure(xy_a, xy_b, snap.modality_names, hover, hover, selected, title)
    st.plotly_chart(
        fig,
        key=SELECTION_KEY,
        on_select=partial(_remember_selection, name, step),
        selection_mode=("box", "lasso"),
        config={"scrollZoom": True},
    )
    shown = f"{len(rows):,} pairs" + (f" (a seeded sample of {snap.n:,})" if len(rows) < snap.n else "")
    st.caption(
        f"{shown}; one PCA of both modalities' unit vectors, so a modality gap shows as two separated clouds. "
        "Select points (box or lasso) to link each to its partner in the other modality."
        + (f" {len(selected):,} linked." if selected else "")
    )
    if selected:  # the redrawn chart holds no selection of its own, so a double-click has nothing to clear
        st.button("Clear the links", key="crossmodal_clear", on_click=st.session_state.pop, args=(PAIRS_KEY, None))


def sample_grid(name: str) -> None:
    grid = safe(name, data.run(name).generated_samples)
    if grid is None:
        st.caption(f"{md(name)} has no generated-sample grid (generated.npy): only a conditional generator writes one.")
        return
    rows, cols = grid_labels(name, grid)
    fig = xf.sample_grid_figure(grid, f"Generated samples · {name}", rows, cols, scale=8)
    st.plotly_chart(fig, key=f"samples-{name}", theme=None)


def grid_labels(name: str, grid: np.ndarray) -> tuple[list[str] | None, list[str] | None]:
    """The caption words of the cvae trainer's grid (docs/run-format.md, generated.npy), else numbers."""
    from runformat import caption_words

    model = data.config(name).get("model")
    if not (isinstance(model, dict) and model.get("kind") == "cvae" and grid.shape[:2] == caption_words.grid_shape()):
        return None, None
    return caption_words.grid_labels()
