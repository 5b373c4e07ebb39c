"""The Projections page's widgets, loaders and plotly figures. The math lives in `diagnostics`.

Every setting is a widget bound to a URL query parameter (keys `proj_*`), so a pasted link reopens the same
projection. Layouts come from `diagnostics.cache.cached_projection` (stored beside the run): PCA is computed
on sight; t-SNE/UMAP only after "Compute", with a progress bar, and from the cache without asking afterwards.

Thumbnails: plotly's hover labels cannot show images, so hover shows index, label and metadata, and the
images appear in a gallery of the selected points (box, lasso or click) beside the table of their
positives, nearest neighbours and hardest negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import common

Q = dict(bind="query-params", persist_state="session")
METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
SOURCES = {"embeddings": "Embeddings", "features": "Features"}  # projection-head output / backbone
VIEWS = ("Snapshot", "Through training", "Side by side")
LABEL, MOVED, KEPT = "label", "moved since previous snapshot", "neighbours kept"
NEIGHBOURS_K = 10           # the neighbourhood whose survival "neighbours kept" counts
DETAIL_K = 6                # neighbours / hardest negatives shown for the focused point
MAX_CATEGORIES = 24         # above this a categorical column is coloured by code on a continuous scale
ANIMATION_POINTS = 1_000_000  # N × steps sent to the browser for the play-through; above it, a subsample
SVG_POINTS = 3_000          # below this the animation uses SVG markers, which can ease between frames
GALLERY_MAX = 48
PALETTE = px.colors.qualitative.D3 + px.colors.qualitative.Set2 + px.colors.qualitative.Pastel1


@dataclass(frozen=True)
class Settings:
    run: str
    step: int
    steps: tuple[int, ...]
    method: str
    source: str
    seed: int
    params: tuple[tuple[str, float], ...]
    colour: str
    view: str

    @property
    def previous_step(self) -> int | None:
        i = self.steps.index(self.step)
        return self.steps[i - 1] if i > 0 else None


@dataclass
class Colouring:
    name: str
    values: np.ndarray          # (N,) what colours each point
    categorical: bool
    categories: list | None = None


# -- loaders ------------------------------------------------------------------------------------------

@st.cache_resource(max_entries=6, show_spinner=False)
def load_snapshot(root: str, run: str, step: int):
    """A committed snapshot never changes, so it is read once per server (arrays stay memory-mapped)."""
    return common.get_run(run).snapshot(step)


def snapshot(run: str, step: int):
    return load_snapshot(common.runs_root(), run, step)


def snapshot_steps(run: str) -> list[int]:
    return common.get_run(run).snapshot_steps()


def _projection_kwargs(s: Settings, step: int, init_from_step: int | None) -> dict:
    return dict(step=step, method=s.method, source=s.source, seed=s.seed,
                params=dict(s.params) or None, init_from_step=init_from_step)


def is_cached(run: str, s: Settings, step: int, init_from_step: int | None = None) -> bool:
    from diagnostics import cache
    return cache.is_projection_cached(common.get_run(run), **_projection_kwargs(s, step, init_from_step))


@st.cache_data(max_entries=64, show_spinner=False)
def _load_layout(root: str, run: str, step: int, method: str, source: str, seed: int,
                 params: tuple, init_from_step: int | None) -> np.ndarray:
    from diagnostics import cache
    return cache.cached_projection(common.get_run(run), step, method, source, seed, dict(params) or None,
                                   init_from_step)


def compute_layout(run: str, s: Settings, step: int, init_from_step: int | None = None,
                   progress=None) -> np.ndarray:
    """The layout from memory, the run's disk cache, or computed now (reporting to `progress`)."""
    if progress is None:
        return _load_layout(common.runs_root(), run, step, s.method, s.source, s.seed, s.params, init_from_step)
    from diagnostics import cache
    return cache.cached_projection(common.get_run(run), progress=progress,
                                   **_projection_kwargs(s, step, init_from_step))


def chain_init(steps: list[int], step: int) -> int | None:
    """Aligned layouts start from the previous snapshot's layout (t-SNE/UMAP) or are rotated onto it (PCA)."""
    i = steps.index(step)
    return steps[i - 1] if i > 0 else None


def umap_warming() -> str | None:
    """The warm-up's status line while UMAP's numba code is still compiling, else None."""
    try:
        from diagnostics import warmup
    except ImportError:
        return None
    return None if warmup.umap_warm() else warmup.umap_warmup_status()


@st.cache_data(max_entries=16, show_spinner="Comparing neighbourhoods…")
def _movement(root: str, run: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    from diagnostics import probes
    z0, z1 = _vectors(load_snapshot(root, run, step0), source), _vectors(load_snapshot(root, run, step1), source)
    return (np.asarray(probes.displacement(z0, z1), dtype=np.float32),
            np.asarray(probes.neighbour_retention(z0, z1, NEIGHBOURS_K), dtype=np.float32))


def movement(run: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per point: how far it moved between two snapshots, and the fraction of its k neighbours it kept."""
    return _movement(common.runs_root(), run, step0, step1, source)


@st.cache_resource(max_entries=4, show_spinner="Finding hardest negatives…")
def _similarity(root: str, run: str, step: int):
    from diagnostics import geometry
    snap = load_snapshot(root, run, step)
    if snap.positives is None:
        return None
    return geometry.similarity_stats(snap.embeddings, snap.positives, k=DETAIL_K)


def _vectors(snap, source: str) -> np.ndarray:
    z = snap.features if source == "features" else snap.embeddings
    if z is None:
        raise ValueError(f"source: this snapshot has no {source}")
    return z


# -- widgets -------------------------------------------------------------------------------------------

def settings_controls(runs: list[str]) -> Settings | None:
    """The page's settings row. None (with a message shown) when there is nothing to project."""
    top = st.columns([3, 7])
    run = top[0].selectbox("Run", runs, key="proj_run", **Q)
    steps = common.safe(run, snapshot_steps, run)
    if not steps:
        if steps is not None:
            st.info(f"**{run}** has no snapshots yet. The trainer writes them every `snapshot_every` steps.")
        return None
    if len(steps) > 1:
        step = top[1].select_slider("Snapshot step", steps, value=steps[-1], key="proj_step", **Q)
    else:
        step = steps[0]
        top[1].markdown(f"Snapshot step **{step}** (the only one)")
    snap = common.safe(run, snapshot, run, step)
    if snap is None:
        return None
    mid = st.columns([3, 3, 3, 5])
    method = mid[0].segmented_control("Method", list(METHODS), format_func=METHODS.get, default="pca",
                                      required=True, key="proj_method", **Q)
    sources = [k for k in SOURCES if k == "embeddings" or snap.features is not None]
    source = mid[1].segmented_control("Vectors", sources, format_func=SOURCES.get, default="embeddings",
                                      required=True, key="proj_source",
                                      help="Embeddings: the projection head's output, what the loss sees. "
                                           "Features: the backbone's output, what downstream tasks use.", **Q)
    colours = colour_options(snap, has_previous=steps.index(step) > 0)
    colour = mid[2].selectbox("Colour by", colours, key="proj_colour", **Q)
    view = mid[3].segmented_control("View", VIEWS, default=VIEWS[0], required=True, key="proj_view", **Q)
    row = st.columns([2, 2, 2, 6])
    seed = int(row[0].number_input("Seed", 0, 2**31 - 1, 0, key="proj_seed", **Q))
    params: dict[str, float] = {}
    if method == "tsne":
        params["perplexity"] = float(row[1].number_input("Perplexity", 2.0, 500.0, 30.0, 5.0,
                                                         key="proj_perplexity", **Q))
    elif method == "umap":
        params["n_neighbors"] = int(row[1].number_input("Neighbours", 2, 200, 15, key="proj_neighbors", **Q))
        params["min_dist"] = float(row[2].number_input("Min. distance", 0.0, 1.0, 0.1, 0.05,
                                                       key="proj_min_dist", **Q))
    return Settings(run=run, step=int(step), steps=tuple(steps), method=method or "pca",
                    source=source or "embeddings", seed=seed, params=tuple(sorted(params.items())),
                    colour=colour or LABEL, view=view or VIEWS[0])


def show_movement(s: Settings, snap) -> bool:
    """Whether to measure movement since the previous snapshot: two k-NN searches over all N points,
    so on by default only up to 20k points (the colour options "moved"/"kept" switch it on regardless)."""
    if s.colour in (MOVED, KEPT):
        return True
    return st.toggle(f"Measure movement since step {s.previous_step}", value=snap.n <= 20_000,
                     key="proj_movement", **Q)


def colour_options(snap, has_previous: bool) -> list[str]:
    options = [LABEL] if snap.labels is not None else []
    options += [str(c) for c in snap.metadata.columns]
    options += [MOVED, KEPT] if has_previous else []
    return options or ["none"]


def layout_or_compute(run: str, s: Settings, step: int | None = None, init_from_step: int | None = None,
                      key: str = "proj_compute") -> np.ndarray | None:
    """The layout when PCA or already cached; otherwise a Compute button (and None until it is pressed)."""
    step = s.step if step is None else step
    try:
        if s.method == "pca" or is_cached(run, s, step, init_from_step):
            return compute_layout(run, s, step, init_from_step)
        if s.method == "umap" and (warming := umap_warming()):
            st.info(f"{warming}. A UMAP started now compiles first.", icon="⏳")
        label = f"Compute {METHODS[s.method]} of step {step}" + (" (aligned)" if init_from_step is not None else "")
        if not st.button(label, key=key, type="primary"):
            st.caption(f"{METHODS[s.method]} is not cached for these settings. It is computed once, on all "
                       f"{snapshot(run, step).n:,} points, and stored beside the run.")
            return None
        bar = st.progress(0.0, text=f"{METHODS[s.method]}: starting")
        layout = compute_layout(run, s, step, init_from_step,
                                progress=lambda f, msg: bar.progress(float(min(max(f, 0.0), 1.0)), text=msg))
        bar.empty()
        return layout
    except (ValueError, OSError, KeyError) as e:
        common.error_card(run, e)
        return None


def chained_layouts(run: str, s: Settings) -> list[np.ndarray] | None:
    """Aligned layouts of every snapshot step, each started from (t-SNE/UMAP) and rotated onto (all) the
    one before, so a walk through training is one steady frame; computed on request for t-SNE/UMAP."""
    steps = list(s.steps)
    last = (steps[-1], chain_init(steps, steps[-1]))
    try:
        if s.method != "pca" and not is_cached(run, s, *last):
            if s.method == "umap" and (warming := umap_warming()):
                st.info(f"{warming}. A UMAP started now compiles first.", icon="⏳")
            st.caption(f"Aligned {METHODS[s.method]} layouts of the {len(steps)} snapshots are not all cached: "
                       "each starts from the previous step's layout so points do not jump between frames.")
            if not st.button(f"Compute {METHODS[s.method]} for all {len(steps)} steps", key="proj_compute_all",
                             type="primary"):
                return None
            bar = st.progress(0.0, text="starting")
            compute_layout(run, s, *last, progress=lambda f, msg: bar.progress(float(min(max(f, 0), 1)), text=msg))
            bar.empty()
        return [compute_layout(run, s, t, chain_init(steps, t)) for t in steps]
    except (ValueError, OSError, KeyError) as e:
        common.error_card(run, e)
        return None


def selected_rows(event, trace_rows: list[np.ndarray]) -> np.ndarray:
    """Sample indices of the points selected in a chart built by `scatter_figure`."""
    try:
        points = event.selection.points
    except AttributeError:
        return np.zeros(0, dtype=np.int64)
    rows = [int(trace_rows[p["curve_number"]][p["point_index"]]) for p in points
            if p.get("curve_number", 0) < len(trace_rows) and "point_index" in p]
    return np.unique(np.asarray(rows, dtype=np.int64))


# -- colours and hover ---------------------------------------------------------------------------------

def colouring(snap, name: str, moved: np.ndarray | None = None, kept: np.ndarray | None = None) -> Colouring:
    if name == LABEL and snap.labels is not None:
        values = np.asarray(snap.labels)
    elif name == MOVED and moved is not None:
        return Colouring(MOVED, moved, False)
    elif name == KEPT and kept is not None:
        return Colouring(f"{KEPT} (of {NEIGHBOURS_K})", kept, False)
    elif name in snap.metadata.columns:
        values = snap.metadata[name].to_numpy()
    else:
        return Colouring("none", np.zeros(snap.n, dtype=np.int64), True, [0])
    uniques = pd.unique(values)
    continuous = values.dtype.kind == "f" or (values.dtype.kind in "iu" and len(uniques) > MAX_CATEGORIES)
    if continuous:
        return Colouring(name, values.astype(np.float64), False)
    if len(uniques) > MAX_CATEGORIES:  # many strings: colour by sorted code on a continuous scale
        categories = sorted(uniques, key=str)
        codes = pd.Categorical(values, categories=categories).codes
        return Colouring(f"{name} (code)", codes.astype(np.float64), False)
    return Colouring(name, values, True, sorted(uniques, key=lambda v: (str(type(v)), v)))


def hover_data(snap, extra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(customdata N×m numbers, text N strings or None, hovertemplate): index, label, metadata, extras."""
    numbers = {"#": np.arange(snap.n)}
    if snap.labels is not None:
        numbers["label"] = np.asarray(snap.labels)
    texts = []
    for col in snap.metadata.columns:
        v = snap.metadata[col].to_numpy()
        if v.dtype.kind in "fiub":
            numbers[str(col)] = v
        else:
            texts.append(str(col))
    numbers.update(extra or {})
    customdata = np.column_stack([np.asarray(v, dtype=np.float64) for v in numbers.values()])
    lines = [f"<b>#%{{customdata[0]:d}}</b>"]
    for j, name in enumerate(list(numbers)[1:], start=1):
        fmt = ":d" if np.asarray(numbers[name]).dtype.kind in "iub" else ":.3g"
        lines.append(f"{name} %{{customdata[{j}]{fmt}}}")
    text = None
    if texts:
        cols = {c: snap.metadata[c].astype(str).to_numpy() for c in texts}
        text = np.asarray([" · ".join(f"{c} {cols[c][i]}" for c in texts) for i in range(snap.n)])
        lines.append("%{text}")
    return customdata, text, "<br>".join(lines) + "<extra></extra>"


# -- figures ------------------------------------------------------------------------------------------

def marker_size(n: int) -> float:
    return 7.0 if n <= 2_000 else 4.5 if n <= 20_000 else 3.0 if n <= 60_000 else 2.2


def _groups(c: Colouring, n: int) -> list[tuple[str, np.ndarray, dict]]:
    """(trace name, rows, marker) per trace: one trace per category, or one continuous trace."""
    if not c.categorical:
        return [(c.name, np.arange(n), dict(color=c.values, colorscale="Viridis", showscale=True,
                                            colorbar=dict(title=dict(text=c.name, side="right"), thickness=12)))]
    groups = []
    for k, cat in enumerate(c.categories):
        rows = np.flatnonzero(c.values == cat)
        groups.append((str(cat), rows, dict(color=PALETTE[k % len(PALETTE)])))
    return groups


def scatter_figure(xy: np.ndarray, c: Colouring, hover: tuple, title: str = "",
                   height: int = 620) -> tuple[go.Figure, list[np.ndarray]]:
    """WebGL scatter of all N points; returns the figure and each trace's sample indices."""
    n = xy.shape[0]
    customdata, text, template = hover
    fig, trace_rows = go.Figure(), []
    for name, rows, marker in _groups(c, n):
        fig.add_trace(go.Scattergl(
            x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=name, customdata=customdata[rows],
            text=None if text is None else text[rows], hovertemplate=template,
            marker=dict(size=marker_size(n), opacity=0.8, line=dict(width=0), **marker)))
        trace_rows.append(rows)
    _style(fig, title, height, c)
    return fig, trace_rows


def _style(fig: go.Figure, title: str, height: int, c: Colouring) -> None:
    fig.update_layout(title=dict(text=title, x=0.01), height=height, dragmode="lasso",
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), uirevision="keep",
                      legend=dict(title=dict(text=c.name), itemsizing="constant"),
                      xaxis=dict(showticklabels=False, title=None, zeroline=False),
                      yaxis=dict(showticklabels=False, title=None, zeroline=False, scaleanchor="x"))


def animated_figure(layouts: list[np.ndarray], steps: list[int], c: Colouring, hover: tuple, start: int,
                    seed: int = 0, height: int = 640) -> tuple[go.Figure, int]:
    """Plotly frames of the aligned layouts with Play/Pause and a step slider, all in the browser.

    Returns the figure and how many points it shows (a seeded subsample when N × steps is too large
    to ship to the browser; the static views always show every point)."""
    n = layouts[0].shape[0]
    keep = np.arange(n)
    if n * len(steps) > ANIMATION_POINTS:
        m = max(1000, ANIMATION_POINTS // len(steps))
        keep = np.sort(np.random.default_rng(seed).choice(n, size=min(m, n), replace=False))
    sub = Colouring(c.name, c.values[keep], c.categorical, c.categories)
    customdata, text, template = hover
    hover = (customdata[keep], None if text is None else text[keep], template)
    Trace = go.Scatter if len(keep) <= SVG_POINTS else go.Scattergl
    groups = _groups(sub, len(keep))

    def traces(xy: np.ndarray, full: bool) -> list:
        out = []
        for name, rows, marker in groups:
            extra = dict(mode="markers", name=name, customdata=hover[0][rows], hovertemplate=template,
                         text=None if hover[1] is None else hover[1][rows],
                         marker=dict(size=marker_size(len(keep)), opacity=0.8, line=dict(width=0), **marker))
            out.append(Trace(x=xy[keep][rows, 0], y=xy[keep][rows, 1], **(extra if full else {})))
        return out

    all_xy = np.concatenate([layout[keep] for layout in layouts])
    finite = all_xy[np.isfinite(all_xy).all(axis=1)]
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    pad = 0.04 * (hi - lo + 1e-9)
    smooth = Trace is go.Scatter
    fig = go.Figure(data=traces(layouts[start], True),
                    frames=[go.Frame(name=str(t), data=traces(layout, False)) for t, layout in zip(steps, layouts)])
    play = dict(frame=dict(duration=700, redraw=not smooth), transition=dict(duration=450 if smooth else 0,
                easing="cubic-in-out"), fromcurrent=False, mode="immediate")  # a walk from the first step
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=not smooth), transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.02, xanchor="left", yanchor="top",
                          pad=dict(t=0, r=10), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=start, x=0.2, len=0.8, y=-0.02, yanchor="top", pad=dict(t=0),
                      currentvalue=dict(prefix="step ", visible=True),
                      steps=[dict(label=str(t), method="animate", args=[[str(t)], jump]) for t in steps])])
    _style(fig, "", height, c)
    fig.update_layout(dragmode="pan", margin=dict(l=10, r=10, t=10, b=80),
                      xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], autorange=False),
                      yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], autorange=False))
    return fig, len(keep)


def histogram_figure(values: np.ndarray, title: str, bins: int = 40) -> go.Figure:
    fig = go.Figure(go.Histogram(x=values[np.isfinite(values)], nbinsx=bins, marker_color="#4c78a8"))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title=dict(text=title, x=0.01,
                      font=dict(size=13)), bargap=0.05, yaxis=dict(title="points"))
    return fig


# -- the selection panel ---------------------------------------------------------------------------------

def thumbnail(img: np.ndarray, size: int = 72) -> np.ndarray:
    """Nearest-neighbour upscale of a tiny image so the browser does not blur it."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):  # CHW -> HWC
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8:
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        img = ((img - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    r = max(1, size // max(img.shape[0], img.shape[1]))
    return np.repeat(np.repeat(img, r, axis=0), r, axis=1)


def gallery(snap, rows, captions: list[str], width: int = 72) -> None:
    if snap.images is None or len(rows) == 0:
        return
    st.image([thumbnail(snap.images[int(i)]) for i in rows], caption=captions, width=width)


def _label(snap, i: int) -> str:
    return str(snap.labels[i]) if snap.labels is not None else "–"


def selection_panel(run: str, s: Settings, snap, rows: np.ndarray) -> None:
    """The selected points with their images, positives, nearest neighbours and hardest negatives."""
    if len(rows) == 0:
        st.caption("Select points with the lasso or box tool (or click one) to see their images, positives, "
                   "nearest neighbours and hardest negatives.")
        return
    from diagnostics import probes
    stats = _similarity(common.runs_root(), run, s.step)
    table = pd.DataFrame({"index": rows})
    if snap.labels is not None:
        table["label"] = np.asarray(snap.labels)[rows]
    for col in snap.metadata.columns:
        table[str(col)] = snap.metadata[col].to_numpy()[rows]
    if stats is not None:
        table["cos to positive"] = stats.positive_cos[rows]
        hard = stats.hardest_negative_index[rows, 0]
        table["hardest negative"] = hard
        table["its cos"] = stats.hardest_negative_cos[rows, 0]
        if snap.labels is not None:
            labels = np.asarray(snap.labels)
            table["likely false negative"] = labels[hard] == labels[rows]
    st.markdown(f"**{len(rows):,} selected points**")
    st.dataframe(table, hide_index=True, height=min(36 * (len(rows) + 1) + 3, 320))
    shown = rows[:GALLERY_MAX]
    gallery(snap, shown, [f"#{i} · {_label(snap, i)}" for i in shown])
    if len(rows) > GALLERY_MAX:
        st.caption(f"Images of the first {GALLERY_MAX} of {len(rows):,}.")

    focus = int(st.selectbox("Look closer at", rows.tolist(), key="proj_focus",
                             format_func=lambda i: f"#{i} (label {_label(snap, int(i))})"))
    z = _vectors(snap, s.source)
    nn = probes.nearest_neighbours(z, np.asarray([focus]), DETAIL_K)
    nn_idx, nn_cos = (np.asarray(nn[0])[0], np.asarray(nn[1])[0]) if isinstance(nn, tuple) else \
        (np.asarray(nn)[0], None)
    cols = st.columns(3)
    with cols[0]:
        st.markdown("**Anchor**")
        gallery(snap, [focus], [f"#{focus} · {_label(snap, focus)}"], width=96)
        if stats is not None:
            st.metric("cos(anchor, positive)", f"{stats.positive_cos[focus]:.3f}",
                      help="The two augmented views of this sample; training pulls this towards 1.")
    with cols[1]:
        st.markdown(f"**Nearest neighbours** ({SOURCES[s.source].lower()})")
        caps = [f"#{j} · {_label(snap, int(j))}" + ("" if nn_cos is None else f" · {c:.2f}")
                for j, c in zip(nn_idx, nn_cos if nn_cos is not None else [None] * len(nn_idx))]
        gallery(snap, nn_idx, caps)
        if snap.images is None:
            st.write(pd.DataFrame({"neighbour": nn_idx, "label": [_label(snap, int(j)) for j in nn_idx]}))
    with cols[2]:
        st.markdown("**Hardest negatives** (other samples' positives)")
        if stats is None:
            st.caption("This snapshot stores no positives.")
        else:
            hard_idx, hard_cos = stats.hardest_negative_index[focus], stats.hardest_negative_cos[focus]
            same = [snap.labels is not None and snap.labels[j] == snap.labels[focus] for j in hard_idx]
            gallery(snap, hard_idx, [f"{'⚠ ' if f else ''}#{j} · {_label(snap, int(j))} · {c:.2f}"
                                     for j, c, f in zip(hard_idx, hard_cos, same)])
            if any(same):
                st.warning(f"{sum(same)} of these share the anchor's label: likely false negatives "
                           "that the loss is pushing away.", icon="⚠️")


# -- side by side ----------------------------------------------------------------------------------------

def comparison_controls(runs: list[str], s: Settings) -> tuple[str, int] | None:
    """(run, step) to put beside the current one: another step of this run, or this step of another run."""
    cols = st.columns([2, 5])
    kind = cols[0].segmented_control("Compare with", ["another step", "another run"], default="another step",
                                     required=True, key="proj_compare", **Q)
    if kind != "another run":
        if len(s.steps) < 2:
            st.info("This run has a single snapshot; compare it with another run instead.")
            return None
        default = s.steps[0] if s.step != s.steps[0] else s.steps[-1]
        step_b = cols[1].select_slider("Other step", s.steps, value=default, key="proj_step_b", **Q)
        return s.run, int(step_b)
    others = [r for r in (runs if len(runs) > 1 else common.run_names()) if r != s.run]
    if not others:
        st.info("There is no other run under this root.")
        return None
    run_b = cols[1].selectbox("Other run", others, key="proj_run_b", **Q)
    steps_b = common.safe(run_b, snapshot_steps, run_b) or []
    if s.step not in steps_b:
        st.warning(f"**{run_b}** has no snapshot at step {s.step} (it has {steps_b[:8]}"
                   f"{'…' if len(steps_b) > 8 else ''}).")
        return None
    return run_b, s.step


def replace_run(s: Settings, run: str, step: int) -> Settings:
    steps = s.steps if run == s.run else tuple(snapshot_steps(run))
    return Settings(run=run, step=step, steps=steps, method=s.method, source=s.source, seed=s.seed,
                    params=s.params, colour=s.colour, view=s.view)


@st.cache_data(max_entries=8, show_spinner="Comparing neighbourhoods…")
def _shared_neighbours(root: str, run_a: str, run_b: str, step: int, source: str) -> np.ndarray:
    from diagnostics import probes
    return np.asarray(probes.neighbour_retention(_vectors(load_snapshot(root, run_a, step), source),
                                                 _vectors(load_snapshot(root, run_b, step), source),
                                                 NEIGHBOURS_K), dtype=np.float32)


def side_by_side(s: Settings, snap, xy_a: np.ndarray, run_b: str, step_b: int, xy_b: np.ndarray,
                 colour: Colouring, hover: tuple) -> None:
    """Two layouts of the same samples, the right one rotated/reflected/scaled onto the left (Procrustes)."""
    from diagnostics.projection import align_to
    if xy_a.shape != xy_b.shape:
        st.warning(f"The two snapshots hold different samples ({xy_a.shape[0]:,} vs {xy_b.shape[0]:,} rows); "
                   "side by side needs the same evaluation set.")
        return
    xy_b = align_to(xy_a, xy_b)
    left, right = st.columns(2)
    fig_a, _ = scatter_figure(xy_a, colour, hover, f"{s.run} · step {s.step}", height=520)
    fig_b, _ = scatter_figure(xy_b, colour, hover, f"{run_b} · step {step_b} (aligned)", height=520)
    left.plotly_chart(fig_a, key="proj_side_a", config={"scrollZoom": True})
    right.plotly_chart(fig_b, key="proj_side_b", config={"scrollZoom": True})
    if run_b == s.run:
        moved, kept = movement(s.run, min(s.step, step_b), max(s.step, step_b), s.source)
        c = st.columns(3)
        c[0].metric("Median moved", f"{np.nanmedian(moved):.3f} rad")
        c[1].metric(f"Neighbours kept (k={NEIGHBOURS_K})", f"{np.nanmean(kept):.0%}")
    else:
        shared = _shared_neighbours(common.runs_root(), s.run, run_b, s.step, s.source)
        st.metric(f"Neighbours shared by the two runs (k={NEIGHBOURS_K})", f"{np.nanmean(shared):.0%}",
                  help="Per sample, the fraction of its nearest neighbours in one run that are also its "
                       "nearest neighbours in the other: do the two models organise the data alike?")
