"""What the Cross-modal page computes itself on a big paired snapshot: the joint PCA, fitted on every row
(float16 as stored) against the drawn sample (MAX_PAIRS_SHOWN pairs, float32), side by side in one process;
then the page's whole script run in AppTest, cold (nothing cached) and warm.

    python bench/bench_crossmodal_page.py [--n 100000] [--d 128] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from timing import best_of  # noqa: E402  (bench/ is on sys.path: the script's own folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from dashboard.crossmodal_view import MAX_PAIRS_SHOWN, shown_rows
    from diagnostics.draw.crossmodal_figures import joint_projection
    from runformat.writer import RunWriter

    rng = np.random.default_rng(0)
    z_a = rng.standard_normal((args.n, args.d)).astype(np.float32)
    z_b = (z_a + 0.5 + rng.standard_normal((args.n, args.d))).astype(np.float32)  # a gap: shifted partners
    rows = shown_rows(args.n)
    a16, b16 = z_a.astype(np.float16), z_b.astype(np.float16)
    full = best_of(lambda: joint_projection(a16, b16), args.reps)
    sample = best_of(lambda: joint_projection(a16[rows].astype(np.float32), b16[rows].astype(np.float32)), args.reps)
    print(f"joint PCA, every row (2×{args.n:,}×{args.d}, float16): {full:.2f} s")
    print(f"joint PCA, drawn sample (2×{len(rows):,}, float32):       {sample:.2f} s   ratio {full / sample:.1f}×")

    with tempfile.TemporaryDirectory() as root:
        with RunWriter(root, "paired", config={"description": "bench"}) as w:
            w.log_snapshot(
                100,
                embeddings=z_a,
                paired_embeddings=z_b,
                modality_names=("image", "caption"),
                labels=rng.integers(0, 10, args.n),
            )
        os.environ.update(CONTRASTSCOPE_RUNS=root, CONTRASTSCOPE_WORKER="0")
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
        at.switch_page("pages/crossmodal.py")
        at.session_state["runs"] = ["paired"]
        for label in ("cold", "warm"):
            t = time.perf_counter()
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            print(
                f"Cross-modal page script run, {label}: {time.perf_counter() - t:.2f} s "
                f"({args.n:,} pairs, {MAX_PAIRS_SHOWN:,} drawn)"
            )


if __name__ == "__main__":
    main()
