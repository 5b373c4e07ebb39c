"""CPU of an idle Home tab (issue 24 item 17): the sample runs, measured once by the worker, served with no
worker; one headless Chromium tab on Home left alone. Prints the CPU seconds the server and the browser spent
per wall second over the window (1.0 = one core), after a settle period.

    python bench/bench_idle_home.py [--seconds 30] [--runs 4] [--repo DIR ...]
    # --repo: the checkouts to serve in turn on the same measured root (a baseline first, then this one)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry), fields))
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo += [c for c, _ in children.get(p, [])]
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=15.0)
    ap.add_argument("--repo", nargs="+", default=[str(HERE)])
    ap.add_argument("--runs", type=int, default=4, help="how many sample runs (the worker measures them first)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from diagnostics.work import worker

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "runs")
        os.makedirs(root)
        for name in sorted(os.listdir(HERE / "sample_runs"))[: args.runs]:
            shutil.copytree(
                HERE / "sample_runs" / name, os.path.join(root, name), ignore=shutil.ignore_patterns(".cache")
            )
        t = time.monotonic()
        worker.watch(root, once=True)
        print(f"{args.runs} sample runs measured in {time.monotonic() - t:.0f} s", flush=True)
        for repo in args.repo:
            env = {"CONTRASTSCOPE_WORKER": "0", "PYTHONPATH": repo}
            import browser

            browser.REPO = Path(repo)  # streamlit_server runs app.py from browser.REPO
            with streamlit_server(root, env=env, timeout_s=90) as url, sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url + "/")
                wait_for_app(page, timeout_ms=120_000)
                page.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)
                time.sleep(args.settle)
                port = url.rsplit(":", 1)[1]
                server = int(os.popen(f"pgrep -f 'streamlit run app.py.*--server.port {port}'").read().split()[0])

                def sample() -> tuple[float, float]:  # (server, browser: every other descendant of this process)
                    mine = sum(os.times()[:2])
                    return cpu_seconds(server), cpu_seconds(os.getpid()) - mine

                (s0, a0), t0 = sample(), time.monotonic()
                time.sleep(args.seconds)
                (s1, a1), dt = sample(), time.monotonic() - t0
                print(
                    f"repo {repo}: idle Home over {dt:.0f} s: server {(s1 - s0) / dt:.1%} of a core, "
                    f"browser {((a1 - s1) - (a0 - s0)) / dt:.1%}",
                    flush=True,
                )
                b.close()


if __name__ == "__main__":
    main()
