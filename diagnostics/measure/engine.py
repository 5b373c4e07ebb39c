"""The snapshot engine: one snapshot in, every per-snapshot number and per-row array out (a record's content).

Each input is cast to float32 and normalised once. The N×N work is two tiled sweeps, one per matrix:
  * ẑẑᵀ over the upper triangle: uniformity (each row's kernel sum) and each row's nearest neighbours by
    cosine (diagnostics.measure.sweep.self_sweep);
  * ẑŷᵀ (anchors × candidates): InfoNCE, softmax entropy, the positive's rank and the hardest negatives
    from one matmul per tile (diagnostics.measure.sweep.cross_sweep).
Everything else is O(N·d) or O(d²): alignment, positive cosines, the exact negative mean, the spectrum
numbers (one float64 Gram pass), the 200k sampled negatives behind AUC and the histograms (the same pairs
as the reference geometry.similarity_stats), weighted kNN on probe_split (_primitives.knn_predict).

This is the one implementation of every per-snapshot number: pages, CLI, report and the group breakdowns
read its record. geometry.py, probes.py, reference_collapse.py and reference_summary.py compute the same
numbers one function each: the reference it is tested against (tests/test_engine.py), never imported here.

Above `exact_limit` rows the N×N sweeps run over a uniform sample of anchor rows against all candidates
(a·N ≤ exact_limit² pairs): per-row quantities stay exact for their anchor, their means are estimates with
standard errors (numbers["estimated"] = True, "<key>_se"). Per-row arrays are indexed like the snapshot's
rows; rows not measured (non-finite, or not an anchor) hold NaN / −1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from runformat.reader import Snapshot

from ._primitives import histogram, knn_predict, probe_split, roc_auc, sample_pairs
from ._tensor import as_matrix, as_vector, best_device, finite_rows, normalize, row_blocks, to_numpy
from .crossmodal import crossmodal_numbers
from .spectrum import snapshot_spectrum
from .sweep import cross_sweep, sample_anchors, self_sweep, uniformity

# Every number a record holds (None where it does not apply: no positives, no labels, no τ, too few rows).
NUMBER_KEYS = (
    "n",
    "finite_rows",
    "collapse_finite_rows",
    "dim",
    "nonfinite_rows",
    "inv_sqrt_d",
    "estimated",
    "uniformity",
    "effective_rank",
    "effective_rank_centred",
    "rank_fraction",
    "normalized_std",
    "std_ratio",
    "raw_std",
    "mean_cos",
    "dead_dims",
    "alpha_req",
    "top_variance_share",
    "effective_rank_features",
    "feature_dim",
    "top_variance_share_features",
    "alignment",
    "pos_cos_mean",
    "neg_cos_mean",
    "pos_neg_gap",
    "roc_auc",
    "top1",
    "negatives_sampled",
    "negative_pairs",
    "temperature",
    "infonce",
    "softmax_entropy",
    "infonce_bound",
    "hard_negative_weight",
    "knn_accuracy",
    "false_negative_rate",
    "histograms",
)


@dataclass
class EngineConfig:
    hard_k: int = 10  # hardest negatives kept per row
    neighbours_k: int = 10  # nearest neighbours kept per row (dashboard.data.NEIGHBOURS_K)
    fnr_k: int = 5  # false-negative rate over the fnr_k hardest (as geometry.false_negative_rate)
    bins: int = 80  # histogram bins over cosine in [-1, 1]
    max_negatives: int = 200_000  # negative_cos_sample size (all i≠j pairs when there are fewer)
    exact_limit: int = 100_000  # above this many rows: subsampled anchors, estimates with standard errors
    knn_k: int = 200  # weighted kNN monitor (_primitives.knn_predict)
    knn_temperature: float = 0.1
    uniformity_t: float = 2.0
    seed: int = 0
    tile: int = 1024  # CPU tile edge: 4 MB float32 tiles stay in cache between matmul and exp
    device: str | None = None  # default: CUDA when present


def _unusable(shape: tuple) -> str | None:
    if len(shape) != 2:
        return f"embeddings: needs a 2-D array (N×d), got shape {shape}"
    if shape[1] == 0:
        return "embeddings: d = 0 (no dimensions to measure)"
    if shape[0] < 2:
        return f"embeddings: N = {shape[0]}; at least 2 rows are needed to measure pairs"
    return None


def measure_snapshot(
    snap: Snapshot,
    temperature: float | None = None,
    config: EngineConfig | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """(numbers, per-row arrays) of a snapshot; numbers["error"] says why when it cannot be measured. A paired
    snapshot (a second modality) also gets crossmodal.crossmodal_numbers' keys: modality gap, cross-modal
    recall@k, each modality's uniformity and effective rank (tiled, on the rows finite in both)."""
    numbers, arrays = measure(snap.embeddings, snap.positives, snap.labels, snap.features, temperature, config)
    numbers = {"step": snap.step, **{key: None for key in NUMBER_KEYS}, **numbers}
    if snap.paired_embeddings is not None and "error" not in numbers:
        numbers.update(crossmodal_numbers(snap.embeddings, snap.paired_embeddings))
    return numbers, arrays


def measure(
    embeddings,
    positives=None,
    labels=None,
    features=None,
    temperature: float | None = None,
    config: EngineConfig | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    cfg = config or EngineConfig()
    shape = tuple(np.shape(embeddings))
    n = int(shape[0]) if shape else 0
    d = int(shape[1]) if len(shape) == 2 else 0
    numbers: dict = {
        "n": n,
        "finite_rows": 0,
        "collapse_finite_rows": 0,
        "dim": d,
        "nonfinite_rows": n,
        "estimated": False,
    }
    why = _unusable(shape)
    if why:  # too few rows (or no width): count the finite ones, so a finite row is not reported as NaN
        if len(shape) == 2 and n:
            finite = int(np.isfinite(np.asarray(embeddings, dtype=np.float64)).all(axis=1).sum())
            numbers.update(finite_rows=finite, collapse_finite_rows=finite, nonfinite_rows=n - finite)
        return {**numbers, "error": why}, {}
    dev = torch.device(cfg.device) if cfg.device else best_device()
    z = as_matrix(embeddings, "embeddings", dev)  # z: N×d float32, the one cast
    y = None if positives is None else as_matrix(positives, "positives", dev)
    if y is not None and y.shape != z.shape:
        raise ValueError(f"positives: shape {tuple(y.shape)} differs from embeddings {tuple(z.shape)}")
    ok_z = finite_rows(z)
    ok = ok_z & finite_rows(y) if y is not None else ok_z
    rows = torch.nonzero(ok).squeeze(1)  # snapshot row of each measured row
    m = int(rows.numel())
    numbers.update(
        finite_rows=m, collapse_finite_rows=int(ok_z.sum()), nonfinite_rows=n - m, inv_sqrt_d=1.0 / math.sqrt(d)
    )
    if m < 2:
        return {**numbers, "error": f"only {m} of {n} rows are finite (NaN/inf): nothing to measure"}, {}
    zc = z[ok_z] if numbers["collapse_finite_rows"] < n else z
    zn_c = normalize(zc)  # unit (or zero) rows, normalised once
    spectrum = snapshot_spectrum(zc, zn_c, features, ok_z, numbers)
    arrays: dict[str, np.ndarray] = {"spectrum": spectrum}
    zn = zn_c if m == zc.shape[0] else zn_c[ok[ok_z]]  # zn: m×d, rows also finite in y
    anchors = sample_anchors(m, cfg.exact_limit, cfg.seed, dev)
    numbers["estimated"] = anchors is not None
    if anchors is not None:
        numbers["anchor_rows"] = int(anchors.numel())
    arrays["measured_rows"] = to_numpy(rows)  # for the group breakdowns (not stored)
    if anchors is None:
        _self_pass(zn, cfg, dev, to_numpy(rows), n, numbers, arrays)
    else:
        numbers["uniformity"], numbers["uniformity_se"] = uniformity(zn, cfg.uniformity_t, anchors)
    hard_idx = None
    if y is not None:
        yn = normalize(y[ok] if m < n else y)
        hard_idx = _cross(zn, yn, anchors, temperature, cfg, dev, rows, n, numbers, arrays)
    if labels is not None:
        lab = as_vector(labels, "labels", n)[to_numpy(rows)]
        _knn(zn, lab, cfg, numbers)
        if hard_idx is not None:
            measured = np.arange(m) if anchors is None else to_numpy(anchors)
            same = lab[hard_idx[:, : cfg.fnr_k]] == lab[measured][:, None]  # same: a×k
            _mean(numbers, "false_negative_rate", same.mean(axis=1), m, anchors)
    return numbers, arrays


def _mean(numbers: dict, key: str, values: np.ndarray, population: int, anchors) -> None:
    """numbers[key] = the mean of per-row `values`; with anchors also its standard error (finite population)."""
    values = np.asarray(values, dtype=np.float64)
    numbers[key] = float(values.mean())
    if anchors is not None:
        a = len(values)
        numbers[key + "_se"] = float(values.std(ddof=1) / math.sqrt(a) * math.sqrt(max(0.0, 1 - a / population)))


# -- ẑẑᵀ: uniformity and neighbours ----------------------------------------------------------------


def _self_pass(
    zn: torch.Tensor, cfg: EngineConfig, dev, rows_np: np.ndarray, n: int, numbers: dict, arrays: dict
) -> None:
    """Uniformity (the reference: geometry.uniformity), each row's log kernel sum (arrays["kernel_log_rows"],
    for the group breakdown) and its k nearest neighbours by cosine, itself excluded (arrays["neighbour_index"],
    snapshot rows; neighbours.neighbour_index computes the same lists for other arrays)."""
    m, t = zn.shape[0], cfg.uniformity_t
    k = min(cfg.neighbours_k, m - 1)
    swept = self_sweep(zn, t, k, cfg.tile, dev)
    arrays["neighbour_index"] = _scatter((n, k), rows_np, rows_np[to_numpy(swept["nn_idx"])], -1, np.int32)
    if swept["row_sums"] is None:  # t > 20: the shifted path
        numbers["uniformity"] = uniformity(zn, t)[0]
        return
    # the sweep summed exp(2t·ẑ_i·ẑ_j) = e^{2t}·kernel for unit pairs; a zero row (normalize's output for a
    # zero vector) is at distance 1 from a unit row (kernel e^{−t}) and 0 from another zero row (kernel 1)
    sums = to_numpy(swept["row_sums"])
    zero = to_numpy((zn == 0).all(dim=1))
    z = int(zero.sum())
    kernel = math.exp(-2 * t) * (sums - z) + z * math.exp(-t)
    if z:
        kernel[zero] = (m - z) * math.exp(-t) + (z - 1)
    numbers["uniformity"] = math.log(kernel.sum() / 2) - math.log(m * (m - 1) / 2)
    with np.errstate(divide="ignore"):
        arrays["kernel_log_rows"] = _scatter(n, rows_np, np.log(kernel), np.nan, np.float64)


# -- ẑŷᵀ: InfoNCE, ranks, hardest negatives -------------------------------------------------------


def _cross(zn, yn, anchors, temperature, cfg: EngineConfig, dev, rows, n, numbers, arrays) -> np.ndarray:
    """Fill the positive/negative numbers and arrays; returns the hardest-negative indices (a×k, measured rows
    space) for the false-negative rate."""
    m = zn.shape[0]
    k = min(cfg.hard_k, m - 1)
    measured = torch.arange(m, device=dev) if anchors is None else anchors
    pos = (zn * yn).sum(dim=1)  # pos: m, ẑ_i·ŷ_i
    sweep = cross_sweep(zn, yn, measured, temperature, k, cfg.tile, dev, anchors is None)
    rank, hard_g, hard_idx = sweep["rank"], sweep["hard_g"], sweep["hard_idx"]
    # exact cosines of the kept negatives (G carries a 1/τ scale and a shift), re-sorted on them
    hard_cos = torch.empty_like(hard_g)
    for start, end in row_blocks(measured.numel(), 4096):
        xa = zn[measured[start:end]]
        hard_cos[start:end] = torch.einsum("bd,bkd->bk", xa, yn[hard_idx[start:end]])
    hard_cos, order = hard_cos.sort(dim=1, descending=True, stable=True)
    hard_idx = hard_idx.gather(1, order)

    pos_np, ids = to_numpy(pos), to_numpy(measured)
    neg = _negative_sample(zn, yn, cfg)
    numbers.update(
        {
            "alignment": float((zn - yn).norm(dim=1).square().mean()),
            "pos_cos_mean": float(pos_np.mean()),
            # exact over all m(m−1) pairs: Σ_{i≠j} ẑ_i·ŷ_j = (Σẑ)·(Σŷ) − Σ ẑ_i·ŷ_i
            "neg_cos_mean": float((zn.double().sum(0) @ yn.double().sum(0) - pos.double().sum()) / (m * (m - 1))),
            "roc_auc": roc_auc(pos_np, neg),
            "negatives_sampled": m * (m - 1) > cfg.max_negatives,
            "negative_pairs": int(len(neg)),  # how many negatives the AUC and histograms saw
        }
    )
    numbers["pos_neg_gap"] = numbers["pos_cos_mean"] - numbers["neg_cos_mean"]
    rank_np = to_numpy(rank)
    _mean(numbers, "top1", (rank_np == 0).astype(np.float64), m, anchors)
    if temperature is not None:
        numbers["temperature"] = float(temperature)
        _mean(numbers, "infonce", to_numpy(sweep["loss"]), m, anchors)
        _mean(numbers, "softmax_entropy", to_numpy(sweep["entropy"]), m, anchors)
        numbers["infonce_bound"] = math.log(m) - numbers["infonce"]
        if k:  # the share of each anchor's negative softmax weight (its gradient weight) on its k hardest
            lse = torch.logsumexp(hard_g.double(), dim=1)  # log Σ_k e^{G_ik}, G_ii ≈ 0
            loss = sweep["loss"]  # log(1 + Σ_{j≠i} e^{G_ij})
            neg_mass = loss + torch.log(-torch.expm1(-loss.clamp_min(1e-300)))  # log Σ_{j≠i} e^{G_ij}
            _mean(numbers, "hard_negative_weight", to_numpy((lse - neg_mass).exp().clamp(0.0, 1.0)), m, anchors)
    hard_cos_np, hard_idx_np = to_numpy(hard_cos), to_numpy(hard_idx)
    rows_np = to_numpy(rows)
    snapshot_rows = rows_np[ids]
    arrays["positive_cos"] = _scatter(n, rows_np, pos_np, np.nan, np.float32)
    arrays["positive_rank"] = _scatter(n, snapshot_rows, rank_np, -1, np.int32)
    arrays["hardest_negative_cos"] = _scatter((n, k), snapshot_rows, hard_cos_np, np.nan, np.float32)
    arrays["hardest_negative_index"] = _scatter((n, k), snapshot_rows, rows_np[hard_idx_np], -1, np.int32)
    arrays["negative_cos_sample"] = neg.astype(np.float32)
    hist = {"positive": pos_np, "negative": neg, "hardest_negative": hard_cos_np[:, 0] if k else hard_cos_np.ravel()}
    numbers["histograms"] = {name: _hist_json(v, cfg.bins) for name, v in hist.items()}
    return hard_idx_np


def _negative_sample(zn, yn, cfg: EngineConfig) -> np.ndarray:
    """x̂_i·ŷ_j over all i≠j when there are at most max_negatives, else over the same uniform sample of pairs
    geometry.similarity_stats draws (so AUC and histograms match it)."""
    m = zn.shape[0]
    if m * (m - 1) <= cfg.max_negatives:
        sim = zn @ yn.T  # sim: m×m, at most ~450²
        return to_numpy(sim[~torch.eye(m, dtype=torch.bool, device=zn.device)])
    i, j = sample_pairs(m, cfg.max_negatives, cfg.seed)
    out = []
    for s, e in row_blocks(len(i), 65536):
        ii, jj = torch.from_numpy(i[s:e]).to(zn.device), torch.from_numpy(j[s:e]).to(zn.device)
        out.append(to_numpy(torch.linalg.vecdot(zn.index_select(0, ii), yn.index_select(0, jj))))
    return np.concatenate(out)


def _knn(zn, lab: np.ndarray, cfg: EngineConfig, numbers: dict) -> None:
    m = zn.shape[0]
    bank, query = probe_split(m)
    queries = query
    if len(bank) * len(query) > cfg.exact_limit**2:  # score a uniform sample of the queries
        size = max(2, cfg.exact_limit**2 // len(bank))
        queries = np.sort(np.random.default_rng(cfg.seed).choice(query, size=size, replace=False))
    bank_t, query_t = (torch.from_numpy(ix).to(zn.device) for ix in (bank, queries))
    hit = knn_predict(zn[bank_t], lab[bank], zn[query_t], cfg.knn_k, cfg.knn_temperature) == lab[queries]
    _mean(numbers, "knn_accuracy", hit.astype(np.float64), len(query), None if len(queries) == len(query) else 1)


def _scatter(shape, rows: np.ndarray, values: np.ndarray, fill, dtype) -> np.ndarray:
    out = np.full(shape, fill, dtype=dtype)
    out[rows] = values
    return out


def _hist_json(values: np.ndarray, bins: int) -> dict:
    counts, edges = histogram(np.asarray(values, dtype=np.float64), bins, -1.0, 1.0)
    return {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}
