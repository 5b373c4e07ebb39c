"""The scenario suite's fast subset, trained from scratch: the new detector keeps its scores (bench/scenarios.py,
bench/score_detectors.py; the full suite's table is in docs/benchmarks.md)."""

import math

import pytest
import torch

from bench.scenarios import QUICK, ensure, scenario_table
from bench.score_detectors import new_detector, score
from diagnostics.judge.advice import RunContext
from diagnostics.judge.alarms import run_verdicts, trend_alarms


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    torch.set_num_threads(1)
    root = str(tmp_path_factory.mktemp("scenarios"))
    out = {}
    for s in QUICK:
        table, config, metrics = scenario_table(ensure(s, root))
        alarms, verdicts = new_detector(table, config, metrics)
        out[s.name] = (s, table, alarms, verdicts, score(s, table, alarms, verdicts, "new"))
    return out


@pytest.mark.parametrize("name", ["quick-healthy", "quick-vicreg-healthy"])
def test_a_healthy_run_raises_no_warning_and_stays_healthy(scored, name):
    s, table, alarms, verdicts, sc = scored[name]
    assert len(table) == 8 and sc.false_alarms == 0
    assert not [a for a in alarms if a.severity != "info"]
    assert set(verdicts) <= {"healthy", "cone"}


@pytest.mark.parametrize("name", ["quick-negatives-off", "quick-weight-decay", "quick-vicreg-variance-off"])
def test_faults_are_dated_and_caught_in_time(scored, name):
    s, table, alarms, verdicts, sc = scored[name]
    assert sc.false_alarms == 0  # nothing before the switch
    assert abs(sc.onset_error) <= 1  # onset within ±1 snapshot of the first affected one
    assert sc.delay <= 2  # first alarm within 2 snapshots
    assert sc.verdict_delay <= 5  # a non-healthy verdict within 5
    assert math.isnan(sc.knn_lead) or sc.knn_lead >= 0  # never after the first kNN drop of ≥ 3 points


def test_a_temperature_switched_too_high_is_named_and_dated(scored):
    """τ 0.2 → 5 at step 90: the positive's logit margin falls below 1 nat while the cosines still separate it."""
    s, table, alarms, verdicts, sc = scored["quick-tau-too-high"]
    tau = [a for a in alarms if a.kind == "temperature_too_high"]
    assert sc.false_alarms == 0 and len(tau) == 1 and tau[0].severity == "warning"
    assert tau[0].step_started == 100 and tau[0].step_detected <= 120  # the first affected snapshot: 100
    assert "contrastive.temperature_step = 90" in tau[0].suggestion and tau[0].suggestion.count("Lower τ") == 1
    assert verdicts[-1] == "temperature_too_high"


def test_the_alarm_names_the_switch_and_the_numbers_agree(scored):
    s, table, alarms, verdicts, sc = scored["quick-negatives-off"]
    first = min((a for a in alarms if a.severity != "info"), key=lambda a: a.step_detected)
    # the switch (contrastive.negatives_off_step = 80) lies between the last snapshot before and the first after
    assert "contrastive.negatives_off_step = 80" in first.suggestion
    # the specific cause is said alone: no generic method advice after it (issue #22)
    assert "InfoNCE:" not in first.suggestion and "queue" not in first.suggestion
    assert "stop-gradient" not in first.suggestion


def sample_table(name):
    from diagnostics.judge.summary import run_table
    from diagnostics.reference.reference_summary import snapshot_summary
    from runformat import open_run
    from runformat.metrics_lines import temperature_for

    run = open_run(f"sample_runs/{name}")
    rows = [snapshot_summary(run.snapshot(s), temperature_for(run, s)) for s in run.snapshot_steps()]
    return run_table(rows), RunContext(run.config, run.metrics())


def test_shipped_complete_collapse_sample_is_dated_at_the_switch_and_not_called_inseparable():
    # negatives removed at step 250; snapshots every 75 steps: the first affected one is 300
    table, ctx = sample_table("complete-collapse-negatives-removed")
    alarms = [a for a in trend_alarms(table, context=ctx) if a.severity != "info"]
    assert min(a.step_detected for a in alarms) == 300 and min(a.step_started for a in alarms) == 300
    assert all("contrastive.negatives_off_step = 250" in a.suggestion for a in alarms)
    ladder = run_verdicts(table)
    assert list(ladder["verdict"][:3]) == ["healthy"] * 3 and set(ladder["verdict"][3:-1]) == {"collapsing"}
    # std 0.07×, mean cosine 0.995 for 3 snapshots: complete collapse, named plainly, with what is still separable
    assert ladder["verdict"].iloc[-1] == "complete_collapse"
    last = ladder["explanation"].iloc[-1]
    assert "0.07×" in last and "AUC 0.97" in last and "cannot be told apart" not in last
    healthy, ctx = sample_table("healthy-infonce-tau0.1")
    assert [a for a in trend_alarms(healthy, context=ctx) if a.severity != "info"] == []
