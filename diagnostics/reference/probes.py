"""The reference probes, one function per number: how useful and how stable an embedding is (the weighted kNN
monitor, a linear probe, nearest neighbours and how many of them survive between two snapshots). All
neighbour searches are by cosine, in row blocks.

The reference the engine is tested against (its kNN in engine.measure, its neighbour lists in
diagnostics/measure/neighbours.py): production code never imports this module (tests/test_reference_boundary.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..measure._primitives import knn_predict, probe_split
from ..measure._tensor import as_matrix, as_vector, normalize, similarity_blocks, to_numpy


def _unit(x, name: str) -> torch.Tensor:
    return normalize(as_matrix(x, name))


def _check_k(k, name: str = "k") -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name}: needs a positive integer, got {k!r}")
    return int(k)


def knn_accuracy(bank, bank_labels, queries, query_labels, k: int = 200, temperature: float = 0.1) -> float:
    """Weighted kNN accuracy as MoCo and InstDisc monitor training (Wu et al. 2018): each query takes its k
    most cosine-similar bank points, each votes for its label with weight exp(cos/τ), the heaviest label wins
    (ties go to the smallest label). k is capped at the bank size."""
    k = _check_k(k)
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be a positive finite number, got {temperature!r}")
    bn, qn = _unit(bank, "bank"), _unit(queries, "queries")
    if bn.shape[1] != qn.shape[1]:
        raise ValueError(f"queries: dimension {qn.shape[1]} differs from the bank's {bn.shape[1]}")
    bank_labels = as_vector(bank_labels, "bank_labels", bn.shape[0])
    query_labels = as_vector(query_labels, "query_labels", qn.shape[0])
    if bn.shape[0] == 0:
        raise ValueError("bank: needs at least one row")
    if qn.shape[0] == 0:
        return math.nan
    return float((knn_predict(bn, bank_labels, qn, k, temperature) == query_labels).mean())


def linear_probe_accuracy(x, labels, seed: int = 0) -> float:
    """Accuracy on the query part of `probe_split` of a logistic regression fit on the bank part
    (standardised inputs, L2 penalty C=1, scikit-learn's lbfgs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = to_numpy(as_matrix(x, "x", device=torch.device("cpu")))
    labels = as_vector(labels, "labels", xs.shape[0])
    bank, query = probe_split(xs.shape[0], seed)
    if len(np.unique(labels[bank])) < 2:  # nothing to fit: the only class seen is the prediction
        return float((labels[query] == labels[bank][0]).mean())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(xs[bank], labels[bank])
    return float(model.score(xs[query], labels[query]))


def _neighbours(zn: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k most cosine-similar rows of zn for each query index, the query itself excluded."""
    cos = torch.empty(len(queries), k, device=zn.device)
    index = torch.empty(len(queries), k, dtype=torch.long, device=zn.device)
    for start, end, sim in similarity_blocks(zn[queries], zn):
        sim[torch.arange(end - start, device=zn.device), queries[start:end]] = -math.inf
        cos[start:end], index[start:end] = sim.topk(k, dim=1)
    return cos, index


def nearest_neighbours(z, idx, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cos), each len(idx)×k', k' = min(k, N−1): the nearest points to z[idx] by cosine,
    most similar first, the point itself excluded."""
    k = _check_k(k)
    zn = _unit(z, "z")
    n = zn.shape[0]
    idx = np.atleast_1d(as_vector(np.atleast_1d(idx), "idx")).astype(np.int64)
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"idx: indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    cos, index = _neighbours(zn, torch.from_numpy(idx % max(n, 1)).to(zn.device), min(k, max(n - 1, 0)))
    return to_numpy(index), to_numpy(cos)


def neighbour_retention(z0, z1, k: int = 10) -> np.ndarray:
    """(N,) fraction of each point's k nearest neighbours (by cosine, itself excluded) at snapshot z0 that
    are still among its k nearest at z1. 1 = neighbourhood kept, 0 = all replaced. k capped at N−1."""
    k = _check_k(k)
    a, b = _unit(z0, "z0"), _unit(z1, "z1")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"z1: has {b.shape[0]} rows but z0 has {a.shape[0]}; the same points are needed")
    n = a.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.full(n, math.nan)
    everyone = torch.arange(n, device=a.device)
    _, before = _neighbours(a, everyone, k)
    _, after = _neighbours(b, everyone, k)
    before, after = to_numpy(before)[:, :, None], to_numpy(after)[:, None, :]
    return (before == after).any(axis=2).mean(axis=1).astype(np.float32)  # float32, as records store it
