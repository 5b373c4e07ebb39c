"""How useful and how stable an embedding is: the weighted kNN monitor, a linear probe, and how neighbourhoods
and points move between two snapshots. All neighbour searches are by cosine, in row blocks."""
from __future__ import annotations

import math

import numpy as np
import torch

from . import _topk
from ._tensor import as_matrix, as_vector, normalize, row_blocks, same_shape, similarity_blocks, to_numpy


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


def knn_predict(bn: torch.Tensor, bank_labels: np.ndarray, qn: torch.Tensor, k: int = 200,
                temperature: float = 0.1) -> np.ndarray:
    """The weighted-kNN label of each query (see knn_accuracy), for rows already normalised."""
    classes, bank_class = np.unique(bank_labels, return_inverse=True)
    bank_class = torch.from_numpy(bank_class.astype(np.int64)).to(bn.device)
    k = min(k, bn.shape[0])
    predicted = []
    # 8 MB blocks stay in cache between the matmul and the top-k (~1.3× faster than 256 MB blocks at 15k).
    # One reused block: a fresh 8 MB tensor per block let glibc's heap grow (its mmap threshold rises after
    # the first free), peak RSS +887 MB for 4,000 queries on an 80k bank, +37 MB with the block reused.
    rows = max(1, 2**21 // max(1, bn.shape[0]))
    block = torch.empty((min(rows, qn.shape[0]), bn.shape[0]), dtype=qn.dtype, device=bn.device)
    for start, end in row_blocks(qn.shape[0], rows):
        sim = torch.mm(qn[start:end], bn.T, out=block[: end - start])  # sim: b×M
        cos, idx = _topk.topk(sim, k, group=16)          # cos, idx: b×k: sim.topk up to ties, faster
        weight = (cos / temperature).exp_()
        votes = torch.zeros(sim.shape[0], len(classes), device=bn.device)  # votes: b×C
        votes.scatter_add_(1, bank_class[idx], weight)
        predicted.append(to_numpy(votes.argmax(dim=1)))
    return classes[np.concatenate(predicted)] if predicted else classes[:0]


def probe_split(n: int, seed: int = 0, bank_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of range(n) into a bank (fit / search) and queries (score), both sorted;
    each gets at least one point."""
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n: needs an integer ≥ 2 to split, got {n!r}")
    if not 0 < bank_fraction < 1:
        raise ValueError(f"bank_fraction: needs a number strictly between 0 and 1, got {bank_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    m = min(max(int(round(n * bank_fraction)), 1), n - 1)
    return np.sort(order[:m]), np.sort(order[m:])


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
    return neighbour_overlap(to_numpy(before), to_numpy(after))


def neighbour_overlap(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(N,) float32: the fraction of row i's neighbours in `before` (N×k indices) also in `after` (N×k); NaN
    for a row with an index < 0 in either (a row the engine did not measure). Reads two snapshot records'
    neighbour_index arrays as neighbour_retention reads two snapshots: O(N·k²), no search."""
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"after: neighbour lists of shape {after.shape} differ from {before.shape}")
    kept = np.empty(len(before), dtype=np.float32)
    for start in range(0, len(before), 4096):
        b, a = before[start:start + 4096], after[start:start + 4096]
        kept[start:start + 4096] = (b[:, :, None] == a[:, None, :]).any(axis=2).mean(axis=1)
    kept[(before < 0).any(axis=1) | (after < 0).any(axis=1)] = np.nan
    return kept


def displacement(z0, z1) -> np.ndarray:
    """(N,) great-circle distance in radians (0..π) each point moved on the unit sphere between two
    snapshots: arccos(ẑ0_i·ẑ1_i)."""
    a, b = _unit(z0, "z0"), _unit(z1, "z1")
    same_shape(a, b, "z0", "z1")
    # atan2 of sine and cosine stays accurate for tiny moves, where arccos(1 − ε) loses half its digits
    cos = (a * b).sum(dim=1)
    sin = torch.linalg.vector_norm(a - b * cos[:, None], dim=1)
    return to_numpy(torch.atan2(sin, cos))
