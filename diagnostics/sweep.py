"""The engine's one pass over the cross-view matrix: for the measured anchors i against every candidate j,
one matmul per tile gives G_ij = (ẑ_i·ŷ_j − ẑ_i·ŷ_i)/τ (the positive folded in as an extra column), and
from the same tile: the InfoNCE partition function (Σ exp G, relative to the positive), the softmax entropy
(Σ e^G·G), the positive's rank (G_ij ≥ G_ii, ties against it) and a running top-k of the hardest negatives.
A tile's row maximum gates the rank count and the top-k merge, so a row whose positive wins and whose top-k
is settled costs one amax per tile. See diagnostics/engine.py for how the results are used.
"""
from __future__ import annotations

import math

import torch

from ._tensor import row_blocks

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
    A = torch.cat([xa * scale, (-scale * pos)[:, None]], dim=1)           # A: a×(d+1)
    Bt = torch.cat([yn, torch.ones(m, 1, device=dev)], dim=1).T           # Bt: (d+1)×m
    with_exp, shifted = temperature is not None, 2.0 * scale > _NO_SHIFT_MAX_LOGIT
    if dev.type == "cuda":  # big tiles: few launches and host syncs
        rows_per, cols = max(1, (256 * 2**20) // (4 * m)), m
    else:
        rows_per, cols = tile, tile
    rank = torch.zeros(a, dtype=torch.long, device=dev)
    hard_g = torch.full((a, k), -math.inf, device=dev)
    hard_idx = torch.zeros((a, k), dtype=torch.long, device=dev)
    loss = torch.zeros(a, dtype=torch.float64, device=dev)
    entropy = torch.zeros(a, dtype=torch.float64, device=dev)
    for s, e in row_blocks(a, rows_per):
        ids, Ab, b = measured[s:e], A[s:e], e - s
        g_self = (Ab @ Bt[:, ids]).diagonal().clone()                     # the positive's G, ≈ 0
        z_sum = torch.zeros(b, dtype=torch.float64, device=dev)            # Σ_j exp(G_ij − μ_i)
        w_sum = torch.zeros(b, dtype=torch.float64, device=dev)            # Σ_j exp(G_ij − μ_i)(G_ij − μ_i)
        mu = torch.full((b,), -math.inf if shifted else 0.0, device=dev)
        best_v, best_i, count = hard_g[s:e], hard_idx[s:e], rank[s:e]
        for c0 in range(0, m, cols):
            c1 = min(m, c0 + cols)
            G = Ab @ Bt[:, c0:c1]                                          # G: b×w
            own = _own_entries(G, ids, s, e, c0, c1, every_row)           # (view or index, saved values)
            if own is not None:
                _set_own(G, own, -math.inf)                                # negatives only, for rank and top-k
            top = G.amax(dim=1)
            sel = torch.nonzero(top >= g_self).squeeze(1)                  # rows with a negative ≥ the positive
            if sel.numel():
                count[sel] += (G[sel] >= g_self[sel, None]).sum(dim=1)
            if k:
                _merge_topk(G, top, best_v, best_i, k, c0)
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
            E = torch.exp(G)                                               # E: b×w
            z_sum += E.sum(dim=1).double()                                 # float32 cascade sums per tile
            w_sum += torch.linalg.vecdot(E, G).double()
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
        diag = G[lo - s:hi - s, lo - c0:hi - c0].diagonal()
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


def _merge_topk(G, top, best_v, best_i, k: int, c0: int) -> None:
    """Merge tile G's largest entries into the running top-k of each row, touching only the rows where the
    tile's maximum beats the current k-th value."""
    sel = torch.nonzero(top > best_v[:, -1]).squeeze(1)
    if not sel.numel():
        return
    every = sel.numel() == G.shape[0]
    tv, ti = (G if every else G[sel]).topk(min(k, G.shape[1]), dim=1)
    if every and bool(torch.isinf(best_v[:, -1]).all()) and tv.shape[1] == k:  # first tile of a block
        best_v.copy_(tv)
        best_i.copy_(ti + c0)
        return
    mv, mi = torch.cat([best_v[sel], tv], dim=1).topk(k, dim=1)
    best_v[sel] = mv
    best_i[sel] = torch.cat([best_i[sel], ti + c0], dim=1).gather(1, mi)
