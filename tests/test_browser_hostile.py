"""Every page in a real Chromium on a hostile root (see test_app_hostile): no exception element, no request
to any host but the dashboard's own (the tab icon and the navigation icons included), no image or link made
from a run's strings, and the strings visible literally as text."""

from __future__ import annotations

from urllib.parse import urlencode, urlparse

import pytest
from browser import assert_no_error, browser_page, screenshot, streamlit_server, visit, wait_for_app  # noqa: F401
from test_app_hostile import DESCRIPTION, IMAGE, META_COLUMN, NAMES, write_hostile_root

pytestmark = pytest.mark.browser
LOCAL = {"127.0.0.1", "localhost"}
PAGES = ("", "live?live_paused=true", "geometry", "collapse", "projections", "compare", "report")


def test_hostile_root_in_a_browser(tmp_path, browser_page):  # noqa: F811
    page = browser_page
    write_hostile_root(tmp_path)
    elsewhere: list[str] = []

    def guard(route):
        url = route.request.url
        if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).hostname not in LOCAL:
            elsewhere.append(url)
            route.abort()
        else:
            route.continue_()

    page.context.route("**/*", guard)
    page.context.on(
        "request",
        lambda r: (
            None
            if urlparse(r.url).hostname in LOCAL or urlparse(r.url).scheme in ("data", "blob", "about")
            else elsewhere.append(r.url)
        ),
    )
    env = {}  # the server starts its own worker, which measures the hostile runs while the pages wait
    with streamlit_server(tmp_path, env=env) as url:
        visit(page, url, "", timeout_ms=60_000)
        assert_no_error(page)
        page.wait_for_selector('[data-testid="stDataFrame"]')
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "bad-\\xff-name" in text  # the unreadable folder, named
        screenshot(page, "hostile-home")
        runs = [("runs", n) for n in NAMES]
        for path in PAGES:
            sep = "&" if "?" in path else "?"
            extra = [("proj_colour", META_COLUMN)] if path == "projections" else []
            visit(page, url, f"{path}{sep}{urlencode(runs + extra)}", timeout_ms=90_000)
            assert_no_error(page, expected=("trouble since step", "collapse"))
            main = page.locator('[data-testid="stMain"]')
            assert main.locator("img[src*='evil'], a[href*='evil']").count() == 0, path
            assert page.locator("b:text-is('x'), i:text-is('x')").count() == 0, path
            if path.startswith(("geometry", "collapse", "live")):
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
                svg_text = " ".join(page.locator(".js-plotly-plot text").all_text_contents())
                assert any(n in svg_text for n in NAMES), (path, svg_text[:500])  # legends read literally
                assert page.locator(".js-plotly-plot a").count() == 0, path
            if path == "projections":  # the legend of the hostile metadata column, literally
                page.wait_for_selector(".js-plotly-plot .legendtext", timeout=60_000)
                legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
                assert "<b>x</b>" in legend and IMAGE in legend, legend
                assert page.locator(".js-plotly-plot a").count() == 0
            page.wait_for_selector('[data-testid="stSidebar"] [data-tag] > span', timeout=30_000)
            wait_for_app(page)  # a record that lands reruns the page: let that run end
            tags = set(page.locator('[data-testid="stSidebar"] [data-tag] > span').all_text_contents())
            assert tags == set(NAMES), (path, tags)  # the picker's tags: literal names
            screenshot(page, f"hostile-{path.split('?')[0] or 'home'}")
        visit(page, url, "report?" + urlencode(runs), timeout_ms=90_000)
        assert page.get_by_text(DESCRIPTION).count() + page.get_by_text(IMAGE).count() > 0
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
