"""2-D layouts of a snapshot's embeddings (PCA, t-SNE, UMAP) that stay put while training plays through.

Every method sees the same input: rows L2-normalised in float32 (the cosine geometry a contrastive loss
works in); on unit rows squared Euclidean distance is 2 − 2·cos, so the Euclidean neighbour search each
library is fastest at returns exactly the cosine neighbours. Rows with a NaN/inf are left out of the fit
and come back as NaN rows, so one diverged sample never hides the other N − 1.

Library per method (timings in docs/benchmarks-projection.md, measured by bench/bench_projection.py):
- PCA: exact, with numpy in float64 — eigh of the d×d covariance of the centred rows when d ≤ N (one
  O(N·d²) BLAS product; torch buys nothing on CPU for one matmul), SVD of the N×d matrix otherwise. No
  randomised solver: the answer must not depend on a seed; signs are fixed (largest loading positive).
- t-SNE: openTSNE: FFT-interpolated gradients above 10,000 points (O(N) per iteration, versus Barnes-Hut's
  O(N log N) in scikit-learn) and Barnes-Hut below, where FFT's fixed grid cost made it ~6× slower at 300
  points (negative_gradient_method="auto"), Annoy neighbours, PCA initialisation (global structure is
  kept far better than from a random start), n_jobs=2. An N×2 `init` array is accepted as is, after
  rescaling to the std of 1e-4 openTSNE expects, so a step starts from the previous step's layout.
- UMAP: umap-learn. With a `random_state` it is deterministic but runs single-threaded; on the 2-core target
  threads can give at most 2×, so reproducibility (a cache key, a test, a shared screenshot) wins:
  `seed=None` opts into the threaded, non-reproducible run (bench/bench_projection.py measures both).
  UMAP reports no progress, so its two stages (neighbour graph, layout) are run separately and reported. Its first
  fit in a process pays numba compilation (diagnostics.measure.warmup).

`project_steps` and `align_to` keep successive steps in one frame: t-SNE/UMAP start from the previous
layout; every method is then rotated/reflected onto it (orthogonal Procrustes, no scaling between steps, so
a shrinking cloud — collapse — still shows as shrinking).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# unit_pca: the true-scale view. PCA, t-SNE and UMAP rescale, so a collapsed snapshot (std 0.07×, mean cosine
# 1.00) still shows tidy clusters; unit_pca keeps the scale (see unit_pca_2d), so collapse looks collapsed.
METHODS = ("pca", "tsne", "umap", "unit_pca")
Progress = Callable[[float, str], None]

# "auto": Barnes-Hut below 10,000 points, FFT above — FFT has a fixed per-iteration grid cost that makes it
# ~6× slower than BH at a few hundred points (measured), and is the fast one at tens of thousands.
TSNE_DEFAULTS = dict(perplexity=30.0, n_jobs=2, negative_gradient_method="auto", metric="euclidean")
UMAP_DEFAULTS = dict(n_neighbors=15, min_dist=0.1, metric="euclidean")
TSNE_INIT_STD = 1e-4  # openTSNE's recommended spread for a user-given initialisation


def unit_rows(z) -> tuple[np.ndarray, np.ndarray]:
    """(X, finite): float32 rows of `z` scaled to unit length, and the (N,) mask of rows with no NaN/inf.
    Non-finite rows are zero in X; all-zero rows stay zero."""
    if hasattr(z, "detach"):  # torch tensor (bf16 included)
        z = z.detach().float().cpu().numpy()
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[0] < 1 or z.dtype.kind not in "fiu":
        raise ValueError(f"z: needs a numeric N×d array, got shape {z.shape} dtype {z.dtype}")
    finite = np.isfinite(z).all(axis=1)
    x = np.where(finite[:, None], z, 0).astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-8), finite


def project(
    z, method: str = "pca", seed: int | None = 0, init=None, progress: Progress | None = None, **params
) -> np.ndarray:
    """N×2 float32 layout of the rows of `z` (any float dtype; NaN rows for non-finite input rows).

    init: an N×2 layout of the same rows (e.g. the previous step's); t-SNE/UMAP start from it and every
    method's result is rotated/reflected onto it. params go to the library (perplexity, n_neighbors, ...).
    """
    if method not in METHODS:
        raise ValueError(f"method: one of {METHODS}, got {method!r}")
    x, finite = unit_rows(z)
    n = x.shape[0]
    init_rows = None
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (n, 2):
            raise ValueError(f"init: needs shape ({n}, 2) to match z, got {init.shape}")
        init_rows = _fill_missing(init[finite], seed)
    report = progress or (lambda fraction, message: None)
    out = np.full((n, 2), np.nan, dtype=np.float32)
    k = int(finite.sum())
    if k == 0:
        report(1.0, "no finite rows")
        return out
    if k < 4:  # too few points for any neighbourhood method: a PCA of what there is
        method = "pca"
    if method == "unit_pca":
        y = unit_pca_2d(x[finite])
        if init_rows is not None:  # rotate/reflect about the origin only: no shift, no scale
            y = rotate_onto(init_rows, y)
        out[finite] = y
        report(1.0, "unit_pca: done")
        return out
    if method == "pca":
        y = pca_2d(x[finite])
    elif method == "tsne":
        y = _tsne(x[finite], seed, init_rows, report, params)
    else:
        y = _umap(x[finite], seed, init_rows, report, params)
    if init_rows is not None:
        # t-SNE keeps the init's scale, so a shrinking cloud stays visible; umap-learn rescales its init into
        # a [0, 10] box first, so its scale is undone here too.
        y = align_to(init_rows, y, scale=method == "umap")
    out[finite] = y
    report(1.0, f"{method}: done")
    return out


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of the rows of x (centred inside), exact, signs fixed."""
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    n, d = xc.shape
    if d <= n:
        evals, evecs = np.linalg.eigh(xc.T @ xc)  # covariance (unscaled): d×d
        axes = evecs[:, ::-1][:, :2]
    else:
        axes = np.linalg.svd(xc, full_matrices=False)[2][:2].T
    if axes.shape[1] < 2:  # d == 1
        axes = np.hstack([axes, np.zeros((d, 2 - axes.shape[1]))])
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    return (xc @ (axes * np.where(signs == 0, 1, signs))).astype(np.float32)  # y: N×2


def unit_pca_2d(x: np.ndarray) -> np.ndarray:
    """True scale: the unit rows projected, without centring or rescaling, onto the top two eigenvectors of
    their second moment XᵀX. Each coordinate is a cosine with one axis, so every point lies in the unit disc
    and plots on fixed axes [-1, 1]: points spread over the sphere fill the disc, a collapsed snapshot is a
    dot near its rim (its shared direction), a dimensional collapse a line. Signs fixed as in pca_2d."""
    x64 = x.astype(np.float64)
    n, d = x64.shape
    evals, evecs = np.linalg.eigh(x64.T @ x64)  # second moment: d×d
    axes = evecs[:, ::-1][:, :2]
    if axes.shape[1] < 2:  # d == 1
        axes = np.hstack([axes, np.zeros((d, 2 - axes.shape[1]))])
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    return (x64 @ (axes * np.where(signs == 0, 1, signs))).astype(np.float32)  # y: N×2, |y_i| ≤ 1


def rotate_onto(reference, layout) -> np.ndarray:
    """`layout` rotated/reflected about the origin onto `reference` (orthogonal Procrustes, no translation or
    scale), so a true-scale view keeps its scale and stays put between steps."""
    ref, lay = np.asarray(reference, dtype=np.float64), np.asarray(layout, dtype=np.float64)
    both = np.isfinite(ref).all(axis=1) & np.isfinite(lay).all(axis=1)
    if both.sum() < 2:
        return lay.astype(np.float32)
    u, _, vt = np.linalg.svd(lay[both].T @ ref[both])  # 2×2
    return (lay @ (u @ vt)).astype(np.float32)


def spread_caption(z) -> dict:
    """The snapshot's spread for a layout's caption: std_ratio (normalised std × √d: 1 spread over the
    sphere, 0 one point) and mean_cos (mean pairwise cosine), over the finite rows; NaN with < 2 of them.
    O(N·d), no N×N matrix."""
    x, finite = unit_rows(z)
    x = x[finite].astype(np.float64)
    n, d = x.shape
    if n < 2 or d == 0:
        return {"std_ratio": float("nan"), "mean_cos": float("nan"), "finite_rows": int(n)}
    norms = np.linalg.norm(x, axis=1)
    total = x.sum(axis=0)
    return {
        "std_ratio": float(x.std(axis=0).mean() * np.sqrt(d)),
        "mean_cos": float((total @ total - (norms**2).sum()) / (n * (n - 1))),  # Σ_{i≠j} x̂_i·x̂_j
        "finite_rows": int(n),
    }


def caption_text(numbers: dict) -> str:
    """ "std 0.07× of 1/√d · mean cosine 1.00" (plain text; the page shows it as text)."""
    return (
        f"spread: normalised std {numbers['std_ratio']:.2f}× the healthy 1/√d · mean cosine "
        f"{numbers['mean_cos']:.2f} (collapse: std → 0, cosine → 1)"
    )


def align_to(reference, layout, scale: bool = True) -> np.ndarray:
    """`layout` moved onto `reference` (same rows) by translation, rotation/reflection and — when `scale` —
    one global scale: the orthogonal Procrustes solution, fitted on the rows finite in both."""
    ref = np.asarray(reference, dtype=np.float64)
    lay = np.asarray(layout, dtype=np.float64)
    if ref.ndim != 2 or lay.shape != ref.shape:
        raise ValueError(f"layout: shape {lay.shape} differs from reference {ref.shape}")
    both = np.isfinite(ref).all(axis=1) & np.isfinite(lay).all(axis=1)
    if both.sum() < 2:
        return np.asarray(layout, dtype=np.float32).copy()
    mu_ref, mu_lay = ref[both].mean(axis=0), lay[both].mean(axis=0)
    a, b = ref[both] - mu_ref, lay[both] - mu_lay
    u, s, vt = np.linalg.svd(b.T @ a)  # cross-covariance: 2×2
    rotation = u @ vt  # minimises ||b R − a||
    s_factor = s.sum() / max((b * b).sum(), 1e-300) if scale else 1.0
    return ((lay - mu_lay) @ rotation * s_factor + mu_ref).astype(np.float32)


def project_steps(
    zs: list, method: str = "pca", seed: int | None = 0, progress: Progress | None = None, **params
) -> list[np.ndarray]:
    """Layouts of the same rows at successive steps, each started from / aligned to the one before."""
    layouts: list[np.ndarray] = []
    report = progress or (lambda fraction, message: None)
    for i, z in enumerate(zs):

        def step_progress(fraction, message, i=i):
            report((i + fraction) / len(zs), f"step {i + 1}/{len(zs)}: {message}")

        prev = layouts[-1] if layouts and layouts[-1].shape[0] == np.shape(z)[0] else None
        layouts.append(project(z, method, seed, init=prev, progress=step_progress, **params))
    return layouts


# -- the libraries ------------------------------------------------------------------------------------


def _fill_missing(init: np.ndarray, seed) -> np.ndarray:
    """Rows of an init layout that are NaN (non-finite at the previous step) start near its centre."""
    bad = ~np.isfinite(init).all(axis=1)
    if bad.any():
        init = init.copy()
        good = init[~bad]
        centre = good.mean(axis=0) if len(good) else np.zeros(2)
        spread = good.std() if len(good) > 1 else 1.0
        rng = np.random.default_rng(0 if seed is None else seed)
        init[bad] = centre + 0.01 * spread * rng.standard_normal((int(bad.sum()), 2))
    return init


def _tsne(x: np.ndarray, seed, init, report: Progress, params: dict) -> np.ndarray:
    from openTSNE import TSNE

    opts = {**TSNE_DEFAULTS, **params}
    n = x.shape[0]
    opts["perplexity"] = min(float(opts["perplexity"]), max(1.0, (n - 1) / 3))  # openTSNE needs 3·perp < N
    early, late = int(opts.pop("early_exaggeration_iter", 250)), int(opts.pop("n_iter", 500))
    total = early + late
    done = [0]

    def callback(iteration, error, embedding):
        done[0] += 50
        report(0.1 + 0.9 * min(done[0], total) / total, f"t-SNE: iteration {min(done[0], total)}/{total}")
        return False

    if init is not None:
        centred = init - init.mean(axis=0)
        initialization = centred * (TSNE_INIT_STD / max(centred[:, 0].std(), 1e-300))
    else:
        initialization = "pca"
    report(0.0, "t-SNE: nearest neighbours and affinities")
    tsne = TSNE(
        n_components=2,
        early_exaggeration_iter=early,
        n_iter=late,
        initialization=initialization,
        random_state=seed,
        callbacks=callback,
        callbacks_every_iters=50,
        **opts,
    )
    return np.asarray(tsne.fit(x), dtype=np.float32)


WARM_START_LEARNING_RATE = 0.1


def _umap(x: np.ndarray, seed, init, report: Progress, params: dict) -> np.ndarray:
    import warnings

    import umap
    from umap.umap_ import nearest_neighbors

    opts = {**UMAP_DEFAULTS, **params}
    if init is not None and "learning_rate" not in params:
        # Started from the previous step's layout, the full default step size (1.0) re-scatters it; a small
        # one refines it, so playing through training shows movement, not a new layout.
        opts["learning_rate"] = WARM_START_LEARNING_RATE
    n = x.shape[0]
    opts["n_neighbors"] = int(min(opts["n_neighbors"], n - 1))
    n_jobs = 1 if seed is not None else -1
    random_state = None if seed is None else np.random.RandomState(seed)
    report(0.0, "UMAP: nearest-neighbour graph")
    knn = None
    if n >= 4096 or opts.get("force_approximation_algorithm"):  # below that umap-learn uses exact distances
        knn = nearest_neighbors(
            x,
            opts["n_neighbors"],
            opts["metric"],
            opts.get("metric_kwds") or {},
            False,
            random_state,
            low_memory=True,
            n_jobs=n_jobs,
        )
        report(0.3, "UMAP: layout optimisation (no per-epoch progress)")
    reducer = umap.UMAP(
        n_components=2,
        random_state=seed,
        n_jobs=n_jobs,
        init=init.astype(np.float32) if init is not None else "spectral",
        precomputed_knn=knn if knn is not None else (None, None, None),
        **opts,
    )
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": that is the choice made
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)
