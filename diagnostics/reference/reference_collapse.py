"""The reference collapse numbers of an embedding, one function each: how many directions it uses (spectrum,
RankMe, α-ReQ) and whether every point maps to one spot (SimSiam's normalised std, mean cosine); `diagnose`
judges them (collapse.judge).

The reference the engine's one Gram pass (diagnostics/measure/spectrum.py) is tested against: production code never
imports this module (tests/test_reference_boundary.py). All spectra come from the d×d Gram matrix ZᵀZ
accumulated in float64 over row blocks, so memory is O(N·d) for the data plus O(d²), at any N.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..judge.collapse import CollapseReport, CollapseThresholds, judge
from ..measure._primitives import rankme, top_variance_share
from ..measure._tensor import as_matrix, finite_rows, normalize, row_blocks, to_numpy


def _matrix(z, name: str = "z") -> torch.Tensor:
    return as_matrix(z, name)


def _gram_eigenvalues(z: torch.Tensor, centre: bool) -> np.ndarray:
    """Eigenvalues of ZᵀZ (of the centred Z if `centre`), descending, float64, the top min(N, d)."""
    n, d = z.shape
    mean = z.double().mean(dim=0) if centre else torch.zeros(d, dtype=torch.float64, device=z.device)
    gram = torch.zeros(d, d, dtype=torch.float64, device=z.device)
    for start, end in row_blocks(n, 65536):
        block = z[start:end].double() - mean  # block: b×d
        gram += block.T @ block
    eig = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0)
    return to_numpy(eig)[: min(n, d)]


def singular_spectrum(z) -> np.ndarray:
    """Singular values of the centred embeddings Z − mean, descending (Jing et al. 2022): the dimensional
    collapse picture. min(N, d) values; nan values if Z has NaN or inf."""
    z = _matrix(z)
    if not bool(torch.isfinite(z).all()):
        return np.full(min(z.shape), math.nan)
    return np.sqrt(_gram_eigenvalues(z, centre=True)) if z.shape[0] else np.zeros(0)


def effective_rank(z, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023) of the embedding matrix as it is (not centred, as in the paper):
    exp(−Σ p_k log p_k) with p_k = σ_k(Z)/Σσ + ε, ε = 1e-7. 0 for an all-zero Z; nan with NaN/inf rows."""
    z = _matrix(z)
    if z.shape[0] == 0 or not bool(torch.isfinite(z).all()):
        return math.nan
    return rankme(np.sqrt(_gram_eigenvalues(z, centre=False)), eps)


def normalized_std(z) -> float:
    """Per-dimension standard deviation (ddof=0) of the L2-normalised rows, averaged over dimensions
    (Chen & He 2021, SimSiam). ≈ 1/√d for points spread over the sphere, 0 under complete collapse."""
    z = _matrix(z)
    if z.shape[0] == 0:
        return math.nan
    return float(normalize(z).std(dim=0, correction=0).mean())


def raw_std(z) -> float:
    """Per-dimension standard deviation (ddof=0) of the rows as they are, averaged over dimensions: the scale
    a variance-regularised objective keeps (VICReg hinges each dimension's std at 1, Bardes et al. 2022) and
    loses when it collapses; on the sphere (normalized_std) its collapse hides as tiny vectors' noisy directions."""
    z = _matrix(z)
    if z.shape[0] == 0:
        return math.nan
    return float(z.double().std(dim=0, correction=0).mean())


def dead_dimensions(z, tol: float = 1e-3) -> int:
    """Number of dimensions whose standard deviation over the rows is at most `tol` × the largest one:
    coordinates the encoder never varies (scale-free; every dimension is dead when nothing varies)."""
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol: needs a finite number ≥ 0, got {tol!r}")
    z = _matrix(z)
    if z.shape[0] == 0:
        return 0
    std = z.double().std(dim=0, correction=0)
    return int((std <= tol * std.max()).sum())


def mean_pairwise_cosine(z) -> float:
    """Mean cos(z_i, z_j) over pairs i≠j, exactly and without an N×N matrix:
    Σ_{i≠j} ẑ_i·ẑ_j = ||Σ_i ẑ_i||² − Σ_i ||ẑ_i||². nan for N < 2."""
    z = _matrix(z)
    n = z.shape[0]
    if n < 2:
        return math.nan
    zn = normalize(z).double()
    return float((zn.sum(dim=0).square().sum() - zn.square().sum()) / (n * (n - 1)))


def alpha_req(z, rel_tol: float = 1e-10) -> float | None:
    """α-ReQ (Agrawal et al. 2022): α in λ_k ∝ k^−α, the least-squares slope of log λ_k against log k over
    the covariance eigenvalues λ_k above rel_tol·λ_1. Small α: flat spectrum (many directions used);
    large α: a few directions dominate. None when fewer than 3 eigenvalues are usable."""
    sigma = singular_spectrum(z)
    lam = sigma**2
    if not np.all(np.isfinite(lam)) or len(lam) == 0 or lam[0] <= 0:
        return None
    lam = lam[lam > rel_tol * lam[0]]
    if len(lam) < 3:
        return None
    slope = np.polyfit(np.log(np.arange(1, len(lam) + 1)), np.log(lam), 1)[0]
    return float(-slope)


def diagnose(z, features=None, thresholds: CollapseThresholds | None = None) -> CollapseReport:
    """Healthy, dimensionally collapsed or completely collapsed, with the numbers behind it, plain words and
    what to try. Non-finite rows are counted (divergence) and left out; everything else uses the finite rows.
    Dimensional collapse is judged on the centred spectrum, so a shared offset does not count as collapse."""
    th = thresholds or CollapseThresholds()
    return judge(collapse_numbers(z, features, th), th)


def collapse_numbers(z, features=None, thresholds: CollapseThresholds | None = None) -> dict:
    """The numbers a verdict is judged on (n, finite_rows, dim, inv_sqrt_d and, with ≥ min_points finite
    rows, the spectrum numbers). Computing them is the expensive part; `judge` only reads them."""
    th = thresholds or CollapseThresholds()
    z = _matrix(z)
    ok = finite_rows(z)
    n_all, d = z.shape
    z = z[ok]
    n = z.shape[0]
    inv_sqrt_d = 1.0 / math.sqrt(d) if d else math.nan
    numbers: dict = {"n": n_all, "finite_rows": n, "dim": d, "inv_sqrt_d": inv_sqrt_d}
    if n < th.min_points or d == 0:
        return numbers

    sigma_c = np.sqrt(_gram_eigenvalues(z, centre=True))
    rank_centred = rankme(sigma_c)
    capacity = min(n - 1, d)
    numbers.update(
        {
            "effective_rank": effective_rank(z),
            "effective_rank_centred": rank_centred,
            "rank_fraction": rank_centred / capacity,
            "normalized_std": normalized_std(z),
            "raw_std": raw_std(z),
            "mean_cos": mean_pairwise_cosine(z),
            "dead_dims": dead_dimensions(z, th.dead_dim_tol),
            "alpha_req": alpha_req(z),
            "top_variance_share": top_variance_share(sigma_c, d),
        }
    )
    numbers["std_ratio"] = numbers["normalized_std"] / inv_sqrt_d
    if features is not None:
        f = _matrix(features, "features")
        if f.shape[0] != n_all:
            raise ValueError(f"features: has {f.shape[0]} rows but z has {n_all}")
        f = f[ok & finite_rows(f)]
        numbers["effective_rank_features"] = effective_rank(f) if f.shape[0] else math.nan
        numbers["feature_dim"] = int(f.shape[1])
        if f.shape[0] >= th.min_points:
            numbers["top_variance_share_features"] = top_variance_share(
                np.sqrt(_gram_eigenvalues(f, centre=True)), int(f.shape[1])
            )
    return numbers
