"""The Projections page in a real Chromium: a PCA of every point on a WebGL canvas, the step slider moving
through training (and into the URL), a lasso selection listing the points and surviving a reload (it is in the
URL), a metadata search with isolate, the anchor beside its positive's picture, the play-through, and one
t-SNE computed on a small run, whose Compute button becomes a status line. Screenshots land in
test-artifacts/projections-*.png."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import (
    assert_no_error,
    browser_page,
    screenshot,
    streamlit_server,  # noqa: F401
    visit,
    wait_for_app,
)
from tests.synthetic_runs import write_synthetic_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chart(page, index: int = 0):
    """The index-th scatter (the movement histograms are plotly charts too, but have no legend)."""
    return page.locator('[data-testid="stPlotlyChart"]:has(.legend)').nth(index)


def settled(read, wanted, timeout_s: float = 60.0):
    """read() once wanted(read()) holds, or its last value after `timeout_s`: the page's text and URL can
    settle a moment before Plotly redraws the figure (or before the worker's layout for a new step arrives),
    so a figure read at once may be empty or still the previous one."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if wanted(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def legend(page, expected: list[str]) -> list[str]:
    """The scatter's legend entries once they equal `expected` (see settled)."""
    return settled(lambda: page.locator(".legendtext").all_text_contents(), lambda v: v == expected)


def test_projection_page_in_a_browser(tmp_path, browser_page):  # noqa: F811
    page = browser_page
    write_synthetic_run(tmp_path, "healthy", n=600, classes=6)
    write_synthetic_run(tmp_path, "tiny", n=40, steps=10, snapshot_every=5)
    write_synthetic_run(tmp_path, "two-views", n=300, positive_images=True)
    with streamlit_server(tmp_path) as url:
        visit(page, url, "projections?proj_run=healthy", timeout_ms=60_000)
        assert_no_error(page)
        chart(page).locator("canvas").first.wait_for()  # Scattergl draws on WebGL canvases
        assert legend(page, [str(c) for c in range(6)]) == [str(c) for c in range(6)]
        screenshot(page, "projections")

        # the step slider: one step back, and the URL follows
        page.get_by_role("slider").first.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(r"proj_step=80"))
        wait_for_app(page)
        assert_no_error(page)
        assert "step 80" in settled(lambda: chart(page).locator(".gtitle").text_content(), lambda t: "step 80" in t)

        # a lasso around the middle of the plot selects points and lists them with their images
        box = chart(page).locator(".nsewdrag").first.bounding_box()
        cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 3
        page.mouse.move(cx - r, cy - r)
        page.mouse.down()
        for x, y in ((cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r + 2)):
            page.mouse.move(x, y, steps=6)
        page.mouse.up()
        page.get_by_text(re.compile(r"[\d,]+ selected points")).wait_for(timeout=30_000)
        wait_for_app(page)
        assert_no_error(page)
        screenshot(page, "projections-selection")
        assert page.locator('img[src*="/media/"]').count() >= 4  # thumbnails of the selection

        # the selection is in the URL: a reload (or the link pasted elsewhere) shows the same points
        page.wait_for_url(re.compile(r"proj_sel=[\d,-]+"))
        count = page.get_by_text(re.compile(r"[\d,]+ selected points")).text_content()
        page.reload()
        wait_for_app(page)
        chart(page).locator("canvas").first.wait_for()
        assert_no_error(page)
        assert page.get_by_text(re.compile(r"[\d,]+ selected points")).text_content() == count
        page.locator('img[src*="/media/"]').nth(3).wait_for()
        wait_for_app(page)
        screenshot(page, "projections-selection-restored")
        selection = re.search(r"proj_sel=[^&]+", page.url).group(0)
        page.get_by_role("slider").first.focus()  # another setting rewrites the URL: the selection stays in it
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(r"proj_step=60"))
        wait_for_app(page)
        assert selection in page.url

        # a stale or hostile selection in a link is ignored with a note
        visit(page, url, "projections?proj_run=healthy&proj_sel=0-99999,abc")
        assert_no_error(page)
        page.get_by_text("The selection in this link was ignored").wait_for()
        assert "proj_sel" not in page.url

        # search: the matches keep their colours, the rest turn grey; isolate hides the rest
        visit(page, url, "projections?proj_run=healthy&proj_search=C3")
        assert_no_error(page)
        page.get_by_text("100 of 600 points match").wait_for()
        assert legend(page, ["not matching", "3"]) == ["not matching", "3"]
        screenshot(page, "projections-search")
        page.get_by_text("Isolate matches").click()
        page.wait_for_url(re.compile(r"proj_isolate=true"))
        wait_for_app(page)
        assert legend(page, ["3"]) == ["3"]
        screenshot(page, "projections-isolate")

        # the anchor beside its positive's picture, on a run that stores them
        visit(page, url, "projections?proj_run=two-views&proj_sel=0-5", timeout_ms=60_000)
        assert_no_error(page)
        page.get_by_text("Anchor and its positive").wait_for()
        page.get_by_text("its positive", exact=True).wait_for()
        screenshot(page, "projections-positive")

        # the play-through: frames of the aligned layouts, played in the browser
        page.goto(url + "/projections?proj_run=healthy&proj_view=Through+training&proj_colour=class")
        wait_for_app(page, timeout_ms=60_000)
        assert_no_error(page)
        page.locator(".updatemenu-button").first.click()  # ▶ Play
        page.wait_for_timeout(1500)
        screenshot(page, "projections-training")

        # one t-SNE, on a small run: asked for, computed with a progress bar, then served from the cache
        page.goto(url + "/projections?proj_run=tiny&proj_method=t-SNE&proj_perplexity=5")
        wait_for_app(page)
        assert page.locator('[data-testid="stPlotlyChart"]:has(.legend)').count() == 0
        page.get_by_role("button", name=re.compile("Compute t-SNE")).click()
        chart(page).locator("canvas").first.wait_for(timeout=120_000)
        wait_for_app(page, timeout_ms=120_000)
        assert_no_error(page)
        page.reload()
        wait_for_app(page)
        charts = page.locator('[data-testid="stPlotlyChart"]:has(.legend)')
        assert settled(charts.count, lambda c: c == 1) == 1  # from the run's cache, no button this time
        page.get_by_text(
            "t-SNE of 40 points (step 10; perplexity 5), seed 0, computed by the background worker."
        ).wait_for()
        assert page.get_by_role("button", name=re.compile("Compute")).count() == 0
        screenshot(page, "projections-tsne")
