"""Spectra, RankMe, SimSiam std, α-ReQ, verdicts and trend alarms on constructed embeddings."""
import math

import numpy as np
import pandas as pd
import pytest

from diagnostics.collapse import (CollapseThresholds, TrendRules, alpha_req, dead_dimensions, diagnose,
                                  effective_rank, mean_pairwise_cosine, normalized_std, rankme,
                                  singular_spectrum, trend_alarms)


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
    assert r.verdict == "healthy" and "4 of 500 rows" in r.explanation
    assert any("learning rate" in s for s in r.suggestions)
    assert r.numbers["effective_rank"] == pytest.approx(effective_rank(z[np.isfinite(z).all(1)]))
    everything_bad = diagnose(np.full((5, 3), np.nan))
    assert everything_bad.diverged and not everything_bad.judged and everything_bad.nonfinite_rows == 5


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_inputs_do_not_crash(n):
    r = diagnose(np.random.default_rng(0).standard_normal((n, 4)))
    assert r.verdict == "healthy" and not r.judged and "too few" in r.explanation
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
    assert diagnose(healthy(), thresholds=CollapseThresholds(dimensional_rank_fraction=2.0)).verdict == \
        "dimensional_collapse"
    assert diagnose(dimensional(), thresholds=CollapseThresholds(dimensional_rank_fraction=0.0)).verdict == \
        "healthy"


# -- trend alarms -------------------------------------------------------------------------------------

def run_table(**cols):
    steps = np.arange(len(next(iter(cols.values())))) * 100
    return pd.DataFrame({"step": steps, **cols})


def test_rank_falling_reports_when_it_began():
    table = run_table(effective_rank=[10, 20, 30, 28, 25, 19, 12],
                      verdict=["healthy"] * 6 + ["dimensional_collapse"])
    alarms = trend_alarms(table)
    rank = next(a for a in alarms if a.kind == "rank_falling")
    assert (rank.step_started, rank.step_detected) == (300, 500)  # best at 200; 19 < 0.7 × 30
    assert "began at step 300" in rank.message and rank.suggestion
    collapse = next(a for a in alarms if a.kind == "dimensional_collapse")
    assert collapse.step_detected == 600 and collapse.severity == "warning"
    assert [a.step_detected for a in alarms] == sorted(a.step_detected for a in alarms)


def test_rules_are_overridable_and_quiet_runs_stay_quiet():
    table = run_table(effective_rank=[10, 20, 30, 28, 25, 19, 12])
    assert trend_alarms(table, TrendRules(rank_drop_fraction=0.7)) == []
    steady = run_table(effective_rank=[10, 12, 13, 13, 12.5], uniformity=[-1, -2, -3, -3.1, -2.9],
                       pos_neg_gap=[0.1, 0.3, 0.5, 0.55, 0.5], nonfinite_rows=[0] * 5, verdict=["healthy"] * 5)
    assert trend_alarms(steady) == []


def test_uniformity_rising_and_gap_closing():
    table = run_table(uniformity=[-1.0, -3.0, -3.2, -3.0, -2.5], pos_neg_gap=[0.2, 0.6, 0.5, 0.4, 0.25])
    alarms = {a.kind: a for a in trend_alarms(table)}
    assert (alarms["uniformity_rising"].step_started, alarms["uniformity_rising"].step_detected) == (300, 400)
    assert (alarms["gap_closing"].step_started, alarms["gap_closing"].step_detected) == (200, 400)


def test_nan_appearing_and_complete_collapse_are_critical():
    table = run_table(effective_rank=[30, 31, np.nan, np.nan], nonfinite_rows=[0, 0, 0, 12],
                      verdict=["healthy", "healthy", "healthy", "complete_collapse"])
    alarms = {a.kind: a for a in trend_alarms(table)}
    assert alarms["nonfinite"].step_detected == 200 and alarms["nonfinite"].severity == "critical"
    assert "effective_rank became NaN" in alarms["nonfinite"].message
    assert alarms["complete_collapse"].severity == "critical" and alarms["complete_collapse"].step_started == 300
    rows = run_table(nonfinite_rows=[0, 3, 0])
    assert trend_alarms(rows)[0].step_started == 100 and "3 embedding rows" in trend_alarms(rows)[0].message


def test_collapse_that_recovers_is_info_not_alarm():
    table = run_table(verdict=["complete_collapse", "dimensional_collapse", "healthy", "healthy"])
    alarms = {a.kind: a for a in trend_alarms(table)}
    assert alarms["complete_collapse"].severity == "info" and alarms["complete_collapse"].step_started == 0
    assert "recovered by step 100" in alarms["complete_collapse"].message
    assert alarms["dimensional_collapse"].severity == "info" and "step 200" in alarms["dimensional_collapse"].message


def test_trend_alarms_bad_input_and_unsorted_steps():
    with pytest.raises(ValueError, match="table"):
        trend_alarms(pd.DataFrame({"x": [1]}))
    table = run_table(effective_rank=[30, 10])
    table = table.iloc[::-1]  # order of rows must not matter
    assert trend_alarms(table)[0].step_detected == 100
    assert trend_alarms(pd.DataFrame({"step": []})) == []
