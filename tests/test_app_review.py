"""AppTest of the Review pages (Compare, Report): the figures they draw, the settings, the notes editor."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from figure_specs import panels
from streamlit.testing.v1 import AppTest
from synthetic_runs import write_synthetic_run

from diagnostics import open_run
from diagnostics.draw import report
from diagnostics.work import worker

REPO = Path(__file__).resolve().parent.parent
RUNS = {"lam-0": 0.0, "lam-1": 1.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, weight in RUNS.items():
        write_synthetic_run(root, name, weight=weight, steps=40, snapshot_every=20, n=90, d=8, images=False)
    open_run(str(root / "lam-0")).save_notes("baseline note")
    worker.watch(str(root), once=True)
    return root


def app_on(page: str, root, monkeypatch, runs=tuple(RUNS)) -> AppTest:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["runs"] = list(runs)  # the sidebar picker's key (AppTest runs the page script alone)
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def figures(at) -> list[dict]:
    """Every chart on the page, a figure of linked panels split into one entry per panel."""
    return [p for chart in at.get("plotly_chart") for p in panels(json.loads(chart.proto.spec))]


def values(arr) -> list:
    """A plotly JSON array: a list, or a typed array {"dtype": "f8", "bdata": base64} (plotly >= 6)."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"])).tolist()
    return list(arr)


def traces(fig: dict) -> dict[str, int]:
    """{run name: number of points} for the runs' data traces (the faint raw curves left out)."""
    return {t["name"]: len(values(t["x"])) for t in fig["data"] if not t["name"].endswith("(raw)")}


def table_with(at, column: str):
    """The first dataframe on the page with `column` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def by_title(at) -> dict[str, dict]:
    return {f["layout"]["title"]["text"]: f for f in figures(at)}


def test_compare_page_overlays_each_run(root, monkeypatch):
    at = app_on("pages/compare.py", root, monkeypatch)
    figs = by_title(at)
    assert traces(figs["loss/total"]) == {"lam-0": 41, "lam-1": 41}
    assert traces(figs["eval/recon_mse"]) == {"lam-0": 3, "lam-1": 3}  # logged at the 3 snapshots
    plane = next(f for t, f in figs.items() if t.startswith("Alignment"))
    assert traces(plane) == {"lam-0": 3, "lam-1": 3}
    ablation = next(f for t, f in figs.items() if t.startswith("Contrastive weight"))
    assert [values(t["x"]) for t in ablation["data"]] == [[0.0], [1.0], [0.0], [1.0]]  # a trace per run and panel
    # synthetic_runs: final recon MSE = (0.02 + 0.01 λ)(1 + 4e^-2), so λ = 1 costs exactly +50 %
    assert "+50%" in at.info[0].value and "hurts the generator" in at.info[0].value
    diff = next(d.value for d in at.dataframe if d.value.index.name == "run")  # one row per run (issue 23)
    assert diff["contrastive.weight"].tolist() == ["0.0", "1.0"] and list(diff.index) == ["lam-0", "lam-1"]
    assert "contrastive.temperature" not in diff.columns  # equal keys are hidden
    final = table_with(at, "last step")  # one row per run, one column per metric
    assert list(final["run"]) == ["lam-0", "lam-1"] and final["last step"].tolist() == [40, 40]
    assert {"loss/total (per sample)", "eval/recon_mse", "alignment (E‖x̂−x̂⁺‖²)", "verdict"} <= set(final.columns)
    # synthetic_runs: final recon MSE = (0.02 + 0.01 λ)(1 + 4e^-2), shown to 4 significant digits
    assert final["eval/recon_mse"].tolist() == pytest.approx(
        [0.02 * (1 + 4 * np.exp(-2)), 0.03 * (1 + 4 * np.exp(-2))], rel=5e-4
    )


def test_compare_run_table_groups_runs_as_mean_and_std(root, monkeypatch):
    at = app_on("pages/compare.py", root, monkeypatch)
    at.selectbox(key="compare_group").set_value("contrastive.temperature").run()  # both runs share τ
    assert not at.exception, at.exception
    final = table_with(at, "last step")
    grouped = table_with(at, "names")
    assert len(grouped) == 1 and grouped["runs"].tolist() == [2] and grouped["names"][0] == "lam-0, lam-1"
    recon = final["eval/recon_mse"]
    assert grouped["eval/recon_mse"][0] == f"{recon.mean():.4g} ± {recon.std(ddof=1):.2g} (n=2)"
    at.segmented_control(key="final_value").set_value("best").run()
    best = table_with(at, "last step")
    assert (best["loss/total (per sample)"] <= final["loss/total (per sample)"]).all()  # a loss's best is its min


def test_compare_settings_change_the_figures(root, monkeypatch):
    at = app_on("pages/compare.py", root, monkeypatch)
    at.slider(key="smoothing").set_value(0.0).run()
    raw = by_title(at)["loss/total"]
    assert len(raw["data"]) == 2  # no faint raw curves when nothing is smoothed
    at.slider(key="smoothing").set_value(0.9).run()
    smooth = by_title(at)["loss/total"]
    assert len(smooth["data"]) == 4 and traces(smooth) == {"lam-0": 41, "lam-1": 41}
    at.radio(key="x_axis").set_value("wall time").run()
    assert by_title(at)["loss/total"]["layout"]["xaxis"]["title"]["text"].startswith("wall time")
    at.multiselect(key="metrics").set_value(["lr"]).run()
    assert "lr" in by_title(at) and "loss/total" not in by_title(at)


def test_notes_saved_from_compare(root, monkeypatch):
    at = app_on("pages/compare.py", root, monkeypatch)
    area = at.text_area(key="notes:lam-1")
    assert area.value == ""
    area.input("λ=1 keeps the recon error; try 0.3")
    at.form_submit_button[1].click().run()
    assert not at.exception
    assert open_run(str(root / "lam-1")).notes == "λ=1 keeps the recon error; try 0.3"
    assert at.text_area(key="notes:lam-0").value == "baseline note"


def test_report_page_sections_and_preview(root, monkeypatch):
    at = app_on("pages/report.py", root, monkeypatch)
    titles = list(by_title(at))
    assert "loss/total" in titles and any(t.startswith("Alignment") for t in titles)
    assert [s.value for s in at.subheader][:2] == ["Runs", "Metrics"]
    at.pills(key="sections").set_value(["notes", "config"]).run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Config differences", "Team notes"]
    assert not figures(at)
    assert "baseline note" in [t.value for t in at.text]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_report_page_and_its_file_never_compute_a_record(tmp_path, monkeypatch):
    """On a root the worker has not visited, the Report page (every section) and the file its download button
    builds write nothing: snapshots without a record are left out of both, not computed on the request path."""
    write_synthetic_run(tmp_path, "fresh", weight=1.0, steps=40, snapshot_every=20, n=90, d=8, images=False)
    before = files_under(tmp_path)
    at = app_on("pages/report.py", tmp_path, monkeypatch, runs=["fresh"])
    at.pills(key="sections").set_value(list(report.SECTIONS)).run()
    assert not at.exception
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(tmp_path))
    from dashboard import review

    html = review.report_html(["fresh"], list(report.SECTIONS), ["loss/total"], 0.0)
    assert "fresh" in html and "not computed yet" not in html  # no ready snapshot: nothing to promise
    assert files_under(tmp_path) == before
    worker.watch(str(tmp_path), once=True)  # with the records written, the file has the snapshot sections
    with_records = review.report_html(["fresh"], list(report.SECTIONS), ["loss/total"], 0.0)
    assert "Alignment" in with_records or "alignment" in with_records
