"""What a Projections page user waits for: the first projection of a snapshot (computed and written beside
the run) and the same projection again (read back from the run's cache), at 5k / 20k / 50k points.

    python bench/bench_projection_page.py                      # pca and tsne at 5k, 20k, 50k
    python bench/bench_projection_page.py --methods pca tsne umap --sizes 5000 20000

Both timings go through `diagnostics.store.cache.cached_projection`, the call the page makes, on a synthetic run
(128-d embeddings in 10 clusters) written with the real RunWriter. Prints a markdown table for
docs/projections.md with the first/cached ratio measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diagnostics import open_run  # noqa: E402
from diagnostics.store.cache import cached_projection  # noqa: E402
from runformat.writer import RunWriter  # noqa: E402


def write_run(root: str, n: int, d: int = 128, classes: int = 10) -> str:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    z = (2.0 * rng.standard_normal((classes, d)))[labels] + 0.5 * rng.standard_normal((n, d))
    name = f"bench-{n}"
    writer = RunWriter(root, name, config={"description": "projection page benchmark"})
    writer.log_snapshot(0, embeddings=z.astype(np.float16), labels=labels)
    writer.close()
    return name


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--methods", nargs="+", default=["pca", "tsne"], choices=["pca", "tsne", "umap"])
    args = parser.parse_args()
    if "umap" in args.methods:
        from diagnostics.measure import warmup

        warmup.start_umap_warmup()
        warmup.wait_for_umap_warmup()  # the page warms UMAP at server start; do not bill it to a fit
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print("| N | method | first projection (s) | cached (ms) | first / cached |")
    print("|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as root:
        for n in args.sizes:
            run = open_run(write_run(root, n), root=root)
            for method in args.methods:
                first = timed(lambda: cached_projection(run, 0, method))
                again = min(timed(lambda: cached_projection(run, 0, method)) for _ in range(3))
                print(f"| {n:,} | {method} | {first:.2f} | {1000 * again:.1f} | {first / again:,.0f}× |", flush=True)


if __name__ == "__main__":
    main()
