"""Reader speed: a 1,000,000-line metrics file, incremental re-reads, and listing a root with 200 runs; and
what the bounds (runformat.bounds) cost beside the parse they guard, measured in the same run.

    python bench/bench_reader.py [--lines 1000000] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from diagnostics import list_runs, open_run  # noqa: E402
from runformat import bounds, layout  # noqa: E402
from runformat.writer import RunWriter  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-reader-")
    try:
        with RunWriter(root, "big") as run:
            run.log_metrics(0, {"loss/total": 1.0})
        path = os.path.join(root, "big", layout.METRICS_FILE)
        with open(path, "w") as f:
            for step in range(args.lines):
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "wall_time": 1.7e9 + step * 0.01,
                            "loss/total": 1.0 / (step + 1),
                            "loss/contrastive": 0.5,
                            "temperature": 0.1,
                            "lr": 1e-3,
                            "batch/pos_cos": 0.8,
                            "batch/neg_cos": 0.1,
                        }
                    )
                    + "\n"
                )
        size_mb = os.path.getsize(path) / 1e6
        r = open_run(os.path.join(root, "big"))
        df, t_full = timed(r.metrics)
        with open(path, "a") as f:
            for step in range(args.lines, args.lines + 100):
                f.write(json.dumps({"step": step, "wall_time": 0.0, "loss/total": 0.1}) + "\n")
        df2, t_incr = timed(r.metrics)
        _, t_cached = timed(r.metrics)
        assert len(df) == args.lines and len(df2) == args.lines + 100
        print(
            f"metrics: {args.lines:,} lines ({size_mb:.0f} MB, 8 columns): first load {t_full:.2f} s; "
            f"after 100 new lines {t_incr:.2f} s; unchanged file {t_cached * 1e3:.2f} ms"
        )
        data = open(path, "rb").read()
        _, t_scan = timed(lambda: bounds.line_problems(data))
        print(f"  of the first load, the line length/depth scan is {t_scan:.2f} s ({100 * t_scan / t_full:.0f} %)")
        with RunWriter(root, "snap") as run:
            run.log_snapshot(
                0, embeddings=np.random.default_rng(0).standard_normal((100_000, 128)), labels=np.arange(100_000)
            )
        snap_run = open_run(os.path.join(root, "snap"))
        emb = os.path.join(root, "snap", layout.SNAPSHOT_DIR, layout.snapshot_dirname(0), "embeddings.npy")
        _, t_header = timed(lambda: [bounds.npy_header(snap_run.storage, emb, emb) for _ in range(100)])
        _, t_snap = timed(lambda: [snap_run.snapshot(0) for _ in range(100)])
        print(
            f"  snapshot(0) of 100,000x128 (mmap): {t_snap * 10:.2f} ms, of which the .npy header checks "
            f"{t_header * 10 * 2:.2f} ms (2 arrays)"
        )

        for i in range(args.runs):
            with RunWriter(root, f"run-{i:03d}", config={"i": i}, handle_sigterm=False) as run:
                run.log_metrics(0, {"loss": 1.0})
        runs, t_list = timed(lambda: list_runs(root))
        statuses, t_status = timed(lambda: [x.status for x in runs])
        print(
            f"list_runs on {len(runs)} runs: {t_list * 1e3:.1f} ms; plus reading every run.json for its status "
            f"{t_status * 1e3:.1f} ms (target < 1 s)"
        )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
