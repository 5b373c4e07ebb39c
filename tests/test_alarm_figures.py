"""Alarm onsets and config events on step charts, and the alarm timeline (diagnostics/figures.py)."""
import pandas as pd

from diagnostics import figures
from diagnostics.advice import Event, RunContext, config_events
from diagnostics.alarms import Alarm


def alarm(kind, severity, started, detected, message="m"):
    return Alarm(kind, severity, started, detected, message, "s")


def test_markers_draw_onsets_and_switches_as_vertical_lines_with_plain_text_labels():
    frames = {"a": pd.DataFrame({"step": [0, 100, 200], "loss/total": [3.0, 2.0, 1.0]})}
    fig = figures.loss_figure(frames)
    empty = figures.lines({"a": pd.DataFrame({"step": [0], "lr": [1.0]})}, ["missing"], "t", "y")
    alarms = {"a": [alarm("spread_falling", "warning", 160, 170), alarm("complete_collapse", "info", 50, 50)]}
    events = {"a": [Event(150, "<b>key</b>", "x")]}
    out = figures.add_markers([fig, empty], alarms, events)
    assert out[0] is fig and len(empty.layout.shapes) == 0       # a figure with no data gets no lines
    xs = sorted((s.x0, s.line.dash) for s in fig.layout.shapes)
    assert xs == [(150, "dot"), (160, "dash")]                 # the info alarm (recovered) is left out
    texts = {a.text for a in fig.layout.annotations if a.text != fig.layout.title.text}
    assert texts == {"spread falling", "&lt;b&gt;key&lt;/b&gt;"}


def test_timeline_one_row_per_alarm_and_events_escaped():
    alarms = {"run<1>": [alarm("spread_falling", "warning", 160, 170, "fell <fast>"),
                         alarm("collapsing", "critical", 160, 190)], "other": []}
    events = {"run<1>": [Event(150, "contrastive.negatives_off_step", "contrastive.negatives_off_step = 150")]}
    fig = figures.alarm_timeline_figure(alarms, events, {"run<1>": 300})
    rows = list(fig.layout.yaxis.categoryarray)
    assert rows == ["run&lt;1&gt; · spread falling", "run&lt;1&gt; · collapsing", "run&lt;1&gt; · config events"]
    bars = [t for t in fig.data if t.mode == "lines" and t.line.width == 10]
    assert [tuple(b.x) for b in bars] == [(160, 170), (160, 190)]
    assert "fell &lt;fast&gt;" in bars[0].hovertext[0]
    tails = [t for t in fig.data if t.mode == "lines" and t.line.width == 2]
    assert [tuple(t.x) for t in tails] == [(170, 300), (190, 300)]
    assert {t.name for t in fig.data if t.showlegend is not False and t.name} == {"warning", "critical"}
    assert "No alarms" in figures.alarm_timeline_figure({"a": []}).layout.annotations[0].text


def test_config_events_from_switch_keys_warmups_and_a_stepped_temperature():
    cfg = {"contrastive": {"negatives_off_step": 150, "temperature_step": 0, "warmup_steps": 100,
                           "temperature": 0.5}, "optim": {"weight_decay_step": 75, "weight_decay_after": 50.0}}
    metrics = pd.DataFrame({"step": [0, 1, 2, 3], "temperature": [0.5, 0.5, 0.2, 0.2]})
    events = config_events(RunContext(cfg, metrics))
    assert [(e.step, e.key) for e in events] == [(2, "temperature"), (75, "optim.weight_decay_step"),
                                                 (100, "contrastive.warmup_steps"),
                                                 (150, "contrastive.negatives_off_step")]
    assert events[1].text == "optim.weight_decay_step = 75 (→ 50.0)" and events[0].text == "τ 0.5 → 0.2"
    smooth = pd.DataFrame({"step": range(10), "temperature": [1 / (1 + s) for s in range(10)]})
    assert config_events(RunContext({}, smooth)) == []  # a learnable/smooth τ is no event
