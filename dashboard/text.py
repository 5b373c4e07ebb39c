"""Strings that came from a run (names, descriptions, notes, config, metadata, file names in error messages)
made inert before they reach Markdown or a Plotly label.

Streamlit renders Markdown in st.markdown, st.caption, alerts, expander and widget labels; GitHub-flavoured
Markdown turns `![x](https:host)` into an image the browser fetches and `[x](url)` into a link. Plotly renders
a subset of HTML (<a href>, <b>, <br>, ...) in titles, legends, axis ticks and hovers. So: `md()` for the
first, `plot()` for the second; everywhere else (dataframe cells, st.text, st.code, option lists) the string
is shown as it is.
"""

from __future__ import annotations

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the ones that start
# Markdown syntax, GFM autolinks (":" in "http://", "." in "www.x"), emoji shortcodes (":smile:"), Streamlit's
# colour/icon directives (":red[...]", ":material/x:") and HTML ("<", ">", "&").
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=/@])")


def md(text) -> str:
    """`text` shown literally inside Markdown: no links, images, emphasis, shortcodes, colour tags or HTML.
    Line breaks stay line breaks of plain text (a hard break each)."""
    lines = str(text).replace("\r\n", "\n").split("\n")
    return "  \n".join(_MARKDOWN_SPECIAL.sub(r"\\\1", line) for line in lines)


def plot(text) -> str:
    """`text` shown literally in a Plotly title, legend, tick label or hover ("<a href>" stays text)."""
    return html.escape(str(text), quote=False)


def plot_keys(mapping: dict) -> dict:
    """{plot(key): value}: a figure built from {run name: data} names its traces literally."""
    return {plot(k): v for k, v in mapping.items()}
