"""How long every dashboard page's script run takes on a root of big snapshots, while the background worker
is still measuring them (pending) and once it is done (ready); and Home over many small runs.

    python bench/bench_pages.py [--n 50000] [--d 128] [--runs 200] [--root DIR] [--only all|big|home]
    python bench/bench_pages.py --only home --root DIR --before OTHER_CHECKOUT   # before/after, alternated

Writes (in --root, kept for the next run, or a temporary folder removed at the end):
  big/   one run, three N×d snapshots with positives and labels (the normal probe-set size, not 500 points);
  many/  --runs runs of one small snapshot each, measured by the worker once.
Then, in one process, times AppTest script runs, each page in a fresh session with Streamlit's caches cleared:
  pending — the records are not there yet: the dashboard's own supervised worker (`python -m diagnostics watch`,
            a separate process) was started a moment before and competes for the CPU, as it would for a user;
  ready   — once the worker has finished every record and the default projection (with --root, the first run
            keeps a copy of the run's .cache, so later runs restore it instead of measuring again);
  Home over --runs runs with every record ready: first visit (caches cleared) and again (a new session, caches
  warm). --before times another checkout's Home the same way, alternating the two in subprocesses.
Targets (issue 10): every page's script run within 2 s on the 50k root; Home with 200 runs within 2 s.
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

REPO = Path(__file__).resolve().parent.parent  # the checkout timed (--repo: another one)
PAGES = [
    ("Home", None),
    ("Live", "pages/live.py"),
    ("Geometry", "pages/geometry.py"),
    ("Collapse", "pages/collapse.py"),
    ("Projections", "pages/projections.py"),
    ("Compare", "pages/compare.py"),
    ("Report", "pages/report.py"),
]


def write_big_run(root: Path, n: int, d: int, steps=(100, 200, 300)) -> str:
    from runformat.writer import RunWriter

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 100
    centers = rng.standard_normal((100, d)).astype(np.float32)
    with RunWriter(
        str(root),
        "big",
        config={"description": f"{len(steps)} snapshots of {n:,}×{d}", "contrastive": {"temperature": 0.1}},
    ) as w:
        for i, step in enumerate(steps):
            for s in range(steps[i - 1] if i else 0, step + 1):
                w.log_metrics(s, {"loss/total": 5.0 / (1 + s), "temperature": 0.1})
            z = centers[labels] + (1.0 - 0.2 * i) * rng.standard_normal((n, d)).astype(np.float32)
            w.log_snapshot(
                step, embeddings=z, positives=z + 0.3 * rng.standard_normal((n, d)).astype(np.float32), labels=labels
            )
    return "big"


def write_many_runs(root: Path, count: int) -> None:
    from synthetic_runs import KINDS, write_synthetic_run

    for i in range(count):
        write_synthetic_run(
            root,
            f"run-{i:03d}",
            kind=KINDS[i % len(KINDS)],
            steps=10,
            snapshot_every=10,
            n=64,
            d=16,
            seed=i,
            images=False,
        )


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


def big_pages(root: Path, n: int, d: int, wait_s: float) -> None:
    """Every page on the big run: pending (worker running, records absent) then ready."""
    from dashboard import worker_process
    from diagnostics import open_run
    from diagnostics.store import record
    from diagnostics.work import worker

    big, kept = root / "big", root / "big-cache"  # kept: the run's .cache once the worker had finished it
    cache = big / "big" / ".cache"
    if not (big / "big").exists():
        big.mkdir(parents=True, exist_ok=True)
        write_big_run(big, n, d)
    shutil.rmtree(cache, ignore_errors=True)
    os.environ[worker_process.WORKER_ENV] = "1"
    sup = worker_process.ensure_worker(str(big))  # the dashboard's worker, as `streamlit run` starts it
    os.environ[worker_process.WORKER_ENV] = "0"  # the pages below start no worker of their own
    time.sleep(2.0)  # it has started and is measuring the newest snapshot
    print(f"load average {os.getloadavg()[0]:.1f} before the pending pages", flush=True)
    pending = {}
    for label, page in PAGES:
        clear_caches()
        pending[label] = page_run(big, page, ["big"])
        print(f"{label:<36}{pending[label]:>10.2f}", flush=True)
    run = open_run("big", root=str(big))
    print(f"{3 - len(record.ready_steps(run))} of 3 records were still pending after the pending pages", flush=True)
    if kept.exists():
        sup.stop()
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(kept, cache)
        print("restored the records and projection the worker wrote on an earlier run", flush=True)
    else:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < wait_s and not (
            len(record.ready_steps(run)) == 3 and (worker.status(str(big)) or {}).get("state") == "idle"
        ):
            time.sleep(0.5)
        print(f"the worker was done {time.perf_counter() - t0:.0f} s later", flush=True)
        sup.stop()
        shutil.copytree(cache, kept)
    assert len(record.ready_steps(run)) == 3, "the worker did not finish every record"
    print(f"load average {os.getloadavg()[0]:.1f} before the ready pages", flush=True)
    ready = {}
    for label, page in PAGES:
        clear_caches()
        ready[label] = page_run(big, page, ["big"])
    print(f"\n{'page (one run, 3 × ' + f'{n:,}×{d})':<36}{'pending (s)':>12}{'ready (s)':>11}")
    for label, _ in PAGES:
        print(f"{label:<36}{pending[label]:>12.2f}{ready[label]:>11.2f}", flush=True)


def home_pages(root: Path, runs: int) -> tuple[float, float]:
    """(first visit, again) of Home over `runs` small runs whose records are all ready."""
    from diagnostics.work import worker

    many = root / "many"
    if not many.exists():
        many.mkdir(parents=True)
        write_many_runs(many, runs)
        worker.watch(str(many), once=True)
    clear_caches()
    first = page_run(many, None, [])
    return first, page_run(many, None, [])


def compare_home(args) -> None:
    """Home over the many runs, this checkout against --before, alternated in fresh processes."""
    import json
    import subprocess

    from diagnostics.work import worker

    home_pages(Path(args.root), args.runs)  # build once, with this checkout
    worker.watch(str(Path(args.root) / "many"), once=True)  # what this checkout's worker adds (run states)
    times = {"before": [], "after": []}
    for i in range(args.repeat):
        for label, repo in (("before", args.before), ("after", str(REPO))):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--only",
                    "home",
                    "--root",
                    args.root,
                    "--repo",
                    repo,
                    "--runs",
                    str(args.runs),
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            times[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(
                f"{label:<7} try {i + 1}: first {times[label][-1]['first']:.2f} s, again {times[label][-1]['again']:.2f} s, "  # noqa: E501
                f"load {times[label][-1]['load']:.1f}",
                flush=True,
            )
    best = {k: {m: min(t[m] for t in v) for m in ("first", "again")} for k, v in times.items()}
    print(
        f"\nHome, {args.runs} runs, best of {args.repeat}: first visit {best['before']['first']:.2f} -> "
        f"{best['after']['first']:.2f} s ({best['before']['first'] / best['after']['first']:.1f}×); again "
        f"{best['before']['again']:.2f} -> {best['after']['again']:.2f} s "
        f"({best['before']['again'] / best['after']['again']:.1f}×)"
    )


def main() -> None:
    global REPO
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--wait-s", type=float, default=1800, help="longest wait for the worker to finish")
    parser.add_argument("--root", help="build the roots here and keep them for the next run")
    parser.add_argument("--only", choices=("all", "big", "home"), default="all")
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose pages are timed")
    parser.add_argument("--before", help="another checkout: Home timed in both, alternated (needs --root)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.argv[1:] = []  # the dashboard reads `--runs DIR` from the command line: not this script's --runs N
    REPO = Path(args.repo).resolve()
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    if args.before:
        return compare_home(args)

    from dashboard import worker_process

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so a killed bench still stops its worker
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        os.environ[worker_process.WORKER_ENV] = "0"
        warm = root / "warm-up"
        if not warm.exists():
            warm.mkdir(parents=True)
            write_many_runs(warm, 1)
        page_run(warm, "pages/collapse.py", [])  # imports torch, plotly & co once: no page pays for that
        skip_component_scan()
        if args.only in ("all", "big"):
            big_pages(root, args.n, args.d, args.wait_s)
        if args.only in ("all", "home"):
            first, again = home_pages(root, args.runs)
            if args.json:
                import json

                print(json.dumps({"first": first, "again": again, "load": os.getloadavg()[0]}))
            else:
                print(
                    f"{f'Home, {args.runs} runs, ready':<36}first visit {first:.2f} s, again {again:.2f} s "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
    finally:
        for sup in list(worker_process._supervisors.values()):
            sup.stop()
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
