"""diagnostics.measure.projection: shapes, NaN rows, determinism, closed-form PCA/Procrustes, neighbourhood quality,
and that steps played in a row stay in one frame. t-SNE/UMAP cases are small (N ≤ 300); the UMAP ones share
one process-wide numba warm-up through the `umap_ready` fixture."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from sklearn.manifold import trustworthiness

from diagnostics.measure.projection import (
    align_to,
    caption_text,
    pca_2d,
    project,
    project_steps,
    spread_caption,
    unit_pca_2d,
    unit_rows,
)


def clusters(n=200, d=32, k=4, seed=0, spread=0.15):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    labels = np.arange(n) % k
    return (centres[labels] + spread * rng.standard_normal((n, d))).astype(np.float32), labels


def random_rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# -- PCA and inputs ---------------------------------------------------------------------------------


def test_pca_shape_dtype_and_nan_rows_for_any_input_dtype():
    z, _ = clusters(n=100)
    z[[3, 50]] = np.nan
    z[7, 0] = np.inf
    for x in (z, z.astype(np.float16), torch.from_numpy(z).to(torch.bfloat16)):
        y = project(x, "pca")
        assert y.shape == (100, 2) and y.dtype == np.float32
        assert np.isnan(y[[3, 7, 50]]).all()
        assert np.isfinite(np.delete(y, [3, 7, 50], axis=0)).all()


def test_all_rows_nonfinite_gives_all_nan():
    y = project(np.full((5, 4), np.nan, dtype=np.float32), "tsne")
    assert y.shape == (5, 2) and np.isnan(y).all()


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="method"):
        project(np.ones((10, 3)), "mds")
    with pytest.raises(ValueError, match="^z"):
        project(np.ones(10), "pca")
    with pytest.raises(ValueError, match="init"):
        project(np.ones((10, 3)), "pca", init=np.zeros((9, 2)))


def test_pca_of_points_on_a_plane_through_the_origin_is_that_plane():
    # Rows in a 2-D subspace of R^3 stay in it after L2-normalising (a great circle), so the PCA layout
    # is an isometry of the normalised points: every pairwise distance is kept.
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((3, 2)))[0]  # 3×2, orthonormal
    z = rng.standard_normal((60, 2)) @ basis.T
    y = project(z, "pca")
    x, _ = unit_rows(z)
    np.testing.assert_allclose(pdist(y), pdist(x), atol=1e-5)


def test_pca_2d_recovers_an_affine_plane_and_its_variance_order():
    rng = np.random.default_rng(2)
    u = rng.standard_normal((80, 2)) * [3.0, 1.0]  # the first axis has the larger variance
    basis = np.linalg.qr(rng.standard_normal((3, 2)))[0]
    x = u @ basis.T + [5.0, -1.0, 2.0]
    y = pca_2d(x)
    np.testing.assert_allclose(pdist(y), pdist(u), atol=1e-4)
    assert y[:, 0].var() > y[:, 1].var()
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)


def test_procrustes_undoes_rotation_reflection_scale_and_shift_exactly():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((50, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = 2.5 * (ref @ rot) * [1, -1] + [4.0, -3.0]  # rotated, reflected, scaled, shifted
    np.testing.assert_allclose(align_to(ref, moved), ref, atol=1e-5)
    unscaled = align_to(ref, moved, scale=False)  # rigid only: the size is kept
    np.testing.assert_allclose(unscaled.std(axis=0).sum(), 2.5 * ref.std(axis=0).sum(), rtol=1e-5)
    np.testing.assert_allclose(pdist(unscaled), 2.5 * pdist(ref), atol=1e-4)


def test_procrustes_ignores_nan_rows_and_keeps_them_nan():
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((30, 2))
    moved = -ref
    moved[5] = np.nan
    out = align_to(ref, moved)
    assert np.isnan(out[5]).all()
    np.testing.assert_allclose(np.delete(out, 5, axis=0), np.delete(ref, 5, axis=0), atol=1e-5)


def test_pca_steps_are_aligned_where_independent_layouts_flip():
    # Negating every row leaves the geometry as it was; independent PCA layouts come out point-mirrored
    # (the sign convention follows the loadings), aligned steps do not move at all.
    z, _ = clusters(n=120)
    plain = [project(z, "pca"), project(-z, "pca")]
    aligned = project_steps([z, -z], "pca")
    spread = np.linalg.norm(plain[0], axis=1).mean()
    np.testing.assert_allclose(plain[1], -plain[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(plain[1] - plain[0], axis=1).mean(), 2 * spread, rtol=1e-5)
    np.testing.assert_allclose(aligned[1], aligned[0], atol=1e-5)


def test_project_steps_reports_progress_across_steps():
    z, _ = clusters(n=50)
    seen = []
    project_steps([z, z, z], "pca", progress=lambda f, m: seen.append((f, m)))
    assert seen[-1][0] == pytest.approx(1.0) and "step 3/3" in seen[-1][1]
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


# -- t-SNE --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tsne_is_deterministic_keeps_neighbourhoods_and_nan_rows():
    z, _ = clusters(n=150)
    z[10] = np.nan
    seen = []
    y1 = project(z, "tsne", seed=0, progress=lambda f, m: seen.append(f))
    y2 = project(z, "tsne", seed=0)
    np.testing.assert_array_equal(y1, y2)
    assert y1.shape == (150, 2) and y1.dtype == np.float32 and np.isnan(y1[10]).all()
    ok = np.isfinite(y1).all(axis=1)
    x, _ = unit_rows(z[ok])
    assert trustworthiness(x, y1[ok], n_neighbors=10) >= 0.9
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) >= 10  # iteration callbacks reached us


@pytest.mark.slow
def test_tsne_started_from_the_previous_layout_stays_in_its_frame():
    z, _ = clusters(n=150, seed=5)
    rng = np.random.default_rng(6)
    z2 = (z @ random_rotation(z.shape[1], 7)) + 0.01 * rng.standard_normal(z.shape).astype(np.float32)
    walk = project_steps([z, z2], "tsne", seed=0)
    fresh = project(z2, "tsne", seed=1)
    moved = np.linalg.norm(walk[1] - walk[0], axis=1).mean()
    jumped = np.linalg.norm(fresh - walk[0], axis=1).mean()
    assert moved < 0.5 * jumped


# -- UMAP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def umap_ready():
    from diagnostics.measure import warmup

    warmup.start_umap_warmup()
    assert warmup.wait_for_umap_warmup(timeout=600), warmup.umap_warmup_status()
    assert warmup.umap_warmup_status().startswith("UMAP ready")


@pytest.mark.slow
def test_umap_is_deterministic_keeps_neighbourhoods_and_reports_stages(umap_ready):
    z, _ = clusters(n=300)
    z[0] = np.nan
    seen = []
    kw = dict(seed=0, n_epochs=100, force_approximation_algorithm=True)  # the path the warm-up compiled
    y1 = project(z, "umap", progress=lambda f, m: seen.append(m), **kw)
    y2 = project(z, "umap", **kw)
    np.testing.assert_array_equal(y1, y2)
    assert np.isnan(y1[0]).all() and np.isfinite(y1[1:]).all()
    x, _ = unit_rows(z[1:])
    assert trustworthiness(x, y1[1:], n_neighbors=10) >= 0.9
    assert any("neighbour" in m for m in seen) and any("layout" in m for m in seen)
    walk = project_steps([z, z], "umap", **kw)  # an init array is accepted and the frame kept
    fresh = project(z, "umap", **{**kw, "seed": 1})
    moved = np.nanmean(np.linalg.norm(walk[1] - walk[0], axis=1))
    jumped = np.nanmean(np.linalg.norm(fresh - walk[0], axis=1))
    assert moved < 0.5 * jumped


# -- the true-scale view and the caption numbers -------------------------------------------------------


def test_unit_pca_keeps_the_scale_so_collapse_looks_collapsed():
    healthy, _ = clusters(n=300, d=32, spread=1.0)
    rng = np.random.default_rng(1)
    collapsed = (np.ones(32) + 0.02 * rng.standard_normal((300, 32))).astype(np.float32)  # std ≈ 0.02×
    for z in (healthy, collapsed):
        y = project(z, "unit_pca")
        assert y.shape == (300, 2) and np.all(np.linalg.norm(y, axis=1) <= 1 + 1e-6)  # cosines: the unit disc
    h, c = project(healthy, "unit_pca"), project(collapsed, "unit_pca")
    assert h.std(axis=0).sum() > 0.2  # fills the disc
    assert c.std(axis=0).sum() < 0.01  # a dot ...
    assert np.linalg.norm(c.mean(axis=0)) > 0.99  # ... at the rim: the shared direction
    # PCA rescales nothing either, but centres: the collapsed cloud is a smudge at the origin whose shape
    # is the noise; unit_pca alone shows where it sits
    assert np.linalg.norm(pca_2d(unit_rows(collapsed)[0]).mean(axis=0)) < 1e-6


def test_unit_pca_closed_form_and_steps_rotate_without_scaling():
    x = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=np.float32)
    y = unit_pca_2d(x)  # second moment diag(2, 1, 1): axis 1 is e1; coordinates are the cosines with it
    assert np.allclose(np.abs(y[:, 0]), [1, 0, 1, 0], atol=1e-7)
    z, _ = clusters(n=100, d=8, spread=1.0)
    first, second = project_steps([z, z @ random_rotation(8, 3).astype(np.float32)], "unit_pca")
    assert np.allclose(np.linalg.norm(first, axis=1), np.linalg.norm(second, axis=1), atol=1e-5)


def test_spread_caption_closed_forms():
    eye = spread_caption(np.eye(4))  # per-dimension std √(1/4 − 1/16) = √3/4, × √4; orthogonal rows
    assert eye["std_ratio"] == pytest.approx(np.sqrt(3) / 2, rel=1e-12) and eye["mean_cos"] == pytest.approx(
        0, abs=1e-15
    )
    one = spread_caption(np.tile([3.0, 4.0], (5, 1)))  # unit rows are float32 (0.6, 0.8): |x̂|² off by ~2 ulp
    assert one["std_ratio"] == pytest.approx(0, abs=1e-12) and one["mean_cos"] == pytest.approx(1, rel=2**-22)
    z = np.array([[1.0, 0], [0, 2.0], [np.nan, 1]])
    assert spread_caption(z)["finite_rows"] == 2 and spread_caption(z)["mean_cos"] == pytest.approx(0, abs=1e-15)
    assert np.isnan(spread_caption(np.ones((1, 3)))["std_ratio"])
    assert "0.87×" in caption_text(eye) and "mean cosine 0.00" in caption_text(eye)
