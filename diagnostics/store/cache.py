"""Disk cache of derived data beside the run (<run>/.cache/), shared by the dashboard, the CLI and the report.

A committed snapshot never changes, so an entry is keyed by what identifies its content — the sidecar bytes
(step, wall time, shapes, dtypes) and the sizes of its array files (runformat.derived.snapshot_key) — plus
what was asked (method, source, seed, parameters, the init layout's own key) and what computes it (an explicit
PROJECTION_VERSION and the projection libraries' versions; no source file is hashed, so a comment changes
nothing and an installed package keys what a checkout keys), so an upgraded openTSNE never serves a stale answer.

    .cache/records/<step>-<key>/            (diagnostics.store.record: every number of a snapshot)
    .cache/projections/<step>-<method>-<source>-<key>.npy   (+ .seal: its HMAC, runformat.seal; written last)

Every entry is read and written through runformat.derived (confined to the run's own .cache, regular files
only, size-bounded before reading, written atomically), so readers never see half an entry and a hostile
cache costs its own run. An unreadable entry is recomputed and overwritten; a run folder we may not write to
is still served, just not cached.
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd

from runformat import derived, layout, seal
from runformat.reader import Run, RunFormatError

from ..judge import summary
from ..measure.projection import METHODS, Progress, project
from . import record

CACHE_VERSION = 2  # 2: keyed by PROJECTION_VERSION and library versions instead of a hash of projection.py
# Bump when diagnostics.measure.projection computes a different layout for the same input.
PROJECTION_VERSION = 1
SOURCES = ("embeddings", "features")
PROJECTIONS_DIR = "projections"


# -- keys ---------------------------------------------------------------------------------------------


def _libraries() -> dict:
    """The projection libraries' versions, from package metadata (the same for a wheel and a checkout)."""
    found = {}
    for package in ("openTSNE", "umap-learn", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


LIBRARIES = _libraries()


def snapshot_key(run: Run, step: int) -> str:
    """Identity of a committed snapshot's content: its sidecar bytes and its array files' sizes."""
    return derived.snapshot_key(run, step)[0]


def _check_projection_args(run: Run, step: int, method: str, source: str, init_from_step) -> list[int]:
    if method not in METHODS:
        raise ValueError(f"method: one of {METHODS}, got {method!r}")
    if source not in SOURCES:
        raise ValueError(f"source: one of {SOURCES}, got {source!r}")
    steps = run.snapshot_steps()
    if step not in steps:
        raise KeyError(f"{run.name}: no committed snapshot at step {step}")
    if init_from_step is not None and (init_from_step not in steps or init_from_step == step):
        raise ValueError(f"init_from_step: {init_from_step} must be another snapshot step of {run.name}")
    return steps


def _walk(steps: list[int], init_from_step: int | None) -> list[int]:
    """The steps whose layouts chain into the init: the layout of `init_from_step` is itself the one
    started from its predecessor, down to the first snapshot, so a walk through the steps is one frame."""
    if init_from_step is None:
        return []
    return steps[: steps.index(init_from_step) + 1]


def _projection_keys(
    run: Run,
    chain: list[int],
    method: str,
    source: str,
    seed,
    params: dict,
) -> tuple[list[str], list[int]]:
    """(key, rows) of each layout along `chain`; a key includes the previous one's when rows match."""
    keys: list[str] = []
    ns: list[int] = []
    for s in chain:
        content, n = derived.snapshot_key(run, s)
        init_key = keys[-1] if keys and n == ns[-1] else None
        keys.append(
            derived.digest(
                CACHE_VERSION, PROJECTION_VERSION, LIBRARIES, content, method, source, seed, params, init_key
            )
        )
        ns.append(n)
    return keys, ns


def _projection_name(step: int, method: str, source: str, key: str) -> str:
    return f"{layout.snapshot_dirname(step)}-{method}-{source}-{key}.npy"


# -- entries ------------------------------------------------------------------------------------------


def _load_layout(run: Run, name: str, n: int) -> np.ndarray | None:
    """The N×2 float32 layout in file `name`, read under its exact size bound and checked against its seal;
    None when it is missing or is anything else (a link, a FIFO, a 1 TB sparse file, another shape, bytes the
    root's key did not seal): it is recomputed and replaced."""
    try:
        files = derived.DerivedFiles.of_run(run)
        data = files.read(PROJECTIONS_DIR, name, limit=derived.npy_bytes((n, 2), "float32"), what="layout")
        tag = files.read(PROJECTIONS_DIR, _seal_name(name), limit=SEAL_BYTES, what="layout seal")
        if (
            data is None
            or tag is None
            or not seal.verify(run.storage, _sealed(run, name, data), tag.decode("ascii", "replace"))
        ):
            return None
        return derived.array_from(data, (n, 2), "float32", files.display(files.path(PROJECTIONS_DIR, name)))
    except (RunFormatError, OSError):
        return None


def _save_layout(run: Run, name: str, arr: np.ndarray) -> None:
    """The layout, then its seal (the commit: a layout without one is a miss)."""
    data = derived.npy_encode(np.ascontiguousarray(arr, dtype=np.float32))
    try:
        files = derived.DerivedFiles.of_run(run)
        files.write(PROJECTIONS_DIR, name, data=data)
        files.write(PROJECTIONS_DIR, _seal_name(name), data=seal.seal(run.storage, _sealed(run, name, data)).encode())
    except (OSError, RunFormatError) as e:  # a read-only run folder (someone else's run), a hostile cache
        warnings.warn(
            f"diagnostics cache: cannot write {name} of {run.storage.display(run.path)} ({e}); not cached",
            RuntimeWarning,
            stacklevel=3,
        )


SEAL_BYTES = 128  # a hex HMAC-SHA256 is 64


def _seal_name(name: str) -> str:
    return name[: -len(".npy")] + ".seal"


def _sealed(run: Run, name: str, data: bytes) -> bytes:
    return derived.canonical({"run": run.name, "layout": name, "sha256": derived.sha256(data)})


# -- public -------------------------------------------------------------------------------------------


def cached_summary(run: Run, step: int) -> dict:
    """The snapshot's summary (numbers + verdict) from its record, computing the record when it is missing.
    For the CLI and the report; a page reads `record.load` instead and never computes."""
    return summary.summary_of(record.readable(record.get_or_compute(run, step)))


def cached_run_table(run: Run) -> pd.DataFrame:
    """`summary.run_table` over every committed snapshot, computing the records not written yet."""
    return summary.run_table([cached_summary(run, step) for step in run.snapshot_steps()])


def cached_projection(
    run: Run,
    step: int,
    method: str = "pca",
    source: str = "embeddings",
    seed: int | None = 0,
    params: dict | None = None,
    init_from_step: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """N×2 float32 layout of a snapshot's `source` rows (see diagnostics.measure.projection.project).

    init_from_step: start from (t-SNE/UMAP) and rotate onto (all methods) the layout of that step — the
    walk's layout, itself started from its predecessor — so stepping through training with
    init_from_step=<previous snapshot step> shows one steady frame. Missing layouts along the walk are
    computed and cached on the way.
    """
    params = dict(params or {})
    steps = _check_projection_args(run, step, method, source, init_from_step)
    chain = _walk(steps, init_from_step) + [step]
    keys, ns = _projection_keys(run, chain, method, source, seed, params)
    report = progress or (lambda fraction, message: None)
    # Walk back to the last layout on disk; compute forward from there.
    layouts: dict[int, np.ndarray] = {}
    start = len(chain) - 1
    while start >= 0:
        hit = _load_layout(run, _projection_name(chain[start], method, source, keys[start]), ns[start])
        if hit is not None:
            layouts[start] = hit
            break
        start -= 1
    todo = list(range(start + 1, len(chain)))
    for done, i in enumerate(todo):
        s = chain[i]
        snap = run.snapshot(s, fields=(source,))
        z = getattr(snap, source)
        if z is None:
            raise ValueError(f"source: the snapshot at step {s} of {run.name} has no {source}")
        prev = layouts.get(i - 1)
        init = prev if prev is not None and prev.shape[0] == z.shape[0] else None

        def step_report(fraction, message, done=done, s=s):
            report((done + fraction) / len(todo), f"step {s}: {message}")

        layouts[i] = project(z, method, seed, init=init, progress=step_report, **params)
        _save_layout(run, _projection_name(s, method, source, keys[i]), layouts[i])
    if not todo:
        report(1.0, "from cache")
    return layouts[len(chain) - 1]


def projection_if_ready(
    run: Run,
    step: int,
    method: str = "pca",
    source: str = "embeddings",
    seed: int | None = 0,
    params: dict | None = None,
    init_from_step: int | None = None,
) -> np.ndarray | None:
    """The layout `cached_projection` would return, when it is on disk; None otherwise. Never computes."""
    params = dict(params or {})
    steps = _check_projection_args(run, step, method, source, init_from_step)
    chain = _walk(steps, init_from_step) + [step]
    keys, ns = _projection_keys(run, chain, method, source, seed, params)
    return _load_layout(run, _projection_name(step, method, source, keys[-1]), ns[-1])


def is_projection_cached(
    run: Run,
    step: int,
    method: str = "pca",
    source: str = "embeddings",
    seed: int | None = 0,
    params: dict | None = None,
    init_from_step: int | None = None,
) -> bool:
    """True when `cached_projection` with these arguments would be read from disk, not computed."""
    return projection_if_ready(run, step, method, source, seed, params, init_from_step) is not None


def cache_size(run: Run) -> int:
    """Bytes the run's cache takes (0 when .cache is a link: it is not the run's)."""
    try:
        root = derived.DerivedFiles.of_run(run).check()
    except RunFormatError:
        return 0
    if run.storage.url:
        try:
            return int(sum(v.get("size", 0) for v in run.storage.fs.find(root, detail=True).values()))
        except FileNotFoundError:
            return 0
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


def clear_cache(run: Run) -> int:
    """Delete the run's cache (it is derived data); returns the bytes freed."""
    size = cache_size(run)
    try:
        run.storage.remove_tree(derived.DerivedFiles.of_run(run).check())  # never through a link
    except RunFormatError:
        return 0
    return size
