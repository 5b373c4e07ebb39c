"""The snapshot record: every per-snapshot number and per-row array, computed once by the engine and written
beside the run, so pages, the CLI and the report read it and never recompute it.

    <run>/.cache/records/<step:010d>-<key>/
        numbers.json            # JSON numbers (NaN/inf stored as null)
        groups.json             # per-group alignment / uniformity of each groupable column (diagnostics.groups)
        <array>.npy             # per-row arrays, no pickles
        record.json             # written last: its presence commits the record

The key is the snapshot's content (sidecar bytes, array file sizes), the τ in force at that step, the record
version and the hash of the code that computes it. `load` trusts nothing on disk: a record whose record.json
or numbers.json fails its schema, whose numbers.json does not hash to what record.json says, or whose step,
n, dim or content key differ from the snapshot's is treated as absent (and recomputed by the worker). So an
edited record cannot turn a collapsed run healthy.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from runformat import layout
from runformat.reader import Run, RunFormatError
from . import cache

RECORD_VERSION = 3  # 2: neighbour_index and group breakdowns; 3: top_variance_share(_features), hard_negative_weight
RECORD_CODE = ("record.py", "engine.py", "sweep.py", "_topk.py", "spectrum.py", "groups.py", "collapse.py",
               "geometry.py", "probes.py", "_tensor.py", "crossmodal.py",
               "../runformat/reader.py")
RECORDS_DIR = "records"
COMMIT_FILE, NUMBERS_FILE, GROUPS_FILE = "record.json", "numbers.json", "groups.json"
# Per-row arrays a record may hold, with the dtype each is stored in.
ARRAY_DTYPES = {"positive_cos": "float32", "positive_rank": "int32", "hardest_negative_cos": "float32",
                "hardest_negative_index": "int32", "negative_cos_sample": "float32", "spectrum": "float64",
                "neighbour_index": "int32"}
UNREADABLE = "unreadable snapshot: "  # how an error record from a file that cannot be read begins
INT_NUMBERS = ("step", "n", "finite_rows", "collapse_finite_rows", "dim", "nonfinite_rows", "dead_dims",
               "feature_dim")


@dataclass
class Record:
    step: int
    numbers: dict
    error: str | None = None
    folder: str | None = None                      # where the arrays live (None: held in memory only)
    run: Run | None = field(default=None, repr=False)
    manifest: dict = field(default_factory=dict)   # array name -> (shape, dtype) as committed
    groups_sha256: str | None = None               # of groups.json (None: the record has no breakdowns)
    _arrays: dict = field(default_factory=dict, repr=False)
    _groups: dict | None = field(default=None, repr=False)

    def group_tables(self) -> dict[str, list[dict]]:
        """{column: stored breakdown rows} (diagnostics.groups), read and checked against record.json's hash
        on first use; {} when the snapshot had nothing to group by."""
        if self._groups is None:
            self._groups = {}
            if self.groups_sha256 and self.folder is not None and self.run is not None:
                data = cache._read(self.run, _join(self.run, self.folder, GROUPS_FILE))
                if data is None or hashlib.sha256(data).hexdigest() != self.groups_sha256:
                    raise RunFormatError(f"{self.folder}/{GROUPS_FILE}: missing or not what its record.json "
                                         "names; delete the run's .cache to recompute")
                self._groups = json.loads(data.decode("utf-8"))
        return self._groups

    def breakdown(self, column: str):
        """geometry.breakdown's table for `column` (a DataFrame), or None when the column was not groupable."""
        from .groups import table
        rows = self.group_tables().get(column)
        return None if rows is None else table(rows)

    def array(self, name: str) -> np.ndarray | None:
        """A per-row array (see ARRAY_DTYPES), read on first use; None when it does not apply."""
        if name in self._arrays:
            return self._arrays[name]
        if name not in self.manifest or self.folder is None or self.run is None:
            return None
        shape, dtype = self.manifest[name]
        data = cache._read(self.run, self.run.storage.join(self.folder, f"{name}.npy") if self.run.storage.url
                           else os.path.join(self.folder, f"{name}.npy"))
        arr = None
        if data is not None:
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError):
                arr = None
        if arr is None or list(arr.shape) != list(shape) or str(arr.dtype) != dtype:
            raise RunFormatError(f"{self.folder}/{name}.npy: missing or not the {dtype} {tuple(shape)} array "
                                 "its record.json names; delete the run's .cache to recompute")
        self._arrays[name] = arr
        return arr


# -- where a record lives ---------------------------------------------------------------------------

def _inputs(run: Run, step: int) -> tuple[str, dict]:
    """(record key, what the record must match: step, n, dim, content key) of a committed snapshot."""
    from .summary import temperature_for

    content, _ = cache._content(run, step)
    info = run.snapshot_info(step)
    shape = info["fields"]["embeddings"].get("shape")
    n = int(info.get("n", -1))
    dim = int(shape[1]) if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) else -1
    key = cache._digest(RECORD_VERSION, cache.code_version(RECORD_CODE), content, temperature_for(run, step))
    return key, {"step": step, "n": n, "dim": dim, "content": content}


def _folder(run: Run, step: int, key: str) -> str:
    return run.file(layout.CACHE_DIR, RECORDS_DIR, f"{layout.snapshot_dirname(step)}-{key}")


def _join(run: Run, folder: str, name: str) -> str:
    return f"{folder}/{name}" if run.storage.url else os.path.join(folder, name)


# -- schema -----------------------------------------------------------------------------------------

def _number_ok(key: str, value) -> bool:
    if value is None:
        return True
    if key in INT_NUMBERS:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if key in ("estimated", "diverged", "negatives_sampled"):
        return isinstance(value, bool)
    if key == "histograms":
        return isinstance(value, dict) and all(
            isinstance(h, dict) and isinstance(h.get("counts"), list) and isinstance(h.get("edges"), list)
            and len(h["edges"]) == len(h["counts"]) + 1 and all(isinstance(c, int) for c in h["counts"])
            and all(isinstance(e, (int, float)) for e in h["edges"]) for h in value.values())
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_numbers(numbers, expect: dict) -> bool:
    """True when `numbers` is a dict of the record's schema that describes the snapshot `expect` names."""
    if not isinstance(numbers, dict) or not all(isinstance(k, str) for k in numbers):
        return False
    if not all(_number_ok(k, v) for k, v in numbers.items()):
        return False
    if any(numbers.get(k) != expect[k] for k in ("step", "n", "dim") if expect.get(k, -1) >= 0):
        return False
    n, ok = numbers.get("n"), numbers.get("finite_rows")
    return isinstance(n, int) and isinstance(ok, int) and ok <= n and isinstance(numbers.get("estimated"), bool)


def _check_commit(meta, key: str, expect: dict) -> bool:
    if not isinstance(meta, dict) or meta.get("record_version") != RECORD_VERSION or meta.get("key") != key:
        return False
    if meta.get("content") != expect["content"] or meta.get("step") != expect["step"]:
        return False
    if any(expect[k] >= 0 and meta.get(k) != expect[k] for k in ("n", "dim")):
        return False
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict) or not isinstance(meta.get("numbers_sha256"), str):
        return False
    for name, spec in arrays.items():
        if name not in ARRAY_DTYPES or not (isinstance(spec, list) and len(spec) == 2):
            return False
        shape, dtype = spec
        if dtype != ARRAY_DTYPES[name] or not (isinstance(shape, list) and all(isinstance(s, int) for s in shape)):
            return False
    if meta.get("groups_sha256") is not None and not isinstance(meta["groups_sha256"], str):
        return False
    return meta.get("error") is None or isinstance(meta["error"], str)


# -- public ---------------------------------------------------------------------------------------

def load(run: Run, step: int) -> Record | None:
    """The committed, valid record of a snapshot, or None (pending, or failed its checks). Never computes;
    reads the sidecar and two small JSON files."""
    try:
        key, expect = _inputs(run, step)
    except (KeyError, RunFormatError, OSError, ValueError, TypeError):
        return None
    folder = _folder(run, step, key)
    meta_bytes = cache._read(run, _join(run, folder, COMMIT_FILE))
    if meta_bytes is None:
        return None
    numbers_bytes = cache._read(run, _join(run, folder, NUMBERS_FILE))
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
        numbers = json.loads(numbers_bytes.decode("utf-8")) if numbers_bytes is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not _check_commit(meta, key, expect) or hashlib.sha256(numbers_bytes).hexdigest() != meta["numbers_sha256"]:
        return None
    if not check_numbers(numbers, expect):
        return None
    manifest = {name: (spec[0], spec[1]) for name, spec in meta["arrays"].items()}
    return Record(step=step, numbers=numbers, error=meta.get("error"), folder=folder, run=run, manifest=manifest,
                  groups_sha256=meta.get("groups_sha256"))


def ready_steps(run: Run) -> list[int]:
    """Committed snapshot steps whose record is on disk and valid."""
    try:
        steps = run.snapshot_steps()
    except (RunFormatError, OSError):
        return []
    return [s for s in steps if load(run, s) is not None]


def compute(run: Run, step: int) -> Record:
    """Measure the snapshot with the engine and write its record. An unusable snapshot (unreadable file, d = 0,
    N < 2, fewer than 2 finite rows, ...) gets a record whose `error` says why; only a step that is not a
    committed snapshot raises (KeyError)."""
    from . import engine, groups
    from .summary import temperature_for

    key, expect = _inputs(run, step)  # KeyError: not committed; RunFormatError: sidecar unreadable
    numbers: dict = {"step": step, "n": max(expect["n"], 0), "finite_rows": 0, "dim": max(expect["dim"], 0),
                     "nonfinite_rows": 0, "estimated": False}
    arrays: dict = {}
    tables: dict = {}
    error = None
    try:
        snap = run.snapshot(step)
        numbers, arrays = engine.measure_snapshot(snap, temperature=temperature_for(run, step))
        error = numbers.pop("error", None)
        if error is None:
            tables = groups.breakdowns(snap, arrays["measured_rows"], arrays.get("kernel_log_rows"),
                                       t=engine.EngineConfig().uniformity_t)
        arrays = _stored(arrays)
    except (RunFormatError, OSError) as e:
        error = f"{UNREADABLE}{e}"
    except (ValueError, RuntimeError, MemoryError, TypeError, IndexError) as e:
        error = f"the engine could not measure this snapshot: {type(e).__name__}: {e}"
    numbers = {k: _json_number(v) for k, v in numbers.items()}
    numbers.update(step=step, estimated=bool(numbers.get("estimated", False)))
    record = Record(step=step, numbers=numbers, error=error, _arrays=dict(arrays), _groups=tables)
    _write(run, step, key, expect, record, arrays)
    return record


def get_or_compute(run: Run, step: int) -> Record:
    """The record from disk, else computed and written now (CLI, report, worker; never a page)."""
    return load(run, step) or compute(run, step)


def readable(rec: Record) -> Record:
    """`rec`, or the RunFormatError (naming the file) when its snapshot could not be read: for callers that
    report a broken file as an error (CLI exit 2, an error card) rather than as a row of missing numbers."""
    if rec.error is not None and rec.error.startswith(UNREADABLE):
        raise RunFormatError(rec.error[len(UNREADABLE):])
    return rec


# -- writing --------------------------------------------------------------------------------------

def _json_number(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_number(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    return value


# The engine's AUC and histograms use up to 200k sampled negative cosines (numbers["negative_pairs"] says how
# many); keeping all of them made a record ~0.9 MB per snapshot, and the 12 sample runs' records 80 MB once the
# dashboard had measured them. Every 1 in k of a uniform sample is still uniform: 4,000 floats = 16 kB (pages
# read only the histograms and the count).
STORED_NEGATIVES = 4_000


def _stored(arrays: dict) -> dict:
    arrays = {k: v for k, v in arrays.items() if k in ARRAY_DTYPES}  # kernel_log_rows: read by groups only
    neg = arrays.get("negative_cos_sample")
    if neg is not None and len(neg) > STORED_NEGATIVES:
        arrays = {**arrays, "negative_cos_sample": neg[:: -(-len(neg) // STORED_NEGATIVES)]}
    return arrays


def _write(run: Run, step: int, key: str, expect: dict, record: Record, arrays: dict) -> None:
    folder = _folder(run, step, key)
    manifest = {}
    for name, arr in arrays.items():
        if arr is None:
            continue
        arr = np.ascontiguousarray(arr, dtype=ARRAY_DTYPES[name])
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        cache._write(run, _join(run, folder, f"{name}.npy"), buf.getvalue())
        manifest[name] = [list(arr.shape), ARRAY_DTYPES[name]]
        record._arrays[name] = arr
    text = json.dumps(record.numbers, sort_keys=True, allow_nan=False).encode("utf-8")
    cache._write(run, _join(run, folder, NUMBERS_FILE), text)
    if record._groups:
        tables = json.dumps(_json_number(record._groups), sort_keys=True, allow_nan=False).encode("utf-8")
        cache._write(run, _join(run, folder, GROUPS_FILE), tables)
        record.groups_sha256 = hashlib.sha256(tables).hexdigest()
    meta = {"record_version": RECORD_VERSION, "key": key, "content": expect["content"], "step": step,
            "n": expect["n"], "dim": expect["dim"], "numbers_sha256": hashlib.sha256(text).hexdigest(),
            "arrays": manifest, "error": record.error, "groups_sha256": record.groups_sha256}
    cache._write(run, _join(run, folder, COMMIT_FILE), json.dumps(meta, sort_keys=True).encode("utf-8"))
    record.folder, record.run, record.manifest = folder, run, {k: tuple(v) for k, v in manifest.items()}
    _remove_stale(run, step, key)


def _remove_stale(run: Run, step: int, key: str) -> None:
    """Older records of the same step (another τ, code or version) are dead weight: drop them."""
    parent = run.file(layout.CACHE_DIR, RECORDS_DIR)
    prefix = layout.snapshot_dirname(step) + "-"
    for name in run.storage.listdir(parent):
        if name.startswith(prefix) and name != prefix + key:
            try:
                run.storage.remove_tree(_join(run, parent, name))
            except OSError:
                pass
