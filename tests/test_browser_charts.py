"""Every page in a real browser at 1100, 1400 and 1600 px with 1, 3 and 8 runs (issue 23): no error; in every
chart the titles stay inside it and clear of each other, the legend clear of the plot and the titles, and
every value axis that shows data has tick labels drawn; tables keep their key columns in view. Screenshots:
test-artifacts/charts-<page>-<n>runs-<width>.png (read them by eye).

The root: six runs shaped like a user's (losses inside a decade, constant lr, no alarms; one 60-character
name) and two shipped sample runs (a collapse with config events and alarms, a cross-modal run)."""

import shutil
from urllib.parse import urlencode

import pytest
from browser import REPO, assert_no_error, browser_available, screenshot, shared_browser, streamlit_server, visit  # noqa: F401 (shared_browser: the `browser` fixture)
from synthetic_runs import write_user_run

from diagnostics.draw.chart_style import run_colours
from diagnostics.work import worker

pytestmark = pytest.mark.browser
LONG = "an-outside-training-loop-mlp-on-digits-nt-xent-tau0.1-seed-0"
COLLAPSED, PAIRED = "complete-collapse-negatives-removed", "crossmodal-clip-lambda1"
USER = [LONG] + [f"digits-mlp-seed{i}" for i in range(1, 6)]
SELECTIONS = {1: [LONG], 3: [LONG, COLLAPSED, PAIRED], 8: USER + [COLLAPSED, PAIRED]}
WIDTHS = (1100, 1400, 1600)
PAGES = {
    "home": {},
    "live": {"live_paused": "true"},
    "geometry": {},
    "collapse": {},
    "projections": {},
    "crossmodal": {},
    "compare": {"smoothing": "0"},
    "report": {},
}
EXPECTED_ALERTS = ("trouble since step", "collapse")

LAYOUT_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const box = el => { const r = el.getBoundingClientRect(); return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  const L = gd._fullLayout;
  const used = new Set(gd._fullData.filter(t => t.visible !== false && (t.meta !== 'legend'))
                                   .map(t => t.yaxis || 'y'));
  const yaxes = Object.keys(L).filter(k => /^yaxis\\d*$/.test(k)).map(k => L[k])
      .filter(a => used.has(a._id) && a.visible !== false && a.showticklabels !== false)
      .map(a => ({id: a._id, ticks: Array.from(gd.querySelectorAll('.' + a._id + 'tick text'))
                                        .filter(t => t.textContent.trim()).length}));
  return {
    title: ((L.title && L.title.text) || '').replace(/<br>/g, ' | ').replace(/<[^>]*>/g, '').slice(0, 80),
    arbitrary: !!(L.meta && L.meta.axes === 'arbitrary'),
    div: box(gd), plot: gd.querySelector('.cartesianlayer') ? box(gd.querySelector('.cartesianlayer')) : null,
    legend: gd.querySelector('g.legend') ? box(gd.querySelector('g.legend')) : null,
    titles: Array.from(gd.querySelectorAll('.gtitle, .g-gtitle text, .annotation-text'))
        .filter(el => el.textContent.trim()).map(el => ({text: el.textContent.slice(0, 60), ...box(el)})),
    yaxes,
  };
})"""


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def overlaps(a, b, slack=1.0) -> bool:
    return a["l"] < b["r"] - slack and b["l"] < a["r"] - slack and a["t"] < b["b"] - slack and b["t"] < a["b"] - slack


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("charts")
    for i, name in enumerate(USER):
        write_user_run(root, name, seed=i)
    for name in (COLLAPSED, PAIRED):
        shutil.copytree(REPO / "sample_runs" / name, root / name, ignore=shutil.ignore_patterns(".cache"))
    worker.watch(str(root), once=True)  # every record and default projection, as the worker would
    with streamlit_server(root, env={"CONTRASTSCOPE_WORKER": "0", "CONTRASTSCOPE_UMAP_WARMUP": "0"}) as url:
        yield url


def chart_problems(charts: list[dict]) -> list[str]:
    out = []
    for c in charts:
        div = c["div"]
        for i, t in enumerate(c["titles"]):
            if t["l"] < div["l"] - 1 or t["r"] > div["r"] + 1:
                out.append(f"{c['title']!r}: {t['text']!r} outside the chart")
            out += [f"{c['title']!r}: {t['text']!r} over {u['text']!r}" for u in c["titles"][i + 1 :] if overlaps(t, u)]
        if c["legend"] is not None:
            out += [f"{c['title']!r}: legend over {t['text']!r}" for t in c["titles"] if overlaps(c["legend"], t)]
            if c["plot"] is not None and not c["arbitrary"] and overlaps(c["legend"], c["plot"], slack=4):
                out.append(f"{c['title']!r}: legend over the plot")
        if not c["arbitrary"]:
            out += [f"{c['title']!r}: {a['id']} has {a['ticks']} tick label(s)" for a in c["yaxes"] if a["ticks"] < 1]
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("n", sorted(SELECTIONS))
def test_every_page_reads_at_every_width(server, browser, n, width):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    found = []
    try:
        for name, params in PAGES.items():
            query = urlencode([("runs", r) for r in SELECTIONS[n]] + list(params.items()))
            path = "" if name == "home" else name  # Home is the default page, at /
            visit(page, server, f"{path}?{query}", timeout_ms=120_000, wait=name != "live")
            if name == "live":
                page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1")
            page.wait_for_timeout(600)  # plotly lays out after the script ends
            assert_no_error(page, expected=EXPECTED_ALERTS)
            charts = page.evaluate(LAYOUT_JS)
            if name == "home":  # the sidebar's chips in the runs' chart colours, not all in the theme's red
                chips = page.evaluate(
                    "() => Array.from(document.querySelectorAll('.st-key-runs "
                    "[data-testid=stMultiSelectTagsContainer] [data-tag]')).map(t => "
                    "[t.getAttribute('aria-label'), getComputedStyle(t).backgroundColor])"
                )
                colours = run_colours(sorted({*USER, COLLAPSED, PAIRED}))
                assert {label: rgb(colours[label]) for label, _ in chips} == dict(chips), chips
            found += [f"{name}: {p}" for p in chart_problems(charts)]
            screenshot(page, f"charts-{name}-{n}runs-{width}")
    finally:
        context.close()
    assert not found, "\n".join(found)
