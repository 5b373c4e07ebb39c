"""The monitoring pages (Home, Live, Geometry, Collapse) run in AppTest on synthetic runs: no exception, the
widgets they promise, and figures whose traces carry the right names and point counts."""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest
from browser import REPO
from figure_specs import panels
from streamlit.testing.v1 import AppTest
from synthetic_runs import write_synthetic_root

from dashboard.text import md
from diagnostics.work import worker

TIMEOUT = 120
HEALTHY, COMPLETE, DIMENSIONAL = "healthy-synthetic", "complete-collapse-synthetic", "dimensional-collapse-synthetic"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    write_synthetic_root(path)
    worker.watch(str(path), once=True)  # every record and default projection, as the dashboard's worker would
    return path


def app(root, monkeypatch, runs=None) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")  # the records are filled by the fixture
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    if runs is not None:
        at.session_state["runs"] = runs
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def points(values) -> int:
    """Length of a trace coordinate in plotly JSON: a list, or a base64 typed array {"dtype", "bdata"}."""
    if isinstance(values, dict) and "bdata" in values:
        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])))
    return len(values or [])


def figures(at: AppTest) -> dict[str, dict[str, int]]:
    """{figure title: {trace name: points}} for every plotly chart on the page."""
    out = {}
    for element in at.get("plotly_chart"):
        for spec in panels(json.loads(element.proto.spec)):  # a figure of linked panels: one entry per panel
            title = (spec["layout"].get("title") or {}).get("text", "")
            out[title] = {t.get("name"): points(t.get("x")) for t in spec["data"]}
    return out


def find(figs: dict, prefix: str) -> dict[str, int]:
    matches = [v for k, v in figs.items() if k.replace("<br>", " ").startswith(prefix)]  # titles wrap in narrow cells
    assert matches, f"no figure titled {prefix!r}; have {list(figs)}"
    return matches[0]


# -- Home ------------------------------------------------------------------------------------------


def test_home_lists_every_run_with_status_and_verdict(root, monkeypatch):
    at = app(root, monkeypatch).run()
    no_exception(at)
    table = at.dataframe[0].value.set_index("run")
    assert sorted(table.index) == sorted([HEALTHY, COMPLETE, DIMENSIONAL])
    assert set(table["status"]) == {"finished"}
    assert (table["last step"] == 100).all()
    # the run's judgement (what Collapse says at the latest step) and the onset of the finding behind it, the
    # step Live's banner gives as "trouble since" (issue #22: one onset); healthy: no step
    assert table.loc[HEALTHY, "verdict"] == "healthy"
    # (both collapses begin after step 50: the first affected snapshot is 60, the slide's onset is dated 80)
    assert table.loc[COMPLETE, "verdict"] == "complete collapse since 80"
    assert table.loc[DIMENSIONAL, "verdict"] == "dimensional collapse since 80"
    assert list(table.loc[[HEALTHY, COMPLETE], "snapshot verdict"]) == ["healthy", "complete collapse"]
    # healthy clusters keep many directions; collapse leaves about one
    assert table.loc[HEALTHY, "effective rank"] > 5 * table.loc[COMPLETE, "effective rank"]
    assert table.loc[HEALTHY, "uniformity"] < table.loc[COMPLETE, "uniformity"]
    assert table.loc[HEALTHY, "description"].startswith("Synthetic healthy")


def write_sliding_run(root, name: str = "sliding") -> None:
    """Five healthy snapshots (5 clusters in 32-D), then the points pulled towards one direction: at step 120
    the normalised std is ~0.27× the healthy 1/√d, below half its baseline but above the complete-collapse
    threshold (0.1×), so each snapshot alone still reads "healthy" while the run is collapsing."""
    from runformat.writer import RunWriter

    rng = np.random.default_rng(0)
    centers, labels = 2 * rng.standard_normal((5, 32)), np.arange(300) % 5
    with RunWriter(str(root), name, config={"contrastive": {"temperature": 0.1}}) as w:
        for i, pull in enumerate([0, 0, 0, 0, 0, 0.6, 0.8, 0.85]):
            w.log_metrics(20 * i, {"loss/total": 1.0})
            z = centers[labels] + 0.35 * rng.standard_normal((300, 32))
            z = ((1 - pull) * z + pull * (1 + 1e-3 * rng.standard_normal((300, 32)))).astype(np.float32)
            w.log_snapshot(
                20 * i,
                embeddings=z,
                positives=z + np.float32(0.05) * rng.standard_normal(z.shape, dtype=np.float32),
                labels=labels,
            )


def test_home_shows_the_runs_ladder_as_collapse_does(tmp_path, monkeypatch):
    """Home's verdict is the run's state on the alarm ladder with its onset, the words Collapse's verdict card
    shows at the latest step; the snapshot's own verdict ("healthy" here) is a separate, secondary column."""
    from synthetic_runs import write_synthetic_run

    write_sliding_run(tmp_path)
    write_synthetic_run(tmp_path, "steady", steps=40, snapshot_every=20, n=120, images=False)
    worker.watch(str(tmp_path), once=True)
    at = app(tmp_path, monkeypatch).run()
    no_exception(at)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["sliding", "verdict"] == "collapsing since 100"  # the slide's onset: the first pulled snapshot
    assert table.loc["sliding", "snapshot verdict"] == "healthy"
    assert table.loc["steady", "verdict"] == "healthy" and table.loc["steady", "snapshot verdict"] == "healthy"
    at = app(tmp_path, monkeypatch, runs=["sliding"])
    at.switch_page("pages/collapse.py").run()
    no_exception(at)
    cards = [
        e.value
        for kind in (at.error, at.warning, at.info, at.success)
        for e in kind
        if e.value.startswith("**sliding, step 140.**")
    ]
    assert len(cards) == 1 and cards[0].split(".** ")[1].startswith(md("Collapsing: the normalised std fell")), cards


def test_home_shows_new_runs_without_restart(tmp_path, monkeypatch):
    from synthetic_runs import write_synthetic_run

    write_synthetic_run(tmp_path, "first", steps=20, snapshot_every=10, n=60)
    at = app(tmp_path, monkeypatch).run()
    assert list(at.dataframe[0].value["run"]) == ["first"]
    write_synthetic_run(tmp_path, "second", steps=20, snapshot_every=10, n=60, close=False).flush()
    at.run()
    table = at.dataframe[0].value.set_index("run")
    assert list(table.index) == ["first", "second"]
    assert table.loc["second", "status"] == "running"
    assert table.loc["second", "heartbeat"].endswith("s ago")


def test_home_on_an_empty_root_says_how_to_make_a_run(tmp_path, monkeypatch):
    at = app(tmp_path / "nothing-here", monkeypatch).run()
    no_exception(at)
    assert "No runs under" in at.info[0].value
    hint = next(m.value for m in at.markdown if "RunWriter" in m.value)
    config = "training/configs/healthy-infonce-tau0.1.toml"
    assert f"python -m training.train --config {config} --runs-dir " in hint
    assert (REPO / config).exists()


def test_home_notes_appear(tmp_path, monkeypatch):
    from synthetic_runs import write_synthetic_run

    from diagnostics import open_run

    write_synthetic_run(tmp_path, "noted", steps=10, snapshot_every=10, n=40)
    open_run(str(tmp_path / "noted")).save_notes("λ too high; rerun with 0.5")
    at = app(tmp_path, monkeypatch).run()
    assert at.dataframe[0].value["notes"].iloc[0] == "λ too high; rerun with 0.5"


# -- Live ------------------------------------------------------------------------------------------


def test_live_draws_every_logged_metric_per_run(root, monkeypatch):
    at = app(root, monkeypatch)
    at.switch_page("pages/live.py").run()
    no_exception(at)
    figs = figures(at)
    losses = find(figs, "Losses")
    for run in (HEALTHY, COMPLETE, DIMENSIONAL):
        for part in ("total", "contrastive", "reconstruction"):
            assert losses[f"{run} · {part}"] == 101  # steps 0..100
    assert "loss/kl" not in str(losses)  # never logged: not drawn
    ratio = find(figs, "Contrastive vs reconstruction")
    assert ratio[f"{HEALTHY} · λ·contrastive / reconstruction"] == 101
    assert find(figs, "Batch cosine")[f"{HEALTHY} · positive − negative"] == 101
    assert find(figs, "Alignment over snapshots")[HEALTHY] == 6  # snapshots at 0, 20, ..., 100
    assert find(figs, "Effective rank over snapshots")[COMPLETE] == 6
    for title in ("Temperature", "Learning rate", "Gradient norm", "Positive top-1"):
        find(figs, title)
    assert at.select_slider(key="live_every").value == 5
    assert at.toggle(key="live_paused").value is False
    status = next(c.value for c in at.caption if "metric lines" in c.value)
    assert "**finished**" in status and "Stalled:" not in status  # stalled is explained beside a stalled run only


def test_live_banner_names_the_step_and_what_to_try(root, monkeypatch):
    at = app(root, monkeypatch, runs=[COMPLETE, HEALTHY])
    at.switch_page("pages/live.py").run()
    no_exception(at)
    banners = [e.value for e in at.error] + [w.value for w in at.warning]
    assert len(banners) == 1, banners  # the healthy run raises nothing
    assert banners[0].startswith(f"**{md(COMPLETE)}:") and "trouble since step" in banners[0]
    assert "**Try:**" in banners[0]
    assert set(find(figures(at), "Losses")) == {
        f"{r} · {p}" for r in (COMPLETE, HEALTHY) for p in ("total", "contrastive", "reconstruction")
    }


def test_live_picks_up_new_metric_lines_incrementally(tmp_path, monkeypatch):
    from synthetic_runs import write_synthetic_run

    writer = write_synthetic_run(tmp_path, "growing", steps=10, snapshot_every=5, n=40, close=False)
    writer.flush()
    at = app(tmp_path, monkeypatch)
    at.switch_page("pages/live.py").run()
    assert find(figures(at), "Losses")["total"] == 11
    for step in range(11, 31):
        writer.log_metrics(step, {"loss/total": 1.0 / step})
    writer.flush()
    at.run()
    assert find(figures(at), "Losses")["total"] == 31
    writer.close()


# -- Geometry --------------------------------------------------------------------------------------


def test_geometry_plane_histograms_and_breakdown(root, monkeypatch):
    at = app(root, monkeypatch)
    at.switch_page("pages/geometry.py").run()
    no_exception(at)
    figs = figures(at)
    plane = find(figs, "Alignment–uniformity plane")
    assert plane == {HEALTHY: 6, COMPLETE: 6, DIMENSIONAL: 6}
    focus = at.selectbox(key="geometry_run")
    assert focus.value == COMPLETE and at.select_slider(key="geometry_step").value == 100
    at.selectbox(key="geometry_run").set_value(HEALTHY).run()
    at.select_slider(key="geometry_step").set_value(40).run()
    no_exception(at)
    figs = figures(at)
    hist = find(figs, "Cosine similarities")
    assert hist == {"positive pairs": 80, "negative pairs": 80, "hardest negative": 80}  # EngineConfig.bins
    assert (
        next(k for k in figs if k.startswith("Cosine"))
        .replace("<br><sup>", " ")
        .replace("</sup>", "")
        .endswith(f"{HEALTHY}, step 40")
    )  # the run and step: its key line
    hard = at.dataframe[0].value  # then the breakdown table
    assert len(hard) == 15 and hard["negative cos"].is_monotonic_decreasing
    assert at.selectbox(key="geometry_by").options == ["label", "class"]  # "strength" is continuous
    assert find(figs, "Breakdown by label") == {"alignment": 5, "uniformity": 5}
    at.toggle(key="geometry_scaled").set_value(True).run()
    assert find(figures(at), "Temperature-scaled") == {"positive pairs": 80, "negative pairs": 80}


# -- Collapse --------------------------------------------------------------------------------------


def test_collapse_spectrum_rank_std_and_verdict(root, monkeypatch):
    at = app(root, monkeypatch, runs=[DIMENSIONAL, HEALTHY])
    at.switch_page("pages/collapse.py").run()
    no_exception(at)
    figs = figures(at)
    spectrum = find(figs, f"Singular value spectrum — {DIMENSIONAL}")
    assert spectrum == {f"step {s}": 32 for s in range(0, 101, 20)}  # min(N=300, d=32) values
    rank = find(figs, "Effective rank over training")
    assert rank[f"{HEALTHY} · embeddings (after head)"] == 6
    assert rank[f"{HEALTHY} · features (before head)"] == 6
    std = find(figs, "Std of normalised")
    assert std[f"{HEALTHY} · 1/√d"] == 2 and std[DIMENSIONAL] == 6
    assert at.warning[0].value.startswith(f"**{md(DIMENSIONAL)}, step 100.** Dimensional collapse")
    assert "What to try" in at.warning[0].value
    at.selectbox(key="collapse_run").set_value(HEALTHY).run()
    assert at.success[0].value.startswith(f"**{md(HEALTHY)}, step 100.** No sign of collapse")


# -- broken runs -----------------------------------------------------------------------------------


def test_a_broken_run_gets_an_error_card_and_the_others_keep_working(root, tmp_path, monkeypatch):
    broken = tmp_path / "runs"
    shutil.copytree(root, broken)
    (broken / HEALTHY / "run.json").write_text("{not json")
    npy = broken / DIMENSIONAL / "snapshots" / "0000000100" / "embeddings.npy"
    npy.write_bytes(npy.read_bytes()[:100])
    shutil.rmtree(broken / DIMENSIONAL / ".cache")
    worker.watch(str(broken), once=True)  # the torn snapshot gets a record that says why
    at = app(broken, monkeypatch).run()
    no_exception(at)
    cards = [e.value for e in at.error]
    assert len(cards) == 1, cards
    assert md(HEALTHY) in cards[0] and md("run.json") in cards[0] and "not valid JSON" in cards[0]
    table = at.dataframe[0].value.set_index("run")
    assert list(table.index) == [COMPLETE, DIMENSIONAL]
    assert "not measured" in table.loc[DIMENSIONAL, "verdict"] and "embeddings.npy" in table.loc[DIMENSIONAL, "verdict"]
    for page in ("pages/live.py", "pages/geometry.py", "pages/collapse.py"):
        at.switch_page(page).run()
        no_exception(at)
        assert all("Traceback" not in e.value for e in at.error)
        assert any(name and COMPLETE in name for fig in figures(at).values() for name in fig), page


def test_with_nothing_selected_running_runs_come_first(tmp_path, monkeypatch):
    write_synthetic_root(tmp_path)
    from synthetic_runs import write_synthetic_run

    writer = write_synthetic_run(tmp_path, "zz-still-training", steps=20, snapshot_every=10, close=False)
    try:
        at = app(tmp_path, monkeypatch)
        at.switch_page("pages/live.py").run()
        no_exception(at)
        caption = next(c.value for c in at.caption if c.value.startswith("No runs selected"))
        assert caption.startswith(
            f"No runs selected: showing {md('zz-still-training')}, {md('complete-collapse-synthetic')}"
        )
    finally:
        writer.close()


def test_alarms_name_the_config_switch_of_the_shipped_collapse_run(tmp_path, monkeypatch):
    """The alarms get the run's config as context: the sample run that turns its negatives off at a step says
    which config key did it in Live's banner; Collapse runs with the same context."""
    name = "complete-collapse-negatives-removed"
    shutil.copytree(REPO / "sample_runs" / name, tmp_path / name)
    worker.watch(str(tmp_path), once=True)
    at = app(tmp_path, monkeypatch, runs=[name])
    at.switch_page("pages/live.py").run()
    no_exception(at)
    banners = [e.value for e in at.error] + [w.value for w in at.warning]
    assert len(banners) == 1 and md("contrastive.negatives_off_step") in banners[0].split("**Try:**")[1], banners
    at.switch_page("pages/collapse.py").run()
    no_exception(at)
    # The verdict card's "What to try" is the alarms' context-aware advice, word for word (one source), not the
    # snapshot record's generic tips.
    card = next(e.value for e in at.error if e.value.startswith(f"**{md(name)}, step 900.**"))
    tried = card.split("**What to try:**")[1]
    assert md("contrastive.negatives_off_step") in tried and tried.strip() == "- " + banners[0].split("**Try:** ")[1]
    at.select_slider(key="collapse_step").set_value(150).run()  # before the switch: healthy, nothing to try
    assert "What to try" not in at.success[0].value
    # The report's verdict card judges the same way: the run's "complete collapse" at 900 (std 0.07×, mean
    # cosine 0.995 for 3 snapshots; the snapshot alone reads "cone") and the same advice, naming the switch.
    from diagnostics.draw import report

    html = report.build_report([str(tmp_path / name)], sections=["verdicts"], compute=False)
    assert "<p class='verdict'>complete collapse</p>" in html and "contrastive.negatives_off_step = 250" in html


def test_live_warns_about_skipped_metrics_lines_naming_the_run(tmp_path, monkeypatch):
    """Torn and malformed metrics lines (a crash mid-append, garbage) are skipped by the reader; Live says how
    many and why, naming the run, and draws the lines that were records."""
    import warnings

    from synthetic_runs import write_synthetic_run

    write_synthetic_run(tmp_path, "torn", steps=10, snapshot_every=5, n=40)
    write_synthetic_run(tmp_path, "clean", steps=10, snapshot_every=5, n=40)
    with open(tmp_path / "torn" / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 11, "loss/tot\n')  # torn mid-line
        f.write(b"not json at all\n")
        f.write(b'{"step": 12, "wall_time": 1.0, "loss/total": 0.5}\n')
    at = app(tmp_path, monkeypatch, runs=["torn", "clean"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.switch_page("pages/live.py").run()
    no_exception(at)
    skipped = [w.value for w in at.warning if "skipped" in w.value]
    assert len(skipped) == 1 and skipped[0].startswith("**torn**: 2 lines of metrics.jsonl skipped"), skipped
    assert skipped[0].count("byte ") == 2
    assert find(figures(at), "Losses")["torn · total"] == 12  # steps 0..10 and 12


def test_home_last_step_comes_from_the_metrics_lines(tmp_path, monkeypatch):
    """Home's "last step" is read from the tail of metrics.jsonl (no whole-file parse per run): the last
    complete record, past a torn final line, and it follows an append (the cache key is the file identity)."""
    import warnings

    from synthetic_runs import write_synthetic_run

    write_synthetic_run(tmp_path, "tail", steps=10, snapshot_every=5, n=40)
    metrics = tmp_path / "tail" / "metrics.jsonl"
    with open(metrics, "ab") as f:
        f.write(b'{"step": 12, "wall_time": 1.0, "loss/total": 0.5}\n{"step": 13, "loss')  # torn last line
    at = app(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at.run()
    no_exception(at)
    (table,) = [d.value for d in at.dataframe if "last step" in d.value.columns]
    assert table.set_index("run").loc["tail", "last step"] == 12
    with open(metrics, "ab") as f:
        f.write(b'/total": 0.4}\n{"step": 14, "wall_time": 2.0, "loss/total": 0.3}\n')
    at.run()
    (table,) = [d.value for d in at.dataframe if "last step" in d.value.columns]
    assert table.set_index("run").loc["tail", "last step"] == 14
