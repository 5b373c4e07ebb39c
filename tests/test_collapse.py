"""Spectra, RankMe, SimSiam std, α-ReQ, verdicts and trend alarms on constructed embeddings."""

import math

import numpy as np
import pandas as pd
import pytest

from diagnostics.judge.advice import RunContext, methods
from diagnostics.judge.alarms import RAW_SIGNALS, SIGNALS, run_verdicts, signals_for, trend_alarms
from diagnostics.judge.collapse import CollapseThresholds, judge
from diagnostics.judge.judgement import findings
from diagnostics.measure._primitives import rankme, top_variance_share
from diagnostics.reference.reference_collapse import (
    alpha_req,
    collapse_numbers,
    dead_dimensions,
    diagnose,
    effective_rank,
    mean_pairwise_cosine,
    normalized_std,
    raw_std,
    singular_spectrum,
)


def with_spectrum(sigma, n=300, d=None, seed=0, centred=True):
    """n×d matrix whose (centred) singular values are exactly `sigma`."""
    rng = np.random.default_rng(seed)
    r = len(sigma)
    d = d or r
    u = rng.standard_normal((n, r))
    if centred:
        u -= u.mean(axis=0)
    u, _ = np.linalg.qr(u)
    v, _ = np.linalg.qr(rng.standard_normal((d, r)))
    return (u * np.asarray(sigma, float)) @ v.T


def rankme_closed_form(p, eps=1e-7):
    p = np.asarray(p, float) / np.sum(p) + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def healthy(n=2000, d=32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def dimensional(n=2000, d=64, seed=0):
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((2, d))
    return (rng.standard_normal((n, 2)) @ basis + 1e-3 * rng.standard_normal((n, d))).astype(np.float32)


def complete(n=2000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(d) + 1e-4 * rng.standard_normal((n, d))).astype(np.float32)


# -- spectra ------------------------------------------------------------------------------------------


def test_singular_spectrum_recovers_a_constructed_spectrum():
    sigma = [9.0, 4.0, 2.0, 0.5]
    z = with_spectrum(sigma, d=6)
    s = singular_spectrum(z)
    assert s.shape == (6,)  # min(N, d); the construction has rank 4, so two (numerical) zeros follow
    np.testing.assert_allclose(s[:4], sigma, rtol=1e-6)
    np.testing.assert_allclose(s[4:], 0, atol=1e-6)
    # a shared offset is removed by centring
    np.testing.assert_allclose(singular_spectrum(z + 5.0)[:4], sigma, rtol=1e-5)
    assert np.all(np.diff(s) <= 0)


def test_singular_spectrum_shape_and_nan():
    assert singular_spectrum(np.random.default_rng(0).standard_normal((5, 8))).shape == (5,)
    z = np.ones((4, 3))
    z[1, 2] = np.nan
    assert np.isnan(singular_spectrum(z)).all()


def test_effective_rank_closed_forms():
    assert effective_rank(np.diag([3.0, 3, 3, 3])) == pytest.approx(rankme_closed_form([1, 1, 1, 1]), rel=1e-6)
    assert effective_rank(np.diag([3.0, 3, 3, 3])) == pytest.approx(4.0, rel=1e-5)
    assert effective_rank(np.diag([4.0, 2, 1, 1])) == pytest.approx(rankme_closed_form([4, 2, 1, 1]), rel=1e-6)
    # not centred: one repeated vector is one direction
    assert effective_rank(np.tile([1.0, 2.0, 3.0], (10, 1))) == pytest.approx(1.0, abs=1e-4)
    assert effective_rank(np.zeros((5, 3))) == 0.0
    assert rankme([1.0, 0.0], eps=0) == pytest.approx(1.0)
    assert effective_rank(with_spectrum([5.0] * 7, d=20, centred=False)) == pytest.approx(7.0, rel=1e-4)


def test_normalized_std_closed_forms():
    d = 16
    z = np.concatenate([np.eye(d), -np.eye(d)]) * 3.0  # ±e_k: variance 1/d per dimension
    assert normalized_std(z) == pytest.approx(1 / math.sqrt(d), rel=1e-6)
    assert normalized_std(np.tile(np.arange(1.0, 5.0), (9, 1))) == pytest.approx(0.0, abs=1e-7)
    assert normalized_std(healthy(4000, 64)) == pytest.approx(1 / 8, rel=0.05)


def test_dead_dimensions():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.standard_normal((50, 3)), np.full((50, 2), 7.0)], axis=1)
    assert dead_dimensions(z) == 2
    assert dead_dimensions(np.ones((6, 4))) == 4
    assert dead_dimensions(healthy(100, 8)) == 0
    with pytest.raises(ValueError, match="tol"):
        dead_dimensions(z, tol=-1)


def test_mean_pairwise_cosine_matches_closed_forms_and_dense():
    n = 9
    v = np.eye(n) - 1.0 / n
    assert mean_pairwise_cosine(v) == pytest.approx(-1 / (n - 1), abs=1e-6)
    assert mean_pairwise_cosine(np.ones((4, 3))) == pytest.approx(1.0, abs=1e-6)
    z = healthy(50, 5)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    c = zn @ zn.T
    assert mean_pairwise_cosine(z) == pytest.approx(c[~np.eye(50, dtype=bool)].mean(), abs=1e-6)
    assert math.isnan(mean_pairwise_cosine(np.ones((1, 3))))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_power_law(alpha):
    k = np.arange(1, 17)
    z = with_spectrum(k ** (-alpha / 2), n=400, d=16)  # σ² = λ ∝ k^−α
    assert alpha_req(z) == pytest.approx(alpha, rel=1e-4)


def test_alpha_req_needs_three_directions():
    assert alpha_req(np.random.default_rng(0).standard_normal((10, 2))) is None
    assert alpha_req(np.ones((10, 5))) is None


# -- verdicts -----------------------------------------------------------------------------------------


def test_verdicts_on_constructed_embeddings():
    h, dc, cc = diagnose(healthy()), diagnose(dimensional()), diagnose(complete())
    assert h.verdict == "healthy" and not h.suggestions and h.judged
    assert dc.verdict == "dimensional_collapse" and "effective directions" in dc.explanation
    assert dc.numbers["effective_rank_centred"] == pytest.approx(2.0, abs=0.6)
    assert any("negatives" in s for s in dc.suggestions) and any("temperature" in s for s in dc.suggestions)
    assert cc.verdict == "complete_collapse" and cc.numbers["std_ratio"] < 0.01
    assert "same" in cc.explanation and cc.suggestions
    assert not (h.diverged or dc.diverged or cc.diverged)
    assert h.numbers["std_ratio"] == pytest.approx(1.0, abs=0.05)


def test_shared_offset_alone_is_not_collapse():
    r = diagnose(healthy() * 0.2 + 1.0)
    assert r.verdict == "healthy" and r.numbers["mean_cos"] > 0.9 and "one cone" in r.explanation
    assert "cone" not in diagnose(healthy()).explanation
    # a cone of about 3°: complete collapse
    assert diagnose(healthy() * 0.01 + 1.0).verdict == "complete_collapse"


def test_all_zero_embeddings_are_complete_collapse():
    assert diagnose(np.zeros((10, 4))).verdict == "complete_collapse"


def test_float16_snapshot_gives_the_float32_verdict_and_numbers():
    z16 = dimensional().astype(np.float16)
    a, b = diagnose(z16), diagnose(z16.astype(np.float32))
    assert a.verdict == b.verdict and a.numbers == b.numbers


def test_nonfinite_rows_are_divergence_not_a_crash():
    z = healthy(500, 16)
    z[[3, 77, 100]] = np.nan
    z[5, 2] = np.inf
    r = diagnose(z)
    assert r.diverged and r.nonfinite_rows == 4 and r.numbers["finite_rows"] == 496
    # a NaN row is divergence whatever the finite rows look like (#24 item 10): never "healthy"
    assert r.verdict == "diverged" and "4 of 500 rows" in r.explanation and "no sign of collapse" in r.explanation
    assert any("learning rate" in s for s in r.suggestions)
    assert r.numbers["effective_rank"] == pytest.approx(effective_rank(z[np.isfinite(z).all(1)]))
    everything_bad = diagnose(np.full((5, 3), np.nan))
    assert everything_bad.diverged and not everything_bad.judged and everything_bad.nonfinite_rows == 5
    assert everything_bad.verdict == "diverged"


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_inputs_do_not_crash(n):
    r = diagnose(np.random.default_rng(0).standard_normal((n, 4)))
    assert r.verdict == "unmeasurable" and not r.judged and "too few" in r.explanation  # never "healthy"
    assert not r.diverged


def test_three_points_are_judged():
    assert diagnose(np.eye(3)).judged


def test_features_point_at_the_projection_head():
    z = dimensional(1000, 64)
    r = diagnose(z, features=healthy(1000, 32))
    assert r.verdict == "dimensional_collapse" and "projection head" in r.explanation
    assert r.numbers["effective_rank_features"] > 25
    with pytest.raises(ValueError, match="features"):
        diagnose(z, features=healthy(10, 32))


def test_thresholds_are_overridable():
    assert (
        diagnose(healthy(), thresholds=CollapseThresholds(dimensional_rank_fraction=2.0)).verdict
        == "dimensional_collapse"
    )
    assert (
        diagnose(
            dimensional(), thresholds=CollapseThresholds(dimensional_rank_fraction=0.0, concentrated_share=1.1)
        ).verdict
        == "healthy"
    )


def test_top_variance_share_closed_forms():
    assert top_variance_share(np.ones(64), 64) == pytest.approx(4 / 64)  # even spread: k/d
    assert top_variance_share(np.r_[np.ones(4), np.zeros(60)], 64) == pytest.approx(1.0)
    assert top_variance_share(np.r_[3.0, np.ones(31)], 32) == pytest.approx((9 + 1) / (9 + 31))  # k = 2 of 32
    assert math.isnan(top_variance_share(np.zeros(8), 8))


def test_a_head_folded_into_a_few_directions_is_dimensional_collapse_in_the_head():
    """Variance in 4 of 64 directions (92 %) and a long flat tail that keeps the entropy rank above 15 %: the
    variance-based share calls it, and a backbone that holds up names the head (issue #22's outside run)."""
    sigma = np.r_[np.full(4, 10.0), np.full(60, 0.75)]  # 400 / (400 + 33.75) = 0.922
    z = with_spectrum(sigma, n=2000, d=64)
    numbers = collapse_numbers(z, features=healthy(2000, 128))
    assert numbers["top_variance_share"] == pytest.approx(400 / 433.75, rel=1e-6)
    assert numbers["rank_fraction"] > 0.15 and numbers["top_variance_share_features"] < 0.2
    r = judge(numbers)
    assert r.verdict == "dimensional_collapse" and "in the projection head" in r.explanation
    assert "4 of the 64 directions" in r.explanation


# -- trend alarms (diagnostics/judge/alarms.py), re-exported from collapse ------------------------------------


def run_table(n_before, falling=(), **cols):
    """A table whose normalised std holds at ~0.96× 1/√d (±0.01 noise) for n_before snapshots, then
    takes the `falling` values; other columns as given (padded with their last value)."""
    rng = np.random.default_rng(0)
    ratio = list(0.96 + 0.01 * rng.standard_normal(n_before)) + list(falling)
    n = len(ratio)
    table = {"step": np.arange(n) * 10, "normalized_std": np.array(ratio) / 8.0, "inv_sqrt_d": np.full(n, 1 / 8.0)}
    for k, v in cols.items():
        table[k] = list(v) + [v[-1]] * (n - len(v))
    return pd.DataFrame(table)


def test_a_healthy_transient_raises_nothing():
    # the false alarm: rank peaks at the 2nd snapshot (random init) and settles 30% lower while kNN
    # climbs 0.34 -> 0.92; the spread holds
    # (the old best-so-far rule, bench/detectors_v0.py, fired rank_falling "began at step 20" on this table)
    table = run_table(
        10,
        effective_rank=[20, 30, 27, 24, 22, 21, 21, 21.5, 21, 20.5],
        knn_accuracy=[0.34, 0.5, 0.7, 0.8, 0.85, 0.9, 0.91, 0.92, 0.92, 0.92],
        uniformity=[-1.5, -2.5, -2.7, -2.8, -2.8, -2.85, -2.8, -2.8, -2.85, -2.8],
    )
    assert trend_alarms(table) == []
    assert set(run_verdicts(table)["verdict"]) == {"healthy"}


def test_spread_falling_dates_the_change_point_and_climbs_the_ladder():
    table = run_table(8, falling=[0.88, 0.60, 0.40, 0.25], mean_cos=[0.05] * 8 + [0.1, 0.6, 0.8, 0.9])
    alarms = {a.kind: a for a in trend_alarms(table)}
    spread = alarms["spread_falling"]
    # 0.60 is log(0.96/0.60) = 0.47 below the baseline: more than twice the 0.15 minimum, so it fires at once;
    # the change point is the split where the mean falls most: before 0.60 (0.88 is a small first dip)
    assert (spread.step_started, spread.step_detected, spread.step_before) == (90, 90, 80)
    assert "between step 80 and 90" in spread.message and "0.60× 1/√d" in spread.message
    ladder = list(run_verdicts(table)["verdict"])
    assert ladder[:9] == ["healthy"] * 9  # 0.88 alone is no alarm
    assert ladder[9:] == ["contracting", "collapsing", "collapsing"]  # 0.40 < 0.5 × 0.96
    assert alarms["collapsing"].severity == "critical" and alarms["collapsing"].step_detected == 100
    assert alarms["collapsing"].step_started == 90


def test_rank_alone_is_not_enough_but_agreement_is():
    rank = [18.0] * 6 + [16, 15, 14, 13]  # log 0.12 below: out, but not twice the 0.10 threshold
    assert trend_alarms(run_table(10, effective_rank=rank)) == []
    both = run_table(10, effective_rank=rank, uniformity=[-2.8] * 6 + [-2.6, -2.5, -2.4, -2.3])
    kinds = {a.kind: a for a in trend_alarms(both)}
    assert kinds["rank_falling"].step_started == 60 and kinds["rank_falling"].step_detected == 70
    assert kinds["uniformity_rising"].signals == ["rank", "uniformity"]
    assert list(run_verdicts(both)["verdict"])[-1] == "narrowing"


def test_nan_appearing_and_complete_collapse_are_critical():
    table = run_table(
        4,
        effective_rank=[30, 31, np.nan, np.nan],
        nonfinite_rows=[0, 0, 0, 12],
        verdict=["healthy", "healthy", "healthy", "complete_collapse"],
        explanation=["", "", "", "Complete collapse."],
    )
    alarms = {a.kind: a for a in trend_alarms(table)}
    assert alarms["nonfinite"].step_detected == 20 and alarms["nonfinite"].severity == "critical"
    assert "effective_rank became NaN" in alarms["nonfinite"].message
    assert alarms["complete_collapse"].severity == "critical" and alarms["complete_collapse"].step_started == 30
    rows = run_table(3, nonfinite_rows=[0, 3, 0])
    assert trend_alarms(rows)[0].step_started == 10 and "3 embedding rows" in trend_alarms(rows)[0].message


def test_collapse_that_recovers_is_info_not_alarm():
    table = run_table(4, verdict=["complete_collapse", "dimensional_collapse", "healthy", "healthy"])
    alarms = {a.kind: a for a in trend_alarms(table)}
    assert alarms["complete_collapse"].severity == "info" and alarms["complete_collapse"].step_started == 0
    assert "recovered by step 10" in alarms["complete_collapse"].message
    assert alarms["dimensional_collapse"].severity == "info" and "step 20" in alarms["dimensional_collapse"].message


def test_trend_alarms_bad_input_and_unsorted_steps():
    with pytest.raises(ValueError, match="table"):
        trend_alarms(pd.DataFrame({"x": [1]}))
    table = run_table(6, falling=[0.3, 0.2])
    forward = trend_alarms(table)
    assert [a.kind for a in trend_alarms(table.iloc[::-1])] == [a.kind for a in forward]  # row order is irrelevant
    assert forward[0].step_detected == 60
    assert trend_alarms(pd.DataFrame({"step": []})) == []


def test_suggestions_fit_the_method_and_name_the_switch():
    table = run_table(8, falling=[0.5, 0.3])
    simsiam = RunContext(
        {"contrastive": {"objective": "simsiam"}, "predictor": {"stop_gradient": True, "stop_gradient_off_step": 75}}
    )
    tip = trend_alarms(table, context=simsiam)[0].suggestion
    # the switch is the specific cause, said alone: no generic method advice after it (issue #22)
    assert "predictor.stop_gradient_off_step = 75" in tip and "queue" not in tip and "BYOL/SimSiam" not in tip
    moco = trend_alarms(table, context=RunContext({"contrastive": {"objective": "moco", "queue_size": 1024}}))
    assert "contrastive.queue_size" in moco[0].suggestion and "contrastive.momentum" in moco[0].suggestion
    # a switch outside [last snapshot before, first after) explains nothing: the snapshot at step 90 was
    # written before update 90, so a switch at 90 would show first at 100
    late = RunContext({"contrastive": {"objective": "nt_xent", "negatives_off_step": 90}})
    assert "negatives_off_step" not in trend_alarms(table, context=late)[0].suggestion
    assert "contrastive.temperature" in trend_alarms(table, context=late)[0].suggestion


def test_shared_offset_is_a_cone_and_separable_cones_are_not_complete_collapse():
    z = np.random.default_rng(0).standard_normal((1000, 64)) + 10  # the example
    r = diagnose(z)
    assert r.numbers["std_ratio"] < 0.1 and r.numbers["rank_fraction"] > 0.9
    assert r.verdict == "cone" and "shared offset" in r.explanation
    numbers = dict(collapse_numbers(healthy() * 0.05 + 1.0))  # std ≈ 0.05×: a tight cone
    assert judge(dict(numbers, roc_auc=0.93, knn_accuracy=0.71)).verdict == "cone"
    told_apart = judge(dict(numbers, roc_auc=0.93, knn_accuracy=0.71)).explanation
    assert "AUC 0.93" in told_apart and "71%" in told_apart and "cannot be told apart" not in told_apart
    lost = judge(dict(numbers, roc_auc=0.55))
    assert lost.verdict == "complete_collapse" and "AUC 0.55" in lost.explanation


def test_the_ladder_rejudges_a_complete_collapse_whose_pairs_are_still_separable():
    # summary judges before it has the AUC; the table has both, and the words must follow the numbers
    table = pd.DataFrame(
        {
            "step": [10, 20],
            "normalized_std": [0.07 / 8, 0.005 / 8],
            "inv_sqrt_d": [1 / 8] * 2,
            "roc_auc": [0.93, 0.93],
            "knn_accuracy": [0.71, 0.2],
            "verdict": ["complete_collapse"] * 2,
            "explanation": ["samples cannot be told apart"] * 2,
        }
    )
    ladder = run_verdicts(table)
    assert list(ladder["verdict"]) == ["cone", "complete_collapse"]  # 0.005× is below the 0.02× point floor
    assert "AUC 0.93" in ladder["explanation"][0] and "71%" in ladder["explanation"][0]
    assert "cannot be told apart" not in ladder["explanation"][0]


def test_running_median_equals_nanmedian_of_the_padded_window():
    """alarms.running_median3 replaced np.nanmedian over the NaN-padded 3-snapshot window (masked-array set-up
    was most of a track's cost): the same values on random series of every short length, ties included."""
    from diagnostics.judge.alarms import running_median3

    rng = np.random.default_rng(0)
    for trial in range(2000):
        xf = rng.standard_normal(int(rng.integers(0, 12))) * 10.0 ** int(rng.integers(-3, 3))
        if trial % 3 == 0:
            xf = np.round(xf, 1)  # ties
        window = np.stack([xf, np.r_[np.nan, xf[:-1]][: len(xf)], np.r_[np.nan, np.nan, xf[:-2]][: len(xf)]])
        with np.errstate(all="ignore"):
            expected = np.nanmedian(window, axis=0) if len(xf) else xf
        np.testing.assert_array_equal(running_median3(xf), expected)


def test_raw_std_closed_form():
    # columns with stds 1, 2, 3 (ddof 0) around an offset of 10: the raw std is their mean, 2, offset or not
    col = np.array([-1.0, 1.0])
    z = np.stack([col * 1 + 10, col * 2 + 10, col * 3 - 10], axis=1)
    assert raw_std(z) == pytest.approx(2.0, rel=1e-12)
    assert collapse_numbers(np.tile(z, (10, 1)))["raw_std"] == pytest.approx(2.0, rel=1e-12)


VICREG = RunContext({"vicreg": {"variance": 25.0, "covariance": 1.0}})


def test_variance_regularised_methods_are_known_by_config_or_loss_names():
    assert "variance" in methods(VICREG)
    assert "variance" in methods(RunContext({"contrastive": {"objective": "barlow_twins"}}))
    assert "variance" in methods(RunContext(None, pd.DataFrame({"step": [0], "loss/covariance": [1.0]})))
    assert "variance" not in methods(RunContext({"contrastive": {"objective": "nt_xent", "temperature": 0.1}}))
    assert signals_for(VICREG) is RAW_SIGNALS and signals_for(None) is SIGNALS


def offset_cone_table(raw):
    """VICReg-like: the directions bunch (normalised std 0.96× → 0.60×, gap and uniformity with them) as a mean
    offset grows, while the raw per-dimension std takes the values `raw` (held, or lost)."""
    n = len(raw)
    ratio = np.r_[np.full(8, 0.96), np.linspace(0.9, 0.6, n - 8)]
    return pd.DataFrame(
        {
            "step": np.arange(n) * 10,
            "normalized_std": ratio / 8.0,
            "inv_sqrt_d": np.full(n, 1 / 8.0),
            "uniformity": np.r_[np.full(8, -2.8), np.linspace(-2.5, -1.5, n - 8)],
            "pos_neg_gap": np.r_[np.full(8, 0.6), np.linspace(0.55, 0.4, n - 8)],
            "effective_rank_centred": np.full(n, 12.0),
            "effective_rank": np.full(n, 12.0),
            "raw_std": raw,
        }
    )


def test_a_variance_regularised_run_is_judged_on_its_raw_scale():
    held = offset_cone_table(np.full(14, 1.1))
    assert {a.kind for a in trend_alarms(held)} >= {"spread_falling"}  # on the sphere: a cone, alarmed
    assert trend_alarms(held, context=VICREG) == []  # its own geometry holds: no alarm
    assert set(run_verdicts(held, signals=RAW_SIGNALS)["verdict"]) == {"healthy"}
    # the scale lost: 1.1 → 0.5 (log 0.79, over twice the 0.15 minimum) is collapsing, in the raw std's words
    lost = offset_cone_table(np.r_[np.full(8, 1.1), [0.5, 0.3, 0.2, 0.1, 0.08, 0.07]])
    alarms = {a.kind: a for a in trend_alarms(lost, context=VICREG)}
    assert alarms["spread_falling"].step_started == 80 and alarms["spread_falling"].step_detected == 80
    assert (
        "std of the raw embeddings went from 1.1 (its baseline) to 0.5 at step 80" in alarms["spread_falling"].message
    )
    assert (
        alarms["collapsing"].severity == "critical" and "std of the raw embeddings fell" in alarms["collapsing"].message
    )
    assert "VICReg" in alarms["collapsing"].suggestion


def test_an_end_state_in_force_is_dated_at_its_current_episode():
    # a lone dimensional-collapse snapshot at step 20 that recovered, then the real one from step 90 on
    verdict = ["healthy", "healthy", "dimensional_collapse"] + ["healthy"] * 6 + ["dimensional_collapse"] * 4
    table = run_table(
        13, verdict=verdict, explanation=["Dimensional collapse." if v != "healthy" else "" for v in verdict]
    )
    dim = {a.kind: a for a in findings(table)}["dimensional_collapse"]
    assert dim.severity == "critical" and (dim.step_started, dim.step_detected) == (90, 90)
    assert "also been dimensional collapse at step 20 and recovered" in dim.message
