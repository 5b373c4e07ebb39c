"""Pay UMAP's numba compilation in the background, before anyone asks for a UMAP layout.

The first UMAP fit in a process compiles umap-learn's and pynndescent's numba kernels (a minute or two on
two cores, bench/bench_projection.py measures it; numba's on-disk cache shortens later processes); a warm
fit of the same size takes well under a second. The dashboard and the CLI call `start_umap_warmup()` when
they start: a daemon thread fits a tiny UMAP through the same code path `projection.project` uses
(approximate neighbours, spectral init, the epoch loop), so the user's first UMAP is a warm one.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_thread: threading.Thread | None = None
_state = {"status": "not started", "seconds": None, "error": None}


def _fit_tiny() -> None:
    import numpy as np

    from .projection import project

    started = time.perf_counter()
    try:
        z = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
        project(z, "umap", seed=0, n_epochs=20, force_approximation_algorithm=True)
        _state.update(status="warm", seconds=time.perf_counter() - started)
    except Exception as e:  # a failed warmup only means the first real fit compiles
        _state.update(status="failed", error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - started)


def start_umap_warmup() -> threading.Thread:
    """Start the background compile once per process (later calls return the same thread)."""
    global _thread
    with _lock:
        if _thread is None:
            _state["status"] = "compiling"
            _thread = threading.Thread(target=_fit_tiny, name="umap-warmup", daemon=True)
            _thread.start()
        return _thread


def umap_warm() -> bool:
    """True once the background fit has finished (the next UMAP fit will not compile)."""
    return _state["status"] == "warm"


def umap_warmup_status() -> str:
    """One line for a status bar: not started / compiling / warm (in N s) / failed (why)."""
    status = _state["status"]
    if status == "warm":
        return f"UMAP ready (compiled in {_state['seconds']:.0f} s)"
    if status == "failed":
        return f"UMAP warm-up failed ({_state['error']}); the first UMAP layout will compile (~1-2 min)"
    if status == "compiling":
        return "UMAP compiling in the background (first use takes ~1-2 min)"
    return "UMAP not warmed up yet"


def wait_for_umap_warmup(timeout: float | None = None) -> bool:
    """Block until the warm-up ends (tests, benchmarks); True when UMAP is warm."""
    thread = _thread
    if thread is not None:
        thread.join(timeout)
    return umap_warm()
