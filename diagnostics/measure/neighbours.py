"""Neighbourhoods for the pages, from the engine's own passes: each row's k nearest by cosine (the engine's ẑẑᵀ
sweep, diagnostics.measure.sweep.self_sweep, as a record's neighbour_index), how many of them two lists share, the
nearest rows to a few chosen ones, and how far each point moved between two snapshots.

A record holds the embeddings' neighbour lists (engine.measure); `neighbour_index` computes the same lists for
an array the worker does not measure (a snapshot's features, in the page up to dashboard.data.IN_PAGE_POINTS).
The reference these are tested against is diagnostics/reference/probes.py (neighbour_retention, nearest_neighbours).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _topk
from ._tensor import as_matrix, as_vector, best_device, finite_rows, normalize, same_shape, similarity_blocks, to_numpy
from .sweep import self_sweep

TILE = 1024  # the engine's CPU tile (engine.EngineConfig.tile)


def neighbour_index(z, k: int = 10) -> np.ndarray:
    """N×k' int32, k' = min(k, m−1) over the m finite rows: each finite row's k nearest rows by cosine, itself
    excluded, most similar first (snapshot row numbers); −1 in every slot of a non-finite row. The engine's
    self sweep, so a record's neighbour_index and this agree for the same rows."""
    dev = best_device()
    x = as_matrix(z, "z", dev)
    ok = finite_rows(x)
    rows = torch.nonzero(ok).squeeze(1)
    m, n = int(rows.numel()), x.shape[0]
    k = max(0, min(k, m - 1))
    out = np.full((n, k), -1, dtype=np.int32)
    if k == 0:
        return out
    swept = self_sweep(normalize(x[rows]), 0.5, k, TILE, dev)  # G = 2t·cos = cos: only the order matters
    rows_np = to_numpy(rows)
    out[rows_np] = rows_np[to_numpy(swept["nn_idx"])]
    return out


def neighbour_overlap(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(N,) float32: the fraction of row i's neighbours in `before` (N×k indices) also in `after` (N×k); NaN
    for a row with an index < 0 in either (a row the engine did not measure). Reads two records'
    neighbour_index arrays: O(N·k²), no search."""
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"after: neighbour lists of shape {after.shape} differ from {before.shape}")
    kept = np.empty(len(before), dtype=np.float32)
    for start in range(0, len(before), 4096):
        b, a = before[start : start + 4096], after[start : start + 4096]
        kept[start : start + 4096] = (b[:, :, None] == a[:, None, :]).any(axis=2).mean(axis=1)
    kept[(before < 0).any(axis=1) | (after < 0).any(axis=1)] = np.nan
    return kept


def retention(z0, z1, k: int = 10) -> np.ndarray:
    """(N,) fraction of each row's k nearest neighbours at z0 still among its k nearest at z1 (NaN for a row
    non-finite in either): neighbour_overlap of the two neighbour_index lists."""
    if np.shape(z0)[0] != np.shape(z1)[0]:
        raise ValueError(f"z1: has {np.shape(z1)[0]} rows but z0 has {np.shape(z0)[0]}; the same points are needed")
    before, after = neighbour_index(z0, k), neighbour_index(z1, k)
    if before.shape != after.shape:  # different finite rows leave different k': compare the common prefix
        k = min(before.shape[1], after.shape[1])
        before, after = before[:, :k], after[:, :k]
    if before.shape[1] == 0:
        return np.full(len(before), np.nan, dtype=np.float32)
    return neighbour_overlap(before, after)


def nearest(z, idx, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cos), each len(idx)×k', k' = min(k, N−1): the nearest rows to z[idx] by cosine, most similar
    first, the row itself excluded. A few rows against N: one tiled matmul, top-k through group maxima."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: needs a positive integer, got {k!r}")
    zn = normalize(as_matrix(z, "z"))
    n = zn.shape[0]
    idx = np.atleast_1d(as_vector(np.atleast_1d(idx), "idx")).astype(np.int64)
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"idx: indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    queries = torch.from_numpy(idx % max(n, 1)).to(zn.device)
    k = min(k, max(n - 1, 0))
    cos = torch.empty(len(queries), k, device=zn.device)
    index = torch.empty(len(queries), k, dtype=torch.long, device=zn.device)
    for start, end, sim in similarity_blocks(zn[queries], zn):  # sim: b×N
        sim[torch.arange(end - start, device=zn.device), queries[start:end]] = -math.inf
        cos[start:end], index[start:end] = _topk.topk(sim, k)
    return to_numpy(index), to_numpy(cos)


def displacement(z0, z1) -> np.ndarray:
    """(N,) great-circle distance in radians (0..π) each point moved on the unit sphere between two
    snapshots: atan2(‖ẑ0_i − (ẑ0_i·ẑ1_i)ẑ1_i‖, ẑ0_i·ẑ1_i) = arccos(ẑ0_i·ẑ1_i), accurate for tiny moves too
    (where arccos(1 − ε) loses half its digits)."""
    a, b = normalize(as_matrix(z0, "z0")), normalize(as_matrix(z1, "z1"))
    same_shape(a, b, "z0", "z1")
    cos = (a * b).sum(dim=1)
    sin = torch.linalg.vector_norm(a - b * cos[:, None], dim=1)
    return to_numpy(torch.atan2(sin, cos))
