"""Refresh the README's screenshots (docs/screenshots/*.png) from the shipped sample runs.

    .venv/bin/python scripts/screenshots.py [--out DIR]      # default docs/screenshots

The dashboard serves a temporary *copy* of sample_runs/ (whatever it computes or caches lands in the copy, not
in the clone) from a working folder in which the copy is simply `sample_runs`, and is started with
`--runs sample_runs`: the pages show the runs root as `sample_runs`, never a machine path. Each page's text
is checked for absolute paths before its screenshot is kept.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser import CHROMIUM, CHROMIUM_ARGS, _kill_group, _wait_healthy, free_port, visit  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

RUNS = "runs=healthy-infonce-tau0.1&runs=complete-collapse-negatives-removed&runs=dimensional-collapse-bn-no-negatives"
PAGES = {
    "home": "",
    "live": f"live?{RUNS}&live_paused=true",
    "geometry": f"geometry?{RUNS}&geometry_run=complete-collapse-negatives-removed",
    "collapse": f"collapse?{RUNS}&collapse_run=dimensional-collapse-bn-no-negatives",
    "projections": "projections?proj_run=healthy-infonce-tau0.1",
    "compare": "compare?runs=healthy-infonce-tau0.1&runs=recon-only-lambda0&runs=hard-negatives-beta1"
    "&runs=moco-queue-k1024",
    "crossmodal": "crossmodal?runs=crossmodal-clip-lambda0&runs=crossmodal-clip-lambda1",
    "report": "report?runs=healthy-infonce-tau0.1&runs=recon-only-lambda0",
}
# an absolute path on this machine: the temp folder, the clone, a home folder, or any /tmp, /home, /root path
MACHINE_PATH = re.compile(
    "|".join(map(re.escape, {tempfile.gettempdir(), str(REPO), str(Path.home())}))
    + r"|(?<![\w.])/(?:tmp|home|root|Users|var/folders)/"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="contrastscope-screenshots-") as work:
        shutil.copytree(REPO / "sample_runs", Path(work) / "sample_runs")
        # what the dashboard's worker does in the first seconds, done first so no page shows "computing"
        subprocess.run(
            [sys.executable, "-m", "diagnostics", "compute", "sample_runs", "--methods", "pca"],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        log_path = Path(work) / "streamlit.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streamlit",
                    "run",
                    str(REPO / "app.py"),
                    "--server.headless",
                    "true",
                    "--server.port",
                    str(port),
                    "--server.address",
                    "127.0.0.1",
                    "--server.fileWatcherType",
                    "none",
                    "--browser.gatherUsageStats",
                    "false",
                    "--",
                    "--runs",
                    "sample_runs",
                ],
                cwd=work,
                env={**os.environ, "CONTRASTSCOPE_UMAP_WARMUP": "0", "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_healthy(url, server, 120, log_path)
                shoot(url, out)
            finally:
                _kill_group(server)


def shoot(url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, path in PAGES.items():
            visit(page, url, path, timeout_ms=120_000)
            page.wait_for_timeout(1500)
            leak = MACHINE_PATH.search(page.inner_text("body"))
            if leak:
                raise SystemExit(f"{name}: the page shows a machine path ({leak.group(0)!r}); screenshot not taken")
            page.screenshot(path=str(out / f"{name}.png"), full_page=name in ("home", "report"))
            print("wrote", out / f"{name}.png", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
