"""Real browser on issue 14's states: Home as a run table, Live's linked step charts, Geometry side by side,
Compare's linked overlays, and the offline report at three widths. Each state is screenshot into
test-artifacts/polish-*.png, and the layout facts a reader depends on are read from the DOM: legends beside
the plot (never over a title or an axis), one colour per run under any selection, x-axes linked, τ ≥ 0,
every report chart inside its cell."""

from urllib.parse import urlencode

import pytest
from browser import ARTIFACTS, assert_no_error, browser_available, screenshot, shared_browser, streamlit_server, visit  # noqa: F401 (shared_browser: the `browser` fixture)
from synthetic_runs import write_synthetic_run

from diagnostics import list_runs, open_run
from diagnostics.draw import report
from diagnostics.store import cache

pytestmark = pytest.mark.browser
LONG = "dimensional-collapse-with-a-rather-long-run-name-for-legends"
RUNS = {
    "seed0-tau0.1": dict(kind="healthy", seed=0),
    "seed1-tau0.1": dict(kind="healthy", seed=1),
    "collapse-tau0.5": dict(kind="complete_collapse", temperature=0.5),
    LONG: dict(kind="dimensional_collapse"),
    "lam-0": dict(kind="healthy", weight=0.0, seed=2),
}
EXPECTED_ALERTS = ("trouble since step", "collapse")

# Per chart: legend entries with colours, the boxes of the legend, the plot area and every title, and the axes.
LAYOUT_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                      return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  const L = gd._fullLayout;
  return {
    title: ((L.title && L.title.text) || '').replace(/<br>/g, ' | ').replace(/<[^>]*>/g, ''),
    traces: gd._fullData.map(t => t.name),
    legend: gd._fullData.filter(t => t.showlegend !== false && t.visible !== false).map(t => [t.name,
             (t.line && t.line.color) || (t.marker && t.marker.color)]),
    legendBox: box(gd.querySelector('g.legend')),
    plotBox: box(gd.querySelector('.cartesianlayer')),
    divBox: box(gd), svgWidth: gd.querySelector('.main-svg').getBoundingClientRect().width,
    parentWidth: gd.parentElement.getBoundingClientRect().width,
    titles: Array.from(gd.querySelectorAll('.annotation-text, .gtitle')).map(box),
    xaxes: Object.keys(L).filter(k => /^xaxis\\d*$/.test(k)).map(k => ({name: k, matches: L[k].matches || null,
             range: L[k].range})),
    yaxes: Object.keys(L).filter(k => /^yaxis\\d*$/.test(k)).map(k => ({name: k, range: L[k].range,
             type: L[k].type})),
    panels: Array.from(new Set(gd._fullData.filter(t => t.meta && t.meta.panel).map(t => t.meta.panel))),
  };
})"""


def overlaps(a, b, slack=1.0) -> bool:
    return a["l"] < b["r"] - slack and b["l"] < a["r"] - slack and a["t"] < b["b"] - slack and b["t"] < a["b"] - slack


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("runs")
    for name, kw in RUNS.items():
        write_synthetic_run(root, name, steps=60, snapshot_every=20, n=120, d=16, images=False, **kw)
    open_run(str(root / "seed0-tau0.1")).save_notes("Baseline at τ = 0.1. " + "A long note that must wrap. " * 6)
    for run in list_runs(str(root)):  # the records the pages read
        cache.cached_run_table(run)
    return root


@pytest.fixture(scope="module")
def server(root):
    with streamlit_server(root, env={"CONTRASTSCOPE_UMAP_WARMUP": "0"}) as url:
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


def layouts(page, at_least: int = 1) -> list[dict]:
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {at_least}")
    page.wait_for_timeout(500)
    return page.evaluate(LAYOUT_JS)


def runs_query(names, **more) -> str:
    return urlencode(
        [("runs", n) for n in names] + [(k, x) for k, v in more.items() for x in (v if isinstance(v, list) else [v])]
    )


def linked(axes: list[dict]) -> bool:
    """Every x-axis but one follows that one (plotly's `matches`)."""
    targets = {a["matches"] for a in axes if a["matches"]}
    return len(targets) == 1 and sum(a["matches"] is None for a in axes) == 1


def assert_legend_clear(fig: dict) -> None:
    """The legend sits right of the plot area and overlaps no title."""
    legend = fig["legendBox"]
    if not fig["legend"] or legend is None:  # no legend drawn (a single trace, or showlegend off)
        return
    assert legend["l"] >= fig["plotBox"]["r"] - 4, fig["title"]  # 4 px: a last tick label may overhang
    assert legend["r"] <= fig["divBox"]["r"] + 1, fig["title"]
    for title in fig["titles"]:
        assert not overlaps(legend, title), (fig["title"], title)


def test_home_is_a_run_table_with_config_columns_grouping_and_search(server, page):
    query = urlencode(
        [
            ("home_columns", "contrastive.temperature"),
            ("home_columns", "seed"),
            ("home_group", "contrastive.temperature"),
            ("home_wrap", "true"),
        ]
    )
    visit(page, server, "?" + query, timeout_ms=90_000)
    assert_no_error(page, expected=EXPECTED_ALERTS)
    page.wait_for_selector('[data-testid="stDataFrame"]')
    assert page.locator('[data-testid="stDataFrame"]').count() == 2  # the runs and the grouped table
    chosen = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stMultiSelect"]').inner_text()
    assert "contrastive.temperature" in chosen and "seed" in chosen
    assert "Grouped by contrastive.temperature" in page.locator("h3").all_inner_texts()
    screenshot(page, "polish-home-table")
    visit(page, server, "?" + urlencode([("home_search", "collapse")]))
    assert "2 of 5 runs match the search." in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    screenshot(page, "polish-home-search")


def test_live_is_one_figure_with_linked_x_and_a_legend_beside_it(server, page):
    visit(page, server, "live?" + runs_query(RUNS, live_paused="true"))
    assert_no_error(page, expected=EXPECTED_ALERTS)
    figs = layouts(page)
    assert len(figs) == 1  # every step chart in one figure
    fig = figs[0]
    assert len(fig["panels"]) == 10
    assert len(fig["xaxes"]) == 10 and linked(fig["xaxes"])  # zoom one: all follow
    names = [n for n, _ in fig["legend"]]
    assert len(names) == 5 and LONG not in names and any(n.startswith(LONG[:20]) and n.endswith("…") for n in names)
    assert_legend_clear(fig)
    for i, a in enumerate(fig["titles"]):  # panel titles clear of each other
        assert not any(overlaps(a, b) for b in fig["titles"][i + 1 :])
    tau = next(y for y, p in zip(fig["yaxes"], fig["panels"]) if p.startswith("Temperature"))
    assert tau["range"][0] >= 0  # τ > 0: the axis never goes below 0
    screenshot(page, "polish-live-linked")
    colours = dict(fig["legend"])
    visit(page, server, "live?" + runs_query(["collapse-tau0.5", "seed1-tau0.1"], live_paused="true"))
    two = dict(layouts(page)[0]["legend"])
    assert two == {n: colours[n] for n in two}  # same colour with 2 runs selected as with 5


def test_geometry_four_runs_side_by_side_and_the_plane_by_step(server, page):
    others = ["collapse-tau0.5", LONG, "lam-0"]
    visit(
        page,
        server,
        "geometry?" + runs_query(RUNS, geometry_run="seed0-tau0.1", geometry_with=others, geometry_step="40"),
    )
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).some(gd => gd._fullLayout"
        " && String(gd._fullLayout.title.text).includes('ring: step 40'))"
    )  # drawn last
    figs = layouts(page, at_least=6)  # the plane, 4 histograms, the breakdown
    screenshot(page, "polish-geometry-side-by-side")
    assert_no_error(page, expected=EXPECTED_ALERTS)
    hists = [f for f in figs if "hardest negative" in f["traces"]]
    # chart_style.title_name keeps a long run name's head (wrapped over lines, joined here by " | ")
    heads = [f["title"].split(" | positive pairs")[0].replace(" | ", "") for f in hists]
    assert len(hists) == 4 and all(h.endswith(", step 40") for h in heads), heads
    assert [h.rsplit(", step", 1)[0][:40] for h in heads] == [
        n[:40] for n in ["seed0-tau0.1", "collapse-tau0.5", LONG, "lam-0"]
    ], heads
    for f in hists:  # a quarter-width plot: its colour key is the title's second line, no legend over the data
        assert not f["legend"] and "positive pairs · negative pairs · hardest negative" in f["title"]
    plane = next(f for f in figs if f["title"].startswith("Alignment–uniformity plane"))
    assert "ring: step 40" in plane["title"]
    assert_legend_clear(plane)


def test_compare_overlays_share_one_linked_figure(server, page):
    visit(page, server, "compare?" + runs_query(RUNS, smoothing="0"), timeout_ms=90_000)
    assert_no_error(page, expected=EXPECTED_ALERTS)
    figs = layouts(page)
    grid = next(f for f in figs if f["panels"])
    assert "loss/total" in grid["panels"] and linked(grid["xaxes"])
    assert_legend_clear(grid)
    screenshot(page, "polish-compare")


@pytest.fixture(scope="module")
def report_file(root):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "polish-report.html"
    path.write_text(report.build_report([str(root / n) for n in RUNS]), encoding="utf-8")
    return path


@pytest.mark.parametrize("width", [1100, 1400, 1600])
def test_report_charts_fit_their_cells(report_file, browser, width):
    path = report_file
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        figs = layouts(page, at_least=1 + 1 + 3 * len(RUNS) + 1)
        assert len(figs) == 1 + 1 + 3 * len(RUNS) + 1 + 1  # metrics, plane, per run 3, ablation, alarm timeline
        for fig in figs:
            assert fig["svgWidth"] <= fig["parentWidth"] + 1, (width, fig["title"])  # never wider than its cell
            assert fig["divBox"]["r"] <= width, (width, fig["title"])
            assert_legend_clear(fig)
        grid = next(f for f in figs if f["panels"])
        assert grid["xaxes"][0]["range"][1] >= 60  # the x-axis reaches the last step (was cut at ~half)
        page.screenshot(path=str(ARTIFACTS / f"polish-report-{width}.png"), full_page=True)
    finally:
        context.close()


# -- Compare, Collapse and the Report page on shipped sample runs, at three widths ---------------------------

SAMPLES = ("complete-collapse-negatives-removed", "dimensional-collapse-bn-no-negatives", "healthy-infonce-tau0.1")
COLLAPSED = SAMPLES[0]
WIDTHS = (1100, 1400, 1600)

# Per chart: its title, the boxes of its div, plot area, titles, text labels drawn on the plot (config-event
# labels) and header annotations, and its traces' modes.
TEXT_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const box = el => { const r = el.getBoundingClientRect(); return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  return {
    title: ((gd._fullLayout.title && gd._fullLayout.title.text) || '').replace(/<[^>]*>/g, ''),
    divBox: box(gd), plotBox: box(gd.querySelector('.cartesianlayer')),
    titles: Array.from(gd.querySelectorAll('.gtitle, .annotation-text'))
      .map(el => ({text: el.textContent, ...box(el)})),
    labels: Array.from(gd.querySelectorAll('.textpoint text')).map(el => ({text: el.textContent, ...box(el)})),
    modes: gd._fullData.map(t => t.mode || ''),
  };
})"""


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory):
    """Three shipped sample runs (copied: the dashboard writes .cache beside them), the collapsed one with a
    second config event one step after its negatives are switched off, so two labels would collide."""
    import json
    import shutil

    from browser import REPO

    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("samples")
    for name in SAMPLES:
        shutil.copytree(REPO / "sample_runs" / name, root / name)
    config = root / COLLAPSED / "config.json"
    cfg = json.loads(config.read_text())
    cfg["contrastive"]["temperature_step"] = cfg["contrastive"]["negatives_off_step"] + 1
    config.write_text(json.dumps(cfg))
    for run in list_runs(str(root)):
        cache.cached_run_table(run)
    with streamlit_server(root, env={"CONTRASTSCOPE_WORKER": "0"}) as url:
        yield url


def sample_page(browser, url, path, width):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    visit(page, url, path, timeout_ms=120_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1")
    page.wait_for_timeout(800)
    return context, page


def assert_readable(figs, width) -> None:
    """Every chart: titles inside the chart (not cut at its edge) and clear of each other; config-event labels
    clear of each other, of every title and of the chart's edge."""
    for fig in figs:
        div = fig["divBox"]
        for i, t in enumerate(fig["titles"]):
            assert t["l"] >= div["l"] - 1 and t["r"] <= div["r"] + 1, (width, fig["title"], t["text"])
            for u in fig["titles"][i + 1 :]:
                assert not overlaps(t, u), (width, fig["title"], t["text"], u["text"])
        for i, a in enumerate(fig["labels"]):
            assert a["l"] >= div["l"] - 1 and a["r"] <= div["r"] + 1, (width, fig["title"], a["text"])
            for b in fig["labels"][i + 1 :] + fig["titles"]:
                assert not overlaps(a, b), (width, fig["title"], a["text"], b["text"])


def timeline(figs) -> dict:
    return next(f for f in figs if f["title"].startswith("Alarms: estimated onset"))


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_on_sample_runs_reads_at_every_width(sample_server, browser, width):
    context, page = sample_page(
        browser,
        sample_server,
        "compare?" + runs_query(SAMPLES, smoothing="0", compare_group="contrastive.weight"),
        width,
    )
    try:
        assert_no_error(page, expected=EXPECTED_ALERTS)
        figs = page.evaluate(TEXT_JS)
        assert_readable(figs, width)
        ablation = next(f for f in figs if f["title"].startswith("Contrastive weight"))
        assert not any("text" in m for m in ablation["modes"])  # run names in legend and hover, not on the plot
        alarms = timeline(figs)
        assert {"contrastive.negatives_off_step", "contrastive.temperature_step"} <= {
            a["text"] for a in alarms["labels"]
        }
        # short row labels (each run's name is a header above its rows): the plot keeps most of the width
        assert alarms["plotBox"]["r"] - alarms["plotBox"]["l"] >= 0.55 * (alarms["divBox"]["r"] - alarms["divBox"]["l"])
        frames = page.locator('[data-testid="stDataFrame"]')
        assert frames.count() >= 3  # the run table, its grouping by contrastive.weight, the config diff
        screenshot(page, f"polish-compare-samples-{width}")
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_collapse_on_sample_runs_reads_at_every_width(sample_server, browser, width):
    context, page = sample_page(
        browser, sample_server, "collapse?" + runs_query(SAMPLES, collapse_run=COLLAPSED), width
    )
    try:
        assert_no_error(page, expected=EXPECTED_ALERTS)
        card = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
        # the alarms' advice, naming the switch just before the slide (the later of the two a step apart)
        assert "What to try" in card and "contrastive.temperature_step = 251" in card
        figs = page.evaluate(TEXT_JS)
        assert_readable(figs, width)
        labels = {a["text"]: a for a in timeline(figs)["labels"]}
        off, tau = labels["contrastive.negatives_off_step"], labels["contrastive.temperature_step"]
        assert off["t"] != tau["t"]  # a step apart: staggered into two label rows
        grid = next(f for f in figs if f["title"] == "" and any("Effective rank" in t["text"] for t in f["titles"]))
        assert grid["plotBox"]["r"] - grid["plotBox"]["l"] >= 0.55 * (grid["divBox"]["r"] - grid["divBox"]["l"])
        screenshot(page, f"polish-collapse-samples-{width}")
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_report_page_on_sample_runs_reads_at_every_width(sample_server, browser, width):
    context, page = sample_page(browser, sample_server, "report?" + runs_query(SAMPLES), width)
    try:
        assert_no_error(page, expected=EXPECTED_ALERTS)
        figs = page.evaluate(TEXT_JS)
        assert_readable(figs, width)
        titled = [f["title"] for f in figs]
        assert sum(t.startswith(n[:20]) for t in titled for n in SAMPLES) >= 2 * len(SAMPLES)  # histograms, spectra
        screenshot(page, f"polish-report-page-samples-{width}")
    finally:
        context.close()
