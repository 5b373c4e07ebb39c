"""The reference geometry of contrastive embeddings on the unit sphere, one function per number: alignment,
uniformity, the similarity structure the InfoNCE loss sees, and the per-group breakdown.

The reference the engine (diagnostics/measure/engine.py) is tested and benchmarked against: production code never
imports this module (tests/test_reference_boundary.py); pages, CLI and report read the engine's record.

alignment and uniformity follow Wang & Isola (2020), "Understanding Contrastive Representation Learning
through Alignment and Uniformity on the Hypersphere". Every N×N quantity is computed in row blocks
(`_tensor.similarity_blocks`), so memory stays bounded at any N. Inputs of any float dtype are normalised in
float32; float16 snapshots give the float32 answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..measure._primitives import fold_norms, histogram, log_pair_kernel_sum, logsumexp, roc_auc, sample_pairs
from ..measure._tensor import (
    as_matrix,
    as_vector,
    block_rows,
    normalize,
    row_blocks,
    same_shape,
    similarity_blocks,
    to_numpy,
)


def _unit(x, name: str) -> torch.Tensor:
    t = as_matrix(x, name)
    if t.shape[0] == 0:
        raise ValueError(f"{name}: needs at least one row")
    return normalize(t)


def _check_positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
    return float(value)


# -- alignment and uniformity ----------------------------------------------------------------------


def alignment(x, y, alpha: float = 2) -> float:
    """Mean ||x̂_i − ŷ_i||^α over the positive pairs (x_i, y_i); 0 is perfect, 2^α means antipodal."""
    alpha = _check_positive(alpha, "alpha")
    xn, yn = _unit(x, "x"), _unit(y, "y")
    same_shape(xn, yn, "x", "y")
    return float((xn - yn).norm(dim=1).pow(alpha).mean())


def uniformity(x, t: float = 2) -> float:
    """log mean_{i<j} exp(−t||x̂_i − x̂_j||²) (Wang & Isola 2020), the log taken after the mean.

    Lower is more uniform: log e^{−4t} for antipodal points, 0 when every point coincides. Exact over all
    N(N−1)/2 pairs in bounded memory. Undefined for N = 1 (no pairs): returns nan."""
    t = _check_positive(t, "t")
    xn = _unit(x, "x")
    n = xn.shape[0]
    if n < 2:
        return math.nan
    return log_pair_kernel_sum(xn, t) - math.log(n * (n - 1) / 2)


def uniformity_estimate(x, t: float = 2, sample: int = 4096, seed: int = 0) -> tuple[float, float]:
    """(estimate, standard error) of `uniformity` from a random subsample of `sample` rows, for live views.

    The error is the delta-method error of the pair-mean U-statistic, Var ≈ 4·Var_i(row mean)/m (Hoeffding),
    with the finite-population correction (1 − m/N); it is 0 when the sample is all N rows."""
    t = _check_positive(t, "t")
    if not isinstance(sample, int) or sample < 2:
        raise ValueError(f"sample: needs an integer ≥ 2, got {sample!r}")
    xn = _unit(x, "x")
    n = xn.shape[0]
    if n < 2:
        return math.nan, math.nan
    m = min(sample, n)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    xs = xn[torch.from_numpy(idx).to(xn.device)]
    row_sums = torch.zeros(m, dtype=torch.float64, device=xn.device)
    a, b = fold_norms(xs, t)
    for start, end, logk in similarity_blocks(a, b):
        k = logk.exp_()  # k: b×m
        k[:, start:end].fill_diagonal_(0.0)
        row_sums[start:end] = k.sum(dim=1, dtype=torch.float64)
    row_means = row_sums / (m - 1)
    mean = float(row_means.mean())
    var_mean = 4.0 * float(row_means.var()) / m * (1.0 - m / n) if m > 2 else math.nan
    return math.log(mean), math.sqrt(max(var_mean, 0.0)) / mean


# -- the similarity structure InfoNCE sees -----------------------------------------------------------


@dataclass
class SimilarityStats:
    """Cosine similarities between anchors x_i and candidates y_j (positives on the diagonal)."""

    positive_cos: np.ndarray  # (N,) x̂_i·ŷ_i
    negative_cos: np.ndarray  # (M,) x̂_i·ŷ_j, i≠j: all pairs, or a uniform sample of them
    negatives_sampled: bool
    hardest_negative_cos: np.ndarray  # N×k, descending per row
    hardest_negative_index: np.ndarray  # N×k, the j of each hardest negative
    roc_auc: float  # P(positive cos > negative cos), ties counted half
    positive_rank: np.ndarray  # (N,) candidates j≠i with x̂_i·ŷ_j ≥ x̂_i·ŷ_i (0 = positive on top)
    top1_accuracy: float
    temperature: float | None = None
    infonce: float | None = None  # mean_i −log softmax_j(x̂_i·ŷ_j/τ)[i], anchors x, candidates y
    softmax_entropy: float | None = None  # mean_i entropy of softmax_j(x̂_i·ŷ_j/τ)
    infonce_bound: float | None = None  # log N − infonce (the mutual-information lower bound)
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (counts, edges)


def _hardest_negatives(xn: torch.Tensor, yn: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of x̂_i·ŷ_j over j≠i: (cos N×k', index N×k'), k' = min(k, N−1)."""
    n = xn.shape[0]
    k = min(k, n - 1)
    cos = torch.empty(n, k, device=xn.device)
    index = torch.empty(n, k, dtype=torch.long, device=xn.device)
    for start, end, sim in similarity_blocks(xn, yn):
        sim[:, start:end].fill_diagonal_(-math.inf)
        cos[start:end], index[start:end] = sim.topk(k, dim=1)
    return cos, index


def similarity_stats(
    x, y, temperature: float | None = None, k: int = 5, max_negatives: int = 200_000, seed: int = 0, bins: int = 60
) -> SimilarityStats:
    """Positive, negative and hardest-negative cosines of the cross-view matrix x̂ŷᵀ, in row blocks.

    Negatives are all N(N−1) pairs i≠j while that is at most `max_negatives`, else a uniform sample of
    `max_negatives` distinct pairs (`negatives_sampled`). Given τ, `infonce` is the one-directional x→y loss:
    each x_i is an anchor scored against the N candidates y_j, its positive being y_i."""
    if temperature is not None:
        temperature = _check_positive(temperature, "temperature")
    for value, name in ((k, "k"), (max_negatives, "max_negatives"), (bins, "bins")):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: needs a positive integer, got {value!r}")
    xn, yn = _unit(x, "x"), _unit(y, "y")
    same_shape(xn, yn, "x", "y")
    n, dev = xn.shape[0], xn.device
    sampled = n * (n - 1) > max_negatives
    k = min(k, n - 1)
    hard_cos = torch.empty(n, k, device=dev)
    hard_idx = torch.empty(n, k, dtype=torch.long, device=dev)
    rank = torch.empty(n, dtype=torch.long, device=dev)
    loss = torch.zeros(n, dtype=torch.float64, device=dev)
    entropy = torch.zeros(n, dtype=torch.float64, device=dev)
    negatives = []
    for start, end, sim in similarity_blocks(xn, yn, rows=block_rows(n, dev, bytes_per_entry=16)):
        b = end - start
        rows = torch.arange(b, device=dev)
        pos = sim[rows, start + rows]  # from the same matmul, so ranks compare like with like
        rank[start:end] = (sim >= pos[:, None]).sum(dim=1) - 1  # ties count against the positive
        if temperature is not None:
            logits = sim / temperature  # logits: b×N
            lse = torch.logsumexp(logits, dim=1)
            loss[start:end] = (lse - pos / temperature).double()
            p = (logits - lse[:, None]).exp_()
            entropy[start:end] = (lse - (p * logits).sum(dim=1)).double()
            del logits, p
        if not sampled:
            off = torch.ones_like(sim, dtype=torch.bool)
            off[rows, start + rows] = False
            negatives.append(to_numpy(sim[off]))
        sim[rows, start + rows] = -math.inf
        hard_cos[start:end], hard_idx[start:end] = sim.topk(k, dim=1)
    if sampled:
        i, j = sample_pairs(n, max_negatives, seed)
        for s, e in row_blocks(len(i), 65536):
            ii, jj = torch.from_numpy(i[s:e]).to(dev), torch.from_numpy(j[s:e]).to(dev)
            negatives.append(to_numpy((xn[ii] * yn[jj]).sum(dim=1)))
    negative_cos = np.concatenate(negatives) if negatives else np.zeros(0, np.float32)
    positive_cos = to_numpy((xn * yn).sum(dim=1))
    hard_cos, hard_idx, rank = to_numpy(hard_cos), to_numpy(hard_idx), to_numpy(rank)

    hist = {
        "positive": histogram(positive_cos, bins, -1, 1),
        "negative": histogram(negative_cos, bins, -1, 1),
        "hardest_negative": histogram(hard_cos[:, 0] if hard_cos.shape[1] else hard_cos.ravel(), bins, -1, 1),
    }
    stats = SimilarityStats(
        positive_cos=positive_cos,
        negative_cos=negative_cos,
        negatives_sampled=sampled,
        hardest_negative_cos=hard_cos,
        hardest_negative_index=hard_idx,
        roc_auc=roc_auc(positive_cos, negative_cos),
        positive_rank=rank,
        top1_accuracy=float((rank == 0).mean()),
        temperature=temperature,
        histograms=hist,
    )
    if temperature is not None:
        stats.infonce = float(loss.mean())
        stats.softmax_entropy = float(entropy.mean())
        stats.infonce_bound = math.log(n) - stats.infonce
        lim = 1.0 / temperature
        hist["scaled_positive"] = histogram(positive_cos / temperature, bins, -lim, lim)
        hist["scaled_negative"] = histogram(negative_cos / temperature, bins, -lim, lim)
    return stats


def false_negative_rate(x, y, labels, k: int = 5) -> float:
    """Fraction of each anchor's k hardest negatives (top x̂_i·ŷ_j, j≠i) whose label equals the anchor's,
    averaged over anchors: negatives that are probably positives in disguise (Robinson et al. 2021)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: needs a positive integer, got {k!r}")
    xn, yn = _unit(x, "x"), _unit(y, "y")
    same_shape(xn, yn, "x", "y")
    labels = as_vector(labels, "labels", xn.shape[0])
    if xn.shape[0] < 2:
        return math.nan
    _, index = _hardest_negatives(xn, yn, k)
    index = to_numpy(index)
    return float((labels[index] == labels[:, None]).mean())


# -- per-group breakdown -----------------------------------------------------------------------------


def _log_kernel_row_sums(xn: torch.Tensor, t: float) -> np.ndarray:
    """log Σ_{j≠i} exp(−t||x_i − x_j||²) for every row i, in row blocks."""
    n = xn.shape[0]
    out = torch.empty(n, dtype=torch.float64, device=xn.device)
    a, b = fold_norms(xn, t)
    for start, end, logk in similarity_blocks(a, b):  # logk: b×N
        logk[:, start:end].fill_diagonal_(-math.inf)
        out[start:end] = torch.logsumexp(logk, dim=1).double()
    return to_numpy(out)


def breakdown(x, y, groups, t: float = 2, alpha: float = 2) -> pd.DataFrame:
    """Alignment and uniformity per group (a label or any metadata column), one row per group.

    Columns: group, n, share (n/N), alignment (nan without `y`), uniformity (within the group, nan for a
    group of one), uniformity_to_all (log mean kernel of the group's points against every other point) and
    uniformity_contribution (the group's share of Σ_{i≠j} exp(−t||x_i − x_j||²); above `share` means the
    group sits in a crowded part of the sphere). Missing values form their own group."""
    t = _check_positive(t, "t")
    alpha = _check_positive(alpha, "alpha")
    xn = _unit(x, "x")
    n = xn.shape[0]
    yn = None
    if y is not None:
        yn = _unit(y, "y")
        same_shape(xn, yn, "x", "y")
    groups = as_vector(groups, "groups", n)
    codes, uniques = pd.factorize(pd.Series(groups), use_na_sentinel=False)
    log_rows = _log_kernel_row_sums(xn, t) if n > 1 else np.full(n, -math.inf)
    log_total = logsumexp(log_rows)
    records = []
    for code, group in enumerate(uniques):
        members = np.flatnonzero(codes == code)
        idx = torch.from_numpy(members).to(xn.device)
        m = len(members)
        log_group = logsumexp(log_rows[members])
        records.append(
            {
                "group": group,
                "n": m,
                "share": m / n,
                "alignment": float((xn[idx] - yn[idx]).norm(dim=1).pow(alpha).mean()) if yn is not None else math.nan,
                "uniformity": log_pair_kernel_sum(xn[idx], t) - math.log(m * (m - 1) / 2) if m > 1 else math.nan,
                "uniformity_to_all": log_group - math.log(m * (n - 1)) if n > 1 else math.nan,
                "uniformity_contribution": float(np.exp(log_group - log_total)) if n > 1 else math.nan,
            }
        )
    table = pd.DataFrame.from_records(records)
    try:
        table = table.sort_values("group", kind="stable")
    except TypeError:  # mixed types: keep first-seen order
        pass
    return table.reset_index(drop=True)
