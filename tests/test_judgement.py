"""One judgement of a run (diagnostics.judge.judgement), the same through every surface's data path, and right on
the shipped sample runs: each verdict agrees with the run's own description, the gate fails on every collapse
sample and passes every healthy one; diverged and unmeasurable snapshots are never healthy (#24 item 10)."""

import json
import os
import shutil

import numpy as np
import pytest

from diagnostics.draw import report
from diagnostics.judge import run_state
from diagnostics.judge.advice import RunContext
from diagnostics.judge.judgement import fails, findings, judge_run, judged, lead
from diagnostics.judge.summary import run_table_ready
from diagnostics.store import record
from diagnostics.work.cli import main
from runformat import open_run

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "sample_runs")
# What each sample's description says it shows: (run verdict, gate --fail-on critical fails?)
EXPECTED = {
    "healthy-infonce-tau0.1": ("healthy", False),
    "moco-queue-k1024": ("healthy", False),
    "hard-negatives-beta1": ("healthy", False),
    "adaptive-temperature-entropy": ("healthy", False),
    "crossmodal-clip-lambda1": ("healthy", False),
    "recon-only-lambda0": ("healthy", False),
    "sequence-temporal-vae": ("healthy", False),  # an early collapse that training undid: info only
    "complete-collapse-negatives-removed": ("complete_collapse", True),
    "dimensional-collapse-bn-no-negatives": ("dimensional_collapse", True),
    # τ = 1: "classes separate poorly"; the head folds into 4 of 64 directions and τ is named as the cause
    "high-temperature-tau1": ("dimensional_collapse", True),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Every sample run copied (the clone stays clean), its records computed once, as the worker does."""
    root = tmp_path_factory.mktemp("samples")
    out = {}
    for name in sorted(os.listdir(SAMPLES)):
        if not os.path.exists(os.path.join(SAMPLES, name, "run.json")):
            continue
        path = shutil.copytree(os.path.join(SAMPLES, name), root / name)  # records too, if measured already
        run = open_run(str(path))
        for step in run.snapshot_steps():
            record.get_or_compute(run, step)
        out[name] = run
    return out


def surfaces(run, capsys) -> dict:
    """(verdict, since) as each surface reads it."""
    out = {}
    run_state.write(run)  # the worker, beside the records
    found, state = run_state.load(run, *run_state.listing(run))  # Home (dashboard.data.run_state)
    assert found
    out["home"] = (state["verdict"], state["since"])
    table, _ = run_table_ready(run)  # Live / Collapse (dashboard.data.run_table)
    ctx = RunContext(run.config, run.metrics())
    alarms = findings(table, ctx)  # cards.alarms
    banner = lead(alarms)  # cards.alarm_banner's "trouble since"
    card = judged(table, int(table["step"].iloc[-1]), alarms, ctx)  # cards.verdict_card at the latest step
    j = judge_run(table, ctx)
    out["live"] = (card["verdict"], banner.step_started if banner else j["since"])
    data = report.collect(run, compute=False)  # Review, Compare and the report
    out["report"] = (report.latest_verdicts([data])[run.name]["verdict"], j["since"])
    assert main(["summarize", run_path(run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    out["summarize"] = (printed["verdict"], printed["judgement"]["since"])
    out["summarize_run"] = (printed["judgement"]["verdict"], printed["judgement"]["since"])
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_surface_gives_the_same_verdict_and_onset(samples, name, capsys):
    run = samples[name]
    seen = surfaces(run, capsys)
    assert len(set(seen.values())) == 1, seen
    verdict, since = seen["home"]
    assert verdict == EXPECTED[name][0], (name, seen)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_gate_fails_on_every_collapse_sample_and_passes_every_healthy_one(samples, name, capsys):
    run = samples[name]
    code = main(["summarize", run_path(run), "--fail-on", "critical"])
    assert (code == 3) is EXPECTED[name][1], (name, capsys.readouterr().err)
    if not EXPECTED[name][1]:
        assert main(["summarize", run_path(run), "--fail-on-collapse"]) == 0


def run_path(run) -> str:
    return str(run.path)


def test_high_temperature_is_flagged_with_its_cause(samples):
    run = samples["high-temperature-tau1"]
    table, _ = run_table_ready(run)
    j = judge_run(table, RunContext(run.config, run.metrics()))
    tau = next(f for f in j["findings"] if f["kind"] == "temperature_too_high")
    assert tau["severity"] == "warning" and tau["step_started"] == 60
    assert "Likely cause: τ = 1 is too high" in j["explanation"] and "in the projection head" in j["explanation"]
    assert j["suggestions"][0].startswith("Lower τ")
    healthy = samples["healthy-infonce-tau0.1"]
    table, _ = run_table_ready(healthy)
    assert not [f for f in judge_run(table)["findings"] if f["severity"] != "info"]


def test_one_onset_for_the_dimensional_collapse_sample(samples):
    """Live's banner used to say "trouble since step 300" and Home "dimensional collapse since 420"."""
    run = samples["dimensional-collapse-bn-no-negatives"]
    table, _ = run_table_ready(run)
    j = judge_run(table)
    assert (j["verdict"], j["since"], j["severity"]) == ("dimensional_collapse", 300, "critical")


def test_diverged_and_one_row_snapshots_are_never_healthy(tmp_path, capsys):
    """#24 item 10: an all-NaN snapshot and a one-row snapshot fail the gate, on the record path."""
    from runformat.writer import RunWriter

    rng = np.random.default_rng(0)
    for name, last in (("nan", np.full((64, 8), np.nan, np.float32)), ("one", rng.standard_normal((1, 8)))):
        with RunWriter(str(tmp_path), name=name, config={}) as w:
            w.log_snapshot(0, embeddings=rng.standard_normal((64, 8)).astype(np.float32))
            w.log_snapshot(10, embeddings=np.asarray(last, np.float32))
        path = str(tmp_path / name)
        assert main(["summarize", path, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["verdict"] == {"nan": "diverged", "one": "unmeasurable"}[name]
        assert out["judgement"]["severity"] == "critical" and fails(out["judgement"], "critical")
        assert main(["summarize", path, "--fail-on-collapse"]) == 3
        assert ("training diverged" in capsys.readouterr().out) is (name == "nan")  # a finite row is no NaN
