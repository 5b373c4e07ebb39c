"""Exact row-wise top-k and threshold counts of a similarity tile, read through its group maxima.

CPU `topk` costs 5–20 ns per entry it scans (a partial sort per row), as much as the matmul that made the
tile; comparing a whole tile against a threshold costs ~1 ns per entry. One `amax` over R interleaved
columns costs ~0.1 ns per entry and leaves a tile R times smaller: group g of a w-wide row is the columns
{g + C·r : r < R}, C = w // R (the w % R tail columns form no group and are always read).

  * top-k: the k largest entries of a row lie in the k groups with the largest maxima (were a group holding
    one left out, the k groups chosen would each hold an entry at least as large), so `topk` scans k·R
    candidates instead of w. Ties may pick another index of an equal value, as `topk` itself may.
  * a running top-k (`merge_above`) reads only the groups whose maximum beats the row's current k-th value;
  * `count_at_least` reads only the groups whose maximum reaches the threshold.
"""

from __future__ import annotations

import math

import torch

GROUP = 32  # R: entries per group (a tile's row of 1024 gives C = 32 groups)


def group_maxima(x: torch.Tensor, group: int = GROUP) -> torch.Tensor:
    """b×C, C = w // group: the maximum of each group of interleaved columns (the tail is left out)."""
    b, w = x.shape
    c = w // group
    return x[:, : c * group].view(b, group, c).amax(dim=1)


def group_maxima_t(x: torch.Tensor, group: int = GROUP) -> torch.Tensor:
    """group_maxima(x.T) read along x's rows (contiguous slabs; ~50× faster than reducing the strided x.T)."""
    b, w = x.shape
    c = b // group
    return x[: c * group].view(group, c, w).amax(dim=0).T


def _grouped(x: torch.Tensor, c: int, group: int) -> torch.Tensor:
    return x[:, : c * group].view(x.shape[0], group, c)  # [row, r, g] = x[row, g + C·r]


def _columns(groups: torch.Tensor, c: int, group: int) -> torch.Tensor:
    """Column indices (…×group) of the groups named by `groups` (…)."""
    return groups[..., None] + c * torch.arange(group, device=groups.device)


def topk(
    x: torch.Tensor,
    k: int,
    maxima: torch.Tensor | None = None,
    group: int = GROUP,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, column indices), each b×min(k, w), largest first: x.topk(k, dim=1) up to ties."""
    b, w = x.shape
    k = min(k, w)
    c = w // group
    if c <= k:  # too few groups to leave any out
        return x.topk(k, dim=1)
    if maxima is None:
        maxima = group_maxima(x, group)
    cols = _columns(maxima.topk(k, dim=1).indices, c, group).view(b, k * group)  # cols: b×(k·R)
    if w > c * group:
        cols = torch.cat([cols, torch.arange(c * group, w, device=x.device).expand(b, -1)], dim=1)
    values, where = x.gather(1, cols).topk(k, dim=1)
    return values, cols.gather(1, where)


def merge_above(
    x: torch.Tensor, maxima: torch.Tensor, best_v: torch.Tensor, best_i: torch.Tensor, c0: int, group: int = GROUP
) -> None:
    """Merge tile x (its columns start at c0) into the running top-k (best_v, best_i: b×k, largest first),
    reading only the groups whose maximum beats a row's current k-th value, then only their entries that do."""
    b, w = x.shape
    k = best_v.shape[1]
    c = maxima.shape[1]
    kth = best_v[:, -1]
    rows, gs = torch.nonzero(maxima > kth[:, None], as_tuple=True)  # (row, group) pairs, row-major
    values = _grouped(x, c, group)[rows, :, gs]  # values: P×R
    p, r = torch.nonzero(values > kth[rows, None], as_tuple=True)  # the entries that beat it
    rows, values, cols = rows[p], values[p, r], gs[p] + c * r
    if w > c * group:  # tail columns, outside every group
        tr, tc = torch.nonzero(x[:, c * group :] > kth[:, None], as_tuple=True)
        rows, order = torch.cat([rows, tr]).sort(stable=True)
        values = torch.cat([values, x[tr, c * group + tc]])[order]
        cols = torch.cat([cols, c * group + tc])[order]
    if not rows.numel():
        return
    # one padded row of candidates per touched row: U×Q, Q = most candidates any row has
    touched, slot, counts = torch.unique_consecutive(rows, return_inverse=True, return_counts=True)
    pos = torch.arange(rows.numel(), device=x.device) - (counts.cumsum(0) - counts)[slot]
    cand_v = torch.full((touched.numel(), int(counts.max())), -math.inf, device=x.device)
    cand_i = torch.zeros(cand_v.shape, dtype=torch.long, device=x.device)
    cand_v[slot, pos] = values
    cand_i[slot, pos] = cols + c0
    mv, mi = torch.cat([best_v[touched], cand_v], dim=1).topk(k, dim=1)
    best_i[touched] = torch.cat([best_i[touched], cand_i], dim=1).gather(1, mi)
    best_v[touched] = mv


def count_at_least(
    x: torch.Tensor,
    threshold: torch.Tensor,
    maxima: torch.Tensor,
    group: int = GROUP,
) -> torch.Tensor:
    """(b,) int64: how many entries of each row are ≥ threshold[row], reading only the groups whose maximum
    reaches it (a row whose threshold beats every group costs nothing beyond the maxima)."""
    b, w = x.shape
    c = maxima.shape[1]
    count = torch.zeros(b, dtype=torch.long, device=x.device)
    rows, gs = torch.nonzero(maxima >= threshold[:, None], as_tuple=True)
    if rows.numel():
        inside = _grouped(x, c, group)[rows, :, gs]  # inside: P×R
        count.index_add_(0, rows, (inside >= threshold[rows, None]).sum(dim=1))
    if w > c * group:
        count += (x[:, c * group :] >= threshold[:, None]).sum(dim=1)
    return count
