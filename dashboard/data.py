"""The dashboard's one data layer: which runs root, one way to get a `Run`, and every cached loader.

Pages and views get runs and numbers only through here. A `Run` object per (root, name) lives for the
server's lifetime (`st.cache_resource`), so its metrics byte offset survives reruns and only new lines are
parsed. Everything derived from snapshots is keyed by what identifies the files: the committed snapshot
steps of a run (`committed_steps`), or one snapshot's sidecar identity (path, size, mtime).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from diagnostics import list_runs, open_run
from runformat import layout
from runformat.bounds import RunFormatError
from runformat.reader import Run

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "sample_runs"
RUNS_ENV = "CONTRASTSCOPE_RUNS"
# A column with more distinct values than this is continuous (a score, an id): not a grouping.
MAX_GROUPS = 50
NEIGHBOURS_K = 10  # the neighbourhood whose survival "neighbours kept" counts (Projections)
DETAIL_K = 6  # neighbours / hardest negatives shown for a focused point (Projections)
# Above this many rows a page computes nothing over pairs (group breakdown, movement, shared neighbours):
# 5,000² = 25 M pairs take ~0.3 s on one core; at 50k that is 100× more, which only the worker may spend.
IN_PAGE_POINTS = 5_000


def runs_root() -> str:
    """`-- --runs DIR` on the streamlit command line, else $CONTRASTSCOPE_RUNS, else the shipped sample_runs/."""
    return _runs_root(tuple(sys.argv[1:]), os.environ.get(RUNS_ENV))


@functools.lru_cache(maxsize=8)
def _runs_root(argv: tuple[str, ...], env: str | None) -> str:
    # every loader asks; building the parser each time cost ~1 ms (Home over 200 runs asked ~1,500 times)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs")
    args, _ = parser.parse_known_args(list(argv))
    return args.runs or env or str(DEFAULT_ROOT)


# -- runs -------------------------------------------------------------------------------------------


def run_names() -> list[str]:
    """Names of the runs under the root, sorted (folders with unusable names are skipped by list_runs)."""
    return [r.name for r in list_runs(runs_root())]


def unreadable_runs() -> list[str]:
    """One message per run folder skipped for its name (not valid UTF-8, control characters), bytes escaped."""
    from runformat.reader import unreadable_runs as skipped

    return skipped(runs_root())


@dataclass
class _Handle:
    run: Run
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(max_entries=1024, show_spinner=False)
def _handle(root: str, name: str) -> _Handle:
    return _Handle(open_run(name, root=root))


def run(name: str) -> Run:
    """The run `name` under the root (RunFormatError naming the file when it is not a run)."""
    return _handle(runs_root(), name).run


def config(name: str) -> dict:
    """The run's config for what a page draws around it (events, method hints); {} when config.json is refused
    (a page shows that error once, through cards.safe on Run.config)."""
    try:
        return run(name).config
    except (RunFormatError, OSError):
        return {}


def metrics(name: str) -> pd.DataFrame:
    """The run's metrics; a rerun reads only the bytes appended since the last one (sessions share it)."""
    handle = _handle(runs_root(), name)
    with handle.lock:
        return handle.run.metrics()


@st.cache_data(max_entries=4096, show_spinner=False)
def _last_step(root: str, name: str, identity: tuple) -> int | None:
    from runformat.metrics_lines import last_logged

    handle = _handle(root, name)
    with handle.lock:  # the frame fallback shares the Run's incremental parse with metrics()
        found = last_logged(handle.run, None)
    return None if found is None else found[0]


def last_step(name: str) -> int | None:
    """The run's last logged step from the tail of metrics.jsonl (cached per file identity: path, size,
    mtime), so Home over hundreds of runs parses no run's whole metrics file."""
    r = run(name)
    try:
        identity = r.storage.identity(r.file(layout.METRICS_FILE))
    except FileNotFoundError:
        return None
    return _last_step(runs_root(), name, identity)


def temperature_at(name: str, step: int) -> float | None:
    """τ in force at `step` (the logged `temperature`, else the config's), via metrics_lines.temperature_for."""
    from runformat.metrics_lines import temperature_for

    handle = _handle(runs_root(), name)
    with handle.lock:
        return temperature_for(handle.run, int(step))


def committed_steps(name: str) -> tuple[int, ...]:
    """A run's committed snapshot steps. Committed snapshots never change, so these steps identify
    everything derived from the run's snapshots."""
    return tuple(run(name).snapshot_steps())


def _sidecar(name: str, step: int) -> tuple:
    """(path, size, mtime) of one snapshot's sidecar: the cache key of what is derived from that snapshot."""
    r = run(name)
    return r.storage.identity(r.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(int(step)) + ".json"))


# -- per-snapshot numbers: read from the records the worker writes, never computed here ----------------


def _records_listing(name: str) -> tuple:
    """What identifies the records of a run right now: the committed steps and the record folders on disk
    (a record appears as one new folder), so the cached tables below refresh as the worker fills them in."""
    from diagnostics.judge.run_state import listing

    return listing(run(name))  # one `run` lookup: each costs ~1 ms in st.cache_resource (Home asks per run)


def record(name: str, step: int):
    """The snapshot's record (diagnostics.store.record.Record), or None while the worker has not written it. After an
    upgrade that changed the record key, the older record until its replacement is committed (`rec.stale`
    says why: pages show it marked)."""
    from diagnostics.store import record as records

    handle = _handle(runs_root(), name)
    with handle.lock:  # the record's key reads the τ in force, i.e. the run's (shared, incremental) metrics
        return records.load(handle.run, int(step), stale=True)


@st.cache_data(max_entries=1024, show_spinner=False)
def _run_table(root: str, name: str, listing: tuple) -> tuple[pd.DataFrame, list[int]]:
    from diagnostics.judge import summary as summaries

    rows, pending = _ready_summaries(root, name, listing)
    return summaries.run_table(rows), pending


def _ready_summaries(root: str, name: str, listing: tuple) -> tuple[list[dict], list[int]]:
    from diagnostics.judge import summary as summaries
    from diagnostics.judge.run_state import with_record

    handle = _handle(root, name)
    with handle.lock:  # a step with no record folder is pending without opening anything (a cold root)
        return summaries.ready_summaries(handle.run, with_record(listing[1]))


def run_table(name: str) -> tuple[pd.DataFrame, list[int]]:
    """(one row per snapshot whose record is ready: alignment, uniformity, effective rank, verdict, ...;
    the committed steps still pending). Just `step` while the run has no ready snapshot."""
    return _run_table(runs_root(), name, _records_listing(name))


@st.cache_data(max_entries=1024, show_spinner=False)
def _run_state(root: str, name: str, listing: tuple) -> dict | None:
    from diagnostics.judge.run_state import state_of

    handle = _handle(root, name)
    with handle.lock:
        return state_of(handle.run, listing[1])


def run_state(name: str) -> dict | None:
    """The run's state on the verdict ladder (diagnostics.judge.alarms.run_state, what Collapse shows at the latest
    step) from its ready records: {"verdict", "since" (step), "explanation", "pending" (steps), "latest" (the
    last ready snapshot's numbers and own verdict)}; None while no record is ready. The worker's kept state
    (diagnostics.judge.run_state) when it is of the run's current records, read uncached (0.4 ms; a st.cache_data
    hit costs ~1.3 ms: it hashes the key and unpickles the value); else computed, cached per records listing."""
    from diagnostics.judge import run_state as states

    r = run(name)
    listing = states.listing(r)
    found, state = states.load(r, *listing)
    return state if found else _run_state(runs_root(), name, listing)


def summary(name: str, step: int) -> dict | None:
    """A snapshot's numbers with the verdict judged now (diagnostics.judge.summary.summary_of), or None: pending.
    A step with no record folder at all is pending without opening anything (Home on a cold root)."""
    from diagnostics.judge.run_state import with_record
    from diagnostics.judge.summary import summary_of

    if int(step) not in with_record(_records_listing(name)[1]):
        return None
    rec = record(name, step)
    return None if rec is None else summary_of(rec)


def histograms(rec, temperature: float | None) -> dict[str, tuple]:
    """{"positive"|"negative"|"hardest_negative"[, "scaled_positive"|"scaled_negative"]: (counts, edges)}
    from a record. cos/τ is linear in cos, so the τ-scaled histograms are the same counts over edges / τ."""
    hists = {
        k: (np.asarray(h["counts"]), np.asarray(h["edges"], dtype=np.float64))
        for k, h in (rec.numbers.get("histograms") or {}).items()
    }
    if temperature:
        for k in ("positive", "negative"):
            if k in hists:
                hists[f"scaled_{k}"] = (hists[k][0], hists[k][1] / temperature)
    return hists


def hardest_negatives(name: str, rec, rows: int = 15) -> pd.DataFrame | None:
    """The anchors with the most similar negatives: anchor, its hardest negative, both cosines, labels."""
    hard_cos, hard_index = rec.array("hardest_negative_cos"), rec.array("hardest_negative_index")
    if hard_cos is None or hard_index is None or not hard_cos.shape[1]:
        return None
    hard = hard_cos[:, 0]
    order = hard.argsort()[::-1][:rows]
    table = pd.DataFrame(
        {
            "anchor": order,
            "hardest negative": hard_index[order, 0],
            "negative cos": hard[order],
            "positive cos": rec.array("positive_cos")[order],
            "positive rank": rec.array("positive_rank")[order],
        }
    )
    labels = run(name).snapshot(rec.step, fields=("labels",)).labels
    if labels is not None:
        table["anchor label"] = labels[table["anchor"]]
        table["negative label"] = labels[table["hardest negative"]]
        table["same label"] = table["anchor label"] == table["negative label"]
    return table


@st.cache_data(max_entries=32, show_spinner=False)
def _group_columns(root: str, name: str, step: int, sidecar: tuple) -> list[str]:
    r = open_run(name, root=root)
    fields = r.snapshot_info(step)["fields"]
    meta = [k[len(layout.METADATA_PREFIX) :] for k in fields if k.startswith(layout.METADATA_PREFIX)]
    snap = r.snapshot(step, fields=("labels", *meta))
    groupable = [c for c in meta if snap.metadata[c].nunique(dropna=False) <= MAX_GROUPS]
    return (["label"] if snap.labels is not None else []) + groupable


def group_columns(name: str, step: int) -> list[str]:
    """What the geometry breakdown can group by: "label" and the metadata columns with few distinct values."""
    return _group_columns(runs_root(), name, int(step), _sidecar(name, step))


def breakdown(name: str, step: int, column: str) -> pd.DataFrame | None:
    """Alignment and uniformity per group of `column` ("label" or a metadata column) at one snapshot, as the
    worker stored it in the snapshot's record (diagnostics.measure.groups; any N); None while the record is pending."""
    rec = record(name, step)
    if rec is None:
        return None
    table = rec.breakdown(column)
    if table is None:
        raise ValueError(
            f"{name}: the record of step {step} has no breakdown by {column!r}"
            + (f" ({rec.error})" if rec.error else "")
        )
    return table


def spectra(name: str, steps: list[int], most: int = 10) -> tuple[dict, list[int]]:
    """({step: singular values of the centred embeddings} from the records, at up to `most` steps spread
    over `steps`; the steps among those whose record is pending)."""
    if len(steps) > most:
        steps = [steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)]
    found, pending = {}, []
    for s in steps:
        rec = record(name, s)
        spectrum = None if rec is None else rec.array("spectrum")
        if rec is None:
            pending.append(s)
        elif spectrum is not None:
            found[s] = spectrum
    return found, pending


# -- snapshots and projections ---------------------------------------------------------------------


@st.cache_resource(max_entries=6, show_spinner=False)
def _snapshot(root: str, name: str, step: int, files: tuple):
    return open_run(name, root=root).snapshot(step)


def _snapshot_files(root: str, name: str, step: int) -> tuple:
    """(path, size, mtime) of the sidecar and of each array file of a snapshot: a file replaced or truncated
    under the server is read again (and is then that page's RunFormatError), never served from a copy."""
    r = _handle(root, name).run
    folder = (layout.SNAPSHOT_DIR, layout.snapshot_dirname(step))
    try:
        return tuple(
            r.storage.identity(r.file(*parts))
            for parts in [(layout.SNAPSHOT_DIR, folder[1] + ".json")]
            + [(*folder, f) for f in r.storage.listdir(r.file(*folder))]
        )
    except FileNotFoundError:  # removed between the listing and the stat: read (and fail) now
        return (time.time(),)


def _read_snapshot(root: str, name: str, step: int):
    return _snapshot(root, name, step, _snapshot_files(root, name, step))


def snapshot(name: str, step: int):
    """A whole committed snapshot, read once per server into memory (never memory-mapped: a mapped file
    truncated in place killed the server with SIGBUS), again whenever one of its files changes."""
    return _read_snapshot(runs_root(), name, int(step))


@st.cache_data(max_entries=64, show_spinner=False)
def _spread(root: str, name: str, step: int, source: str, sidecar: tuple) -> str | None:
    from diagnostics.measure.projection import caption_text, spread_caption

    numbers = spread_caption(vectors(_read_snapshot(root, name, step), source))
    return None if numbers["finite_rows"] < 2 else caption_text(numbers)


def spread(name: str, step: int, source: str) -> str | None:
    """The snapshot's spread as caption text (projection.spread_caption: normalised std and mean cosine, one
    O(N·d) pass, cached per snapshot file), or None with fewer than 2 finite rows."""
    return _spread(runs_root(), name, int(step), source, _sidecar(name, step))


def vectors(snap, source: str) -> np.ndarray:
    z = snap.features if source == "features" else snap.embeddings
    if z is None:
        raise ValueError(f"source: this snapshot has no {source}")
    return z


def projection(
    name: str, step: int, method: str, source: str, seed: int, params: tuple, init_from_step: int | None = None
) -> np.ndarray | None:
    """The N×2 layout when the worker has written it (diagnostics.store.cache.projection_if_ready), else None."""
    from diagnostics.store import cache

    return cache.projection_if_ready(run(name), int(step), method, source, seed, dict(params) or None, init_from_step)


def request_projection(
    name: str, step: int, method: str, source: str, seed: int, params: tuple, init_from_step: int | None = None
) -> None:
    """Ask the worker for a layout (idempotent: asking again while it is queued changes nothing)."""
    from diagnostics.work import worker

    worker.request_projection(runs_root(), name, int(step), method, source, seed, dict(params) or None, init_from_step)


@st.cache_data(max_entries=16, show_spinner="Comparing neighbourhoods…")
def _movement(root: str, name: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    from diagnostics.measure import neighbours

    z0, z1 = vectors(_read_snapshot(root, name, step0), source), vectors(_read_snapshot(root, name, step1), source)
    return (
        np.asarray(neighbours.displacement(z0, z1), dtype=np.float32),
        np.asarray(neighbours.retention(z0, z1, NEIGHBOURS_K), dtype=np.float32),
    )


def _kept(run_a: str, step_a: int, run_b: str, step_b: int) -> np.ndarray | None:
    """The neighbours kept of the embeddings, from two records' neighbour lists (the worker found each row's
    NEIGHBOURS_K nearest in its pass over the pairs); None while either record is pending."""
    from diagnostics.measure import neighbours

    recs = [record(run_a, step_a), record(run_b, step_b)]
    if any(r is None for r in recs):
        return None
    lists = [r.array("neighbour_index") for r in recs]
    for (name, step), rec, found in zip(((run_a, step_a), (run_b, step_b)), recs, lists):
        if found is None:  # an unusable snapshot, or one above the engine's exact limit (sampled anchors)
            raise ValueError(
                f"{name} step {step}: its record lists no neighbours ("
                f"{rec.error or 'above the engine exact limit, pairs are sampled'})"
            )
    if lists[0].shape != lists[1].shape:
        raise ValueError(
            f"{run_b} step {step_b}: {len(lists[1]):,} points against {len(lists[0]):,} in {run_a} "
            f"step {step_a}; neighbours kept need the same points"
        )
    return neighbours.neighbour_overlap(*lists)


def _pairs_in_page(source: str, n: int) -> bool:
    """Features have no neighbour lists in the records: their retention is searched in the page, which only
    happens up to IN_PAGE_POINTS (ValueError above, naming the way out)."""
    if source == "embeddings":
        return False
    if n > IN_PAGE_POINTS:
        raise ValueError(
            f"neighbours of the {source} are searched in the page only up to {IN_PAGE_POINTS:,} "
            f"points (this snapshot has {n:,}); above that, choose the embeddings, whose "
            "neighbours the background worker measures"
        )
    return True


def movement(name: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per point: how far it moved between two snapshots (O(N·d), here) and the fraction of its k neighbours
    it kept (from the two records: any N); None while a record is pending."""
    if _pairs_in_page(source, snapshot(name, step1).n):
        return _movement(runs_root(), name, int(step0), int(step1), source)
    kept = _kept(name, int(step0), name, int(step1))
    if kept is None:
        return None
    return _displacement(runs_root(), name, int(step0), int(step1)), kept


@st.cache_data(max_entries=16, show_spinner=False)
def _displacement(root: str, name: str, step0: int, step1: int) -> np.ndarray:
    from diagnostics.measure import neighbours

    return np.asarray(
        neighbours.displacement(
            _read_snapshot(root, name, step0).embeddings, _read_snapshot(root, name, step1).embeddings
        ),
        dtype=np.float32,
    )


@st.cache_data(max_entries=8, show_spinner="Comparing neighbourhoods…")
def _shared_neighbours(root: str, run_a: str, run_b: str, step: int, source: str) -> np.ndarray:
    from diagnostics.measure import neighbours

    return np.asarray(
        neighbours.retention(
            vectors(_read_snapshot(root, run_a, step), source),
            vectors(_read_snapshot(root, run_b, step), source),
            NEIGHBOURS_K,
        ),
        dtype=np.float32,
    )


def shared_neighbours(run_a: str, run_b: str, step: int, source: str) -> np.ndarray | None:
    """Per sample, the fraction of its k nearest neighbours in one run that are its neighbours in the other
    (from the two records: any N); None while a record is pending."""
    if _pairs_in_page(source, snapshot(run_a, step).n):
        return _shared_neighbours(runs_root(), run_a, run_b, int(step), source)
    return _kept(run_a, int(step), run_b, int(step))
