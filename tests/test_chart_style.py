"""diagnostics.chart_style: a run's colour depends on its name, not on the selection; legends stay short;
a page's step charts become one figure with linked x-axes."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from diagnostics import chart_style, figures
from diagnostics.chart_style import PALETTE, home_slot, legend_name, panel_traces, run_colours, step_grid

@pytest.fixture(autouse=True)
def no_root_runs():
    """Colours resolved over the page's runs only (an AppTest in this process may have set a root's runs)."""
    chart_style.use_run_names([])
    yield
    chart_style.use_run_names([])


NAMES = [f"run-{i}" for i in range(8)] + ["healthy-infonce-tau0.1", "a&b", "<b>x</b>"]


def test_colour_is_stable_under_any_selection_without_collisions():
    # names whose home slots differ keep their colour in every subset and every order
    distinct = {}
    for n in NAMES:
        distinct.setdefault(home_slot(n), n)
    names = list(distinct.values())
    alone = {n: run_colours([n])[n] for n in names}
    assert alone == {n: PALETTE[home_slot(n)] for n in names}
    for k in (2, 3):
        for subset in itertools.combinations(names, k):
            assert run_colours(reversed(subset)) == {n: alone[n] for n in reversed(subset)}


def test_collisions_resolved_deterministically_and_distinct():
    names = [f"seed-{i}" for i in range(len(PALETTE))]  # 12 names into 12 slots: collisions certain
    colours = run_colours(names)
    assert len(set(colours.values())) == len(PALETTE)  # every run its own colour
    assert run_colours(list(reversed(names))) == colours  # the order of the selection does not matter
    slots = [home_slot(n) for n in names]
    assert len(set(slots)) < len(slots)  # the test does exercise a collision


def test_escaped_and_raw_names_share_a_colour():
    assert run_colours(["a&b"])["a&b"] == run_colours(["a&amp;b"])["a&amp;b"]


def test_legend_names_are_cut_but_stay_escaped():
    long = "&lt;b&gt;" + "x" * 40
    cut = legend_name(long, limit=10)
    assert cut == "&lt;b&gt;xxxxxx…" and len("<b>xxxxxx…") == 10
    assert legend_name("short") == "short"


def test_step_grid_links_x_and_keeps_one_legend_entry_per_run():
    frames = {"a": pd.DataFrame({"step": [0, 1, 2], "loss/total": [3.0, 2.0, 1.0], "temperature": [0.1] * 3}),
              "b": pd.DataFrame({"step": [0, 1], "loss/total": [1.0, 0.5], "temperature": [0.2] * 2})}
    panels = [figures.loss_figure(frames), figures.lines(frames, ["temperature"], "Temperature τ", "τ", y_min=0),
              figures.lines(frames, ["never-logged"], "Nothing", "x")]
    fig = step_grid(panels, columns=2)
    assert panel_traces(fig) == {"Losses": {"a": 3, "b": 2}, "Temperature τ": {"a": 3, "b": 2}}  # empty skipped
    axes = [k for k in fig.layout.to_plotly_json() if k.startswith("xaxis")]
    assert len(axes) == 2 and fig.layout.xaxis2.matches == "x"  # zoom one panel, both follow
    assert fig.layout.yaxis2.rangemode == "nonnegative"  # τ ≥ 0: no axis down to -0.5
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name for t in legend] == ["a", "b"]
    assert [t.line.color for t in legend] == list(run_colours(["a", "b"]).values())
    for trace in fig.data:  # every data trace in its run's colour
        if trace.showlegend is False:
            assert trace.line.color == run_colours(["a", "b"])[trace.legendgroup]
    assert fig.layout.hovermode == "x unified"


def test_histogram_outlines_never_hide_each_other():
    edges = np.linspace(-1, 1, 11)
    fig = figures.similarity_histogram_figure({"positive": (np.ones(10), edges), "negative": (np.ones(10), edges)})
    assert all(t.type == "scatter" and t.line.shape == "hvh" for t in fig.data)
    np.testing.assert_allclose(fig.data[0].y, 0.5)  # density: 10 counts of 1 over width 2 -> 1/2 per unit


def test_colours_resolved_over_the_root_are_stable_under_every_selection():
    root = [f"seed-{i}" for i in range(9)]  # collisions among them are certain (see the test above)
    chart_style.use_run_names(root)
    everything = run_colours(root)
    assert len(set(everything.values())) == len(root)
    for k in (1, 2, 3):
        for subset in itertools.combinations(root, k):
            assert run_colours(subset) == {n: everything[n] for n in subset}


def test_unvalidated_figures_equal_their_validated_rebuild():
    """figures._figure skips plotly's validation (~30 ms a figure): a validated rebuild of every Live panel
    gives the same JSON, so nothing invalid or unresolved (the template by name) reaches the browser."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from runformat import open_run
    from browser import REPO

    run = open_run(str(REPO / "sample_runs" / "healthy-infonce-tau0.1"))
    frames = {"a&b": run.metrics(), "<b>x</b>": run.metrics().iloc[::2]}
    steps = np.arange(0, 500, 100)
    tables = {n: pd.DataFrame({"step": steps, "alignment": 1.0 / (1 + steps), "uniformity": -steps / 250.0,
                               "effective_rank": 8.0 - steps / 100}) for n in frames}
    figs = figures.live_panels(frames, tables) + [figures.std_figure(tables)]
    assert sum(len(f.data) for f in figs) > 20
    for fig in figs:
        rebuilt = go.Figure(fig.to_plotly_json())  # validated: templates resolved, values checked and coerced
        sent, expected = (json.loads(pio.to_json(f, validate=False)) for f in (fig, rebuilt))
        assert sent == expected, fig.layout.title.text  # as parsed JSON: the template's key order may differ
        assert isinstance(sent["layout"]["template"], dict) and sent["layout"]["template"]["layout"]
