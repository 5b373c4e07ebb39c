"""The Projections page's selection panel: the selected points with their images, positives, nearest
neighbours and hardest negatives (plotly's hover cannot show images, so they appear here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from . import data, selection_url
from .projection_controls import SOURCES, Settings

GALLERY_MAX = 48


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


def gallery(snap, rows, captions: list[str], width: int = 72, images: np.ndarray | None = None) -> None:
    """Thumbnails of `rows` from `images` (default: the snapshot's `images`, the anchors' pictures)."""
    images = snap.images if images is None else images
    if images is None or len(rows) == 0:
        return
    st.image([thumbnail(images[int(i)]) for i in rows], caption=captions, width=width)


def anchor_and_positive(snap, focus: int) -> None:
    """The focused point's picture, and beside it its positive's (the second view) when the snapshot stores
    `positive_images`; nothing in its place when it does not."""
    if snap.images is None:
        return
    pictures, captions = [thumbnail(snap.images[focus])], [f"anchor #{focus} · {_label(snap, focus)}"]
    if snap.positive_images is not None:
        pictures.append(thumbnail(snap.positive_images[focus]))
        captions.append("its positive")
    st.image(pictures, caption=captions, width=96)


def _label(snap, i: int) -> str:
    return str(snap.labels[i]) if snap.labels is not None else "–"


def selection_panel(s: Settings, snap, rows: np.ndarray) -> None:
    """The selected points with their images, positives, nearest neighbours and hardest negatives."""
    if len(rows) == 0:
        st.caption(
            "Select points with the lasso or box tool (or click one) to see their images, positives, "
            "nearest neighbours and hardest negatives."
        )
        return
    from diagnostics.measure import neighbours

    rec = data.record(s.run, s.step)  # None while pending: the columns below wait for it
    positive_cos = None if rec is None else rec.array("positive_cos")
    hard_index = None if rec is None else rec.array("hardest_negative_index")
    hard_cos = None if rec is None else rec.array("hardest_negative_cos")
    has_pairs = positive_cos is not None and hard_index is not None and hard_index.shape[1] > 0
    table = pd.DataFrame({"index": rows})
    if snap.labels is not None:
        table["label"] = np.asarray(snap.labels)[rows]
    for col in snap.metadata.columns:
        table[str(col)] = snap.metadata[col].to_numpy()[rows]
    if has_pairs:
        table["cos to positive"] = positive_cos[rows]
        hard = hard_index[rows, 0]
        table["hardest negative"] = hard
        table["its cos"] = hard_cos[rows, 0]
        if snap.labels is not None:
            labels = np.asarray(snap.labels)
            table["likely false negative"] = labels[hard] == labels[rows]
    head = st.columns([6, 1], vertical_alignment="center")
    head[0].markdown(f"**{len(rows):,} selected points**")
    head[1].button(
        "Clear",
        key="proj_clear_selection",
        on_click=selection_url.remember,
        args=(rows[:0],),
        help="Forget the selection (here and in the link).",
    )
    st.dataframe(table, hide_index=True, height=min(36 * (len(rows) + 1) + 3, 320))
    shown = rows[:GALLERY_MAX]
    gallery(snap, shown, [f"#{i} · {_label(snap, i)}" for i in shown])
    if len(rows) > GALLERY_MAX:
        st.caption(f"Images of the first {GALLERY_MAX} of {len(rows):,}.")

    focus = int(
        st.selectbox(
            "Look closer at",
            rows.tolist(),
            key="proj_focus",
            format_func=lambda i: f"#{i} (label {_label(snap, int(i))})",
        )
    )
    z = data.vectors(snap, s.source)
    nn_idx, nn_cos = (a[0] for a in neighbours.nearest(z, np.asarray([focus]), data.DETAIL_K))  # one row vs N
    cols = st.columns(3)
    with cols[0]:
        st.markdown("**Anchor and its positive**" if snap.positive_images is not None else "**Anchor**")
        anchor_and_positive(snap, focus)
        if has_pairs:
            st.metric(
                "cos(anchor, positive)",
                f"{positive_cos[focus]:.3f}",
                help="The two augmented views of this sample; training pulls this towards 1.",
            )
    with cols[1]:
        st.markdown(f"**Nearest neighbours** ({SOURCES[s.source].lower()})")
        caps = [
            f"#{j} · {_label(snap, int(j))}" + ("" if nn_cos is None else f" · {c:.2f}")
            for j, c in zip(nn_idx, nn_cos if nn_cos is not None else [None] * len(nn_idx))
        ]
        gallery(snap, nn_idx, caps)
        if snap.images is None:
            st.dataframe(
                pd.DataFrame({"neighbour": nn_idx, "label": [_label(snap, int(j)) for j in nn_idx]}), hide_index=True
            )
    with cols[2]:
        st.markdown("**Hardest negatives** (other samples' positives)")
        if rec is None:
            st.caption("Still being measured by the background worker.")
        elif not has_pairs:
            st.caption("This snapshot stores no positives.")
        else:
            hard_idx, hard_cos = hard_index[focus, : data.DETAIL_K], hard_cos[focus, : data.DETAIL_K]
            same = [snap.labels is not None and snap.labels[j] == snap.labels[focus] for j in hard_idx]
            gallery(
                snap,
                hard_idx,
                [
                    f"{'⚠ ' if f else ''}#{j} · {_label(snap, int(j))} · {c:.2f}"
                    for j, c, f in zip(hard_idx, hard_cos, same)
                ],
                images=snap.positive_images,
            )  # they are positives: their own pictures when stored
            if any(same):
                st.warning(
                    f"{sum(same)} of these share the anchor's label: likely false negatives "
                    "that the loss is pushing away.",
                    icon="⚠️",
                )
