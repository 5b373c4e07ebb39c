"""AppTest of what the Projections page keeps in its URL beyond the settings: the lasso/box selection
(`proj_sel`) and the metadata search (`proj_search`, `proj_isolate`), hostile values included; and the status
line that replaces the Compute button once a layout is there."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest

from dashboard import selection_url
from dashboard.projection_controls import Settings
from dashboard.projection_layouts import status_line
from diagnostics import open_run
from diagnostics.store.cache import cached_projection
from tests.test_app_projections import RUN, N, open_page, root, scatter  # noqa: F401 (root: the fixture)

CLASS = "c3"  # metadata "class" is f"c{label}"; labels are arange(N) % 5, so 24 of 120 rows


def _rows(trace) -> np.ndarray:
    return np.asarray(trace.customdata)[:, 0].astype(int)


# -- the selection in the URL ----------------------------------------------------------------------------


@given(hs.sets(hs.integers(0, 999), max_size=200))
@settings(max_examples=200, deadline=None)
def test_selection_encoding_round_trips(rows):
    rows = np.asarray(sorted(rows), dtype=np.int64)
    text = selection_url.encode(rows)
    assert text.count(",") + 1 == (len(np.flatnonzero(np.diff(rows) != 1)) + 1 if len(rows) else 1)
    back, why = selection_url.decode(text, 1000)
    assert why is None and np.array_equal(back, rows)


def test_selection_encoding_is_ranges():
    assert selection_url.encode([10, 0, 1, 2, 7, 9, 2]) == "0-2,7,9-10"
    assert selection_url.encode([]) == ""


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "5-2",
        "0-120",
        "120",
        "1,,2",
        "-1",
        "1-",
        "٣",
        "1e3",
        "0x10",
        " 1",
        "9" * 13,
        "0-" + "9" * 40,
        ",".join(["0-119"] * 400),
        "<b>x</b>",
        "[a](b)",
    ],
)
def test_hostile_selection_values_are_ignored_with_a_note(text):
    rows, why = selection_url.decode(text, N)
    assert rows.size == 0 and why


def test_selection_from_the_url_is_drawn_and_listed(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch, proj_sel="0-3,7")
    (fig,) = scatter(at)
    chosen = sorted(int(_rows(t)[i]) for t in fig.data for i in ([] if t.selectedpoints is None else t.selectedpoints))
    assert chosen == [0, 1, 2, 3, 7]  # drawn as plotly's selection: the others are dimmed
    assert at.dataframe[0].value["index"].tolist() == [0, 1, 2, 3, 7]
    assert at.query_params["proj_sel"] == "0-3,7"


def test_clear_forgets_the_selection_here_and_in_the_link(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch, proj_sel="2,4")
    assert at.dataframe[0].value["index"].tolist() == [2, 4]
    at.button(key="proj_clear_selection").click().run()
    assert not at.exception and not at.dataframe
    assert "proj_sel" not in at.query_params
    assert all(t.selectedpoints is None for t in scatter(at)[0].data)


@pytest.mark.parametrize("text", ["0-99999999999", "7-3", "x", "0-3,<img src=x>"])
def test_hostile_selection_in_the_url_shows_a_note_and_no_selection(root, monkeypatch, text):  # noqa: F811
    at = open_page(root, monkeypatch, proj_sel=text)
    assert not at.exception
    assert any(i.value.startswith("The selection in this link was ignored") for i in at.info)
    assert not at.dataframe  # nothing selected: no table
    assert all(t.selectedpoints is None for t in scatter(at)[0].data)
    assert "proj_sel" not in at.query_params  # not passed on in links made from here


def _remember_script(rows: list[int]):
    import numpy as np

    from dashboard import selection_url

    selection_url.remember(np.asarray(rows))


def test_a_new_selection_goes_into_the_url_unless_too_large_for_a_link():
    at = AppTest.from_function(_remember_script, args=([5, 6, 7, 40],)).run()
    assert at.query_params["proj_sel"] == "5-7,40"
    scattered = list(range(0, 2 * 50_000, 2))  # 50k isolated indices: ~300 kB as text
    at = AppTest.from_function(_remember_script, args=(scattered,))
    at.query_params["proj_sel"] = "1-2"
    at.run()
    assert "proj_sel" not in at.query_params  # the old value would be a lie
    rows, why = at.session_state[selection_url.STATE_KEY]
    assert rows.size == 50_000 and why is None  # kept for this session


# -- search and isolate ------------------------------------------------------------------------------------


def test_search_highlights_matches_and_greys_the_rest(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch, proj_search="C3")  # case-insensitive
    (fig,) = scatter(at)
    labels = open_run(RUN, root=str(root)).snapshot(100).labels
    assert [t.name for t in fig.data] == ["not matching", "3"]
    assert np.array_equal(np.sort(_rows(fig.data[1])), np.flatnonzero(labels == 3))
    assert len(fig.data[0].x) == N - 24
    assert any("**24** of 120 points match" in c.value for c in at.caption)


def test_isolate_shows_only_the_matches(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch, proj_search=CLASS, proj_isolate="true")
    (fig,) = scatter(at)
    assert [t.name for t in fig.data] == ["3"] and len(fig.data[0].x) == 24
    assert at.toggle(key="proj_isolate").value is True
    assert fig.layout.showlegend is True  # one category left: its legend stays
    xy = cached_projection(open_run(RUN, root=str(root)), 100, "pca")
    lo, hi = xy.min(axis=0), xy.max(axis=0)  # the frame is the whole snapshot's, 4 % padding
    assert np.allclose(
        fig.layout.xaxis.range, [lo[0] - 0.04 * (hi[0] - lo[0]), hi[0] + 0.04 * (hi[0] - lo[0])], rtol=1e-6
    )


@pytest.mark.parametrize("query", [".*", "c(", "[c3]", "<b>c3</b>", "%{x}"])
def test_search_is_plain_text(root, monkeypatch, query):  # noqa: F811
    at = open_page(root, monkeypatch, proj_search=query)
    assert not at.exception
    (fig,) = scatter(at)
    assert [t.name for t in fig.data] == ["not matching"] and len(fig.data[0].x) == N  # no regex, no match
    assert any("**0** of 120 points match" in c.value for c in at.caption)


def test_search_of_a_numeric_metadata_value(root, monkeypatch):  # noqa: F811
    strength = open_run(RUN, root=str(root)).snapshot(100).metadata["strength"].astype(str)
    probe = strength.iloc[0][:5]  # e.g. "0.637": a prefix of one value, maybe of others
    at = open_page(root, monkeypatch, proj_search=probe, proj_isolate="true")
    (fig,) = scatter(at)
    expected = np.flatnonzero(strength.str.contains(probe, regex=False).to_numpy())
    assert np.array_equal(np.sort(np.concatenate([_rows(t) for t in fig.data])), expected)


# -- the status line instead of the Compute button ---------------------------------------------------------


def test_status_line_replaces_the_button_once_computed(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch)
    assert "PCA of 120 points (step 100), computed by the background worker." in [c.value for c in at.caption]
    assert not [b for b in at.button if b.key == "proj_compute"]


def test_status_line_names_method_parameters_and_seed():
    s = Settings(
        run="r",
        step=7,
        steps=(7,),
        method="umap",
        source="embeddings",
        seed=3,
        params=(("min_dist", 0.1), ("n_neighbors", 15)),
        colour="label",
        view="Snapshot",
    )
    assert status_line(s, 7, 50_000) == (
        "UMAP of 50,000 points (step 7; min. distance 0.1, neighbours 15), seed 3, computed by the background worker."
    )


@pytest.mark.parametrize(
    "params",
    [
        dict(proj_search="c" * 5_000),
        dict(proj_search="c3\n<script>"),
        dict(proj_search="C3", proj_isolate="maybe"),
        dict(proj_isolate="true"),
    ],
)
def test_hostile_search_values_do_not_break_the_page(root, monkeypatch, params):  # noqa: F811
    at = open_page(root, monkeypatch, **params)
    assert not at.exception
    (fig,) = scatter(at)
    assert sum(len(t.x) for t in fig.data) == N  # nothing matched or nothing isolated: every point drawn


def test_side_by_side_with_a_run_lacking_the_step_uses_its_nearest(root, monkeypatch):  # noqa: F811
    at = open_page(root, monkeypatch, proj_view="Side by side", proj_compare="another run", proj_run_b="tiny")
    assert not at.exception
    assert "tiny has no snapshot at step 100: showing its nearest, step 10." in [c.value for c in at.caption]
    assert any("different samples (120 vs 40 rows)" in w.value for w in at.warning)
