"""Timing helper shared by the bench scripts (they run with bench/ on sys.path)."""

from __future__ import annotations

import time


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` calls of fn, in seconds: the run least disturbed by other load."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
