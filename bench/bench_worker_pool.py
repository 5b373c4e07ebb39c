"""The worker pool on one root, side by side in one run: one watcher vs two watchers started at once (CPU and
wall: leases make the second share the work instead of repeating it), `--workers 1` vs `--workers 2`
(records per hour), the lease overhead per record, and the viewed run's wait (time from a dashboard first
showing a run to its newest record, on a root of 12 runs, with and without the view).

    python bench/bench_worker_pool.py [--runs 3] [--snapshots 4] [--n 12000] [--d 64] [--repeat 1]

With --repeat R the three arms run in R rounds, alternated (the order reversed every other round, so load
drift falls on each arm alike), and each arm keeps its fastest round. Every arm starts from a fresh copy of
the same runs (no .cache) and runs `python -m diagnostics watch ROOT --once` as subprocesses; CPU is the
children's user+system seconds (the task processes included). Targets
(issue #25): two watchers ≤ 1.3× the CPU of one and no later; --workers 2 ≥ 1.6× the records/hour of one
on 2 cores; the viewed run's newest record first.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from diagnostics.store import record  # noqa: E402
from diagnostics.work import lease, viewing  # noqa: E402
from runformat.layout import Storage  # noqa: E402
from runformat.reader import list_runs, open_run  # noqa: E402
from runformat.writer import RunWriter  # noqa: E402


def make_root(root: str, runs: int, snapshots: int, n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    for r in range(runs):
        with RunWriter(root, f"run-{r:02d}", {"description": "pool bench", "contrastive": {"temperature": 0.1}}) as w:
            for s in range(snapshots):
                z = rng.standard_normal((n, d)).astype(np.float32)
                w.log_snapshot(
                    s * 100,
                    embeddings=z,
                    positives=z + 0.3 * rng.standard_normal((n, d)).astype(np.float32),
                    labels=np.arange(n) % 10,
                )
                time.sleep(0.01)  # distinct sidecar mtimes: "newest first" is well defined


def fresh(src: str) -> str:
    dst = tempfile.mkdtemp(prefix="pool-")
    for name in os.listdir(src):
        shutil.copytree(os.path.join(src, name), os.path.join(dst, name), ignore=shutil.ignore_patterns(".cache"))
    return dst


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def watchers(root: str, count: int, workers: int = 1) -> tuple[float, float]:
    """(wall s, CPU s) of `count` watchers started at once, each with `workers` task processes."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "diagnostics", "watch", root, "--once", "--poll", "1", "--workers", str(workers)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"watch exited {p.returncode}")
    return time.perf_counter() - t0, children_cpu() - cpu0


def check_once(root: str) -> int:
    """Records on disk; every snapshot must have exactly one record folder (computed once, none torn)."""
    total = 0
    for run in list_runs(root):
        folders = os.listdir(os.path.join(run.path, ".cache", "records"))
        steps = run.snapshot_steps()
        assert len(folders) == len(steps) and all(record.load(run, s) is not None for s in steps), run.name
        total += len(steps)
    return total


def lease_overhead(root: str, count: int = 200) -> float:
    """Seconds to take, renew and release one lease (local disk)."""
    storage = Storage(root)
    t0 = time.perf_counter()
    for i in range(count):
        held, _ = lease.acquire(storage, lease.lease_path(storage, "bench", i), "record")
        held.renew()
        held.release()
    return (time.perf_counter() - t0) / count


def viewed_wait(src: str, view: bool) -> float:
    """Seconds from a page first showing the oldest-written run to its newest record, one watcher."""
    root = fresh(src)
    target = sorted(r.name for r in list_runs(root))[0]  # written first: the last one newest-first reaches
    run = open_run(target, root=root)
    newest = run.snapshot_steps()[-1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "diagnostics", "watch", root, "--poll", "0.2"], cwd=REPO, stdout=subprocess.DEVNULL
    )
    try:
        t0 = time.perf_counter()
        while record.load(run, newest) is None:
            if view:
                viewing.show_runs(root, [target], "bench-session")  # what dashboard/pending.py does per page
            time.sleep(0.1)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--snapshots", type=int, default=4)
    p.add_argument("--n", type=int, default=12000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--view-runs", type=int, default=12)
    p.add_argument("--view-n", type=int, default=4000)
    p.add_argument("--repeat", type=int, default=1, help="rounds of the three arms, alternated; best kept")
    p.add_argument("--no-view", action="store_true", help="skip the viewed-run arms")
    args = p.parse_args()
    src = tempfile.mkdtemp(prefix="pool-src-")
    make_root(src, args.runs, args.snapshots, args.n, args.d)
    records = args.runs * args.snapshots
    print(
        f"root: {args.runs} runs x {args.snapshots} snapshots of {args.n} x {args.d}; {os.cpu_count()} cores; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    arms: dict[str, tuple[float, float]] = {}
    plan = (("one watcher", 1, 1), ("two watchers", 2, 1), ("--workers 2", 1, 2))
    for r in range(args.repeat):
        for name, count, workers in plan if r % 2 == 0 else plan[::-1]:
            root = fresh(src)
            wall, cpu = watchers(root, count, workers)
            assert check_once(root) == records
            shutil.rmtree(root, ignore_errors=True)
            print(
                f"round {r + 1} {name:14s} wall {wall:7.1f} s  CPU {cpu:7.1f} s  records/hour "
                f"{3600 * records / wall:8.0f}  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if name not in arms or wall < arms[name][0]:
                arms[name] = (wall, cpu)
    (w1, c1), (w2, c2), (wp, _) = arms["one watcher"], arms["two watchers"], arms["--workers 2"]
    print(f"two watchers / one: CPU {c2 / c1:.2f}x (target <= 1.3), wall {w2 / w1:.2f}x (target <= 1.0)")
    print(f"--workers 2 / 1: records/hour {w1 / wp:.2f}x (target >= 1.6 on 2 free cores)")
    print(f"lease take+renew+release: {1e3 * lease_overhead(tempfile.mkdtemp(prefix='lease-')):.2f} ms per record")

    if args.no_view:
        return
    view_src = tempfile.mkdtemp(prefix="view-src-")
    make_root(view_src, args.view_runs, 2, args.view_n, args.d)
    without, with_view = viewed_wait(view_src, False), viewed_wait(view_src, True)
    print(
        f"viewed run's newest record, {args.view_runs} runs x 2 snapshots of {args.view_n}: "
        f"{with_view:.1f} s with the view, {without:.1f} s without ({without / with_view:.1f}x sooner)"
    )
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(view_src, ignore_errors=True)


if __name__ == "__main__":
    main()
