"""The dashboard's one data layer: which runs root, one way to get a `Run`, and every cached loader.

Pages and views get runs and numbers only through here. A `Run` object per (root, name) lives for the
server's lifetime (`st.cache_resource`), so its metrics byte offset survives reruns and only new lines are
parsed. Everything derived from snapshots is keyed by what identifies the files: the committed snapshot
steps of a run (`committed_steps`), or one snapshot's sidecar identity (path, size, mtime).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from diagnostics import list_runs, open_run
from runformat import layout
from runformat.reader import Run

from .text import printable, readable

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "sample_runs"
RUNS_ENV = "CONTRASTSCOPE_RUNS"
# A column with more distinct values than this is continuous (a score, an id): not a grouping.
MAX_GROUPS = 50
NEIGHBOURS_K = 10           # the neighbourhood whose survival "neighbours kept" counts (Projections)
DETAIL_K = 6                # neighbours / hardest negatives shown for a focused point (Projections)


def runs_root() -> str:
    """`-- --runs DIR` on the streamlit command line, else $CONTRASTSCOPE_RUNS, else the shipped sample_runs/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs or os.environ.get(RUNS_ENV) or str(DEFAULT_ROOT)


# -- runs -------------------------------------------------------------------------------------------

def run_names(root: str | None = None) -> list[str]:
    """Names of the runs under the root that the browser can be sent (valid UTF-8), sorted."""
    return [r.name for r in list_runs(root or runs_root()) if readable(r.name)]


def unreadable_runs(root: str | None = None) -> list[str]:
    """Run folders whose names are not valid UTF-8, shown with their bytes escaped (they are not opened)."""
    return [printable(r.name) for r in list_runs(root or runs_root()) if not readable(r.name)]


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


def metrics(name: str) -> pd.DataFrame:
    """The run's metrics; a rerun reads only the bytes appended since the last one (sessions share it)."""
    handle = _handle(runs_root(), name)
    with handle.lock:
        return handle.run.metrics()


def temperature_at(name: str, step: int) -> float | None:
    """τ in force at `step` (the logged `temperature`, else the config's), via summary.temperature_for."""
    from diagnostics.summary import temperature_for
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


# -- per-snapshot numbers --------------------------------------------------------------------------

@st.cache_data(max_entries=512, show_spinner=False)
def _run_table(root: str, name: str, steps: tuple[int, ...]) -> pd.DataFrame:
    from diagnostics import cache
    return cache.cached_run_table(open_run(name, root=root))


def run_table(name: str) -> pd.DataFrame:
    """One row per snapshot step (alignment, uniformity, effective rank, verdict, ...); just `step` while
    the run has no snapshot yet."""
    steps = committed_steps(name)
    return _run_table(runs_root(), name, steps) if steps else pd.DataFrame(columns=["step"])


@st.cache_data(max_entries=256, show_spinner=False)
def _summary(root: str, name: str, step: int, sidecar: tuple) -> dict:
    from diagnostics import cache
    return cache.cached_summary(open_run(name, root=root), step)


def summary(name: str, step: int) -> dict:
    return _summary(runs_root(), name, int(step), _sidecar(name, step))


@st.cache_data(max_entries=32, show_spinner="Measuring similarities…")
def _similarity(root: str, name: str, step: int, sidecar: tuple, temperature: float | None, k: int):
    from diagnostics import geometry
    snap = open_run(name, root=root).snapshot(step, fields=("positives",))
    if snap.positives is None:
        return None
    return geometry.similarity_stats(snap.embeddings, snap.positives, temperature=temperature, k=k)


def similarity(name: str, step: int, temperature: float | None = None, k: int = 10):
    """geometry.similarity_stats of (embeddings, positives) at one snapshot (τ-scaled when given); None when
    the snapshot stores no positives."""
    return _similarity(runs_root(), name, int(step), _sidecar(name, step), temperature, k)


def hardest_negatives(name: str, step: int, temperature: float, rows: int = 15) -> pd.DataFrame | None:
    """The anchors with the most similar negatives: anchor, its hardest negative, both cosines, labels."""
    stats = similarity(name, step, temperature)
    if stats is None:
        return None
    hard = stats.hardest_negative_cos[:, 0]
    order = hard.argsort()[::-1][:rows]
    table = pd.DataFrame({"anchor": order, "hardest negative": stats.hardest_negative_index[order, 0],
                          "negative cos": hard[order], "positive cos": stats.positive_cos[order],
                          "positive rank": stats.positive_rank[order]})
    labels = run(name).snapshot(step, fields=("labels",)).labels
    if labels is not None:
        table["anchor label"] = labels[table["anchor"]]
        table["negative label"] = labels[table["hardest negative"]]
        table["same label"] = table["anchor label"] == table["negative label"]
    return table


@st.cache_data(max_entries=32, show_spinner=False)
def _group_columns(root: str, name: str, step: int, sidecar: tuple) -> list[str]:
    r = open_run(name, root=root)
    fields = r.snapshot_info(step)["fields"]
    meta = [k[len(layout.METADATA_PREFIX):] for k in fields if k.startswith(layout.METADATA_PREFIX)]
    snap = r.snapshot(step, fields=("labels", *meta))
    groupable = [c for c in meta if snap.metadata[c].nunique(dropna=False) <= MAX_GROUPS]
    return (["label"] if snap.labels is not None else []) + groupable


def group_columns(name: str, step: int) -> list[str]:
    """What the geometry breakdown can group by: "label" and the metadata columns with few distinct values."""
    return _group_columns(runs_root(), name, int(step), _sidecar(name, step))


@st.cache_data(max_entries=32, show_spinner="Breaking down by group…")
def _breakdown(root: str, name: str, step: int, column: str, sidecar: tuple) -> pd.DataFrame:
    from diagnostics import geometry
    fields = ("positives", "labels") if column == "label" else ("positives", column)
    snap = open_run(name, root=root).snapshot(step, fields=fields)
    groups = snap.labels if column == "label" else snap.metadata[column].to_numpy()
    if groups is None:
        raise ValueError(f"{name}: the snapshot at step {step} has no {column!r} to group by")
    return geometry.breakdown(snap.embeddings, snap.positives, groups)


def breakdown(name: str, step: int, column: str) -> pd.DataFrame:
    """Alignment and uniformity per group of `column` ("label" or a metadata column) at one snapshot."""
    return _breakdown(runs_root(), name, int(step), column, _sidecar(name, step))


@st.cache_data(max_entries=512, show_spinner=False)
def _spectrum(root: str, name: str, step: int, sidecar: tuple):
    from diagnostics.collapse import singular_spectrum
    return singular_spectrum(open_run(name, root=root).snapshot(step, fields=()).embeddings)


def spectra(name: str, steps: list[int], most: int = 10) -> dict:
    """{step: singular values of the centred embeddings} at up to `most` steps spread over `steps`."""
    if len(steps) > most:
        steps = [steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)]
    return {s: _spectrum(runs_root(), name, int(s), _sidecar(name, s)) for s in steps}


# -- snapshots and projections ---------------------------------------------------------------------

@st.cache_resource(max_entries=6, show_spinner=False)
def _snapshot(root: str, name: str, step: int):
    return open_run(name, root=root).snapshot(step)


def snapshot(name: str, step: int):
    """A whole committed snapshot, read once per server (its arrays stay memory-mapped)."""
    return _snapshot(runs_root(), name, int(step))


def vectors(snap, source: str) -> np.ndarray:
    z = snap.features if source == "features" else snap.embeddings
    if z is None:
        raise ValueError(f"source: this snapshot has no {source}")
    return z


def projection_cached(name: str, step: int, method: str, source: str, seed: int, params: tuple,
                      init_from_step: int | None = None) -> bool:
    from diagnostics import cache
    return cache.is_projection_cached(run(name), step, method, source, seed, dict(params) or None, init_from_step)


@st.cache_data(max_entries=64, show_spinner=False)
def _projection(root: str, name: str, step: int, method: str, source: str, seed: int, params: tuple,
                init_from_step: int | None) -> np.ndarray:
    from diagnostics import cache
    return cache.cached_projection(open_run(name, root=root), step, method, source, seed, dict(params) or None,
                                   init_from_step)


def projection(name: str, step: int, method: str, source: str, seed: int, params: tuple,
               init_from_step: int | None = None, progress=None) -> np.ndarray:
    """The N×2 layout from memory, the run's disk cache, or computed now (reporting to `progress`)."""
    if progress is None:
        return _projection(runs_root(), name, int(step), method, source, seed, params, init_from_step)
    from diagnostics import cache
    return cache.cached_projection(run(name), step, method, source, seed, dict(params) or None, init_from_step,
                                   progress=progress)


@st.cache_data(max_entries=16, show_spinner="Comparing neighbourhoods…")
def _movement(root: str, name: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    from diagnostics import probes
    z0, z1 = vectors(_snapshot(root, name, step0), source), vectors(_snapshot(root, name, step1), source)
    return (np.asarray(probes.displacement(z0, z1), dtype=np.float32),
            np.asarray(probes.neighbour_retention(z0, z1, NEIGHBOURS_K), dtype=np.float32))


def movement(name: str, step0: int, step1: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per point: how far it moved between two snapshots, and the fraction of its k neighbours it kept."""
    return _movement(runs_root(), name, int(step0), int(step1), source)


@st.cache_data(max_entries=8, show_spinner="Comparing neighbourhoods…")
def _shared_neighbours(root: str, run_a: str, run_b: str, step: int, source: str) -> np.ndarray:
    from diagnostics import probes
    return np.asarray(probes.neighbour_retention(vectors(_snapshot(root, run_a, step), source),
                                                 vectors(_snapshot(root, run_b, step), source),
                                                 NEIGHBOURS_K), dtype=np.float32)


def shared_neighbours(run_a: str, run_b: str, step: int, source: str) -> np.ndarray:
    """Per sample, the fraction of its k nearest neighbours in one run that are its neighbours in the other."""
    return _shared_neighbours(runs_root(), run_a, run_b, int(step), source)
