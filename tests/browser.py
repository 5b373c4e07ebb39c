"""Real-browser harness: the dashboard served headless on a free port, driven by Playwright's chromium.

    from tests.browser import streamlit_server, chromium_page, wait_for_app, assert_no_error

    def test_x(tmp_path, browser_page):            # fixture: skips when chromium/playwright are missing
        with streamlit_server(root) as url:
            browser_page.goto(url + "/live")
            wait_for_app(browser_page)
            assert_no_error(browser_page)

Every test using it should be fast (< 60 s); screenshots go under test-artifacts/ (see `screenshot`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(root, port: int | None = None, env: dict | None = None, timeout_s: float = 45.0):
    """Serve app.py on the runs root `root`; yields the base URL; kills the server's process group at exit."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"streamlit-{port}.log"
    log = open(log_path, "wb")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--",
        "--runs",
        str(root),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, proc, timeout_s, log_path)
        yield base_url
    finally:
        _kill_group(proc)
        log.close()


def _wait_healthy(base_url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; log:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base_url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"streamlit not healthy after {timeout_s}s; log:\n{log_path.read_text()[-3000:]}")


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def browser_available() -> str | None:
    """None when a browser test can run, else the reason it cannot."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def chromium_page(playwright, viewport=(1400, 1000), color_scheme: str = "light"):
    """Launch chromium and return (browser, page). The caller closes the browser."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=color_scheme)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return browser, page


@pytest.fixture(scope="module", name="browser")
def shared_browser():
    """`browser`: one chromium for a module's tests (each opens its own context); import `shared_browser`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser, page = chromium_page(pw)
        page.context.close()
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page():
    """A chromium page; skips the test when chromium or playwright is missing."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser, page = chromium_page(pw)
        try:
            yield page
        finally:
            browser.close()


def wait_for_app(page, timeout_ms: int = 30_000, settle_ms: int = 400) -> None:
    """Wait until the app is connected and its script has finished running.

    Streamlit marks the root element: `data-test-script-state` is "initial" before the first run, "running"
    while the script (or a fragment) runs, "notRunning" after. A rerun can start right after a run ends
    (a widget's URL binding, a fragment timer), so "notRunning" must hold for `settle_ms` in a row."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        app = page.locator('[data-testid="stApp"]')
        state = app.get_attribute("data-test-script-state")
        connected = app.get_attribute("data-test-connection-state") == "CONNECTED"
        running = page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() > 0
        if state != "notRunning" or not connected or running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= settle_ms:
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"the app was still running after {timeout_ms} ms at {page.url}")


_warmed: set[str] = set()


def visit(page, base_url: str, url_path: str = "", timeout_ms: int = 45_000, wait: bool = True) -> None:
    """Open one dashboard page and (with `wait`) wait for it to finish running. A page that refreshes itself
    every second (Live) may never sit still; pass wait=False and wait for what you expect to see instead.

    The first visit to a server opens the root URL first: until some session has run app.py (which calls
    st.navigation), Streamlit treats the `pages/` folder as a v1 multipage app and would run a deep-linked
    page script on its own, without the app's shell."""
    if base_url not in _warmed:  # the server's first script run imports torch & co: give it longer
        page.goto(base_url + "/")
        wait_for_app(page, 2 * timeout_ms)
        _warmed.add(base_url)
    page.goto(f"{base_url}/{url_path.lstrip('/')}")
    if wait:
        wait_for_app(page, timeout_ms)
    else:
        page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)


def error_texts(page) -> list[str]:
    return [
        t.strip()
        for t in page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
    ]


def assert_no_error(page, expected: tuple[str, ...] = ()) -> None:
    """No exception box anywhere; error alerts only if their text contains one of `expected`."""
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not exceptions, f"exception on {page.url}: {exceptions[0][:2000]}"
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    unexpected = [e for e in errors if not any(x in e for x in expected)]
    assert not unexpected, f"error alert on {page.url}: {unexpected}"


def screenshot(page, name: str, full_page: bool = True, max_height: int = 6000) -> Path:
    """Save test-artifacts/<name>.png. Streamlit scrolls inside its main container, not the document, so a
    full-page shot grows the viewport to the content's height first (then restores it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size
    if full_page and size:
        height = page.evaluate(
            "() => { const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
            " return m ? m.scrollHeight : 0; }"
        )
        if height + 120 > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": min(height + 120, max_height)})
            page.wait_for_timeout(800)  # let plotly re-lay out
    page.screenshot(path=str(path))
    if size and page.viewport_size != size:
        page.set_viewport_size(size)
    return path
