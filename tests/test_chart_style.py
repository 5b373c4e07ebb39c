"""diagnostics.draw.chart_style: a run's colour depends on its name, not on the selection; legends stay short;
a page's step charts become one figure with linked x-axes."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from diagnostics.draw import chart_style, figures
from diagnostics.draw.chart_style import PALETTE, home_slot, legend_name, panel_traces, run_colours, step_grid


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
    frames = {
        "a": pd.DataFrame({"step": [0, 1, 2], "loss/total": [3.0, 2.0, 1.0], "temperature": [0.1] * 3}),
        "b": pd.DataFrame({"step": [0, 1], "loss/total": [1.0, 0.5], "temperature": [0.2] * 2}),
    }
    panels = [
        figures.loss_figure(frames),
        figures.lines(frames, ["temperature"], "Temperature τ", "τ", y_min=0),
        figures.lines(frames, ["never-logged"], "Nothing", "x"),
    ]
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
    from browser import REPO

    from runformat import open_run

    run = open_run(str(REPO / "sample_runs" / "healthy-infonce-tau0.1"))
    frames = {"a&b": run.metrics(), "<b>x</b>": run.metrics().iloc[::2]}
    steps = np.arange(0, 500, 100)
    tables = {
        n: pd.DataFrame(
            {
                "step": steps,
                "alignment": 1.0 / (1 + steps),
                "uniformity": -steps / 250.0,
                "effective_rank": 8.0 - steps / 100,
            }
        )
        for n in frames
    }
    figs = figures.live_panels(frames, tables) + [figures.std_figure(tables)]
    assert sum(len(f.data) for f in figs) > 20
    for fig in figs:
        rebuilt = go.Figure(fig.to_plotly_json())  # validated: templates resolved, values checked and coerced
        sent, expected = (json.loads(pio.to_json(f, validate=False)) for f in (fig, rebuilt))
        assert sent == expected, fig.layout.title.text  # as parsed JSON: the template's key order may differ
        assert isinstance(sent["layout"]["template"], dict) and sent["layout"]["template"]["layout"]


# -- the axis rule (issue 23 items 1, 2) -------------------------------------------------------------------


def user_frames(names=("run",)):
    """Losses inside one decade (6.1 → 2.2) and a constant lr, as a user's small loop logs them."""
    steps = np.arange(0, 200)
    loss = 2.2 + 3.9 * np.exp(-steps / 50)
    return {n: pd.DataFrame({"step": steps, "loss/total": loss, "lr": 1e-3}) for n in names}


def test_losses_inside_one_decade_get_a_linear_axis_with_ticks():
    from figure_specs import axis_problems

    fig = figures.loss_figure(user_frames(), log_y=True)
    y = fig.layout.yaxis
    assert y.type == "linear" and y.dtick is None  # log asked for, but 6.1/2.2 < 10: linear
    assert axis_problems(fig.to_plotly_json()) == []
    # what the page drew before: log with dtick 1 over [0.34, 0.79] in log units, no tick at all
    before = fig.to_plotly_json()
    before["layout"]["yaxis"].update(type="log", dtick=1)
    assert axis_problems(before) and "0 tick(s)" in axis_problems(before)[0]


def test_log_axis_over_decades_keeps_ticks():
    frames = {"r": pd.DataFrame({"step": [0, 1, 2], "loss/total": [50.0, 5.0, 0.5]})}  # two decades
    assert (
        figures.loss_figure(frames).layout.yaxis.type == "log" and figures.loss_figure(frames).layout.yaxis.dtick == 1
    )
    one_and_a_half = {"r": pd.DataFrame({"step": [0, 1], "loss/total": [30.0, 1.0]})}
    y = figures.loss_figure(one_and_a_half).layout.yaxis
    assert y.type == "log" and y.dtick == "D2"  # 1.5 decades: one power of ten inside, so 2 and 5 labelled too


def test_a_constant_series_is_drawn_in_the_middle_of_a_range_around_it():
    from figure_specs import axis_problems

    fig = figures.lines(user_frames(), ["lr"], "Learning rate", "learning rate", y_min=0)
    assert tuple(fig.layout.yaxis.range) == pytest.approx((0.5e-3, 1.5e-3))
    assert axis_problems(fig.to_plotly_json()) == []
    before = fig.to_plotly_json()  # autorange pinned at 0: the lr ran along the x-axis of a 0-1 plot
    before["layout"]["yaxis"].pop("range")
    before["layout"]["yaxis"]["rangemode"] = "nonnegative"
    assert any("constant 0.001" in p for p in axis_problems(before))
    zero = chart_style.value_axis([0.0, 0.0], lo=0)  # a constant at its bound sits on it, the range above
    assert zero["range"] == [0.0, 2.0]
    frac = chart_style.value_axis([1.0, 1.0], lo=0, hi=1.02)
    assert frac["range"][1] == 1.02 and frac["range"][0] < 1.0


def test_value_axis_keeps_the_bounds_of_a_quantity():
    assert chart_style.value_axis([0.2, 0.8], lo=0, hi=1.02)["range"] == [0, 1.02]
    assert chart_style.value_axis([0.2, 0.8], lo=0)["rangemode"] == "nonnegative"
    assert chart_style.value_axis([-0.5, 0.8])["type"] == "linear"
    assert chart_style.value_axis([], log=True) == {"type": "linear"}


def test_an_empty_figure_says_why():
    fig = figures.lines({"a": pd.DataFrame({"step": [0, 1], "lr": [np.nan, np.inf]})}, ["lr"], "Learning rate", "lr")
    assert chart_style.empty_reason(fig).startswith("Learning rate: nothing to draw yet")
    assert chart_style.empty_reason(figures.loss_figure(user_frames())) is None
    assert "No alarms and no config events for run" in chart_style.empty_reason(
        figures.alarm_timeline_figure({"run": []})
    )


def test_alarm_timeline_spans_the_whole_run():
    from diagnostics.judge.advice import Event

    fig = figures.alarm_timeline_figure(
        {"r": []},
        {"r": [Event(30, "contrastive.warmup_steps", "x"), Event(100, "contrastive.negatives_off_step", "y")]},
        {"r": 540},
        {"r": 600},
    )
    lo, hi = fig.layout.xaxis.range
    assert lo == 0 and 600 <= hi <= 615  # not 30-100: the run's 600 steps
