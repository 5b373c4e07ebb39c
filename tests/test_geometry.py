"""Alignment, uniformity and similarity statistics against closed forms and dense float64 references."""

import math

import numpy as np
import pytest
import torch

from diagnostics.measure import _tensor
from diagnostics.measure._primitives import log_pair_kernel_sum, roc_auc, sample_pairs
from diagnostics.reference.geometry import (
    alignment,
    breakdown,
    false_negative_rate,
    similarity_stats,
    uniformity,
    uniformity_estimate,
)


def sphere(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def simplex(n):
    """n unit vectors in R^n with pairwise cosine −1/(n−1)."""
    v = np.eye(n) - 1.0 / n
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def dense_uniformity(x, t=2.0):
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(x, np.float64)), dim=1)
    return torch.pdist(x).pow(2).mul(-t).exp().mean().log().item()


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Force row blocks of a few rows so every chunk boundary is exercised on small N."""
    monkeypatch.setattr(_tensor, "BLOCK_BYTES_CPU", 4 * 16 * 7 * 7)
    monkeypatch.setattr(_tensor, "BLOCK_BYTES_CUDA", 4 * 16 * 7 * 7)


# -- uniformity ---------------------------------------------------------------------------------------


def test_uniformity_closed_forms():
    assert uniformity(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(-8.0, abs=1e-6)  # log e^{−4t}
    assert uniformity(np.array([[0, 3.0], [0, -0.5]]), t=1) == pytest.approx(-4.0, abs=1e-6)
    for n in (3, 4, 10, 57):  # regular simplex: ||x_i − x_j||² = 2 + 2/(n−1)
        assert uniformity(simplex(n)) == pytest.approx(-2 * (2 + 2 / (n - 1)), abs=1e-5)
    assert uniformity(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-6)  # everything on one spot
    # orthonormal points: ||x_i − x_j||² = 2 for every pair
    assert uniformity(np.eye(6), t=0.5) == pytest.approx(-1.0, abs=1e-6)


def test_uniformity_single_point_is_nan_and_zero_rows_stay_zero():
    assert math.isnan(uniformity(np.ones((1, 4))))
    # a zero row normalises to 0, at distance 1 from any unit vector: kernel e^{−t}
    assert uniformity(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(-2.0, abs=1e-6)
    assert math.isnan(uniformity(np.array([[1.0, 0.0], [np.nan, 0.0], [0.0, 1.0]])))
    # two zero rows (kernel 1 between them, e^{−t} to the unit row) and an antipodal pair of unit rows
    x = np.array([[0.0, 0.0], [1e-12, 0.0], [3.0, 0.0], [-2.0, 0.0]])
    pairs = [1.0] + [math.exp(-2)] * 4 + [math.exp(-8)]
    assert uniformity(x) == pytest.approx(math.log(np.mean(pairs)), abs=1e-6)
    assert uniformity(np.zeros((3, 4))) == 0.0


def test_uniformity_chunked_equals_dense(tiny_blocks):
    x = sphere(203, 9)
    assert uniformity(x) == pytest.approx(dense_uniformity(x), abs=1e-5)
    xt = torch.from_numpy(x).to(_tensor.best_device())
    for rows, cols in ((1, 1), (2, 3), (7, 5), (5, 7), (64, 16), (203, 203), (500, 1000)):
        got = log_pair_kernel_sum(xt, 2.0, rows=rows, cols=cols) - math.log(203 * 202 / 2)
        assert got == pytest.approx(dense_uniformity(x), abs=1e-5)
        got = log_pair_kernel_sum(xt, 30.0, rows=rows, cols=cols) - math.log(203 * 202 / 2)
        assert got == pytest.approx(dense_uniformity(x, 30.0), abs=1e-4)


def test_uniformity_large_t_uses_shifted_accumulation():
    # t = 40: e^{−4t} underflows float32 but the log-domain answer is exact
    assert uniformity(np.array([[1.0, 0], [-1.0, 0]]), t=40) == pytest.approx(-160.0, abs=1e-4)
    x = sphere(60, 3, seed=1)
    assert uniformity(x, t=30) == pytest.approx(dense_uniformity(x, 30.0), abs=1e-3)


def test_float16_input_gives_the_float32_answer():
    x16 = (sphere(300, 16) * 7).astype(np.float16)
    y16 = (x16 + np.float16(0.5)).astype(np.float16)
    x32, y32 = x16.astype(np.float32), y16.astype(np.float32)
    assert uniformity(x16) == uniformity(x32)
    assert alignment(x16, y16) == alignment(x32, y32)
    a, b = similarity_stats(x16, y16, temperature=0.2), similarity_stats(x32, y32, temperature=0.2)
    assert a.infonce == b.infonce and a.roc_auc == b.roc_auc
    np.testing.assert_array_equal(a.hardest_negative_index, b.hardest_negative_index)
    # float16 normalisation would lose ~3 digits: check we are near the float64 truth
    assert uniformity(x16) == pytest.approx(dense_uniformity(x32), abs=1e-5)


def test_uniformity_is_rotation_and_scale_invariant():
    x = sphere(100, 5)
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((5, 5)))
    assert uniformity(x @ q * 4.0) == pytest.approx(uniformity(x), abs=1e-5)


def test_uniformity_estimate_exact_when_the_sample_holds_everything():
    x = sphere(50, 4)
    value, se = uniformity_estimate(x, sample=64)
    assert value == pytest.approx(uniformity(x), abs=1e-6) and se == 0.0


def test_uniformity_estimate_error_matches_its_spread():
    x = sphere(3000, 3, seed=2)
    exact = uniformity(x)
    runs = [uniformity_estimate(x, sample=200, seed=s) for s in range(30)]
    values, errors = np.array([v for v, _ in runs]), np.array([e for _, e in runs])
    assert np.all(np.abs(values - exact) < 5 * errors)
    assert 0.5 < values.std() / errors.mean() < 2.0  # the stated error is the actual error, within 2×


def test_uniformity_rejects_bad_arguments():
    with pytest.raises(ValueError, match="t"):
        uniformity(sphere(4, 2), t=0)
    with pytest.raises(ValueError, match="x"):
        uniformity(np.ones(5))
    with pytest.raises(ValueError, match="x"):
        uniformity(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="sample"):
        uniformity_estimate(sphere(4, 2), sample=1)


# -- alignment ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_alignment_closed_forms(alpha):
    x = sphere(40, 6)
    assert alignment(x, x, alpha) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, -3 * x, alpha) == pytest.approx(2.0**alpha, rel=1e-6)  # antipodal pairs
    y = np.stack([x[:, 1], -x[:, 0]] + [x[:, i] for i in range(2, 6)], axis=1)  # rotate the first plane
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    assert alignment(x @ q, y @ q, alpha) == pytest.approx(alignment(x, y, alpha), rel=1e-5)


def test_alignment_orthogonal_pairs():
    assert alignment(np.eye(3), np.roll(np.eye(3), 1, axis=1)) == pytest.approx(2.0, abs=1e-6)  # √2 squared


def test_alignment_shape_mismatch():
    with pytest.raises(ValueError, match="y"):
        alignment(sphere(3, 2), sphere(4, 2))


# -- similarity statistics ----------------------------------------------------------------------------


def test_similarity_stats_hand_case():
    x = np.eye(3)
    s = similarity_stats(x, x, temperature=1.0, k=5)
    np.testing.assert_allclose(s.positive_cos, 1.0)
    np.testing.assert_allclose(np.sort(s.negative_cos), 0.0)
    assert len(s.negative_cos) == 6 and not s.negatives_sampled
    assert s.hardest_negative_cos.shape == (3, 2)  # k capped at N − 1
    assert set(s.hardest_negative_index[0]) == {1, 2}
    np.testing.assert_array_equal(s.positive_rank, 0)
    assert s.top1_accuracy == 1.0 and s.roc_auc == 1.0
    loss = -1 + math.log(math.e + 2)
    p = np.array([math.e, 1, 1]) / (math.e + 2)
    assert s.infonce == pytest.approx(loss, abs=1e-6)
    assert s.softmax_entropy == pytest.approx(-(p * np.log(p)).sum(), abs=1e-6)
    assert s.infonce_bound == pytest.approx(math.log(3) - loss, abs=1e-6)
    counts, edges = s.histograms["positive"]
    assert counts.sum() == 3 and counts[-1] == 3 and edges[0] == -1 and edges[-1] == 1
    assert s.histograms["scaled_negative"][0].sum() == 6


def test_similarity_stats_antipodal_positives_rank_last():
    x = np.eye(4)
    s = similarity_stats(x, -x)
    np.testing.assert_array_equal(s.positive_rank, 3)
    assert s.top1_accuracy == 0.0 and s.roc_auc == 0.0
    assert s.infonce is None and "scaled_positive" not in s.histograms


def test_similarity_stats_collapsed_ties_count_against_the_positive():
    s = similarity_stats(np.ones((5, 3)), np.ones((5, 3)), temperature=0.5)
    np.testing.assert_array_equal(s.positive_rank, 4)
    assert s.top1_accuracy == 0.0 and s.roc_auc == pytest.approx(0.5)
    assert s.infonce == pytest.approx(math.log(5), abs=1e-5) and s.infonce_bound == pytest.approx(0, abs=1e-5)


def test_similarity_stats_chunked_equals_dense(tiny_blocks):
    x, y = sphere(61, 8, 0), sphere(61, 8, 1)
    y = x + 0.7 * y
    tau = 0.3
    s = similarity_stats(x, y, temperature=tau, k=4)
    xd = torch.nn.functional.normalize(torch.tensor(x, dtype=torch.float64), dim=1)
    yd = torch.nn.functional.normalize(torch.tensor(y, dtype=torch.float64), dim=1)
    sim = xd @ yd.T
    pos = sim.diagonal()
    logits = sim / tau
    loss = torch.logsumexp(logits, 1) - pos / tau
    p = logits.softmax(1)
    entropy = -(p * p.log()).sum(1)
    assert s.infonce == pytest.approx(loss.mean().item(), abs=1e-5)
    assert s.softmax_entropy == pytest.approx(entropy.mean().item(), abs=1e-5)
    np.testing.assert_array_equal(s.positive_rank, ((sim > pos[:, None]).sum(1)).numpy())
    masked = sim.clone().fill_diagonal_(-math.inf)
    top, idx = masked.topk(4, dim=1)
    np.testing.assert_allclose(s.hardest_negative_cos, top.numpy(), atol=1e-6)
    np.testing.assert_array_equal(s.hardest_negative_index, idx.numpy())
    neg = sim[~torch.eye(61, dtype=torch.bool)].numpy()
    np.testing.assert_allclose(np.sort(s.negative_cos), np.sort(neg), atol=1e-6)
    assert s.roc_auc == pytest.approx(roc_auc(pos.numpy(), neg), abs=1e-6)


def test_negatives_are_a_uniform_sample_of_distinct_off_diagonal_pairs():
    x, y = sphere(80, 5, 0), sphere(80, 5, 1)
    s = similarity_stats(x, y, max_negatives=500)
    assert s.negatives_sampled and len(s.negative_cos) == 500
    full = similarity_stats(x, y)
    assert not full.negatives_sampled and len(full.negative_cos) == 80 * 79
    everything = np.sort(full.negative_cos)  # each sampled value is one of the N(N−1) negatives
    at = np.clip(np.searchsorted(everything, s.negative_cos), 1, len(everything) - 1)
    gap = np.minimum(np.abs(everything[at] - s.negative_cos), np.abs(everything[at - 1] - s.negative_cos))
    assert gap.max() < 1e-6
    i, j = sample_pairs(80, 4000, seed=1)
    assert np.all(i != j) and len(set(zip(i, j))) == 4000
    counts = np.bincount(i, minlength=80)  # each anchor equally likely: 50 expected, sd ≈ 7
    assert counts.min() > 20 and counts.max() < 85
    assert np.bincount(j, minlength=80).min() > 20


def test_roc_auc_hand_case():
    assert roc_auc(np.array([0.5]), np.array([0.2, 0.5, 0.9])) == pytest.approx(0.5)
    assert roc_auc(np.array([0.5, 1.0]), np.array([0.2, 0.5, 0.9])) == pytest.approx((1.5 + 3) / 6)
    assert math.isnan(roc_auc(np.array([1.0]), np.array([])))


def test_similarity_stats_single_pair():
    s = similarity_stats(np.array([[1.0, 0.0]]), np.array([[0.6, 0.8]]), temperature=0.1)
    assert s.hardest_negative_cos.shape == (1, 0) and len(s.negative_cos) == 0
    assert s.top1_accuracy == 1.0 and math.isnan(s.roc_auc)
    assert s.infonce == pytest.approx(0.0, abs=1e-6) and s.positive_cos[0] == pytest.approx(0.6)


def test_similarity_stats_rejects_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        similarity_stats(sphere(3, 2), sphere(3, 2), temperature=-1)
    with pytest.raises(ValueError, match="k"):
        similarity_stats(sphere(3, 2), sphere(3, 2), k=0)


# -- false negatives and breakdown -------------------------------------------------------------------


def clusters(per=10, d=8, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:3]
    x = np.concatenate([c + spread * rng.standard_normal((per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), per)


def test_false_negative_rate():
    x, labels = clusters()
    assert false_negative_rate(x, x, labels, k=5) == 1.0  # the nearest negatives are all same-class
    assert false_negative_rate(x, x, labels, k=29) == pytest.approx(9 / 29)  # every other point
    # hand case: anchor 0's hardest negative is 1 (same label), anchor 1's is 0, 2's and 3's are each other
    x = np.array([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]])
    assert false_negative_rate(x, x, np.array([0, 0, 1, 2]), k=1) == 0.5
    with pytest.raises(ValueError, match="labels"):
        false_negative_rate(x, x, np.array([0, 1]))


def test_breakdown_groups():
    x = np.array([[1.0, 0], [-1.0, 0], [0, 1.0], [0, 1.0]])
    y = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, -1.0]])
    table = breakdown(x, y, np.array(["a", "a", "b", "b"]))
    a, b = table.iloc[0], table.iloc[1]
    assert list(table["group"]) == ["a", "b"] and list(table["n"]) == [2, 2]
    assert a["uniformity"] == pytest.approx(-8.0, abs=1e-5)  # an antipodal pair
    assert b["uniformity"] == pytest.approx(0.0, abs=1e-5)  # two identical points
    assert a["alignment"] == pytest.approx(2.0) and b["alignment"] == pytest.approx(2.0)  # (0 + 4) / 2
    assert table["uniformity_contribution"].sum() == pytest.approx(1.0)
    # the groups' kernel sums recombine into the overall uniformity
    mass = (np.exp(table["uniformity_to_all"]) * table["n"] * 3).sum()
    assert math.log(mass / 12) == pytest.approx(uniformity(x), abs=1e-5)
    assert b["uniformity_contribution"] > b["share"]  # the crowded group


def test_breakdown_singletons_and_missing_values(tiny_blocks):
    x, labels = clusters(per=7)
    groups = np.array([str(v) for v in labels], dtype=object)
    groups[0] = None
    table = breakdown(x, None, groups)
    assert table["n"].sum() == 21 and table["alignment"].isna().all()
    assert table["uniformity"].isna().sum() == 1  # the group of one
    assert table["uniformity_contribution"].sum() == pytest.approx(1.0)
