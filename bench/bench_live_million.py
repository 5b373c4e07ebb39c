"""Live on a run of 1,000,000 metric lines (issue 24 item 17): seconds from opening Live in headless Chromium
until its chart is drawn, then the same after a reload (the server's Run already holds the frame), and the
server's peak RSS (VmHWM). Each checkout given is served in turn on the same run.

    python bench/bench_live_million.py [--lines 1000000] [--repo DIR ...]   # a baseline first, then this one
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE), str(HERE / "tests")]

import browser  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402


def write_run(root: str, lines: int) -> None:
    from runformat.writer import RunWriter

    with RunWriter(root, "million", config={"contrastive": {"temperature": 0.1}}):
        pass
    t0 = 1.7e9
    with open(os.path.join(root, "million", "metrics.jsonl"), "w") as f:
        for start in range(0, lines, 10_000):
            f.write(
                "".join(
                    json.dumps(
                        {
                            "step": i,
                            "wall_time": t0 + i * 0.01,
                            "loss/total": 1.0 / (1 + i),
                            "loss/contrastive": 0.5 + 0.1 * ((i * 7919) % 13) / 13,
                            "loss/reconstruction": 0.1,
                            "lr": 1e-3,
                            "temperature": 0.1,
                            "grad_norm": 1.0 + (i % 1000) / 1000,
                        }
                    )
                    + "\n"
                    for i in range(start, min(start + 10_000, lines))
                )
            )


def drawn(page, timeout_s: float = 300) -> float:
    t = time.monotonic()
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=timeout_s * 1000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        ".getAttribute('data-test-script-state') === 'notRunning'",
        timeout=timeout_s * 1000,
    )
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repo", nargs="+", default=[str(HERE)])
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as root:
        write_run(root, args.lines)
        size = os.path.getsize(os.path.join(root, "million", "metrics.jsonl"))
        print(f"{args.lines:,} lines, {size / 1e6:.0f} MB", flush=True)
        for repo in args.repo:
            browser.REPO = Path(repo)
            env = {"CONTRASTSCOPE_WORKER": "0", "PYTHONPATH": repo}
            with streamlit_server(root, env=env, timeout_s=90) as url, sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                port = url.rsplit(":", 1)[1]
                server = os.popen(f"pgrep -f 'streamlit run app.py.*--server.port {port}'").read().split()[0]
                t = time.monotonic()
                page.goto(url + "/live?runs=million&live_paused=true")
                drawn(page)
                first = time.monotonic() - t
                t = time.monotonic()
                page.reload()
                drawn(page)
                again = time.monotonic() - t
                points = page.evaluate(
                    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                    ".reduce((n, p) => n + p.data.reduce((m, t) => m + (t.x ? t.x.length : 0), 0), 0)"
                )
                hwm = next(
                    line.split()[1]
                    for line in Path(f"/proc/{server}/status").read_text().splitlines()
                    if line.startswith("VmHWM")
                )
                print(
                    f"repo {repo}: first view {first:.1f} s, after a reload {again:.1f} s, {points:,} points "
                    f"drawn, server peak RSS {int(hwm) / 1024:.0f} MB",
                    flush=True,
                )
                b.close()


if __name__ == "__main__":
    main()
