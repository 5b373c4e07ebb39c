"""The monitoring pages in a real headless Chromium: every page renders without an error element, and the Live
page shows a run's new steps while another process writes it, without a reload."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from browser import (
    ARTIFACTS,
    REPO,
    assert_no_error,
    browser_page,
    screenshot,
    streamlit_server,  # noqa: F401
    visit,
    wait_for_app,
)

pytestmark = pytest.mark.browser

# Live is paused here so the page holds still for the check; the next test watches it refresh.
PAGES = {"home": "", "live": "live?live_paused=true", "geometry": "geometry", "collapse": "collapse"}
# Alerts the pages show on purpose for collapsed runs (alarm banners, verdict cards): not failures.
EXPECTED_ALERTS = ("trouble since step", "Complete collapse", "Dimensional collapse")
SAMPLE_RUNS = REPO / "sample_runs"
# Set CONTRASTSCOPE_UPDATE_SCREENSHOTS=1 to copy the screenshots into docs/screenshots/.
SCREENSHOTS = REPO / "docs" / "screenshots"
NO_UMAP = {}  # the server starts its worker as a user's would (UMAP compiles there, not in the server)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """A copy of the shipped sample runs when they exist, else synthetic ones; their records written by one
    pass of the worker (the server's own worker then finds nothing left to do)."""
    from diagnostics import list_runs
    from diagnostics.work import worker

    root = tmp_path_factory.mktemp("runs")
    if list_runs(SAMPLE_RUNS):
        root = root / "sample_runs"
        shutil.copytree(SAMPLE_RUNS, root)
    else:
        from synthetic_runs import write_synthetic_root

        write_synthetic_root(root)
    worker.watch(str(root), once=True)
    return root


def test_every_monitoring_page_renders_without_errors(runs_root, browser_page):
    page = browser_page
    with streamlit_server(runs_root, env=NO_UMAP) as url:
        for name, path in PAGES.items():
            visit(page, url, path)
            assert_no_error(page, expected=EXPECTED_ALERTS)
            assert page.locator("h1").first.inner_text().strip() == ("Runs" if name == "home" else name.title())
            if name == "home":
                page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
            else:
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            shot = screenshot(page, f"monitor-{name}")
            if os.environ.get("CONTRASTSCOPE_UPDATE_SCREENSHOTS"):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, SCREENSHOTS / f"{name}.png")


WRITER = textwrap.dedent("""
    import sys, time
    from runformat.writer import RunWriter
    with RunWriter(sys.argv[1], "live-writer", config={"description": "written while the page watches"},
                   heartbeat_every_s=0.5, stall_after_s=3.0) as w:
        for step in range(400):
            w.log_metrics(step, {"loss/total": 2.0 / (1 + step), "batch/top1": min(1.0, step / 100)})
            w.flush()
            time.sleep(0.2)
""")


def _shown_step(page) -> int:
    text = " ".join(page.locator('[data-testid="stCaptionContainer"]').all_inner_texts())
    match = re.search(r"live-writer: step (\d+)", text)
    return int(match.group(1)) if match else -1


def test_live_page_shows_new_steps_without_reload(tmp_path, browser_page):
    page = browser_page
    root = tmp_path / "runs"
    root.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (root / "live-writer" / "metrics.jsonl").exists():
            assert writer.poll() is None, writer.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.2)
        with streamlit_server(root, env=NO_UMAP) as url:
            visit(page, url, "live?runs=live-writer&live_every=1", wait=False)
            page.get_by_text(re.compile(r"live-writer: step \d+")).wait_for(timeout=45_000)
            assert_no_error(page)
            navigations = []
            page.on("framenavigated", lambda frame: navigations.append(frame.url))
            first = _shown_step(page)
            assert first >= 0
            deadline = time.monotonic() + 20
            while _shown_step(page) < first + 5:
                assert time.monotonic() < deadline, f"Live stayed at step {_shown_step(page)} (was {first})"
                page.wait_for_timeout(250)
            assert not navigations, f"the page reloaded: {navigations}"
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)  # losses and top-1 drawn
            screenshot(page, "monitor-live-writer", full_page=False)
            page.get_by_text(re.compile(r"live-writer: step \d+, \d+ metric lines, running")).wait_for(timeout=5_000)
            home = page.context.new_page()
            visit(home, url, "")
            home_navigations = []
            home.on("framenavigated", lambda frame: home_navigations.append(frame.url))
            writer.send_signal(signal.SIGKILL)  # no goodbye: the heartbeat just stops
            page.get_by_text(re.compile(r"live-writer: step \d+, \d+ metric lines, stalled")).wait_for(timeout=30_000)
            assert not navigations, f"the page reloaded: {navigations}"
            stalled = home.locator('[data-testid="stMetric"]').filter(has_text="Stalled")
            deadline = time.monotonic() + 30  # Home's table refreshes every 5 s
            while stalled.locator('[data-testid="stMetricValue"]').inner_text().strip() != "1":
                assert time.monotonic() < deadline, "Home never showed the killed run as stalled"
                home.wait_for_timeout(250)
            assert not home_navigations, f"Home reloaded: {home_navigations}"
            screenshot(home, "monitor-home-stalled", full_page=False)
    finally:
        writer.terminate()
        writer.wait(timeout=10)


def test_pages_opened_on_an_empty_root_pick_up_the_first_run(tmp_path, browser_page):
    page = browser_page
    root = tmp_path / "runs"
    root.mkdir()
    with streamlit_server(root, env=NO_UMAP) as url:
        visit(page, url, "live")
        assert "healthy-infonce-tau0.1.toml --runs-dir" in page.locator('[data-testid="stMain"]').inner_text()
        home = page.context.new_page()
        visit(home, url, "")
        navigations = []
        for p in (page, home):
            p.on("framenavigated", lambda frame: navigations.append(frame.url))
        from synthetic_runs import write_synthetic_run

        write_synthetic_run(root, "first-run", steps=10, snapshot_every=10, n=40)
        page.get_by_text(re.compile(r"first-run: step 10")).wait_for(timeout=30_000)
        runs = home.locator('[data-testid="stMetric"]').filter(has_text="Runs").locator('[data-testid="stMetricValue"]')
        runs.filter(has_text="1").wait_for(timeout=30_000)
        assert not navigations, f"a page reloaded: {navigations}"
        assert_no_error(page)
        assert_no_error(home)
