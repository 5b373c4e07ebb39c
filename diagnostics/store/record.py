"""The snapshot record: every per-snapshot number and per-row array, computed once by the engine and written
beside the run, so pages, the CLI and the report read it and never recompute it.

    <run>/.cache/records/<step:010d>-<key>/
        numbers.json            # JSON numbers (NaN/inf stored as null)
        <array>.npy             # per-row arrays, no pickles
        groups.json             # per-group alignment / uniformity of each groupable column (diagnostics.measure.groups)
        record.json             # written last: its presence commits the record; sealed (runformat.seal)

The key is what the numbers are a function of (`key_inputs`): the record format, ENGINE_VERSION, the engine
config, the snapshot's content, the τ in force at that step and torch's and numpy's major.minor. No source
file is hashed, so a comment in the engine, a reworded verdict or an installed package (whose files differ
from a checkout's) keeps every record; a golden-record test (tests/test_record_key.py) fails when the
numbers change without an ENGINE_VERSION bump.

`load` trusts nothing on disk: record.json must carry a seal (HMAC under the root's key, kept outside the
runs root) over a manifest that names the sha256 of numbers.json, groups.json and every array; the numbers
must fit their schema and describe the snapshot (step, n, dim, content). Anything else is absent, and the
worker recomputes it. When the key changed (an upgrade), the newest sealed record of an older key of the same
snapshot is still served by `load(..., stale=True)` with `stale` saying why, until its replacement is
committed; only then are the older ones removed.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from runformat import layout, seal
from runformat.derived import (
    DerivedFiles,
    array_from,
    canonical,
    digest,
    npy_bytes,
    npy_encode,
    sha256,
    snapshot_key,
)
from runformat.metrics_lines import temperature_for
from runformat.reader import Run, RunFormatError

from ..measure import engine, groups
from .record_schema import ARRAY_DTYPES, check_commit, check_numbers, json_number

RECORD_VERSION = 3  # 3: sealed manifest with every array's sha256; 2: neighbour_index and group breakdowns
# Bump when any number or array a record holds changes meaning or value (engine, sweep, _topk, spectrum, groups,
# collapse, geometry, probes, _tensor, crossmodal); tests/golden_record.json holds the numbers it stands for.
ENGINE_VERSION = 3  # 3: raw_std (the raw scale, for variance-regularised methods); 2: top_variance_share(_features),
# hard_negative_weight (judge's signals); 1: the first
RECORDS_DIR = "records"
COMMIT_FILE, NUMBERS_FILE, GROUPS_FILE = "record.json", "numbers.json", "groups.json"
UNREADABLE = "unreadable snapshot: "  # how an error record from a file that cannot be read begins
# Bounds on what a record's files may weigh before they are read: record.json is ~1 KB, numbers.json ~12 KB
# (3 histograms of 80 bins), groups.json ~100 bytes a group (50 groups x a few columns: ~50 KB).
COMMIT_BYTES, NUMBERS_BYTES, GROUPS_BYTES = 1 << 16, 1 << 20, 8 << 20
FOLDER = re.compile(r"\d{10,19}-[0-9a-f]{24}")
OWN_FILES = re.compile(r"(record|numbers|groups)\.json|(" + "|".join(ARRAY_DTYPES) + r")\.npy|\.tmp-\w+")


@dataclass
class Record:
    step: int
    numbers: dict
    error: str | None = None
    folder: str | None = None  # where the arrays live (None: held in memory only)
    run: Run | None = field(default=None, repr=False)
    manifest: dict = field(default_factory=dict)  # array name -> (shape, dtype, sha256) as committed
    groups_sha256: str | None = None  # of groups.json (None: the record has no breakdowns)
    stale: str | None = None  # why these numbers are of an older key (None: current)
    committed: bool = False  # on disk (False: a write failed; served from memory)
    _arrays: dict = field(default_factory=dict, repr=False)
    _groups: dict | None = field(default=None, repr=False)

    def _read(self, name: str, limit: int, digest_: str, shape=None, dtype=None):
        files, where = DerivedFiles.of_run(self.run), f"{self.folder}/{name}"
        try:
            data = files.read(RECORDS_DIR, _name(self.folder), name, limit=limit, what="record file")
        except RunFormatError as e:
            raise RunFormatError(f"{e}; the record will be recomputed") from None
        if data is None or sha256(data) != digest_:
            _withdraw(self.run, _name(self.folder))
            raise RunFormatError(
                f"{where}: missing or not what its sealed record.json names; withdrawn, the worker recomputes it"
            )
        return data if shape is None else array_from(data, shape, dtype, where)

    def group_tables(self) -> dict[str, list[dict]]:
        """{column: stored breakdown rows} (diagnostics.measure.groups), read and checked against the sealed manifest on
        first use; {} when the snapshot had nothing to group by."""
        if self._groups is None:
            self._groups = {}
            if self.groups_sha256 and self.folder is not None and self.run is not None:
                self._groups = json.loads(self._read(GROUPS_FILE, GROUPS_BYTES, self.groups_sha256))
        return self._groups

    def breakdown(self, column: str):
        """geometry.breakdown's table for `column` (a DataFrame), or None when the column was not groupable."""
        rows = self.group_tables().get(column)
        return None if rows is None else groups.table(rows)

    def array(self, name: str) -> np.ndarray | None:
        """A per-row array (see ARRAY_DTYPES), read whole on first use and checked against the sealed manifest;
        None when it does not apply."""
        if name not in self._arrays and name in self.manifest and self.folder is not None and self.run is not None:
            shape, dtype, digest_ = self.manifest[name]
            self._arrays[name] = self._read(f"{name}.npy", npy_bytes(shape, dtype), digest_, shape, dtype)
        return self._arrays.get(name)


# -- the key ----------------------------------------------------------------------------------------


def _major_minor(package: str) -> str:
    try:
        return ".".join(version(package).split("+")[0].split(".")[:2])
    except PackageNotFoundError:
        return "absent"


# Library versions as the package metadata says (the same for a wheel and a checkout in one environment).
LIBRARIES = {"torch": _major_minor("torch"), "numpy": _major_minor("numpy")}
# Fields that change only where work runs, not what is computed (float order aside, within the golden tolerances).
NOT_KEYED = ("tile", "device")


def key_inputs(run: Run, step: int) -> dict:
    """What a record's numbers are a function of. KeyError: not committed; RunFormatError: sidecar unreadable."""
    content, _ = snapshot_key(run, step)
    config = {k: v for k, v in asdict(engine.EngineConfig()).items() if k not in NOT_KEYED}
    return {
        "record_version": RECORD_VERSION,
        "engine_version": ENGINE_VERSION,
        "config": config,
        "content": content,
        "temperature": temperature_for(run, step),
        **LIBRARIES,
    }


def _expect(run: Run, step: int, inputs: dict) -> dict:
    info = run.snapshot_info(step)
    shape = info["fields"]["embeddings"].get("shape")
    dim = int(shape[1]) if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) else -1
    return {"step": step, "n": int(info.get("n", -1)), "dim": dim, "content": inputs["content"]}


def _name(folder: str) -> str:
    return folder.replace("\\", "/").rsplit("/", 1)[-1]


def _why_stale(old, now: dict) -> str:
    """What changed between the key `old` record was made under and the current one, in words."""
    old = old if isinstance(old, dict) else {}
    changed = [
        "the engine config" if k == "config" else f"{k.replace('_', ' ')} {old.get(k)!r} (now {now[k]!r})"
        for k in now
        if old.get(k) != now[k]
    ]
    return "measured with an older " + ("; ".join(changed) or "key") + "; being recomputed"


def _sealed(run: Run, meta: dict) -> bytes:
    """The bytes record.json's seal is taken over: the manifest (all but the seal) and the run it belongs to."""
    return canonical({"run": run.name, "record": {k: v for k, v in meta.items() if k != "seal"}})


# -- public -----------------------------------------------------------------------------------------


def _open(run: Run, files: DerivedFiles, name: str, expect: dict) -> tuple[Record, dict] | None:
    """(record, its record.json) in folder `name` when it is sealed, complete and of the snapshot `expect`
    describes; else None."""
    try:
        meta = files.read_json(RECORDS_DIR, name, COMMIT_FILE, limit=COMMIT_BYTES, what="record.json")
        if not check_commit(meta, expect, RECORD_VERSION) or not seal.verify(
            run.storage, _sealed(run, meta), meta.get("seal")
        ):
            return None
        numbers_bytes = files.read(RECORDS_DIR, name, NUMBERS_FILE, limit=NUMBERS_BYTES, what="numbers.json")
        if numbers_bytes is None or sha256(numbers_bytes) != meta["numbers_sha256"]:
            return None
        numbers = json.loads(numbers_bytes)
    except (RunFormatError, OSError, ValueError, RecursionError):
        return None
    if not check_numbers(numbers, expect):
        return None
    manifest = {k: (spec[0], spec[1], spec[2]) for k, spec in meta["arrays"].items()}
    return Record(
        step=expect["step"],
        numbers=numbers,
        error=meta.get("error"),
        run=run,
        manifest=manifest,
        folder=files.path(RECORDS_DIR, name),
        groups_sha256=meta.get("groups_sha256"),
        committed=True,
    ), meta


def load(run: Run, step: int, stale: bool = False) -> Record | None:
    """The committed, sealed record of a snapshot under the current key, or None (pending, or failed its
    checks). With `stale`, a sealed record of an older key of the same snapshot when there is no current one
    (its `stale` says why), for pages to show marked until the worker has recomputed it. Never computes."""
    try:
        inputs = key_inputs(run, step)
        expect, files = _expect(run, step, inputs), DerivedFiles.of_run(run)
        prefix, key = layout.snapshot_dirname(step) + "-", digest(inputs)
        found = _open(run, files, prefix + key, expect)
        if found is not None or not stale:
            return found and found[0]
        for name in files.listdir(RECORDS_DIR):
            if name.startswith(prefix) and name != prefix + key and FOLDER.fullmatch(name):
                found = _open(run, files, name, expect)
                if found is not None:
                    found[0].stale = _why_stale(found[1].get("inputs"), inputs)
                    return found[0]
    except (KeyError, RunFormatError, OSError, ValueError, TypeError):
        return None
    return None


def folders(run: Run) -> tuple[str, ...]:
    """The names of the run's record folders (`<step:010d>-<key>`), sorted; () when its cache is a link."""
    try:
        return tuple(n for n in DerivedFiles.of_run(run).listdir(RECORDS_DIR) if FOLDER.fullmatch(n))
    except RunFormatError:
        return ()


def ready_steps(run: Run) -> list[int]:
    """Committed snapshot steps whose record is on disk, sealed and current."""
    try:
        steps = run.snapshot_steps()
    except (RunFormatError, OSError):
        return []
    return [s for s in steps if load(run, s) is not None]


def compute(run: Run, step: int) -> Record:
    """Measure the snapshot with the engine and write its record. An unusable snapshot (unreadable file, d = 0,
    N < 2, fewer than 2 finite rows, ...) gets a record whose `error` says why; only a step that is not a
    committed snapshot raises (KeyError). A record that cannot be written is returned uncommitted, with a
    RuntimeWarning naming the file and why."""
    inputs = key_inputs(run, step)  # KeyError: not committed; RunFormatError: sidecar unreadable
    expect = _expect(run, step, inputs)
    numbers: dict = {
        "step": step,
        "n": max(expect["n"], 0),
        "finite_rows": 0,
        "dim": max(expect["dim"], 0),
        "nonfinite_rows": 0,
        "estimated": False,
    }
    arrays: dict = {}
    tables: dict = {}
    error = None
    try:
        snap = run.snapshot(step)
        numbers, arrays = engine.measure_snapshot(snap, temperature=inputs["temperature"])
        error = numbers.pop("error", None)
        if error is None:
            tables = groups.breakdowns(
                snap, arrays["measured_rows"], arrays.get("kernel_log_rows"), t=engine.EngineConfig().uniformity_t
            )
        arrays = _stored(arrays)
    except (RunFormatError, OSError) as e:
        error = f"{UNREADABLE}{e}"
    except (ValueError, RuntimeError, MemoryError, TypeError, IndexError) as e:
        error = f"the engine could not measure this snapshot: {type(e).__name__}: {e}"
    numbers = {k: json_number(v) for k, v in numbers.items()}
    numbers.update(step=step, estimated=bool(numbers.get("estimated", False)))
    arrays = {k: np.ascontiguousarray(v, dtype=ARRAY_DTYPES[k]) for k, v in arrays.items() if v is not None}
    record = Record(step=step, numbers=numbers, error=error, _arrays=arrays, _groups=tables)
    _write(run, inputs, expect, record)
    return record


def get_or_compute(run: Run, step: int) -> Record:
    """The record from disk, else computed and written now (CLI, report, worker; never a page)."""
    return load(run, step) or compute(run, step)


def readable(rec: Record) -> Record:
    """`rec`, or the RunFormatError (naming the file) when its snapshot could not be read: for callers that
    report a broken file as an error (CLI exit 2, an error card) rather than as a row of missing numbers."""
    if rec.error is not None and rec.error.startswith(UNREADABLE):
        raise RunFormatError(rec.error[len(UNREADABLE) :])
    return rec


# -- writing ----------------------------------------------------------------------------------------

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


def _write(run: Run, inputs: dict, expect: dict, record: Record) -> None:
    """Numbers, arrays, groups, then the sealed record.json last: a failure part-way leaves a folder `load`
    ignores (no commit file, or hashes that do not match), which the worker recomputes."""
    name = f"{layout.snapshot_dirname(record.step)}-{digest(inputs)}"
    try:
        files = DerivedFiles.of_run(run)
        text = json.dumps(record.numbers, sort_keys=True, allow_nan=False).encode("utf-8")
        files.write(RECORDS_DIR, name, NUMBERS_FILE, data=text)
        manifest = {}
        for key, arr in record._arrays.items():
            data = npy_encode(arr)
            files.write(RECORDS_DIR, name, f"{key}.npy", data=data)
            manifest[key] = [list(arr.shape), ARRAY_DTYPES[key], sha256(data)]
        if record._groups:
            tables = json.dumps(json_number(record._groups), sort_keys=True, allow_nan=False).encode("utf-8")
            files.write(RECORDS_DIR, name, GROUPS_FILE, data=tables)
            record.groups_sha256 = sha256(tables)
        meta = {
            "record_version": RECORD_VERSION,
            "inputs": inputs,
            "content": expect["content"],
            "step": record.step,
            "n": expect["n"],
            "dim": expect["dim"],
            "numbers_sha256": sha256(text),
            "arrays": manifest,
            "error": record.error,
            "groups_sha256": record.groups_sha256,
        }
        meta["seal"] = seal.seal(run.storage, _sealed(run, meta))
        files.write(RECORDS_DIR, name, COMMIT_FILE, data=json.dumps(meta, sort_keys=True).encode("utf-8"))
    except (OSError, RunFormatError, ValueError) as e:  # a full disk, a read-only or hostile cache: uncached
        warnings.warn(
            f"diagnostics record: cannot write {name} of {run.storage.display(run.path)} ({e}); not cached",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    record.folder, record.run, record.committed = files.path(RECORDS_DIR, name), run, True
    record.manifest = {k: tuple(v) for k, v in manifest.items()}
    _remove_older(run, files, name)


def _withdraw(run: Run, name: str) -> None:
    """Un-commit a record whose files no longer match its seal, so the worker sees it pending and recomputes."""
    try:
        DerivedFiles.of_run(run).remove(RECORDS_DIR, name, COMMIT_FILE, own=OWN_FILES)
    except (OSError, RunFormatError):
        pass


def _remove_older(run: Run, files: DerivedFiles, name: str) -> None:
    """Once a record is committed, the other records of its step (an older key) are dead weight: only now are
    they removed, and only the files a record holds (anything else in a folder keeps it)."""
    prefix = name.split("-", 1)[0] + "-"
    try:
        for other in files.listdir(RECORDS_DIR):
            if other.startswith(prefix) and other != name and FOLDER.fullmatch(other):
                files.remove(RECORDS_DIR, other, own=FOLDER, inside=OWN_FILES)
    except (OSError, RunFormatError):
        pass
