"""Two modalities of the same N samples in one embedding space (an image and its caption): how far apart the
modalities sit, whether each row finds its partner, and each modality's own geometry.

modality_gap follows Liang et al. 2022 ("Mind the Gap", NeurIPS): the distance between the centroids of the
L2-normalised embeddings of each modality, ‖mean(x̂) − mean(ŷ)‖, in [0, 2]. Retrieval walks the N×N
cross-similarity in row blocks (`_tensor.similarity_blocks`), so memory stays O(block·N) at any N.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._tensor import as_matrix, block_rows, finite_rows, normalize, same_shape, similarity_blocks
from .collapse import effective_rank
from .geometry import uniformity

RECALL_KS = (1, 5, 10)


def modality_gap(xn: torch.Tensor, yn: torch.Tensor) -> float:
    """‖mean_i x̂_i − mean_i ŷ_i‖ for unit rows (0: the modalities share a centroid; 2: antipodal cones)."""
    return float((xn.double().mean(dim=0) - yn.double().mean(dim=0)).norm())


def partner_ranks(xn: torch.Tensor, yn: torch.Tensor, rows: int | None = None) -> np.ndarray:
    """For each anchor x̂_i, how many candidates ŷ_j (j ≠ i) score strictly higher than its partner ŷ_i
    (0 = the partner is on top; ties with the partner do not count against it, so identical captions of
    different images are not errors). The partner's score comes from the same block product, so the
    comparison is exact for identical inputs."""
    ranks = np.empty(xn.shape[0], dtype=np.int64)
    rows = rows or block_rows(yn.shape[0], xn.device)
    for start, end, sim in similarity_blocks(xn, yn, rows):                  # sim: b×N
        i = torch.arange(end - start, device=sim.device)
        partner = sim[i, start + i]                                          # partner: b
        ranks[start:end] = (sim > partner[:, None]).sum(dim=1).cpu().numpy()
    return ranks


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float((ranks < k).mean()) if len(ranks) else math.nan


def crossmodal_numbers(z_a, z_b, rows: int | None = None) -> dict:
    """Numbers about a paired snapshot: z_a (N×d, e.g. images) and z_b (N×d, their captions), row i of each
    being the same sample. Computed on the rows finite in both.

    Keys: modality_gap; cross_modal_recall@k for k in 1, 5, 10 (mean of the a→b and b→a directions) and
    cross_modal_recall@1_a_to_b / _b_to_a; uniformity_a/_b (Wang & Isola, t = 2) and effective_rank_a/_b
    (RankMe) of each modality on its own; cross_modal_pairs (rows used)."""
    a, b = as_matrix(z_a, "z_a"), as_matrix(z_b, "z_b")
    same_shape(a, b, "z_a", "z_b")
    ok = finite_rows(a) & finite_rows(b)
    a, b = a[ok], b[ok]
    n = a.shape[0]
    out: dict = {"cross_modal_pairs": int(n)}
    if n < 2:
        nan = {k: math.nan for k in ("modality_gap", "uniformity_a", "uniformity_b", "effective_rank_a",
                                     "effective_rank_b", "cross_modal_recall@1_a_to_b", "cross_modal_recall@1_b_to_a")}
        return {**out, **nan, **{f"cross_modal_recall@{k}": math.nan for k in RECALL_KS}}
    an, bn = normalize(a), normalize(b)
    a_to_b, b_to_a = partner_ranks(an, bn, rows), partner_ranks(bn, an, rows)
    out["modality_gap"] = modality_gap(an, bn)
    for k in RECALL_KS:
        out[f"cross_modal_recall@{k}"] = 0.5 * (recall_at(a_to_b, k) + recall_at(b_to_a, k))
    out["cross_modal_recall@1_a_to_b"] = recall_at(a_to_b, 1)
    out["cross_modal_recall@1_b_to_a"] = recall_at(b_to_a, 1)
    out.update({"uniformity_a": uniformity(a), "uniformity_b": uniformity(b),
                "effective_rank_a": effective_rank(a), "effective_rank_b": effective_rank(b)})
    return out
