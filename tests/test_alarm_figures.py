"""Alarm onsets and config events on step charts, and the alarm timeline (diagnostics/draw/alarm_figures.py)."""

import pandas as pd

from diagnostics.draw import alarm_figures, figures
from diagnostics.judge.advice import Event, RunContext, config_events
from diagnostics.judge.alarms import Alarm


def alarm(kind, severity, started, detected, message="m"):
    return Alarm(kind, severity, started, detected, message, "s")


def test_markers_draw_onsets_and_switches_as_vertical_lines_with_plain_text_labels():
    frames = {"a": pd.DataFrame({"step": [0, 100, 200], "loss/total": [3.0, 2.0, 1.0]})}
    fig = figures.loss_figure(frames)
    empty = figures.lines({"a": pd.DataFrame({"step": [0], "lr": [1.0]})}, ["missing"], "t", "y")
    alarms = {"a": [alarm("spread_falling", "warning", 160, 170), alarm("complete_collapse", "info", 50, 50)]}
    events = {"a": [Event(150, "<b>key</b>", "x")]}
    out = figures.add_markers([fig, empty], alarms, events)
    assert out[0] is fig and len(empty.layout.shapes) == 0  # a figure with no data gets no lines
    xs = sorted((s.x0, s.line.dash) for s in fig.layout.shapes)
    assert xs == [(150, "dot"), (160, "dash")]  # the info alarm (recovered) is left out
    # Named once: numbers on the lines, the key (step, what, run) in meta for step_grid's band.
    texts = {a.text: a.hovertext for a in fig.layout.annotations if a.text != fig.layout.title.text}
    assert texts == {"①": "&lt;b&gt;key&lt;/b&gt;", "②": "spread falling (warning)"}
    assert fig.layout.meta["markers"] == [
        "<span style='color:#57606a'>①</span> step 150 · &lt;b&gt;key&lt;/b&gt; · a",
        "<span style='color:#bf8700'>②</span> step 160 · spread falling (warning) · a",
    ]


def test_markers_are_named_once_per_grid_with_the_run():
    """Ten panels with one event each used to carry ten labels: now the first panel has the numbers, the grid
    one band naming the run, and every panel the line."""
    from diagnostics.draw.chart_style import step_grid

    frames = {
        "run-a": pd.DataFrame({"step": [0, 100, 200], "loss/total": [3.0, 2.0, 1.0], "lr": [1e-3] * 3}),
        "run-b": pd.DataFrame({"step": [0, 100, 200], "loss/total": [3.0, 2.5, 2.0], "lr": [1e-3] * 3}),
    }
    panels = [figures.loss_figure(frames), figures.lines(frames, ["lr"], "Learning rate", "lr", y_min=0)]
    events = {
        "run-a": [Event(100, "contrastive.warmup_steps", "x")],
        "run-b": [Event(100, "contrastive.warmup_steps", "x")],
    }
    grid = step_grid(figures.add_markers(panels, None, events)).to_plotly_json()
    assert len([s for s in grid["layout"]["shapes"]]) == 2  # one line per panel
    numbers = [a for a in grid["layout"]["annotations"] if a["text"] == "①"]
    assert len(numbers) == 1 and numbers[0]["xref"] == "x"  # in the first panel only
    assert "step 100 · contrastive.warmup_steps · run-a (+1 runs)" in grid["layout"]["title"]["text"]


def test_timeline_one_row_per_alarm_and_events_escaped():
    alarms = {
        "run<1>": [
            alarm("spread_falling", "warning", 160, 170, "fell <fast>"),
            alarm("collapsing", "critical", 160, 190),
        ],
        "other": [],
    }
    events = {"run<1>": [Event(150, "contrastive.negatives_off_step", "contrastive.negatives_off_step = 150")]}
    fig = figures.alarm_timeline_figure(alarms, events, {"run<1>": 300})
    rows = list(fig.layout.yaxis.ticktext)
    assert rows == ["spread falling", "collapsing", "config events"]  # short: the run is its rows' header
    headers = [a for a in fig.layout.annotations if a.xref == "paper" and a.yref == "y"]
    assert [(a.text, a.hovertext) for a in headers] == [("run&lt;1&gt;", "run&lt;1&gt;")]  # "other": nothing to show
    assert headers[0].y < min(fig.layout.yaxis.tickvals)  # above its rows (the axis is reversed)
    bars = [t for t in fig.data if t.mode == "lines" and t.line.width == 10]
    assert [tuple(b.x) for b in bars] == [(160, 170), (160, 190)]
    assert "fell &lt;fast&gt;" in bars[0].hovertext[0]
    tails = [t for t in fig.data if t.mode == "lines" and t.line.width == 2]
    assert [tuple(t.x) for t in tails] == [(170, 300), (190, 300)]
    assert fig.layout.showlegend is False  # the severity colours are keyed in the title: the plot keeps its width
    assert "warning</span>" in fig.layout.title.text and "critical</span>" in fig.layout.title.text
    assert "No alarms" in figures.alarm_timeline_figure({"a": []}).layout.annotations[0].text


def test_config_events_from_switch_keys_warmups_and_a_stepped_temperature():
    cfg = {
        "contrastive": {"negatives_off_step": 150, "temperature_step": 0, "warmup_steps": 100, "temperature": 0.5},
        "optim": {"weight_decay_step": 75, "weight_decay_after": 50.0},
    }
    metrics = pd.DataFrame({"step": [0, 1, 2, 3], "temperature": [0.5, 0.5, 0.2, 0.2]})
    events = config_events(RunContext(cfg, metrics))
    assert [(e.step, e.key) for e in events] == [
        (2, "temperature"),
        (75, "optim.weight_decay_step"),
        (100, "contrastive.warmup_steps"),
        (150, "contrastive.negatives_off_step"),
    ]
    assert events[1].text == "optim.weight_decay_step = 75 (→ 50.0)" and events[0].text == "τ 0.5 → 0.2"
    smooth = pd.DataFrame({"step": range(10), "temperature": [1 / (1 + s) for s in range(10)]})
    assert config_events(RunContext({}, smooth)) == []  # a learnable/smooth τ is no event


def event_labels(fig) -> list[tuple[str, float, float, str]]:
    """(text, x, y, side) of every config-event label of a timeline."""
    return [
        (text, x, y, t.textposition.split()[1])
        for t in fig.data
        if t.meta == "event labels"
        for text, x, y in zip(t.text, t.x, t.y)
    ]


def test_timeline_staggers_config_event_labels_that_would_overlap():
    """Events a step apart (a warm-up end and a switch) get label rows of their own; labels far apart share the
    row nearest the ticks. Every label keeps its full event in the hover."""
    events = {
        "r": [
            Event(100, "contrastive.warmup_steps", "contrastive.warmup_steps = 100: the warm-up ends"),
            Event(250, "contrastive.negatives_off_step", "contrastive.negatives_off_step = 250"),
            Event(251, "temperature", "τ 0.1 → 0.05"),
            Event(900, "optim.lr_step", "optim.lr_step = 900"),
        ]
    }
    fig = figures.alarm_timeline_figure({"r": [alarm("collapsing", "critical", 300, 300)]}, events, {"r": 1000})
    labels = {text: (x, y, side) for text, x, y, side in event_labels(fig)}
    assert set(labels) == {"contrastive.warmup_steps", "contrastive.negatives_off_step", "temperature", "optim.lr_step"}
    assert labels["contrastive.negatives_off_step"][1] != labels["temperature"][1]  # 1 step apart: two rows
    assert labels["optim.lr_step"][2] == "left"  # near the right edge: written leftwards, not cut off
    # No two labels on one row overlap, by the same width estimate at the narrowest plot (520 px over 100..1000).
    spans = alarm_figures.label_spans([x for x, _, _ in labels.values()], list(labels), 100, 1000)
    rows = [y for _, y, _ in labels.values()]
    for i in range(len(spans)):
        for j in range(i + 1, len(spans)):
            if rows[i] == rows[j]:
                assert spans[i][1] <= spans[j][0] or spans[j][1] <= spans[i][0], (list(labels)[i], list(labels)[j])
    # The labels sit above the events row and below the alarm row above it (y grows downwards).
    ticks = dict(zip(fig.layout.yaxis.ticktext, fig.layout.yaxis.tickvals))
    assert all(ticks["collapsing"] + 0.3 < y < ticks["config events"] for _, y, _ in labels.values())
    hovers = {h for t in fig.data if t.meta == "event labels" for h in t.hovertext}
    assert "contrastive.negatives_off_step = 250" in hovers and "τ 0.1 → 0.05" in hovers


def test_step_chart_event_labels_step_up_when_close():
    frames = {"a": pd.DataFrame({"step": [0, 500], "loss/total": [3.0, 1.0]})}
    fig = figures.add_markers(
        figures.loss_figure(frames),
        None,
        {
            "a": [
                Event(250, "contrastive.negatives_off_step", "x"),
                Event(251, "temperature", "y"),
                Event(480, "<i>late</i>", "z"),
            ]
        },
    )
    shifts = {a.hovertext: a.yshift for a in fig.layout.annotations if a.text != fig.layout.title.text}
    assert shifts["contrastive.negatives_off_step"] != shifts["temperature"]
    assert "&lt;i&gt;late&lt;/i&gt;" in shifts  # a run's string stays text


def test_verdict_advice_is_the_matching_alarms_suggestion():
    from diagnostics.judge.advice import verdict_advice

    found = [
        Alarm("spread_falling", "warning", 100, 120, "m", "spread tip"),
        Alarm("collapsing", "critical", 100, 140, "m", "collapsing tip"),
        Alarm("knn_falling", "warning", 300, 320, "m", "later tip"),
    ]
    ctx = RunContext({"contrastive": {"objective": "moco"}})
    assert verdict_advice("collapsing", 140, found, ctx) == ["collapsing tip"]  # its own kind first
    assert verdict_advice("contracting", 120, found, ctx) == ["collapsing tip"]  # else a critical one begun by then
    assert verdict_advice("healthy", 140, found, ctx) == []  # nothing to try
    alone = verdict_advice("narrowing", 50, found, ctx)  # no alarm begun yet: the advice for the verdict's signal
    assert len(alone) == 1 and alone[0].startswith("The embedding is losing directions.") and "MoCo" in alone[0]
