"""Projection speed and quality, ours vs the library defaults, side by side in one run.

    python bench/bench_projection.py                       # N = 5,000 and 20,000
    python bench/bench_projection.py --sizes 5000,20000,50000 --parts umap-cold,tsne,umap,cache

Data: a 10-component Gaussian mixture in 128-D (unequal spreads, L2-normalised rows), the cosine geometry
a contrastive encoder produces. Trustworthiness (k=10) is computed on a fixed random 2,000-point subsample
of the layout (the full N×N would dominate the timing), the same subsample for every method.
scikit-learn's TSNE is skipped above 20,000 points (it takes many minutes there).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np
from sklearn.manifold import trustworthiness

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diagnostics import open_run  # noqa: E402
from diagnostics.measure.projection import project, unit_rows  # noqa: E402
from diagnostics.store import cache

TRUST_SAMPLE = 2000
SKLEARN_TSNE_MAX_N = 20000


def mixture(n: int, d: int = 128, k: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    scales = rng.uniform(0.3, 0.8, size=k)
    labels = rng.integers(0, k, size=n)
    z = centres[labels] + scales[labels, None] * rng.standard_normal((n, d))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def trust(x: np.ndarray, y: np.ndarray) -> float:
    idx = np.random.default_rng(1).choice(len(x), size=min(TRUST_SAMPLE, len(x)), replace=False)
    return float(trustworthiness(x[idx], y[idx], n_neighbors=10))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def row(n, method, impl, seconds, quality=None, note=""):
    q = "" if quality is None else f"{quality:.3f}"
    print(f"| {n:>6} | {method:<7} | {impl:<40} | {seconds:8.2f} | {q:>6} | {note} |", flush=True)


def umap_cold():
    import umap  # noqa: F401  (import time is not compile time)

    z = mixture(200, d=16)
    _, cold = timed(lambda: project(z, "umap", seed=0, n_epochs=20, force_approximation_algorithm=True))
    _, warm = timed(lambda: project(z, "umap", seed=0, n_epochs=20, force_approximation_algorithm=True))
    row(200, "umap", "first fit in the process (numba compiles)", cold, note="cold")
    row(200, "umap", "second fit, same process", warm, note=f"warm; cold/warm = {cold / warm:.0f}x")


def bench_tsne(n, x, run):
    from sklearn.manifold import TSNE

    y, t = timed(lambda: cache.cached_projection(run, 0, "tsne"))
    row(n, "t-SNE", "ours: openTSNE (auto BH/FFT, n_jobs=2, PCA init)", t, trust(x, y))
    if n <= SKLEARN_TSNE_MAX_N:
        ys, ts = timed(lambda: TSNE(n_components=2, init="pca", random_state=0).fit_transform(x))
        row(n, "t-SNE", "sklearn TSNE (Barnes-Hut, init=pca)", ts, trust(x, ys), f"ours {ts / t:.1f}x faster")
    else:
        row(n, "t-SNE", "sklearn TSNE", float("nan"), note=f"skipped above {SKLEARN_TSNE_MAX_N} points")


def bench_umap(n, x, run):
    import umap

    y, t = timed(lambda: cache.cached_projection(run, 0, "umap"))
    row(n, "UMAP", "ours: umap-learn, seed=0 (deterministic, 1 thread)", t, trust(x, y))
    yp, tp = timed(lambda: project(x, "umap", seed=None))
    row(n, "UMAP", "ours, seed=None (threaded, not reproducible)", tp, trust(x, yp), f"threads {t / tp:.2f}x")
    yd, td = timed(lambda: umap.UMAP().fit_transform(x))
    row(n, "UMAP", "umap-learn defaults UMAP().fit_transform", td, trust(x, yd), f"ours/defaults {t / td:.2f}")


def bench_cache(n, x, run):
    _, t_pca = timed(lambda: project(x, "pca"))
    row(n, "PCA", "ours: numpy eigh of the d×d covariance", t_pca)
    _, first = timed(lambda: cache.cached_projection(run, 0, "pca"))
    row(n, "PCA", "cached_projection, first (read snapshot + PCA + write)", first)
    fresh = open_run(run.path)
    _, hit = timed(lambda: cache.cached_projection(fresh, 0, "pca"))
    row(n, "PCA", "cached_projection, second (disk hit, new Run)", hit, note=f"{first / hit:.0f}x")
    for method in ("tsne", "umap"):
        if cache.is_projection_cached(fresh, 0, method):
            _, hit = timed(lambda m=method: cache.cached_projection(open_run(run.path), 0, m))
            row(n, method, "cached_projection, disk hit", hit)
    _, s_first = timed(lambda: cache.cached_summary(fresh, 0))
    row(n, "summary", "cached_summary, first (every metric)", s_first)
    _, s_hit = timed(lambda: cache.cached_summary(open_run(run.path), 0))
    row(n, "summary", "cached_summary, second (disk hit, new Run)", s_hit, note=f"{s_first / s_hit:.0f}x")


def write_run(root: str, n: int, x: np.ndarray):
    from runformat.writer import RunWriter

    labels = np.arange(n) % 10
    with RunWriter(root, f"bench-{n}", config={"contrastive": {"temperature": 0.1}}) as w:
        w.log_metrics(0, {"loss/total": 1.0})
        w.log_snapshot(0, embeddings=x, positives=x, labels=labels)
    return open_run(os.path.join(root, f"bench-{n}"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(":", 1)[1].strip()
        cpu = model
    except (OSError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000", help="comma-separated N (e.g. 5000,20000,50000)")
    parser.add_argument("--parts", default="umap-cold,tsne,umap,cache")
    args = parser.parse_args()
    parts = args.parts.split(",")
    print(f"machine: {machine()}")
    import openTSNE
    import sklearn
    import umap

    print(f"openTSNE {openTSNE.__version__}, umap-learn {umap.__version__}, scikit-learn {sklearn.__version__}")
    print("| N      | method  | implementation                           | seconds  | trust  | note |")
    print("|--------|---------|------------------------------------------|----------|--------|------|")
    if "umap-cold" in parts:
        umap_cold()
    with tempfile.TemporaryDirectory() as root:
        for n in (int(s) for s in args.sizes.split(",")):
            x = mixture(n)
            run = write_run(root, n, x)
            x = unit_rows(run.snapshot(0).embeddings)[0]  # what the layouts see (stored as float16)
            for part, fn in (("tsne", bench_tsne), ("umap", bench_umap), ("cache", bench_cache)):
                if part in parts:
                    fn(n, x, run)


if __name__ == "__main__":
    main()
