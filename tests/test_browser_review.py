"""Real browser on the Review pages: a permalink restores the view; the downloaded report draws its figures
offline; hostile run strings show as text and never run."""

import shutil
from urllib.parse import urlencode

import pytest
from browser import ARTIFACTS, assert_no_error, browser_available, screenshot, shared_browser, streamlit_server, visit  # noqa: F401 (shared_browser: the `browser` fixture)
from synthetic_runs import write_synthetic_run
from test_report import IMG, SCRIPT, write_hostile_run

from diagnostics import list_runs, open_run
from diagnostics.store import cache

pytestmark = pytest.mark.browser
RUNS = {"lam-0": 0.0, "lam-0.5": 0.5, "lam-1": 1.0}

# Every plotly chart on the page: its title, x-axis title and per trace (name, point count, in the legend,
# panel): a page's step charts are one figure of linked panels (chart_style.step_grid, meta.panel per trace).
FIGURES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    title: String((gd.layout.title && (gd.layout.title.text ?? '')) || '').replace(/<[^>]*>/g, ''),
    xtitle: Object.keys(gd.layout).filter(k => k.startsWith('xaxis')).map(k =>
        String((gd.layout[k].title && gd.layout[k].title.text) || '').replace(/<[^>]*>/g, '')).join(' | '),
    traces: gd._fullData.map(t => [t.name, t._length, t.showlegend !== false,
                                   (t.meta && t.meta.panel) || null]),
    drawn: gd.querySelector('.main-svg') !== null}))"""


def panels(figs) -> dict[str, list]:
    """panel title -> [(trace name, points)] of its data traces, over every linked-panel figure."""
    out: dict[str, list] = {}
    for f in figs:
        for name, n, _, panel in f["traces"]:
            if panel:
                out.setdefault(panel, []).append((name, n))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("runs")
    for name, weight in RUNS.items():
        write_synthetic_run(root, name, weight=weight, steps=40, snapshot_every=20, n=90, d=8, images=False)
    open_run(str(root / "lam-0")).save_notes("Baseline: no contrastive term.")
    write_hostile_run(root)
    for run in list_runs(str(root)):  # fill the disk cache here, so the pages only read it
        cache.cached_run_table(run)
    with streamlit_server(root) as url:
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(90_000)  # generous: a loaded 2-core machine renders slowly
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def figures(page) -> list[dict]:
    page.wait_for_selector(".js-plotly-plot .main-svg")
    return page.evaluate(FIGURES_JS)


def test_permalink_restores_the_compare_view(server, page):
    query = urlencode(
        [
            ("runs", "lam-0"),
            ("runs", "lam-1"),
            ("smoothing", "0.9"),
            ("x_axis", "wall time"),
            ("metrics", "loss/total"),
            ("metrics", "eval/recon_mse"),
        ]
    )
    visit(page, server, f"compare?{query}", timeout_ms=60_000)
    assert_no_error(page)
    figs = figures(page)
    by_panel = panels(figs)
    assert set(by_panel) >= {"loss/total", "eval/recon_mse"} and "loss/contrastive" not in by_panel, by_panel.keys()
    grid = next(f for f in figs if any(t[3] == "loss/total" for t in f["traces"]))
    assert "wall time" in grid["xtitle"]
    loss = by_panel["loss/total"]
    assert sorted(t for t in loss if not t[0].endswith(" (raw)")) == [("lam-0", 41), ("lam-1", 41)]
    assert sorted(t for t in loss if t[0].endswith(" (raw)")) == [("lam-0 (raw)", 41), ("lam-1 (raw)", 41)]
    assert "0.90" in page.locator('[data-testid="stSlider"]').first.inner_text()
    assert page.get_by_role("radio", name="wall time").is_checked()
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("lam-0", exact=True).is_visible() and sidebar.get_by_text("lam-1", exact=True).count()
    assert "In these runs the contrastive term" in page.locator('[data-testid="stAlertContentInfo"]').first.inner_text()


def test_compare_screenshot_with_every_run(server, page):
    visit(page, server, "compare?" + urlencode([("runs", n) for n in RUNS]), timeout_ms=60_000)
    assert_no_error(page)
    assert all(f["drawn"] for f in figures(page))
    screenshot(page, "compare")


def test_report_download_opens_offline_and_escapes(server, page, browser, tmp_path):
    visit(page, server, "report?" + urlencode([("runs", "lam-0"), ("runs", "lam-1"), ("runs", IMG)]), timeout_ms=60_000)
    assert_no_error(page)
    # the hostile name (verdict and notes cards) and notes, as text, in the app
    assert page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=IMG).first.is_visible()
    assert page.locator('[data-testid="stText"]').filter(has_text=SCRIPT).first.is_visible()
    screenshot(page, "report")
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download report (HTML)").click()
    path = tmp_path / "report.html"
    info.value.save_as(path)
    shutil.copy(path, ARTIFACTS / "report.html")
    assert page.dialogs == []

    offline = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    offline.route("http*://**", lambda route: route.abort())
    report = offline.new_page()
    report.set_default_timeout(90_000)
    report.dialogs = []
    report.on("dialog", lambda d: (report.dialogs.append(d.message), d.dismiss()))
    try:
        report.goto(path.as_uri())
        figs = figures(report)
        assert len(figs) == report.locator(".plotly-graph-div").count() >= 6 and all(f["drawn"] for f in figs)
        recon = panels(figs)["eval/recon_mse"]
        assert sorted(t for t in recon if not t[0].endswith(" (raw)")) == sorted(
            [("lam-0", 3), ("lam-1", 3), (IMG.replace("<", "&lt;").replace(">", "&gt;"), 1)]
        )
        assert report.get_by_text(SCRIPT).first.is_visible()  # the description, as text
        assert report.get_by_text(IMG).first.is_visible()
        assert report.locator("img").count() == 0
        assert report.dialogs == []
        screenshot(report, "report-file", full_page=False)
    finally:
        offline.close()
