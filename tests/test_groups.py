"""diagnostics.measure.groups: the worker's per-group breakdowns stored in a record equal geometry.breakdown (exact
groups), and a sampled group's uniformity lies within a few of its stated standard errors of the exact one."""

import os

import numpy as np
import pandas as pd
import pytest

from diagnostics import open_run
from diagnostics.measure import groups
from diagnostics.reference import geometry
from diagnostics.store import record
from runformat.writer import RunWriter


def write(root, n=240, d=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    z = (rng.standard_normal((4, d))[labels] * 1.2 + rng.standard_normal((n, d))).astype(np.float32)
    y = (z + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    meta = {
        "split": np.where(np.arange(n) % 3 == 0, "val", "train"),
        "score": rng.random(n),
        "source": np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n) % 2).astype(np.float64),
    }
    with RunWriter(str(root), "g", config={"contrastive": {"temperature": 0.2}}) as w:
        w.log_snapshot(0, embeddings=z, positives=y, labels=labels, metadata=meta)
    run = open_run(os.path.join(str(root), "g"))
    snap = run.snapshot(0)  # as stored (the writer keeps float16)
    return run, snap.embeddings, snap.positives, labels, meta


def test_breakdowns_in_the_record_equal_geometry_breakdown(tmp_path):
    run, z, y, labels, meta = write(tmp_path)
    record.compute(run, 0)
    rec = record.load(open_run(run.path), 0)  # read back from disk
    assert set(rec.group_tables()) == {"label", "split", "source"}  # "score" has 240 distinct values
    for column, groups_of in (("label", labels), ("split", meta["split"]), ("source", meta["source"])):
        got, want = rec.breakdown(column), geometry.breakdown(z, y, groups_of)
        assert len(got) == len(want) and not got["estimated"].any()
        assert list(got["n"]) == list(want["n"])
        same = [g == w or (pd.isna(g) and pd.isna(w)) for g, w in zip(got["group"], want["group"])]
        assert all(same), column
        for col in ("share", "alignment", "uniformity", "uniformity_to_all", "uniformity_contribution"):
            # float32 tile sums in a different order: ~1e-7 relative per sum
            np.testing.assert_allclose(got[col], want[col], rtol=2e-6, atol=2e-6, err_msg=f"{column}.{col}")
    assert rec.breakdown("score") is None


def test_a_group_above_the_exact_size_is_sampled_with_a_standard_error(tmp_path, monkeypatch):
    run, z, y, labels, _ = write(tmp_path, n=1200, d=8)
    monkeypatch.setattr(groups, "EXACT_GROUP", 150)  # groups of 300: 75 anchors × 300 rows each
    rec = record.compute(run, 0)
    got, want = rec.breakdown("label"), geometry.breakdown(z, y, labels)
    assert got["estimated"].all()
    se = got["uniformity_se"].to_numpy()
    assert (se > 0).all() and (se < 0.05).all()
    assert (np.abs(got["uniformity"] - want["uniformity"]) < 4.5 * se).all()  # fails ~1 in 10^5 per group
    np.testing.assert_allclose(got["uniformity_to_all"], want["uniformity_to_all"], rtol=2e-6)


def test_a_tampered_groups_file_is_refused(tmp_path):
    run, *_ = write(tmp_path)
    rec = record.compute(run, 0)
    path = os.path.join(rec.folder, record.GROUPS_FILE)
    with open(path, "r+b") as f:
        f.write(b" ")
    with pytest.raises(Exception, match="groups.json"):
        record.load(open_run(run.path), 0).group_tables()
