"""kNN monitor, linear probe, neighbour retention and displacement on cases with known answers."""

import math

import numpy as np
import pytest

from diagnostics.measure import _tensor
from diagnostics.measure._primitives import probe_split
from diagnostics.measure.neighbours import displacement
from diagnostics.reference.probes import knn_accuracy, linear_probe_accuracy, nearest_neighbours, neighbour_retention


def separable(n_per=40, classes=4, d=16, seed=0, spread=0.1):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.eye(d)[c] + spread * rng.standard_normal((n_per, d)) for c in range(classes)])
    return x.astype(np.float32), np.repeat(np.arange(classes) * 10 + 3, n_per)  # labels need not be 0..C−1


def test_knn_on_separable_clusters_is_perfect(monkeypatch):
    monkeypatch.setattr(_tensor, "BLOCK_BYTES_CPU", 4 * 160 * 5)  # 5 queries per block
    monkeypatch.setattr(_tensor, "BLOCK_BYTES_CUDA", 4 * 160 * 5)
    x, y = separable()
    bank, query = probe_split(len(x))
    assert knn_accuracy(x[bank], y[bank], x[query], y[query], k=20) == 1.0
    assert knn_accuracy(x[bank], y[bank], x[query], y[query], k=500) == pytest.approx(
        knn_accuracy(x[bank], y[bank], x[query], y[query], k=len(bank))
    )  # k capped at the bank size


def test_knn_hand_computed_weighted_vote():
    # query (1, 0); bank cosines: 0.8 (label 1), 0.6 and 0.6 (label 2), −1 (label 1)
    bank = np.array([[0.8, 0.6], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = np.array([1, 2, 2, 1])
    q = np.array([[1.0, 0.0]])
    # k=3, τ=0.1: label 1 gets e^8 ≈ 2981, label 2 gets 2e^6 ≈ 807 -> 1
    assert knn_accuracy(bank, labels, q, np.array([1]), k=3, temperature=0.1) == 1.0
    # τ=1: e^0.8 ≈ 2.23 < 2e^0.6 ≈ 3.64 -> 2; the weights, not the counts, decide
    assert knn_accuracy(bank, labels, q, np.array([2]), k=3, temperature=1.0) == 1.0
    # k=1 only sees the nearest point
    assert knn_accuracy(bank, labels, q, np.array([1]), k=1, temperature=1.0) == 1.0
    # a query label the bank never saw is always wrong
    assert knn_accuracy(bank, labels, q, np.array([7]), k=3) == 0.0


def test_knn_bad_arguments():
    x, y = separable(5, 2)
    with pytest.raises(ValueError, match="temperature"):
        knn_accuracy(x, y, x, y, temperature=0)
    with pytest.raises(ValueError, match="query_labels"):
        knn_accuracy(x, y, x, y[:3])
    with pytest.raises(ValueError, match="queries"):
        knn_accuracy(x, y, x[:, :3], y)


def test_probe_split_is_deterministic_and_complete():
    bank, query = probe_split(101, seed=3)
    b2, q2 = probe_split(101, seed=3)
    np.testing.assert_array_equal(bank, b2)
    np.testing.assert_array_equal(query, q2)
    assert len(bank) == 81 and len(query) == 20
    np.testing.assert_array_equal(np.sort(np.concatenate([bank, query])), np.arange(101))
    assert not np.array_equal(probe_split(101, seed=4)[0], bank)
    assert [len(a) for a in probe_split(2)] == [1, 1]
    with pytest.raises(ValueError, match="n"):
        probe_split(1)
    with pytest.raises(ValueError, match="bank_fraction"):
        probe_split(10, bank_fraction=1.0)


def test_linear_probe():
    x, y = separable(30, 3)
    assert linear_probe_accuracy(x, y) == 1.0
    noise = np.random.default_rng(0).standard_normal((400, 8))
    chance = linear_probe_accuracy(noise, np.random.default_rng(1).integers(0, 2, 400))
    assert 0.3 < chance < 0.7
    assert linear_probe_accuracy(x, np.zeros(len(x), int)) == 1.0  # one class


def test_nearest_neighbours():
    z = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0], [-1.0, 0.0], [0.8, 0.6]])
    idx, cos = nearest_neighbours(z, [0, 3], k=2)
    np.testing.assert_array_equal(idx, [[1, 4], [2, 4]])
    np.testing.assert_allclose(cos, [[0.96, 0.8], [0.0, -0.8]], atol=1e-6)
    idx, _ = nearest_neighbours(z, 2, k=10)
    assert idx.shape == (1, 4) and 2 not in idx
    with pytest.raises(ValueError, match="idx"):
        nearest_neighbours(z, [5])


def test_neighbour_retention():
    x, _ = separable(20, 3, seed=1)
    np.testing.assert_allclose(neighbour_retention(x, x, k=5), 1.0)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))
    np.testing.assert_allclose(neighbour_retention(x, 2.0 * x @ q, k=5), 1.0)  # rotations keep neighbours
    # hand case on a circle: angles 0, 10, 30, 70 degrees, then point 3 moves next to point 0
    deg = lambda a: np.stack([np.cos(np.radians(a)), np.sin(np.radians(a))], 1)  # noqa: E731
    before, after = deg(np.array([0, 10, 30, 70])), deg(np.array([0, 10, 30, -5]))
    np.testing.assert_allclose(neighbour_retention(before, after, k=1), [0, 1, 1, 0])
    np.testing.assert_allclose(neighbour_retention(before, after, k=2), [0.5, 0.5, 1.0, 0.5])
    assert np.isnan(neighbour_retention(before[:1], after[:1])).all()
    with pytest.raises(ValueError, match="z1"):
        neighbour_retention(before, after[:3])


def test_displacement_is_the_rotation_angle():
    theta = np.array([0.0, 1e-4, 0.3, math.pi / 2, 3.0])
    z0 = np.tile([[1.0, 0.0, 0.0]], (5, 1))
    z1 = np.stack([np.cos(theta), np.sin(theta), np.zeros(5)], 1) * 7.0
    np.testing.assert_allclose(displacement(z0, z1), theta, atol=1e-6)
    assert displacement(z0[:1], -z0[:1])[0] == pytest.approx(math.pi)
    with pytest.raises(ValueError, match="z1"):
        displacement(z0, z1[:2])
