"""Cross-modal numbers in closed form, the paired_embeddings field through writer and reader, and the summary."""

import math

import numpy as np
import pytest
import torch

from diagnostics.measure.crossmodal import crossmodal_numbers, partner_ranks
from diagnostics.reference.reference_summary import snapshot_summary
from runformat.reader import RunFormatError, open_run
from runformat.writer import RunWriter


def gaussian(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_identical_modalities_recall_one_gap_zero():
    x = gaussian(300, 16)
    out = crossmodal_numbers(x, x.copy())
    for k in (1, 5, 10):
        assert out[f"cross_modal_recall@{k}"] == 1.0
    # each centroid is a mean of unit float32 rows: identical inputs give identical centroids
    assert out["modality_gap"] == 0.0
    assert out["uniformity_a"] == out["uniformity_b"] and out["effective_rank_a"] == out["effective_rank_b"]
    assert out["cross_modal_pairs"] == 300


@pytest.mark.parametrize("theta", [0.3, 0.9, 1.4])
def test_known_offset_gives_known_gap(theta):
    """x̂ = (cos θ, sin θ u), ŷ = (−cos θ, sin θ u) with the u's in ± pairs (mean 0): the centroids are
    ±cos θ e₁, so the gap is exactly 2 cos θ; the offset along e₁ is shared by every row, so each row's
    partner is still its nearest candidate (recall 1)."""
    u = gaussian(100, 7, seed=1)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    u = np.concatenate([u, -u])  # mean exactly 0
    c, s = math.cos(theta), math.sin(theta)
    x = np.hstack([np.full((200, 1), c), s * u]).astype(np.float64)
    y = np.hstack([np.full((200, 1), -c), s * u]).astype(np.float64)
    out = crossmodal_numbers(x, y)
    # float32 normalisation and a mean of 200 rows: error a few ulps of 1
    assert out["modality_gap"] == pytest.approx(2 * c, abs=1e-6)
    assert out["cross_modal_recall@1"] == 1.0


def test_shuffled_partners_recall_is_fixed_point_share():
    """y_i = x_π(i): x_i's best candidate is y_j with π(j) = i (score 1), so a hit needs π(i) = i; recall@1 is
    the share of fixed points in both directions."""
    x = gaussian(200, 32, seed=2)
    perm = np.arange(200)
    rng = np.random.default_rng(3)
    moved = rng.choice(200, size=80, replace=False)
    perm[moved] = np.roll(moved, 1)  # a cycle through 80 rows: 120 fixed points
    out = crossmodal_numbers(x, x[perm])
    assert out["cross_modal_recall@1_a_to_b"] == 0.6 and out["cross_modal_recall@1_b_to_a"] == 0.6
    assert out["cross_modal_recall@1"] == 0.6


def test_tiles_match_one_block_and_ties_do_not_count():
    x = torch.nn.functional.normalize(torch.from_numpy(gaussian(97, 8, seed=4)), dim=1)
    y = torch.nn.functional.normalize(torch.from_numpy(gaussian(97, 8, seed=5)), dim=1)
    for tiled, whole in zip(partner_ranks(x, y, rows=7, cols=10), partner_ranks(x, y, rows=97, cols=97)):
        np.testing.assert_array_equal(tiled, whole)
    # brute force on the full matrix: a→b over rows, b→a over columns
    s = (x @ y.T).numpy()
    d = np.diag(s)
    a_to_b, b_to_a = partner_ranks(x, y, rows=7, cols=10)
    np.testing.assert_array_equal(a_to_b, (s > d[:, None] + 1e-5).sum(axis=1))
    np.testing.assert_array_equal(b_to_a, (s > d[None, :] + 1e-5).sum(axis=0))
    dup = y.clone()
    dup[1] = dup[0]  # two identical captions of different images
    a_to_b, b_to_a = partner_ranks(x, dup, rows=5)
    assert a_to_b[0] == (s[0] > s[0, 0] + 1e-5).sum() - (s[0, 1] > s[0, 0] + 1e-5) + (s[0, 0] > s[0, 0] + 1e-5)
    a_to_b, b_to_a = partner_ranks(dup, dup, rows=5)  # identical rows tie with the partner
    assert a_to_b[0] == a_to_b[1] == b_to_a[0] == b_to_a[1] == 0


def test_nonfinite_rows_dropped_and_shapes_checked():
    x = gaussian(50, 4)
    y = x.copy()
    y[3] = np.nan
    out = crossmodal_numbers(x, y)
    assert out["cross_modal_pairs"] == 49 and out["cross_modal_recall@1"] == 1.0
    with pytest.raises(ValueError, match="z_b"):
        crossmodal_numbers(x, x[:, :3])
    one = crossmodal_numbers(x[:1], x[:1])  # no pair to retrieve among: nan, not an error
    assert one["cross_modal_pairs"] == 1 and math.isnan(one["modality_gap"]) and math.isnan(one["cross_modal_recall@1"])


def test_paired_field_round_trip_and_summary(tmp_path):
    x = gaussian(40, 6)
    y = x + 0.01 * gaussian(40, 6, seed=9)
    with RunWriter(str(tmp_path), "pair", {"contrastive": {"temperature": 0.1}}) as w:
        w.log_snapshot(1, x, labels=np.arange(40) % 4)  # version-1 snapshot, no pair
        w.log_snapshot(2, x, paired_embeddings=torch.from_numpy(y).bfloat16(), modality_names=("image", "caption"))
        with pytest.raises(ValueError, match="paired_embeddings"):
            w.log_snapshot(3, x, paired_embeddings=y[:, :5])
        with pytest.raises(ValueError, match="modality_names"):
            w.log_snapshot(3, x, paired_embeddings=y, modality_names=("image",))
        with pytest.raises(ValueError, match="paired_embeddings"):
            w.log_snapshot(3, x, paired_embeddings=np.ones((40, 6), dtype=np.int64))
    run = open_run(str(tmp_path / "pair"))
    old, new = run.snapshot(1), run.snapshot(2)
    assert old.paired_embeddings is None and old.modality_names == ("embeddings", "paired")
    assert new.modality_names == ("image", "caption")
    assert new.paired_embeddings.shape == (40, 6) and new.paired_embeddings.dtype == np.float16
    np.testing.assert_allclose(new.paired_embeddings, torch.from_numpy(y).bfloat16().float().numpy(), rtol=1e-3)
    assert run.snapshot(2, fields=("labels",)).paired_embeddings is None  # fields= can leave it out
    s = snapshot_summary(new)
    assert s["cross_modal_recall@1"] == 1.0 and 0 < s["modality_gap"] < 0.05
    assert "modality_gap" not in snapshot_summary(old)
    # a reader refuses a paired field whose shape differs from embeddings
    folder = tmp_path / "pair" / "snapshots" / "0000000002"
    np.save(folder / "paired_embeddings.npy", np.zeros((40, 5), dtype=np.float16))
    import json

    side = tmp_path / "pair" / "snapshots" / "0000000002.json"
    info = json.loads(side.read_text())
    info["fields"]["paired_embeddings"]["shape"] = [40, 5]
    side.write_text(json.dumps(info))
    with pytest.raises(RunFormatError, match="paired_embeddings shape"):
        run.snapshot(2)


def test_joint_projection_figure_links_selected_pairs_and_escapes():
    from diagnostics.draw.crossmodal_figures import joint_projection, joint_projection_figure, sample_grid_figure

    x = 0.2 * gaussian(30, 5)
    e1 = np.eye(5, dtype=np.float32)[0]
    xy_a, xy_b = joint_projection(x + 2 * e1, x - 2 * e1)  # two tight cones at ±e₁: the gap is PCA's axis 1
    assert xy_a.shape == xy_b.shape == (30, 2)
    assert np.sign(xy_a[:, 0]).std() == 0 and (np.sign(xy_a[:, 0]) != np.sign(xy_b[:, 0])).all()
    fig = joint_projection_figure(xy_a, xy_b, ("<b>img</b>", "cap"), hover_a=["<i>x</i>"] * 30, selected=[2, 5])
    assert [t.name for t in fig.data] == ["&lt;b&gt;img&lt;/b&gt;", "cap", "matched pairs"]
    assert fig.data[0].text[0] == "&lt;i&gt;x&lt;/i&gt;"
    lines = fig.data[2]
    assert lines.x[0] == xy_a[2, 0] and lines.x[1] == xy_b[2, 0] and np.isnan(lines.x[2]) and len(lines.x) == 6
    grid = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    heat = sample_grid_figure(grid, "<run>").data[0].z
    assert np.asarray(heat).shape == (2 * 5 - 1, 3 * 5 - 1) and np.asarray(heat)[5, 5] == grid[1, 1, 0, 0]
    with pytest.raises(ValueError, match="grid"):
        sample_grid_figure(grid.astype(np.float32))


def test_the_generated_grid_goes_through_the_writer_and_reads_back(tmp_path):
    """generated.npy is written by RunWriter.log_generated (the writer thread, atomically) and read by
    Run.generated_samples; the caption grid's layout is one list (runformat.caption_words)."""
    from runformat import caption_words

    rows, cols = caption_words.grid_shape()
    grid = np.arange(rows * cols * 4, dtype=np.uint8).reshape(rows, cols, 2, 2)
    with RunWriter(str(tmp_path), "gen", config={}) as w:
        with pytest.raises(ValueError, match="grid: needs a uint8"):
            w.log_generated(grid.astype(np.float32))
        w.log_generated(grid)
        grid[:] = 0  # the writer copied it
    got = open_run(str(tmp_path / "gen")).generated_samples()
    np.testing.assert_array_equal(got, np.arange(rows * cols * 4, dtype=np.uint8).reshape(rows, cols, 2, 2))
    row_labels, col_labels = caption_words.grid_labels()
    assert len(row_labels) == rows and len(col_labels) == cols and len(caption_words.grid_captions()) == rows * cols
    assert caption_words.grid_captions()[cols] == "a thin left-slanted one" and col_labels[1] == "thin upright"
