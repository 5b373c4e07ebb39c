"""How fast the monitoring pages open: Home over 50 runs, and Live / Geometry / Collapse on cached snapshots.

    python bench/bench_dashboard.py [--runs 50] [--n 300]

Writes synthetic runs to a temporary root, lets the worker write every snapshot record
(`worker.watch(once=True)`), then times AppTest runs of each page in one process, side by side:
  first   — a fresh session: Streamlit's in-memory caches empty, numbers read from the records;
  rerun   — the same session again (what every interaction or Live refresh costs).
and, below the pages, the loader Home relies on: a run's table from its records vs the records computed.
Targets (issue): Home with 50 runs ~2 s; a page on a cached snapshot < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--n", type=int, default=300, help="rows per snapshot")
    args = parser.parse_args()

    import streamlit as st
    from streamlit.testing.v1 import AppTest
    from synthetic_runs import KINDS, write_synthetic_run

    from diagnostics import list_runs
    from diagnostics.judge import summary
    from diagnostics.store import record
    from diagnostics.work import worker

    root = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        start = time.perf_counter()
        for i in range(args.runs):
            write_synthetic_run(root, f"run-{i:03d}", kind=KINDS[i % len(KINDS)], n=args.n, seed=i, images=False)
        print(f"wrote {args.runs} runs (6 snapshots of {args.n}×32 each) in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        worker.watch(str(root), once=True)  # every record and default projection, as the dashboard's worker
        fill = time.perf_counter() - start
        print(f"the worker measured every snapshot in {fill:.1f} s ({fill / args.runs:.2f} s per run)\n")

        os.environ["CONTRASTSCOPE_RUNS"] = str(root)
        os.environ["CONTRASTSCOPE_WORKER"] = "0"
        print(f"{'page':<34}{'first (s)':>10}{'rerun (s)':>10}")
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        at.run()  # imports torch, plotly & co once; not what a user waits for on the next page
        for label, page, runs in (
            ("Home, all runs", None, None),
            ("Live, 3 runs", "pages/live.py", ["run-000", "run-001", "run-002"]),
            ("Geometry, 1 run", "pages/geometry.py", ["run-000"]),
            ("Collapse, 1 run", "pages/collapse.py", ["run-001"]),
        ):
            st.cache_data.clear()
            st.cache_resource.clear()
            at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
            at.session_state["runs"] = runs or []
            if page:
                at.switch_page(page)
            first = timed(at.run)
            assert not at.exception, [e.value for e in at.exception]
            rerun = timed(at.run, repeat=3)
            print(f"{label + (f' ({args.runs})' if page is None else ''):<34}{first:>10.2f}{rerun:>10.2f}")

        run = list_runs(root)[0]
        hit = timed(lambda: summary.run_table_ready(run), repeat=3)
        miss = timed(lambda: [record.compute(run, s) for s in run.snapshot_steps()])
        print(
            f"\none run's table (6 snapshots): from its records {hit * 1000:.0f} ms, records computed "
            f"{miss * 1000:.0f} ms (×{miss / hit:.0f})"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
