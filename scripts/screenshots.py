"""Refresh the README's screenshots (docs/screenshots/*.png) from the shipped sample runs.

    .venv/bin/python scripts/screenshots.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, visit  # noqa: E402
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
    "report": "report?runs=healthy-infonce-tau0.1&runs=recon-only-lambda0",
}


def main() -> None:
    out = REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with streamlit_server(REPO / "sample_runs", env={"CONTRASTSCOPE_UMAP_WARMUP": "0"}) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, path in PAGES.items():
            visit(page, url, path, timeout_ms=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"{name}.png"), full_page=name in ("home", "report"))
            print("wrote", out / f"{name}.png", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
