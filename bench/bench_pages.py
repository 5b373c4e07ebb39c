"""How long every dashboard page's script run takes on a cold root of big snapshots, while the background
worker is still measuring them, and again once it is done; and Home over many small runs.

    python bench/bench_pages.py [--n 50000] [--d 128] [--runs 200]

Writes (in a temporary folder, removed at the end):
  big/   one run, three N×d snapshots with positives and labels (the normal probe-set size, not 500 points);
  many/  --runs runs of one small snapshot each.
Then, in one process, times AppTest script runs side by side:
  cold   — the records are not there yet: the dashboard's own supervised worker (`python -m diagnostics watch`,
           a separate process) was started a moment before and competes for the CPU, as it would for a user;
  ready  — the same page in a fresh session once the worker has finished (Streamlit caches cleared).
Target (issue 10): every page's script run within 2 s on the cold 50k root; Home with 200 runs within 2 s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
PAGES = [("Home", None), ("Live", "pages/live.py"), ("Geometry", "pages/geometry.py"),
         ("Collapse", "pages/collapse.py"), ("Projections", "pages/projections.py"),
         ("Compare", "pages/compare.py"), ("Report", "pages/report.py")]


def write_big_run(root: Path, n: int, d: int, steps=(100, 200, 300)) -> str:
    from training import RunWriter
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 100
    centers = rng.standard_normal((100, d)).astype(np.float32)
    with RunWriter(str(root), "big", config={"description": f"{len(steps)} snapshots of {n:,}×{d}",
                                             "contrastive": {"temperature": 0.1}}) as w:
        for i, step in enumerate(steps):
            for s in range(steps[i - 1] if i else 0, step + 1):
                w.log_metrics(s, {"loss/total": 5.0 / (1 + s), "temperature": 0.1})
            z = centers[labels] + (1.0 - 0.2 * i) * rng.standard_normal((n, d)).astype(np.float32)
            w.log_snapshot(step, embeddings=z, positives=z + 0.3 * rng.standard_normal((n, d)).astype(np.float32),
                           labels=labels)
    return "big"


def write_many_runs(root: Path, count: int) -> None:
    from synthetic_runs import KINDS, write_synthetic_run
    for i in range(count):
        write_synthetic_run(root, f"run-{i:03d}", kind=KINDS[i % len(KINDS)], steps=10, snapshot_every=10,
                            n=64, d=16, seed=i, images=False)


def page_run(root: Path, page: str | None, runs: list[str]) -> float:
    """Seconds of one script run of `page` in a fresh AppTest session (a new user opening it)."""
    from streamlit.testing.v1 import AppTest
    os.environ["CONTRASTSCOPE_RUNS"] = str(root)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.session_state["runs"] = runs
    if page:
        at.switch_page(page)
    start = time.perf_counter()
    at.run()
    took = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{page or 'Home'}: {[e.value for e in at.exception]}")
    return took


def skip_component_scan() -> None:
    """AppTest scans every installed package's metadata for custom components on each run (~3 s here); a
    server does that once at start-up. Measure the page's script run, not that scan."""
    from streamlit.components.v2.component_manager import BidiComponentManager
    BidiComponentManager.discover_and_register_components = lambda self, *a, **k: None


def clear_caches() -> None:
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--wait-s", type=float, default=1800, help="longest wait for the worker to finish")
    args = parser.parse_args()

    from dashboard import worker_process
    from diagnostics import open_run, record, worker

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so a killed bench still stops its worker

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    big, many = tmp / "big", tmp / "many"
    big.mkdir()
    many.mkdir()
    try:
        t0 = time.perf_counter()
        write_big_run(big, args.n, args.d)
        write_many_runs(many, args.runs)
        print(f"wrote 3 snapshots of {args.n:,}×{args.d} and {args.runs} small runs in "
              f"{time.perf_counter() - t0:.0f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
              flush=True)
        os.environ[worker_process.WORKER_ENV] = "0"  # the pages below start no worker of their own
        page_run(many, "pages/collapse.py", [])  # imports torch, plotly & co once: no page pays for that
        skip_component_scan()

        os.environ[worker_process.WORKER_ENV] = "1"
        sup = worker_process.ensure_worker(str(big))  # the dashboard's worker, as `streamlit run` starts it
        os.environ[worker_process.WORKER_ENV] = "0"
        time.sleep(2.0)  # it has started and is measuring the newest snapshot
        print(f"\n{'page (one run, 3 × ' + f'{args.n:,}×{args.d})':<36}{'cold (s)':>10}", flush=True)
        cold = {}
        for label, page in PAGES:
            clear_caches()
            cold[label] = page_run(big, page, ["big"])
            print(f"{label:<36}{cold[label]:>10.2f}", flush=True)
        run = open_run("big", root=str(big))
        print(f"{3 - len(record.ready_steps(run))} of 3 records were still pending after the cold pages", flush=True)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.wait_s and not (
                len(record.ready_steps(run)) == 3 and (worker.status(str(big)) or {}).get("state") == "idle"):
            time.sleep(0.5)
        print(f"the worker was done {time.perf_counter() - t0:.0f} s later", flush=True)
        sup.stop()
        ready = {}
        for label, page in PAGES:
            clear_caches()
            ready[label] = page_run(big, page, ["big"])
        print(f"\n{'page (one run, 3 × ' + f'{args.n:,}×{args.d})':<36}{'cold (s)':>10}{'ready (s)':>11}")
        for label, _ in PAGES:
            print(f"{label:<36}{cold[label]:>10.2f}{ready[label]:>11.2f}", flush=True)

        clear_caches()
        home_cold = page_run(many, None, [])
        worker.watch(str(many), once=True)
        clear_caches()
        home_ready = page_run(many, None, [])
        home_again = page_run(many, None, [])
        print(f"{f'Home, {args.runs} runs':<36}{home_cold:>10.2f}{home_ready:>11.2f}   "
              f"(same session again: {home_again:.2f} s)")
    finally:
        for sup in list(worker_process._supervisors.values()):
            sup.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
