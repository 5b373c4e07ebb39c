"""The chart rule, over every figure the pages and the report build (issue 23): on shipped sample runs and on
synthetic runs shaped like a user's (losses inside one decade, a constant lr, no alarms; one run, eight runs,
names of 60 characters), every axis that shows data has ticks, no chart is drawn empty (its reason is text
instead), no label sits outside the figure, and every run drawn is named in a legend.

Pages run in AppTest (their figures read back from the Plotly JSON Streamlit receives); the report's figures
are recorded as report.figure_html is handed them."""

from __future__ import annotations

import json
import shutil

import pytest
from browser import REPO
from figure_specs import axis_problems, empty_problem, label_problems, legend_problems
from streamlit.testing.v1 import AppTest
from synthetic_runs import write_user_run

from diagnostics import list_runs
from diagnostics.draw import report
from diagnostics.work import worker

LONG = "an-outside-training-loop-mlp-on-digits-nt-xent-tau0.1-seed-0"  # 60 characters
assert len(LONG) == 60
EIGHT = [LONG] + [f"digits-mlp-seed{i}" for i in range(1, 7)] + ["digits-mlp-" + "x" * 49]
SAMPLES = ["healthy-infonce-tau0.1", "complete-collapse-negatives-removed", "crossmodal-clip-lambda1"]
PAGES = ["home", "live", "geometry", "collapse", "projections", "compare", "report"]


class Roots:
    """The three roots, each written (and measured, as the worker would) the first time a test asks for it."""

    def __init__(self, factory):
        self.factory, self.made = factory, {}

    def __getitem__(self, kind: str):
        if kind not in self.made:
            root = self.factory.mktemp(kind)
            runs = {"one": [LONG], "eight": EIGHT, "samples": SAMPLES}[kind]
            for i, name in enumerate(runs):
                if kind == "samples":
                    shutil.copytree(REPO / "sample_runs" / name, root / name, ignore=shutil.ignore_patterns(".cache"))
                else:
                    write_user_run(root, name, seed=i)
            worker.watch(str(root), once=True)  # every record and default projection
            self.made[kind] = (root, runs)
        return self.made[kind]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return Roots(tmp_path_factory)


def page_specs(root, runs: list[str], page: str, monkeypatch) -> list[dict]:
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    monkeypatch.setenv("CONTRASTSCOPE_WORKER", "0")
    monkeypatch.setenv("CONTRASTSCOPE_UMAP_WARMUP", "0")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240)
    at.session_state["runs"] = list(runs)
    if page != "home":
        at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def problems(specs: list[dict], runs: list[str]) -> list[str]:
    out = []
    for spec in specs:
        out += axis_problems(spec) + label_problems(spec) + legend_problems(spec, runs)
        empty = empty_problem(spec)
        out += [empty] if empty else []
    return out


@pytest.mark.parametrize("kind", ["one", "eight", "samples"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_chart_keeps_the_rules(roots, kind, page, monkeypatch):
    root, runs = roots[kind]
    specs = page_specs(root, runs, page, monkeypatch)
    if page in ("live", "collapse", "compare"):
        assert specs, f"{page} drew no chart on {kind}"
    assert problems(specs, runs) == []


def test_the_crossmodal_page_keeps_the_rules(roots, monkeypatch):
    root, runs = roots["samples"]
    monkeypatch.setenv("CONTRASTSCOPE_RUNS", str(root))
    specs = page_specs(root, ["crossmodal-clip-lambda1"], "crossmodal", monkeypatch)
    assert specs and problems(specs, runs) == []


@pytest.mark.parametrize("kind", ["one", "eight", "samples"])
def test_every_report_chart_keeps_the_rules(roots, kind, monkeypatch):
    root, runs = roots[kind]
    drawn = []
    original = report.figure_html

    def record(fig, *ids):
        drawn.append(fig.to_plotly_json())
        return original(fig, *ids)

    monkeypatch.setattr(report, "figure_html", record)
    text = report.build_report([r for r in list_runs(str(root)) if r.name in runs], compute=False)
    assert drawn
    shown = [s for s in drawn if empty_problem(s) is None]  # the empty ones became a sentence in the file:
    assert len(shown) == text.count("Plotly.newPlot(")
    assert problems(shown, runs) == []
