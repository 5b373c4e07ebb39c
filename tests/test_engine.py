"""diagnostics.measure.engine: the one-pass numbers equal the per-metric functions, closed forms hold, tiles and
subsampling behave. Tolerances: float32 dot products of unit rows are good to ~1e-7 per op, a sum over N
terms to ~N·1e-7 relative at worst; the engine's InfoNCE folds the positive into the matmul (|G| ≤ 2/τ), so
its losses carry ~1e-6/τ absolute error."""

import math
import os

import numpy as np
import pytest
import torch

from diagnostics import open_run
from diagnostics.measure import engine
from diagnostics.measure.engine import EngineConfig, measure
from diagnostics.reference.geometry import similarity_stats, uniformity
from diagnostics.reference.reference_summary import snapshot_summary
from runformat.metrics_lines import temperature_for
from runformat.reader import Snapshot

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_runs")
SKIP = ("verdict", "diverged", "explanation", "suggestions")


def views(n=300, d=16, classes=5, seed=0, noise=0.6):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = 1.5 * rng.standard_normal((classes, d))
    x = centres[labels] + rng.standard_normal((n, d))
    y = x + noise * rng.standard_normal((n, d))
    return x.astype(np.float16), y.astype(np.float16), labels, rng.standard_normal((n, 24)).astype(np.float32)


def assert_matches_summary(numbers, reference, rel=2e-6, abs_=2e-6, skip=()):
    for key, want in reference.items():
        if key in SKIP or key in skip:
            continue
        got = numbers.get(key)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=rel, abs=abs_), key
        else:
            assert got == want, key


@pytest.mark.parametrize("tau", [0.1, 0.3])
def test_engine_equals_the_per_metric_functions(tau):
    x, y, labels, feats = views(noise=1.5)
    snap = Snapshot(step=4, embeddings=x, positives=y, labels=labels, features=feats)
    numbers, arrays = engine.measure_snapshot(snap, temperature=tau)
    assert numbers["estimated"] is False and numbers["step"] == 4
    assert_matches_summary(numbers, snapshot_summary(snap, temperature=tau))
    assert 0.05 < numbers["top1"] < 0.95  # ranks and top-k had real work to do
    s = similarity_stats(x, y, temperature=tau, k=10, bins=80)
    np.testing.assert_array_equal(arrays["positive_rank"], s.positive_rank)
    np.testing.assert_allclose(arrays["positive_cos"], s.positive_cos, atol=1e-7)
    np.testing.assert_allclose(arrays["hardest_negative_cos"], s.hardest_negative_cos, atol=2e-7)
    np.testing.assert_array_equal(arrays["hardest_negative_index"], s.hardest_negative_index)
    np.testing.assert_allclose(arrays["negative_cos_sample"], s.negative_cos, atol=2e-7)
    for name in ("positive", "negative", "hardest_negative"):
        np.testing.assert_array_equal(numbers["histograms"][name]["counts"], s.histograms[name][0])


def test_tiles_of_any_size_give_the_same_numbers():
    x, y, labels, _ = views(n=101)
    base, base_arrays = measure(x, y, labels, temperature=0.2)
    for tile in (7, 64):
        small, arrays = measure(x, y, labels, temperature=0.2, config=EngineConfig(tile=tile))
        for key in ("infonce", "softmax_entropy", "top1", "uniformity"):
            assert small[key] == pytest.approx(base[key], rel=1e-6), (tile, key)
        for name in ("positive_rank", "hardest_negative_index"):
            np.testing.assert_array_equal(arrays[name], base_arrays[name])


@pytest.mark.parametrize("tau", [0.01, 0.005])
def test_small_temperatures_match_float64(tau):
    """Below τ = 0.025 the tile exp needs a running shift; the engine stays within float32 error of a float64
    reference (the per-metric similarity_stats loses ~1% of the entropy here)."""
    x, y, _, _ = views(n=150, noise=0.3)
    for tile in (1024, 16):
        numbers, _ = measure(x, y, temperature=tau, config=EngineConfig(tile=tile))
        xd = torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float64)), dim=1)
        yd = torch.nn.functional.normalize(torch.from_numpy(y.astype(np.float64)), dim=1)
        logits = xd @ yd.T / tau
        lse = torch.logsumexp(logits, 1)
        p = (logits - lse[:, None]).exp()
        assert numbers["infonce"] == pytest.approx((lse - logits.diagonal()).mean().item(), abs=2e-6 / tau)
        assert numbers["softmax_entropy"] == pytest.approx((lse - (p * logits).sum(1)).mean().item(), abs=2e-6 / tau)


def test_closed_form_orthonormal_rows():
    n = 6
    x = np.eye(n)
    tau = 0.5
    numbers, arrays = measure(x, x, np.arange(n), temperature=tau)
    # distinct unit rows at 90°: ||x_i − x_j||² = 2, so uniformity = log e^{−2·2}
    assert numbers["uniformity"] == pytest.approx(-4.0, abs=1e-6)
    loss = math.log(math.exp(1 / tau) + n - 1) - 1 / tau
    p = np.array([math.exp(1 / tau)] + [1.0] * (n - 1)) / (math.exp(1 / tau) + n - 1)
    assert numbers["infonce"] == pytest.approx(loss, abs=1e-6)
    assert numbers["softmax_entropy"] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-6)
    assert numbers["infonce_bound"] == pytest.approx(math.log(n) - loss, abs=1e-6)
    assert numbers["alignment"] == pytest.approx(0, abs=1e-12) and numbers["top1"] == 1.0
    assert numbers["neg_cos_mean"] == 0 and numbers["mean_cos"] == pytest.approx(-1 / (n - 1) + 1 / (n - 1))
    assert numbers["roc_auc"] == 1.0 and numbers["false_negative_rate"] == 0.0
    np.testing.assert_array_equal(arrays["hardest_negative_cos"], 0.0)
    assert arrays["hardest_negative_cos"].shape == (n, n - 1)  # k capped at N − 1
    assert numbers["effective_rank"] == pytest.approx(n, rel=1e-5)


def test_closed_form_antipodal_and_collapsed():
    x = np.eye(4)
    numbers, arrays = measure(x, -x)
    np.testing.assert_array_equal(arrays["positive_rank"], 3)
    assert numbers["top1"] == 0.0 and numbers["roc_auc"] == 0.0 and numbers["alignment"] == pytest.approx(4.0)
    assert "infonce" not in numbers
    numbers, arrays = measure(np.ones((5, 3)), np.ones((5, 3)), temperature=0.5)
    np.testing.assert_array_equal(arrays["positive_rank"], 4)  # ties count against the positive
    assert numbers["infonce"] == pytest.approx(math.log(5), abs=1e-5)
    assert numbers["softmax_entropy"] == pytest.approx(math.log(5), abs=1e-5)
    assert numbers["roc_auc"] == pytest.approx(0.5) and numbers["uniformity"] == pytest.approx(0, abs=1e-6)


def test_nonfinite_rows_keep_the_snapshot_row_numbering():
    x, y, labels, _ = views(n=120)
    x, y = x.copy(), y.copy()
    x[[0, 5]] = np.nan
    y[9, 3] = np.inf
    snap = Snapshot(step=1, embeddings=x, positives=y, labels=labels)
    numbers, arrays = engine.measure_snapshot(snap, temperature=0.1)
    assert_matches_summary(numbers, snapshot_summary(snap, temperature=0.1))
    keep = np.ones(120, bool)
    keep[[0, 5, 9]] = False
    assert np.isnan(arrays["positive_cos"][~keep]).all() and (arrays["positive_rank"][~keep] == -1).all()
    idx = arrays["hardest_negative_index"][keep]
    assert keep[idx].all()  # indices name snapshot rows, never a dropped one
    s = similarity_stats(x[keep], y[keep], temperature=0.1, k=10)
    np.testing.assert_array_equal(idx, np.flatnonzero(keep)[s.hardest_negative_index])


def test_subsampled_estimates_carry_standard_errors():
    x, y, labels, _ = views(n=900, d=8, noise=1.0)
    exact, _ = measure(x, y, labels, temperature=0.2)
    est, arrays = measure(x, y, labels, temperature=0.2, config=EngineConfig(exact_limit=300))
    assert est["estimated"] is True and exact["estimated"] is False and est["anchor_rows"] == 300**2 // 900
    for key in ("uniformity", "infonce", "softmax_entropy", "top1", "false_negative_rate", "knn_accuracy"):
        se = est[key + "_se"]
        assert 0 < se < 0.2 * abs(exact[key]) + 0.05, key
        assert abs(est[key] - exact[key]) < 4.5 * se, key  # fails about 1 in 150,000 for a normal estimate
    for key in ("alignment", "pos_cos_mean", "neg_cos_mean", "effective_rank", "mean_cos"):  # O(N·d): exact
        assert est[key] == pytest.approx(exact[key], rel=1e-9), key
    measured = arrays["positive_rank"] >= 0
    assert measured.sum() == est["anchor_rows"] and np.isnan(arrays["hardest_negative_cos"][~measured]).all()


def test_sample_run_snapshot_matches_the_per_metric_path():
    run = open_run(os.path.join(ROOT, "healthy-infonce-tau0.1"))
    step = run.snapshot_steps()[-1]
    snap, tau = run.snapshot(step), temperature_for(run, step)
    numbers, arrays = engine.measure_snapshot(snap, temperature=tau)
    reference = snapshot_summary(snap, temperature=tau)
    # 500·499 > 200,000 pairs: today's negative mean is a sample mean, the engine's the exact one
    assert_matches_summary(numbers, reference, skip=("neg_cos_mean", "pos_neg_gap"))
    zd = torch.nn.functional.normalize(torch.from_numpy(snap.embeddings.astype(np.float64)), dim=1)
    yd = torch.nn.functional.normalize(torch.from_numpy(snap.positives.astype(np.float64)), dim=1)
    sim = zd @ yd.T
    negatives = sim[~torch.eye(len(sim), dtype=torch.bool)]
    assert numbers["neg_cos_mean"] == pytest.approx(negatives.mean().item(), abs=1e-6)
    assert abs(reference["neg_cos_mean"] - numbers["neg_cos_mean"]) < 5 * negatives.std().item() / math.sqrt(200_000)
    assert numbers["uniformity"] == pytest.approx(uniformity(snap.embeddings), abs=1e-6)
    assert arrays["spectrum"].shape == (min(snap.embeddings.shape),)


def test_neighbours_are_probes_neighbours_and_zero_rows_keep_uniformity():
    """The record's neighbours are probes.nearest_neighbours' (cosine, itself excluded), so movement and shared
    neighbours read from two records equal probes.neighbour_retention; tiles of any size agree."""
    from diagnostics.reference.probes import nearest_neighbours, neighbour_retention

    x, y, labels, _ = views(n=200, noise=1.0)
    x2 = (x.astype(np.float32) + 0.7 * np.random.default_rng(5).standard_normal(x.shape)).astype(np.float32)
    found = []
    for z in (x, x2):
        base = measure(z, labels=labels)[1]["neighbour_index"]
        want, _ = nearest_neighbours(z, np.arange(200), k=10)
        np.testing.assert_array_equal(np.sort(base, axis=1), np.sort(want, axis=1))
        small = measure(z, labels=labels, config=EngineConfig(tile=16))[1]["neighbour_index"]
        np.testing.assert_array_equal(np.sort(small, axis=1), np.sort(base, axis=1))
        found.append(base)
    kept = (found[0][:, :, None] == found[1][:, None, :]).any(axis=2).mean(axis=1)
    np.testing.assert_allclose(kept, neighbour_retention(x, x2, k=10), atol=1e-7)  # its float32 tenths
    z = x.astype(np.float32)
    z[[3, 50]] = 0.0  # normalize leaves them zero: distance 1 to unit rows, 0 to each other
    assert measure(z)[0]["uniformity"] == pytest.approx(uniformity(z), abs=1e-6)


def test_neighbour_index_for_the_pages_is_the_records_and_retention_is_the_references():
    """neighbours.neighbour_index (the features' lists, in the page) is the engine's self sweep: the record's
    lists for the same rows; retention from two such lists equals probes.neighbour_retention (the reference),
    and a non-finite row is NaN instead of a guess."""
    from diagnostics.measure import neighbours
    from diagnostics.reference.probes import nearest_neighbours, neighbour_retention

    x, _, labels, _ = views(n=300, noise=1.0)
    x2 = (x.astype(np.float32) + 0.7 * np.random.default_rng(6).standard_normal(x.shape)).astype(np.float32)
    rec = measure(x, labels=labels)[1]["neighbour_index"]
    np.testing.assert_array_equal(neighbours.neighbour_index(x, 10), rec)
    np.testing.assert_allclose(neighbours.retention(x, x2, 10), neighbour_retention(x, x2, k=10), atol=1e-7)
    idx, cos = neighbours.nearest(x, [0, 7], 6)
    want_idx, want_cos = nearest_neighbours(x, [0, 7], k=6)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(cos, want_cos, atol=1e-6)  # one float32 dot product of unit rows, d = 16: ~1e-7
    bad = x2.copy()
    bad[4] = np.nan
    kept = neighbours.retention(x, bad, 10)
    assert np.isnan(kept[4]) and np.isfinite(np.delete(kept, 4)).all()
