"""What the Projections page's metadata search and selection link cost at 50k points, side by side.

    python bench/bench_projection_search.py [--n 50000] [--repeats 5]

Search: *cached* is the page's path (`projection_search.find` on the lower-cased columns built once per
snapshot by `haystack`); *cold* adds building them (a snapshot's first search); *uncached pandas* converts and
lower-cases every column on every query; *python loop* tests each row's values in Python. Selection link:
`selection_url.encode`/`decode` of a lasso-like selection (contiguous rows) and of scattered rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timing import best_of  # noqa: E402  (bench/ is on sys.path: the script's own folder)

from dashboard import selection_url  # noqa: E402
from dashboard.projection_search import find, haystack  # noqa: E402


def snapshot(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    words = np.array(["plain", "bold", "thin", "slanted", "upright", "wide"])
    metadata = pd.DataFrame(
        {
            "class_name": np.array([f"digit {k}" for k in range(10)])[labels],
            "split": np.where(rng.random(n) < 0.2, "eval", "train"),
            "augment_strength": rng.random(n).round(3),
            "sample_id": np.arange(n, dtype=np.int64),
            "caption": np.char.add(np.char.add(words[rng.integers(0, 6, n)], " "), words[rng.integers(0, 6, n)]),
        }
    )
    return SimpleNamespace(n=n, labels=labels, metadata=metadata)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    snap, query = snapshot(args.n), "Slanted"
    hay = haystack(snap)
    expected = find(hay, query)

    def uncached():
        cols = [snap.metadata[c].astype(str) for c in snap.metadata.columns] + [pd.Series(snap.labels).astype(str)]
        return np.logical_or.reduce([c.str.contains(query, case=False, regex=False).to_numpy() for c in cols])

    def loop():
        q = query.lower()
        rows = snap.metadata.astype(str).to_numpy()
        return np.array(
            [q in str(snap.labels[i]).lower() or any(q in v.lower() for v in rows[i]) for i in range(snap.n)]
        )

    assert np.array_equal(uncached(), expected) and np.array_equal(loop(), expected)
    timings = {
        "cached (page)": best_of(lambda: find(hay, query), args.repeats),
        "cold (build + find)": best_of(lambda: find(haystack(snap), query), args.repeats),
        "uncached pandas": best_of(uncached, args.repeats),
        "python loop": best_of(loop, max(1, args.repeats // 2)),
    }
    base = timings["cached (page)"]
    print(
        f"search over {args.n:,} rows x {snap.metadata.shape[1] + 1} columns, query {query!r} "
        f"({int(expected.sum()):,} matches); best of {args.repeats}"
    )
    print(f"{'':22s} {'ms':>9s} {'x cached':>9s}")
    for name, t in timings.items():
        print(f"{name:22s} {t * 1e3:9.1f} {t / base:9.1f}")

    rng = np.random.default_rng(1)
    for name, rows in (
        ("lasso (contiguous)", np.arange(args.n // 3, args.n // 3 + args.n // 10)),
        ("scattered 300", np.sort(rng.choice(args.n, 300, replace=False))),
        ("scattered 5%", np.sort(rng.choice(args.n, args.n // 20, replace=False))),
    ):
        text = selection_url.encode(rows)
        t_enc = best_of(lambda: selection_url.encode(rows), args.repeats)
        back, why = selection_url.decode(text, args.n)
        t_dec = best_of(lambda: selection_url.decode(text, args.n), args.repeats)
        fits = "in the link" if len(text) <= selection_url.MAX_URL_CHARS else "session only"
        ok = why is None and np.array_equal(back, rows) if fits == "in the link" else True
        print(
            f"selection {name:20s} {len(rows):7,} rows -> {len(text):7,} chars ({fits}); encode {t_enc * 1e3:.2f} ms, "
            f"decode {t_dec * 1e3:.2f} ms{'' if ok else ' MISMATCH'}"
        )


if __name__ == "__main__":
    main()
