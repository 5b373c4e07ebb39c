"""diagnostics.draw.compare: config diff, TensorBoard smoothing, final-metric table, the λ ablation."""

import math

import numpy as np
import pandas as pd
import pytest

from diagnostics.draw import compare
from diagnostics.draw.chart_style import run_colours


def frame(steps, **cols):
    return pd.DataFrame({"step": steps, "wall_time": [100.0 + 2 * s for s in steps], **cols})


def test_flatten_config_dotted_keys():
    assert compare.flatten_config({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
        "f": {},
    }
    with pytest.raises(ValueError, match="config"):
        compare.flatten_config([1, 2])


def test_config_diff_shows_only_differing_keys():
    diff = compare.config_diff(
        {
            "r1": {"contrastive": {"weight": 0.0, "temperature": 0.1}, "seed": 0, "model": {"dim": 64}},
            "r2": {"contrastive": {"weight": 1.0, "temperature": 0.1}, "seed": 0, "extra": True, "model": {"dim": 64}},
        }
    )
    assert list(diff.index) == ["contrastive.weight", "extra"]
    assert list(diff.columns) == ["r1", "r2"]
    assert diff.loc["contrastive.weight"].tolist() == ["0.0", "1.0"]
    assert diff.loc["extra"].tolist() == [compare.MISSING, "true"]
    assert compare.config_diff({"only": {"a": 1}}).empty


def test_ema_matches_tensorboard_closed_form():
    w = 0.6
    x = np.array([1.0, 3.0, 5.0])
    # debiased: s1 = x1; s2 = (w x1 + x2)/(1 + w); s3 = (w² x1 + w x2 + x3)/(1 + w + w²)
    expected = [1.0, (w * 1 + 3) / (1 + w), (w * w * 1 + w * 3 + 5) / (1 + w + w * w)]
    np.testing.assert_allclose(compare.ema(x, w), expected)
    np.testing.assert_allclose(compare.ema(np.full(50, 7.0), 0.99), 7.0)  # a constant stays put
    np.testing.assert_array_equal(compare.ema(x, 0.0), x)
    out = compare.ema([1.0, math.nan, 3.0], w)  # a gap passes through and does not count
    assert math.isnan(out[1]) and out[2] == pytest.approx((w * 1 + 3) / (1 + w))
    with pytest.raises(ValueError, match="weight"):
        compare.ema(x, 1.0)


def test_final_metrics_best_and_last_follow_direction():
    frames = {
        "a": frame(
            [0, 1, 2, 3],
            **{"loss/total": [3.0, 1.0, 2.0, math.nan], "eval/psnr": [10, 30, 20, 25], "lr": [1e-3, 1e-3, 5e-4, 1e-4]},
        )
    }
    t = compare.final_metrics(frames, ["loss/total", "eval/psnr", "lr", "absent"]).set_index("metric")
    assert t.loc["loss/total", ["last", "last_step", "best", "best_step"]].tolist() == [2.0, 2, 1.0, 1]
    assert t.loc["eval/psnr", ["last", "best", "best_step"]].tolist() == [25, 30, 1]
    assert math.isnan(t.loc["lr", "best"]) and t.loc["lr", "last"] == 1e-4  # no "best" learning rate
    assert "absent" not in t.index


def test_series_wall_time_is_relative_and_skips_unlogged_rows():
    df = frame([0, 1, 2], **{"eval/recon_mse": [0.5, math.nan, 0.25]})
    xs, ys = compare.series(df, "eval/recon_mse", "wall_time")
    assert xs.tolist() == [0.0, 4.0] and ys.tolist() == [0.5, 0.25]
    with pytest.raises(ValueError, match="x"):
        compare.series(df, "eval/recon_mse", "epoch")


def ablation_inputs(recon, knn):
    lambdas = [0.0, 0.5, 1.0]
    configs = {f"l{l}": {"contrastive": {"weight": l}} for l in lambdas}
    frames = {f"l{l}": frame([0, 10], **{"eval/recon_mse": [1.0, r]}) for l, r in zip(lambdas, recon)}
    return configs, frames, {f"l{l}": k for l, k in zip(lambdas, knn)}


def test_ablation_table_and_sentence_when_the_term_helps():
    table = compare.ablation_table(*ablation_inputs([0.2, 0.15, 0.1], [0.5, 0.7, 0.9]))
    assert table["lambda"].tolist() == [0.0, 0.5, 1.0]
    assert table["recon_mse"].tolist() == [0.2, 0.15, 0.1] and table.attrs["confounders"] == []
    sentence = compare.ablation_sentence(table)
    assert "Raising λ from 0 to 1 (-50%)" in sentence and "0.2 at λ = 0 and 0.1 at λ = 1" in sentence
    assert "50.0% → 90.0%" in sentence and "the contrastive term helps the generator." in sentence
    assert sentence.endswith("One seed per setting: seed-to-seed spread is unknown.")


def test_ablation_sentence_hurts_and_no_effect_and_not_enough_runs():
    hurts = compare.ablation_table(*ablation_inputs([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]))
    assert "hurts the generator." in compare.ablation_sentence(hurts)
    flat = compare.ablation_table(*ablation_inputs([0.1, 0.1, 0.1005], [0.5, 0.5, 0.5]))
    assert "barely changes the generator." in compare.ablation_sentence(flat)
    configs, frames, knn = ablation_inputs([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    one = compare.ablation_table({"l0.0": configs["l0.0"]}, frames, knn)
    assert compare.ablation_sentence(one).startswith("Cannot tell yet")


def test_seeds_are_grouped_as_mean_and_std():
    configs = {
        "a": {"contrastive": {"weight": 0}, "seed": 0},
        "b": {"contrastive": {"weight": 0}, "seed": 1},
        "c": {"contrastive": {"weight": 2}, "seed": 0},
        "d": {"contrastive": {"weight": 2}, "seed": 1},
        "nolambda": {},
    }
    frames = {n: frame([0], **{"eval/recon_mse": [v]}) for n, v in zip(configs, [0.1, 0.12, 0.05, 0.07, 9.0])}
    table = compare.ablation_table(configs, frames, {})
    assert table["run"].tolist() == ["a", "b", "c", "d", "nolambda"]  # no λ sorts last
    assert table.attrs["confounders"] == []  # seed alone differs: replicates; the λ-less run is left out
    sentence = compare.ablation_sentence(table)
    # mean ± sample std (ddof=1): (0.1, 0.12) -> 0.11 ± 0.01414; (0.05, 0.07) -> 0.06 ± 0.01414
    assert "0.11 ± 0.01414 (n=2 seeds) at λ = 0 and 0.06 ± 0.01414 (n=2 seeds) at λ = 2" in sentence
    assert "(-45%)" in sentence and "helps the generator" in sentence and "One seed" not in sentence
    noisy = dict(frames, c=frame([0], **{"eval/recon_mse": [0.25]}), d=frame([0], **{"eval/recon_mse": [0.05]}))
    assert "within the seed-to-seed spread" in compare.ablation_sentence(compare.ablation_table(configs, noisy, {}))


def test_runs_are_seeds_only_when_their_configs_are_equal_apart_from_seed_like_keys():
    """Issue #22: healthy τ = 0.1 + high τ = 1 at λ = 1 were averaged as "n=2 seeds"."""
    base = {"contrastive": {"weight": 1.0, "temperature": 0.1}, "seed": 0, "name": "a", "output_dir": "runs/a"}
    configs = {
        "tau0.1": base,
        "tau1": {**base, "contrastive": {"weight": 1.0, "temperature": 1.0}},
        "recon": {**base, "contrastive": {"weight": 0.0, "temperature": 0.1}},
    }
    frames = {n: frame([0], **{"eval/recon_mse": [v]}) for n, v in zip(configs, [0.030, 0.026, 0.028])}
    sentence = compare.ablation_sentence(compare.ablation_table(configs, frames, {}))
    assert "seeds" not in sentence.replace("not seeds", "") and sentence.startswith("Not a clean ablation")
    assert "0.03 (tau0.1), 0.026 (tau1): not seeds, they differ in contrastive.temperature" in sentence
    assert compare.seed_like("data.seed") and compare.seed_like("logging.runs_dir") and compare.seed_like("name")
    assert not compare.seed_like("contrastive.temperature")
    twin = {"s0": base, "s1": {**base, "seed": 1, "name": "b", "output_dir": "runs/b"}, "r": configs["recon"]}
    frames = {"s0": frames["tau0.1"], "s1": frame([0], **{"eval/recon_mse": [0.032]}), "r": frames["recon"]}
    assert "0.031 ± 0.001414 (n=2 seeds) at λ = 1" in compare.ablation_sentence(
        compare.ablation_table(twin, frames, {})
    )


def test_a_confounded_ablation_names_every_other_key_and_claims_nothing():
    configs = {
        "off": {
            "contrastive": {"weight": 0.0, "negatives_off_step": 250},
            "head": {"norm": "none"},
            "steps": 600,
            "seed": 0,
            "description": "x",
        },
        "on": {
            "contrastive": {"weight": 1.0, "negatives_off_step": -1},
            "head": {"norm": "batchnorm"},
            "steps": 400,
            "seed": 3,
            "description": "y",
        },
    }
    frames = {"off": frame([0], **{"eval/recon_mse": [0.2]}), "on": frame([0], **{"eval/recon_mse": [0.1]})}
    table = compare.ablation_table(configs, frames, {"off": 0.9, "on": 0.58})
    assert table.attrs["confounders"] == ["contrastive.negatives_off_step", "head.norm", "steps"]
    sentence = compare.ablation_sentence(table)
    assert sentence.startswith("Not a clean ablation") and "3 config keys" in sentence
    assert "contrastive.negatives_off_step, head.norm, steps" in sentence
    assert not any(w in sentence for w in ("helps", "hurts", "barely changes", "Raising"))
    assert "90.0% → 58.0%" in sentence  # the numbers are still reported, as observations


def test_overlay_figure_one_trace_per_run_and_escaped_names():
    frames = {
        "a": frame([0, 1, 2], **{"loss/total": [3.0, 2.0, 1.0]}),
        "<b>x</b>": frame([0, 1], **{"loss/total": [1.0, 0.5]}),
        "none": frame([0], lr=[1.0]),
    }
    fig = compare.metric_overlay_figure(frames, "loss/total")
    data = [t for t in fig.data if t.meta != "legend"]
    assert [(t.name, len(t.x)) for t in data] == [("a", 3), ("&lt;b&gt;x&lt;/b&gt;", 2)]
    legend = [t for t in fig.data if t.meta == "legend"]  # one entry per run drawn, in the run's colour
    assert [t.name for t in legend] == ["a", "&lt;b&gt;x&lt;/b&gt;"]
    assert [t.line.color for t in legend] == [t.line.color for t in data]
    assert [t.line.color for t in data] == list(run_colours(["a", "<b>x</b>"]).values())
    smooth = compare.metric_overlay_figure(frames, "loss/total", smoothing=0.5)
    shown = [t for t in smooth.data if t.meta != "legend" and not t.name.endswith("(raw)")]
    assert [t.name for t in shown] == ["a", "&lt;b&gt;x&lt;/b&gt;"]
    np.testing.assert_allclose(shown[0].y, compare.ema([3.0, 2.0, 1.0], 0.5))


def test_ablation_figure_points_per_run():
    table = compare.ablation_table(*ablation_inputs([0.2, 0.15, 0.1], [0.5, 0.7, 0.9]))
    fig = compare.ablation_figure(table)
    assert [(t.name, list(t.x)) for t in fig.data] == [(f"l{l}", [l]) for l in (0.0, 0.5, 1.0)] * 2  # 2 panels
    colours = run_colours(table["run"])  # each run its own colour, the same in every panel
    assert [t.marker.color for t in fig.data] == [colours[t.name] for t in fig.data]
    assert [t.showlegend for t in fig.data] == [True] * 3 + [False] * 3  # one legend entry per run


def test_ablation_figure_names_runs_in_legend_and_hover_never_beside_points():
    """A dozen long run names on three λ values ran into each other as point labels: the names are in the
    legend (cut) and the hover (in full), and runs sharing a λ stand side by side around it."""
    long = [f"a-rather-long-run-name-number-{i}-<b>" for i in range(6)]
    configs = {n: {"contrastive": {"weight": 1.0 if i else 0.0}} for i, n in enumerate(long)}
    frames = {n: frame([0, 10], **{"eval/recon_mse": [1.0, 0.1 + 0.01 * i]}) for i, n in enumerate(long)}
    fig = compare.ablation_figure(compare.ablation_table(configs, frames, {n: 0.5 for n in long}))
    assert all("text" not in t.mode for t in fig.data)  # no names printed on the plot
    first = [t for t in fig.data if t.xaxis == "x"]
    assert [t.text[0] for t in first] == [n.replace("<", "&lt;").replace(">", "&gt;") for n in long]  # hover: full
    assert all(len(t.name) <= 28 for t in first) and first[1].name.endswith("…")  # legend: cut
    xs = sorted(t.x[0] for t in first[1:])  # the five runs at λ = 1, side by side, centred on it
    assert np.diff(xs).min() > 0.05 and np.mean(xs) == pytest.approx(1.0) and max(abs(x - 1) for x in xs) < 0.5
    assert list(fig.layout.xaxis.tickvals) == [0.0, 1.0]  # ticks at the real λ values
