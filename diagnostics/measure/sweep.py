"""The engine's two passes over pairs, one matmul per tile and everything else read from that tile.

cross_sweep, over ẑŷᵀ for the measured anchors i against every candidate j: G_ij = (ẑ_i·ŷ_j − ẑ_i·ŷ_i)/τ (the
positive folded in as an extra column) gives the InfoNCE partition function (Σ exp G, relative to the
positive), the softmax entropy (Σ e^G·G), the positive's rank (G_ij ≥ G_ii, ties against it) and a running
top-k of the hardest negatives.
self_sweep, over the upper triangle of ẑẑᵀ: each row's uniformity kernel sum and its k nearest neighbours.
uniformity, over ẑẑᵀ without neighbours: exact (log Σ_{i<j} kernel) or, given sampled anchor rows, from
each anchor's mean kernel against all rows, with its standard error (the engine above its exact limit, and
the group breakdowns; sample_anchors draws the anchors).
Ranks and top-k read a tile through its group maxima (diagnostics.measure._topk): a row whose positive wins costs one
amax per tile, and a running top-k reads only the groups that can beat its current k-th value.
See diagnostics/measure/engine.py for how the results are used.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _topk
from ._primitives import NO_SHIFT_MAX_T, log_pair_kernel_sum, upper_tiles
from ._tensor import row_blocks, to_numpy

# Below 2/τ = 80 a tile's exp(G) stays inside float32 (e^88) with no shift; smaller τ uses a running max.
_NO_SHIFT_MAX_LOGIT = 80.0


def cross_sweep(zn, yn, measured, temperature, k: int, tile: int, dev, every_row: bool) -> dict:
    """The one pass over G = [ẑ_i/τ, −ẑ_i·ŷ_i/τ]·[ŷ_j, 1]ᵀ for the measured rows i against every j.
    every_row: `measured` is 0..m−1, so a row block's own columns are one contiguous diagonal (views, no
    gathers); otherwise they are found by search in the sorted anchors."""
    m, a = yn.shape[0], measured.numel()
    scale = 1.0 / temperature if temperature is not None else 1.0
    xa = zn[measured]
    pos = (xa * yn[measured]).sum(dim=1)
    A = torch.cat([xa * scale, (-scale * pos)[:, None]], dim=1)  # A: a×(d+1)
    Bt = torch.cat([yn, torch.ones(m, 1, device=dev)], dim=1).T  # Bt: (d+1)×m
    with_exp, shifted = temperature is not None, 2.0 * scale > _NO_SHIFT_MAX_LOGIT
    if dev.type == "cuda":  # big tiles: few launches and host syncs
        rows_per, cols = max(1, (256 * 2**20) // (4 * m)), m
    else:
        rows_per, cols = (tile, tile) if isinstance(tile, int) else tile
    rank = torch.zeros(a, dtype=torch.long, device=dev)
    hard_g = torch.full((a, k), -math.inf, device=dev)
    hard_idx = torch.zeros((a, k), dtype=torch.long, device=dev)
    loss = torch.zeros(a, dtype=torch.float64, device=dev)
    entropy = torch.zeros(a, dtype=torch.float64, device=dev)
    G_buf = torch.empty(min(rows_per, a) * min(cols, m), device=dev)  # reused tiles: no allocation per tile
    E_buf = torch.empty_like(G_buf) if with_exp else None
    for s, e in row_blocks(a, rows_per):
        ids, Ab, b = measured[s:e], A[s:e], e - s
        g_self = (Ab @ Bt[:, ids]).diagonal().clone()  # the positive's G, ≈ 0
        z_sum = torch.zeros(b, dtype=torch.float64, device=dev)  # Σ_j exp(G_ij − μ_i)
        w_sum = torch.zeros(b, dtype=torch.float64, device=dev)  # Σ_j exp(G_ij − μ_i)(G_ij − μ_i)
        mu = torch.full((b,), -math.inf if shifted else 0.0, device=dev)
        for c0 in range(0, m, cols):
            c1 = min(m, c0 + cols)
            G = torch.mm(Ab, Bt[:, c0:c1], out=G_buf[: b * (c1 - c0)].view(b, c1 - c0))  # G: b×w
            own = _own_entries(G, ids, s, e, c0, c1, every_row)  # (view or index, saved values)
            if own is not None:
                _set_own(G, own, -math.inf)  # negatives only, for rank and top-k
            maxima = _topk.group_maxima(G)  # maxima: b×(w/32), gate both below
            rank[s:e] += _topk.count_at_least(G, g_self, maxima)  # negatives ≥ the positive
            if k:
                _merge_topk(G, maxima, hard_g[s:e], hard_idx[s:e], k, c0)
            if not with_exp:
                continue
            if own is not None:
                _set_own(G, own, None)
            if shifted:  # running maximum: rescale what was summed under the old shift
                new = torch.maximum(mu, G.amax(dim=1))
                back = (mu - new).double()
                keep = torch.isfinite(back)
                w_sum = torch.where(keep, (w_sum + back * z_sum) * back.exp(), 0.0)
                z_sum = torch.where(keep, z_sum * back.exp(), 0.0)
                mu = new
                G.sub_(mu[:, None])
            E = torch.exp(G, out=E_buf[: G.numel()].view_as(G))  # E: b×w
            z_sum += E.sum(dim=1).double()  # float32 cascade sums per tile
            w_sum += E.mul_(G).sum(dim=1).double()  # Σ e^G·G, in place
        if with_exp:
            loss[s:e] = z_sum.log() + mu.double() - g_self.double()
            entropy[s:e] = z_sum.log() - w_sum / z_sum
    return {"rank": rank, "hard_g": hard_g, "hard_idx": hard_idx, "loss": loss, "entropy": entropy}


def _own_entries(G, ids, s, e, c0, c1, every_row):
    """Where rows s..e of the block meet their own column inside tile [c0, c1), with the values there."""
    if every_row:
        lo, hi = max(s, c0), min(e, c1)
        if lo >= hi:
            return None
        diag = G[lo - s : hi - s, lo - c0 : hi - c0].diagonal()
        return diag, diag.clone()
    inside = torch.nonzero((ids >= c0) & (ids < c1)).squeeze(1)
    if not inside.numel():
        return None
    where = (inside, ids[inside] - c0)
    return where, G[where].clone()


def _set_own(G, own, value) -> None:
    where, saved = own
    fill = saved if value is None else value
    if isinstance(where, tuple):
        G[where] = fill
    elif value is None:
        where.copy_(saved)
    else:
        where.fill_(value)


def self_sweep(zn, t: float, k: int, tile: int, dev) -> dict:
    """The one pass over the upper triangle of G = 2t·ẑẑᵀ (unit or zero rows): each tile serves its rows and,
    transposed, its columns, so every ordered pair i ≠ j is seen once. Returns
      row_sums: (m,) float64 Σ_{j≠i} exp(G_ij) (None for t > _primitives.NO_SHIFT_MAX_T: e^{2t} overflows);
      nn_g, nn_idx: m×k, each row's k largest G_ij over j ≠ i (its k nearest by cosine), largest first."""
    m = zn.shape[0]
    a = zn * (2.0 * t)  # a·ẑ_j = 2t·cos
    with_sums = t <= NO_SHIFT_MAX_T
    row_sums = torch.zeros(m, dtype=torch.float64, device=dev)
    nn_g = torch.full((m, k), -math.inf, device=dev)
    nn_idx = torch.zeros((m, k), dtype=torch.long, device=dev)
    if dev.type == "cuda":
        rows, cols = max(1, (256 * 2**20) // (4 * m)), m
    else:
        rows, cols = (tile, tile) if isinstance(tile, int) else tile
    G_buf = torch.empty(min(rows, m) * min(cols, m), device=dev)
    for s, e, c0, c1 in upper_tiles(m, dev, rows, cols):
        G = torch.mm(a[s:e], zn[c0:c1].T, out=G_buf[: (e - s) * (c1 - c0)].view(e - s, c1 - c0))  # G: b×w
        off = max(e, c0) - c0  # columns [c0, c0 + off) lie inside the row block itself
        if off:  # a tile on the diagonal: its square part holds both orders of each pair; self excluded
            G[:, :off].diagonal().fill_(-math.inf)
        if k:
            _merge_topk(G, _topk.group_maxima(G), nn_g[s:e], nn_idx[s:e], k, c0)
            if off < G.shape[1]:  # the columns beyond the block, as rows
                T = G[:, off:].T  # T: (w − off)×b, a view
                _merge_topk(T, _topk.group_maxima_t(G[:, off:]), nn_g[c0 + off : c1], nn_idx[c0 + off : c1], k, s)
        if with_sums:
            E = G.exp_()  # in place: G is spent
            row_sums[s:e] += E.sum(dim=1).double()
            if off < E.shape[1]:
                row_sums[c0 + off : c1] += E[:, off:].sum(dim=0).double()
    return {"row_sums": row_sums if with_sums else None, "nn_g": nn_g, "nn_idx": nn_idx}


def _merge_topk(G, maxima, best_v, best_i, k: int, c0: int) -> None:
    """The tile's k largest entries per row into the running top-k: an empty top-k is filled from the tile
    (diagnostics.measure._topk.topk), a filled one reads the tile only where a group beats a row's current k-th."""
    if G.shape[1] >= k and bool(torch.isinf(best_v[:, 0]).all()):
        tv, ti = _topk.topk(G, k, maxima)
        best_v.copy_(tv)
        best_i.copy_(ti + c0)
    else:
        _topk.merge_above(G, maxima, best_v, best_i, c0)


def sample_anchors(m: int, limit: int, seed: int, dev) -> torch.Tensor | None:
    """None (every row) up to `limit` rows; else a sorted uniform sample of a rows with a·m ≤ limit²."""
    if m <= limit:
        return None
    a = max(2, limit**2 // m)
    idx = np.sort(np.random.default_rng(seed).choice(m, size=a, replace=False))
    return torch.from_numpy(idx).to(dev)


def uniformity(zn: torch.Tensor, t: float, anchors: torch.Tensor | None = None) -> tuple[float, float | None]:
    """(log mean_{i≠j} exp(−t‖ẑ_i − ẑ_j‖²), its standard error) for unit or zero rows (Wang & Isola 2020).
    anchors None: exact over all pairs, error None. Else r_i = mean_{j≠i} exp(−t‖ẑ_i − ẑ_j‖²) for each
    anchor and uniformity = log mean_i r_i, its error by the delta method with the finite-population
    correction (1 − a/m)."""
    m = zn.shape[0]
    if anchors is None:
        return log_pair_kernel_sum(zn, t) - math.log(m * (m - 1) / 2), None
    sq = zn.square().sum(dim=1, keepdim=True)
    a = torch.cat([zn[anchors] * (2.0 * t), -t * sq[anchors], -t * torch.ones_like(sq[anchors])], dim=1)
    b = torch.cat([zn, torch.ones_like(sq), sq], dim=1)  # a·b = −t||ẑ_i − ẑ_j||²
    r = torch.empty(anchors.numel(), dtype=torch.float64, device=zn.device)
    for start, end in row_blocks(anchors.numel(), 1024):
        logk = a[start:end] @ b.T  # logk: b×m
        logk[torch.arange(end - start, device=zn.device), anchors[start:end]] = -math.inf
        r[start:end] = logk.exp_().sum(dim=1, dtype=torch.float64) / (m - 1)
    r = to_numpy(r)
    count = len(r)
    mean = float(r.mean())
    se = float(r.std(ddof=1) / math.sqrt(count) * math.sqrt(max(0.0, 1 - count / m)))
    return math.log(mean), se / mean
