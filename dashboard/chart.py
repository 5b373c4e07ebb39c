"""Drawing one chart on a page: a figure with nothing to draw becomes a sentence saying why
(diagnostics.draw.chart_style.empty_reason), never an empty frame with an axis from −1 to 6."""

from __future__ import annotations

import html

import streamlit as st

from diagnostics.draw.chart_style import empty_reason

from .text import md


def show(fig, key: str, where=st, **kwargs):
    """`where.plotly_chart(fig, key=key, **kwargs)`, or the reason it is empty as a caption. Returns what
    plotly_chart returns (the selection event, with on_select), else None."""
    reason = empty_reason(fig)
    if reason:
        where.caption(md(html.unescape(reason)))  # figures carry names escaped for Plotly
        return None
    return where.plotly_chart(fig, key=key, **kwargs)
