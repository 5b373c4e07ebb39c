"""Score the collapse detectors on the labelled scenario suite (bench/scenarios.py), old and new side by side.

    python bench/score_detectors.py            # generates missing runs first; prints a markdown table

Per run, in snapshots (a snapshot is `snapshot_every` steps), counted from the first snapshot after the true
onset (a snapshot at step s is taken before update s, so the first one the fault can affect):
- false alarms: warnings/criticals on a healthy run, or before the onset of a fault run;
- onset error: the first alarm's estimated start minus the first affected snapshot;
- delay: the first alarm's detection minus the first affected snapshot;
- verdict delay: the first non-healthy verdict (at or after onset) minus the first affected snapshot;
- kNN lead: the first kNN drop of ≥ 3 points below its mean over the 3 snapshots before onset, minus the
  first alarm (≥ 0: the alarm came no later).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.detectors_v0 import old_detector  # noqa: E402
from bench.scenarios import ROOT, SUITE, ensure, scenario_table  # noqa: E402

QUIET = ("healthy", "cone")  # per-snapshot verdicts that do not count as a finding


@dataclass
class Score:
    run: str
    detector: str
    truth: str
    false_alarms: int
    onset_error: float = math.nan
    delay: float = math.nan
    verdict_delay: float = math.nan
    knn_lead: float = math.nan
    first_alarm: str = ""


def new_detector(table, config, metrics):
    """The run's judgement (diagnostics.judge.judgement): its findings, and the verdict every page shows per step."""
    from diagnostics.judge.advice import RunContext
    from diagnostics.judge.judgement import findings, judged

    ctx = RunContext(config, metrics)
    found = findings(table, ctx)
    return found, [judged(table, int(s), found, ctx)["verdict"] for s in table["step"]]


DETECTORS = {"old": lambda t, c, m: old_detector(t), "new": new_detector}


def score(scenario, table, alarms, verdicts, detector: str) -> Score:
    steps = [int(s) for s in table["step"]]
    index = {s: i for i, s in enumerate(steps)}
    loud = sorted((a for a in alarms if a.severity in ("warning", "critical")), key=lambda a: a.step_detected)
    if scenario.fault is None:
        return Score(
            scenario.name,
            detector,
            scenario.truth,
            len(loud),
            first_alarm=f"{loud[0].kind}@{loud[0].step_detected}" if loud else "",
        )
    i0 = next(i for i, s in enumerate(steps) if s > scenario.onset)
    early = [a for a in loud if a.step_detected < steps[i0]]
    late = [a for a in loud if a.step_detected >= steps[i0]]
    out = Score(scenario.name, detector, scenario.truth, len(early))
    if late:
        first = late[0]
        started = min(index.get(a.step_started, i0) for a in late if a.step_detected == first.step_detected)
        out.onset_error = started - i0
        out.delay = index[first.step_detected] - i0
        out.first_alarm = f"{first.kind}@{first.step_detected}"
    bad = [i for i in range(i0, len(verdicts)) if verdicts[i] not in QUIET]
    out.verdict_delay = bad[0] - i0 if bad else math.nan
    knn = table["knn_accuracy"].to_numpy(float) if "knn_accuracy" in table else np.full(len(steps), np.nan)
    before = knn[max(0, i0 - 3) : i0]
    level = np.nanmean(before) if np.isfinite(before).any() else np.nan  # a fault from the start: no level before
    drops = [i for i in range(i0, len(steps)) if math.isfinite(level) and not (knn[i] > level - 0.03)]  # NaN: a drop
    if drops and late:
        out.knn_lead = drops[0] - index[late[0].step_detected]
    return out


def score_suite(scenarios=SUITE, root: str = ROOT) -> list[Score]:
    scores = []
    for s in scenarios:
        table, config, metrics = scenario_table(ensure(s, root))
        for name, detector in DETECTORS.items():
            alarms, verdicts = detector(table, config, metrics)
            scores.append(score(s, table, alarms, verdicts, name))
    return scores


def markdown(scores: list[Score]) -> str:
    fmt = lambda v: "–" if isinstance(v, float) and math.isnan(v) else f"{v:+.0f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [
        "| run | truth | detector | false alarms | onset error | delay | verdict delay | kNN lead | first alarm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| {s.run} | {s.truth} | {s.detector} | {s.false_alarms} | {fmt(s.onset_error)} | "
            f"{fmt(s.delay)} | {fmt(s.verdict_delay)} | {fmt(s.knn_lead)} | {s.first_alarm or '–'} |"
        )
    return "\n".join(lines)


def summary(scores: list[Score]) -> str:
    lines = [
        "| detector | false alarms per healthy run | faults detected | onset within ±1 | first alarm ≤ 2 "
        "| verdict ≤ 5 | alarm no later than kNN drop |",
        "|---|---|---|---|---|---|---|",
    ]
    for det in DETECTORS:
        mine = [s for s in scores if s.detector == det]
        healthy = [s for s in mine if s.truth == "healthy"]
        faults = [s for s in mine if s.truth != "healthy"]
        n = len(faults)
        ok = lambda f: sum(1 for s in faults if f(s))  # noqa: E731
        lines.append(
            f"| {det} | {np.mean([s.false_alarms for s in healthy]):.2f} | {ok(lambda s: not math.isnan(s.delay))}/{n} "
            f"| {ok(lambda s: abs(s.onset_error) <= 1)}/{n} | {ok(lambda s: s.delay <= 2)}/{n} "
            f"| {ok(lambda s: s.verdict_delay <= 5)}/{n} | {ok(lambda s: math.isnan(s.knn_lead) and not math.isnan(s.delay) or s.knn_lead >= 0)}/{n} |"  # noqa: E501
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    result = score_suite()
    print(summary(result))
    print()
    print(markdown(result))
