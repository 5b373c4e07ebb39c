"""dashboard/downsample.py: what Live draws of a long run keeps every bucket's extremes, as whole rows."""

import numpy as np
import pandas as pd

from dashboard.downsample import rows_to_draw


def test_a_short_frame_is_drawn_whole():
    df = pd.DataFrame({"step": np.arange(100), "loss": np.ones(100)})
    assert rows_to_draw(df, buckets=25) is df


def test_every_bucket_keeps_each_metrics_min_and_max_as_whole_rows():
    rng = np.random.default_rng(0)
    n, buckets = 1_000_003, 600  # a short last bucket
    df = pd.DataFrame(
        {"step": np.arange(n), "loss": rng.standard_normal(n), "lr": rng.random(n), "temperature": np.full(n, np.nan)}
    )
    df.loc[123_457, "loss"] = 1e9  # one spike and one dip must survive
    df.loc[777_777, "lr"] = -5.0
    df.loc[500, "temperature"] = 0.1  # a metric logged once
    df.loc[9, "loss"] = np.inf  # non-finite values are not "the largest"
    out = rows_to_draw(df, buckets)
    assert len(out) <= 2 * 3 * buckets + 2  # min and max per metric per bucket, first and last row
    assert {123_457, 777_777, 500, 0, n - 1} <= set(out["step"])
    assert (out["step"].diff().dropna() > 0).all()  # in order
    size = -(-n // buckets)
    bucket = df["step"] // size
    for column in ("loss", "lr"):
        finite = df[column].where(np.isfinite(df[column]))
        want_hi, want_lo = finite.groupby(bucket).max(), finite.groupby(bucket).min()
        got = out[column].where(np.isfinite(out[column])).groupby(out["step"] // size)
        assert np.array_equal(got.max().to_numpy(), want_hi.to_numpy())
        assert np.array_equal(got.min().to_numpy(), want_lo.to_numpy())
    pd.testing.assert_frame_equal(out, df.loc[out.index])  # rows are the frame's own rows, untouched
