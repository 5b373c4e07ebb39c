"""dashboard.overview's run-table helpers: search, config columns, grouping with mean ± std across seeds."""

import pandas as pd

from dashboard import overview

TABLE = pd.DataFrame(
    {
        "run": ["a-s0", "a-s1", "b-s0"],
        "status": ["finished", "running", "crashed"],
        "alignment": [0.2, 0.4, 0.9],
        "uniformity": [-3.0, -2.0, -0.1],
        "effective rank": [10.0, 14.0, 1.0],
        "verdict": ["healthy", "healthy", "complete collapse"],
        "description": ["tau 0.1", "tau 0.1", "no negatives"],
        "notes": ["", "", "λ too high"],
    }
)
CONFIGS = pd.DataFrame({"contrastive.temperature": [0.1, 0.1, 0.5], "seed": [0, 1, 0]}, index=["a-s0", "a-s1", "b-s0"])


def test_search_needs_every_word_in_some_column():
    assert list(overview.search(TABLE, "HEALTHY")["run"]) == ["a-s0", "a-s1"]
    assert list(overview.search(TABLE, "healthy running")["run"]) == ["a-s1"]
    assert list(overview.search(TABLE, "λ")["run"]) == ["b-s0"]
    assert overview.search(TABLE, "  ").equals(TABLE)


def test_config_columns_follow_the_rows():
    out = overview.with_config(TABLE.iloc[[2, 0]], CONFIGS, ["seed", "missing"])
    assert list(out.columns[-3:]) == ["seed", "description", "notes"]  # the long text stays last
    assert list(out["seed"]) == [0, 0]
    assert list(out["run"]) == ["b-s0", "a-s0"]


def test_group_by_config_key_mean_and_sample_std():
    out = overview.grouped(TABLE, CONFIGS, "contrastive.temperature").set_index("contrastive.temperature")
    # seeds 0 and 1 at τ = 0.1: alignment 0.2 and 0.4 -> mean 0.3, sample std √((0.1² + 0.1²)/1) = 0.1414
    assert out.loc["0.1", "alignment"] == "0.3 ± 0.14 (n=2)"
    assert out.loc["0.1", "effective rank"] == "12 ± 2.8 (n=2)"
    assert out.loc["0.5", "alignment"] == "0.9 (n=1)" and out.loc["0.5", "runs"] == 1
    assert out.loc["0.1", "statuses"] == "1 finished, 1 running"


def test_runs_without_the_key_form_their_own_group():
    configs = CONFIGS.drop(index="b-s0")
    out = overview.grouped(TABLE, configs, "seed")
    assert list(out["seed"]) == ["(not set)", "0", "1"] and list(out["runs"]) == [1, 1, 1]


def test_nearest_step_prefers_the_earlier_on_a_tie():
    from dashboard.picker import nearest_step

    assert nearest_step([0, 25, 50, 75], 40) == 50
    assert nearest_step([0, 20, 40], 30) == 20  # 10 either side: the earlier
    assert nearest_step([100], 7) == 100


def test_verdict_colours_follow_the_ladder():
    assert overview.verdict_colour("collapsing since 120") == overview.STATUS_COLOURS["crashed"]
    assert overview.verdict_colour("complete collapse since 100 · 2 more being measured") == "#D62728"
    assert overview.verdict_colour("reconstruction rising since 275") == overview.STATUS_COLOURS["stalled"]  # a warning
    assert overview.verdict_colour("narrowing since 40") == overview.STATUS_COLOURS["stalled"]
    assert overview.verdict_colour("healthy") is None and overview.verdict_colour("being measured…") is None
    assert overview.ladder_text("healthy", 0, []) == "healthy"
    assert (
        overview.ladder_text("complete_collapse", 100, [20, 40])
        == "complete collapse since 100 · 2 more being measured"
    )
