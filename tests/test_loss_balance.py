"""The contrastive term fighting the reconstruction loss (diagnostics.judge.loss_balance), on constructed metrics:
per snapshot interval, the median reconstruction loss against its best earlier interval."""

import re

import numpy as np
import pandas as pd
import pytest

from diagnostics.judge.advice import RunContext
from diagnostics.judge.judgement import findings, judge_run
from diagnostics.judge.loss_balance import RISE, loss_balance_alarms

STEPS = list(range(25, 401, 25))  # snapshots every 25 steps


def metrics(recon, contrastive, names=("loss/reconstruction", "loss/contrastive"), noise=0.01):
    """One line per step 0..400; recon/contrastive: functions of the step; ±`noise` relative jitter."""
    rng = np.random.default_rng(0)
    step = np.arange(401)
    jitter = lambda: 1 + noise * rng.uniform(-1, 1, len(step))  # noqa: E731
    return pd.DataFrame({"step": step, names[0]: recon(step) * jitter(), names[1]: contrastive(step) * jitter()})


def settled(step):  # falls from 4 to 1.0 by step 150, then flat
    return np.maximum(1.0, 4.0 - 0.02 * step)


def table():
    return pd.DataFrame({"step": STEPS})


def test_a_reconstruction_that_climbs_alone_is_found_at_its_first_interval():
    # λ stepped at 250: the reconstruction rises 25 % (over RISE = 1.10), the contrastive loss keeps falling
    recon = lambda s: settled(s) * np.where(s > 250, 1.25, 1.0)  # noqa: E731
    ctx = RunContext(
        {"contrastive": {"weight_step": 250, "weight_after": 300.0}}, metrics(recon, lambda s: 3.0 - s / 1000)
    )
    (a,) = loss_balance_alarms(table(), ctx)
    assert (a.kind, a.severity, a.step_started, a.step_detected, a.step_before) == (
        "reconstruction_rising",
        "warning",
        275,
        275,
        250,
    )
    # 1.25 over the best interval's median; each median of 25 lines with ±1 % jitter is within ~0.5 %, and the
    # best is the lowest of ten such medians: the ratio is 1.25 within 0.02
    assert float(re.search(r"(\d\.\d+)× its best", a.message).group(1)) == pytest.approx(1.25, abs=0.02)
    assert "contrastive.weight_step = 250" in a.suggestion  # the switch between the two snapshots is named
    assert [f.kind for f in findings(table(), ctx)] == ["reconstruction_rising"]
    judgement = judge_run(table(), ctx)  # the geometry sees nothing: the cause is the run's verdict, dated
    assert (judgement["verdict"], judgement["since"], judgement["severity"]) == (
        "reconstruction_rising",
        275,
        "warning",
    )


def test_healthy_noise_a_rise_with_everything_and_missing_losses_raise_nothing():
    ctx = RunContext({}, metrics(settled, lambda s: 3.0 - s / 1000, noise=0.03))  # ±3 % per line
    assert loss_balance_alarms(table(), ctx) == []
    both = lambda s: settled(s) * np.where(s > 250, 1.3, 1.0)  # noqa: E731
    ctx = RunContext({}, metrics(both, both))  # both losses up 30 %: instability, not a tug of war
    assert loss_balance_alarms(table(), ctx) == []
    just_under = lambda s: settled(s) * np.where(s > 250, RISE - 0.03, 1.0)  # noqa: E731
    assert loss_balance_alarms(table(), RunContext({}, metrics(just_under, lambda s: 3.0 + 0 * s, noise=0))) == []
    only_recon = metrics(settled, settled).drop(columns="loss/contrastive")
    assert loss_balance_alarms(table(), RunContext({}, only_recon)) == []
    assert loss_balance_alarms(table(), RunContext()) == []


def test_other_spellings_dense_snapshots_and_a_recovery():
    recon = lambda s: settled(s) * np.where((s > 250) & (s <= 330), 1.25, 1.0) * np.where(s > 330, 0.9, 1.0)  # noqa: E731
    m = metrics(recon, lambda s: 3.0 - s / 1000, names=("recon_loss", "contrastive_loss"))
    (a,) = loss_balance_alarms(table(), RunContext({}, m))
    assert a.severity == "info" and "recovered by step 400" in a.message  # below its best again at the end
    # snapshots every 2 steps: each interval is widened back to the last 10 lines, so one noisy line is no rise
    dense = pd.DataFrame({"step": list(range(2, 401, 2))})
    spiky = metrics(settled, lambda s: 3.0 - s / 1000)
    spiky.loc[spiky["step"] == 300, "loss/reconstruction"] = 5.0
    assert loss_balance_alarms(dense, RunContext({}, spiky)) == []
