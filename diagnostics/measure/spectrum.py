"""The engine's collapse numbers from one float64 Gram pass over the embeddings: effective rank, centred rank,
normalised std, mean cosine, dead dimensions, α-ReQ, without a second pass for the centred spectrum
(diagnostics/measure/engine.py calls it once per snapshot; the reference is reference_collapse.collapse_numbers);
and the RankMe of a matrix as it is (effective_rank: each modality's, diagnostics/measure/crossmodal.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..judge.collapse import CollapseThresholds
from ._primitives import rankme, top_variance_share
from ._tensor import as_matrix, finite_rows, row_blocks, to_numpy


def snapshot_spectrum(z: torch.Tensor, zn: torch.Tensor, features, ok_z: torch.Tensor, numbers: dict) -> np.ndarray:
    """The spectrum numbers (reference_collapse.collapse_numbers' keys) into `numbers`; returns the centred
    singular values."""
    th = CollapseThresholds()
    n, d = z.shape
    if n < th.min_points:
        return np.zeros(0)
    zd = z.double()
    mean = zd.mean(dim=0)
    gram = torch.zeros(d, d, dtype=torch.float64, device=z.device)
    centred = torch.zeros_like(gram)
    for start, end in row_blocks(n, 65536):
        block = zd[start:end]  # block: b×d
        gram += block.T @ block
        block = block - mean
        centred += block.T @ block
    sigma = _singular_values(gram, n)
    sigma_c = _singular_values(centred, n)
    std = zd.std(dim=0, correction=0)
    znd = zn.double()
    normalized_std = float(zn.std(dim=0, correction=0).mean())
    rank_centred = rankme(sigma_c)
    numbers.update(
        {
            "effective_rank": rankme(sigma),
            "effective_rank_centred": rank_centred,
            "rank_fraction": rank_centred / min(n - 1, d),
            "normalized_std": normalized_std,
            "std_ratio": normalized_std / (1.0 / math.sqrt(d)),
            "raw_std": float(std.mean()),
            "mean_cos": float((znd.sum(dim=0).square().sum() - znd.square().sum()) / (n * (n - 1))),
            "dead_dims": int((std <= th.dead_dim_tol * std.max()).sum()),
            "alpha_req": _alpha_req(sigma_c),
            "top_variance_share": top_variance_share(sigma_c, d),
        }
    )
    if features is not None:
        f = as_matrix(features, "features", z.device)
        if f.shape[0] != ok_z.shape[0]:
            raise ValueError(f"features: has {f.shape[0]} rows but the embeddings have {ok_z.shape[0]}")
        f = f[ok_z & finite_rows(f)].double()
        fgram = f.T @ f  # fgram: F×F
        numbers["effective_rank_features"] = rankme(_singular_values(fgram, f.shape[0])) if len(f) else None
        numbers["feature_dim"] = int(f.shape[1])
        fc = f - f.mean(dim=0) if len(f) else f  # the backbone's spread, as the head's
        numbers["top_variance_share_features"] = (
            top_variance_share(_singular_values(fc.T @ fc, f.shape[0]), f.shape[1]) if len(f) else None
        )
    return sigma_c


def effective_rank(z: torch.Tensor) -> float:
    """RankMe of z as it is (not centred, as in Garrido et al. 2023) from its float64 Gram matrix; 0 for an
    all-zero z, NaN with NaN/inf rows or no rows."""
    n, d = z.shape
    if n == 0 or not bool(torch.isfinite(z).all()):
        return math.nan
    gram = torch.zeros(d, d, dtype=torch.float64, device=z.device)
    for start, end in row_blocks(n, 65536):
        block = z[start:end].double()  # block: b×d
        gram += block.T @ block
    return rankme(_singular_values(gram, n))


def _singular_values(gram: torch.Tensor, n: int) -> np.ndarray:
    eig = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0)
    return np.sqrt(to_numpy(eig)[: min(n, gram.shape[0])])


def _alpha_req(sigma: np.ndarray, rel_tol: float = 1e-10) -> float | None:
    """α-ReQ (reference_collapse.alpha_req) from a spectrum already in hand: the slope of log λ_k against
    log k."""
    lam = sigma**2
    if len(lam) == 0 or lam[0] <= 0:
        return None
    lam = lam[lam > rel_tol * lam[0]]
    if len(lam) < 3:
        return None
    return float(-np.polyfit(np.log(np.arange(1, len(lam) + 1)), np.log(lam), 1)[0])
