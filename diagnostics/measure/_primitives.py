"""The definitions and tiling primitives both the engine and the reference build on (issue #21: one module,
neither side importing the other's private helpers).

  * pair kernels over the upper triangle of x̂x̂ᵀ (upper_tiles, fold_norms, log_pair_kernel_sum);
  * sampled negative pairs, their AUC and histograms (sample_pairs, roc_auc, histogram);
  * RankMe of a spectrum (rankme), the top directions' variance share (top_variance_share) and a NaN-aware
    logsumexp;
  * the weighted kNN monitor and its deterministic bank/query split (knn_predict, probe_split).

The engine (diagnostics/measure/engine.py and the modules it calls) and the reference (geometry.py, probes.py,
reference_collapse.py, reference_summary.py) import these; production code never imports the reference.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _topk
from ._tensor import block_rows, row_blocks, to_numpy

# Unit-pair kernels are summed as exp(2t·cos) ∈ [e^−2t, e^2t]; up to t = 20 that stays well inside float32's
# range (e^±87), so tiles need no shift.
NO_SHIFT_MAX_T = 20.0
# CPU tiles of 1024 × 1024 float32 (4 MB) keep the exp and the sum of a tile in cache after its matmul:
# measured on 2 Xeon cores at N=50k, 1.4× the matmuls alone against 2.8× for 1024 × 8192 tiles.
CPU_TILE = (1024, 1024)


# -- pair kernels ------------------------------------------------------------------------------------


def upper_tiles(m: int, device: torch.device, rows: int | None = None, cols: int | None = None):
    """(start, end, c0, c1): tiles rows [start, end) × columns [c0, c1) covering the upper triangle j ≥ start."""
    if device.type == "cuda":
        rows, cols = rows or block_rows(m, device), cols or m
    else:
        rows, cols = rows or CPU_TILE[0], cols or CPU_TILE[1]
    for start, end in row_blocks(m, rows):
        for c0 in range(start, m, cols):
            yield start, end, c0, min(m, c0 + cols)


def fold_norms(xn: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with A_i·B_j = −t||x_i − x_j||² = 2t·x_i·x_j − t||x_i||² − t||x_j||²: two extra columns carry
    the norms, so a block of pair kernels costs one matmul and no broadcast. Exact for the zero rows that
    normalising leaves (||x||² = 0), not only for unit rows."""
    sq = xn.square().sum(dim=1, keepdim=True)  # sq: N×1
    ones = torch.ones_like(sq)
    a = torch.cat([xn * (2.0 * t), -t * sq, -t * ones], dim=1)  # a: N×(d+2)
    b = torch.cat([xn, ones, sq], dim=1)  # b: N×(d+2)
    return a, b


def log_pair_kernel_sum(xn: torch.Tensor, t: float, rows: int | None = None, cols: int | None = None) -> float:
    """log Σ_{i<j} exp(−t||x_i − x_j||²) for rows that are unit vectors or zero (as `normalize` leaves them).

    Unit pairs: ||x_i − x_j||² = 2 − 2 x_i·x_j, so the kernel is e^{−2t}·exp(2t x_i·x_j) and the only N×N
    work is one matmul per tile of the upper triangle, then exp and sum in place. Zero rows are counted
    in closed form (distance 1 to a unit row, 0 to another zero row). Sums accumulate in float64; for
    t > 20, where e^{±2t} would leave float32's range, each tile is shifted by its maximum (logsumexp)."""
    n, dev = xn.shape[0], xn.device
    zero = (xn == 0).all(dim=1)
    u = xn[~zero]
    m, z = u.shape[0], n - u.shape[0]
    parts = []
    if z and m:
        parts.append(math.log(z * m) - t)
    if z > 1:
        parts.append(math.log(z * (z - 1) / 2))
    if m > 1:
        a = u * (2.0 * t)
        shifted = t > NO_SHIFT_MAX_T
        acc = torch.zeros((), dtype=torch.float64, device=dev)
        logs = []
        for start, end, c0, c1 in upper_tiles(m, dev, rows, cols):
            g = a[start:end] @ u[c0:c1].T  # g: b×w, 2t·x_i·x_j
            if c0 < end:  # a tile crossing the diagonal: only pairs j > i count
                i = torch.arange(start, end, device=dev)[:, None]
                j = torch.arange(c0, c0 + g.shape[1], device=dev)[None, :]
                g.masked_fill_(j <= i, -math.inf)
            if shifted:
                top = float(g.max())
                if top > -math.inf:
                    logs.append(top + math.log(float(g.sub_(top).exp_().sum(dtype=torch.float64))))
            else:
                acc += g.exp_().sum()  # a tile's float32 sum is a cascade sum: error ~1e-7 relative
        total = float(acc)
        if math.isnan(total) or any(math.isnan(v) for v in logs):
            return math.nan  # a NaN row poisons every pair it is in
        unit = np.logaddexp.reduce(logs) if shifted else math.log(total)
        parts.append(unit - 2.0 * t)
    return float(np.logaddexp.reduce(parts)) if parts else -math.inf


def logsumexp(a: np.ndarray) -> float:
    return math.nan if np.isnan(a).any() else float(np.logaddexp.reduce(a))  # NaN rows: NaN, quietly


# -- sampled negatives, AUC, histograms --------------------------------------------------------------


def sample_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct ordered pairs (i, j), i≠j, uniformly without replacement."""
    flat = np.random.default_rng(seed).choice(n * (n - 1), size=count, replace=False)
    i, j = np.divmod(flat, n - 1)
    return i, j + (j >= i)  # skip the diagonal


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Mann–Whitney AUC: P(pos > neg) + ½P(pos = neg)."""
    positives, negatives = positives[np.isfinite(positives)], np.sort(negatives[np.isfinite(negatives)])
    if len(positives) == 0 or len(negatives) == 0:
        return math.nan
    below = np.searchsorted(negatives, positives, side="left").astype(np.float64)
    tied = np.searchsorted(negatives, positives, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(positives) * len(negatives)))


def histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    values = np.clip(values[np.isfinite(values)], lo, hi)  # rounding puts some cosines at 1 + 1e-7
    return np.histogram(values, bins=bins, range=(lo, hi))


# -- spectra -----------------------------------------------------------------------------------------


def rankme(sigma: np.ndarray, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp(entropy) of p_k = σ_k/Σσ + ε; 1 for one direction, n for n equal
    singular values, 0 for the zero matrix."""
    sigma = np.asarray(sigma, dtype=np.float64)
    total = sigma.sum()
    if not np.isfinite(total) or len(sigma) == 0:
        return math.nan
    if total == 0:
        return 0.0  # the zero matrix spans no direction at all
    p = sigma / total + eps
    return float(np.exp(-(p * np.log(np.where(p > 0, p, 1.0))).sum()))  # 0·log 0 = 0


# How many directions "a few" is: one sixteenth of the width (4 of 64, 8 of 128), at least one.
CONCENTRATION_DIVISOR = 16


def top_variance_share(sigma: np.ndarray, width: int) -> float:
    """Share of the (centred) variance Σσ_k² held by the top ⌈width/16⌉ directions: 4/64 ≈ 0.06 for points
    spread evenly over 64 directions, 1 when every point lies along 4 of them. Variance-based, so a few
    dominant directions show even while the entropy rank (RankMe: σ, not σ²) keeps a long flat tail."""
    lam = np.asarray(sigma, dtype=np.float64) ** 2
    total = lam.sum()
    if not np.isfinite(total) or total <= 0 or width <= 0:
        return math.nan
    k = max(1, -(-width // CONCENTRATION_DIVISOR))
    return float(lam[:k].sum() / total)


# -- the weighted kNN monitor ------------------------------------------------------------------------


def knn_predict(
    bn: torch.Tensor, bank_labels: np.ndarray, qn: torch.Tensor, k: int = 200, temperature: float = 0.1
) -> np.ndarray:
    """The weighted-kNN label of each query (Wu et al. 2018, as MoCo monitors training): its k most
    cosine-similar bank rows vote for their labels with weight exp(cos/τ), the heaviest label wins (ties: the
    smallest label). Rows already normalised; k capped at the bank size."""
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
        cos, idx = _topk.topk(sim, k, group=16)  # cos, idx: b×k: sim.topk up to ties, faster
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
