"""diagnostics.draw.final_values: Compare's run table, one row per run, one column per metric."""

import math

import pandas as pd
import pytest

from diagnostics.draw import final_values


def frame(steps, **cols):
    return pd.DataFrame({"step": steps, "wall_time": [float(s) for s in steps], **cols})


FRAMES = {
    "b-run": frame(
        [0, 10, 20],
        **{"loss/contrastive": [3.0, 1.23456789, 2.0], "eval/psnr": [10.0, 30.0, 20.0], "lr": [1e-3, 5e-4, 1.23456e-4]},
    ),
    "a-run": frame([0, 5], **{"loss/contrastive": [4.0, 3.5]}),
}
SUMMARIES = {
    "b-run": {
        "alignment": 0.123456,
        "uniformity": -3.456789,
        "effective_rank": 12.3456,
        "knn_accuracy": 0.87654,
        "verdict": "dimensional_collapse",
    },
    "a-run": None,
}


def test_one_row_per_run_in_order_with_units_and_rounding():
    t = final_values.run_rows(
        FRAMES, ["loss/contrastive", "eval/psnr", "lr"], SUMMARIES, {"b-run": "finished", "a-run": "running"}
    )
    assert list(t["run"]) == ["b-run", "a-run"]  # the given order; the page sorts by any column
    assert list(t.columns) == [
        "run",
        "status",
        "last step",
        "loss/contrastive (nats)",
        "eval/psnr (dB)",
        "lr",
        "alignment (E‖x̂−x̂⁺‖²)",
        "uniformity (nats)",
        "effective rank (dims)",
        "kNN accuracy (fraction)",
        "verdict",
    ]
    b = t.set_index("run").loc["b-run"]
    assert b["last step"] == 20 and b["status"] == "finished" and b["verdict"] == "dimensional collapse"
    assert b["loss/contrastive (nats)"] == 2.0 and b["eval/psnr (dB)"] == 20.0  # the last values
    assert b["lr"] == 1.235e-4  # 4 significant digits, still a number
    assert b["alignment (E‖x̂−x̂⁺‖²)"] == 0.1235 and b["uniformity (nats)"] == -3.457
    assert b["kNN accuracy (fraction)"] == 0.8765
    a = t.set_index("run").loc["a-run"]
    assert a["loss/contrastive (nats)"] == 3.5 and math.isnan(a["eval/psnr (dB)"])  # never logged: NaN
    assert math.isnan(a["alignment (E‖x̂−x̂⁺‖²)"]) and a["verdict"] == ""
    assert t["loss/contrastive (nats)"].dtype.kind == "f"  # sortable as numbers


def test_best_follows_each_metrics_direction_and_falls_back_to_last():
    t = final_values.run_rows(FRAMES, ["loss/contrastive", "eval/psnr", "lr"], which="best").set_index("run")
    assert t.loc["b-run", "loss/contrastive (nats)"] == 1.235  # the minimum of a loss, rounded
    assert t.loc["b-run", "eval/psnr (dB)"] == 30.0  # the maximum of PSNR
    assert t.loc["b-run", "lr"] == 1.235e-4  # no "best" learning rate: the last one
    with pytest.raises(ValueError, match="which"):
        final_values.run_rows(FRAMES, ["lr"], which="median")


def test_snapshot_columns_no_run_has_are_left_out():
    t = final_values.run_rows(FRAMES, ["loss/contrastive"])
    assert [c for c in t.columns if c in final_values.SNAPSHOT_COLUMNS] == []
    assert final_values.rounded(float("inf")) == float("inf") and math.isnan(final_values.rounded(None))
    assert final_values.rounded(123456.7) == 123500.0 and final_values.rounded(-0.000123449) == -0.0001234
