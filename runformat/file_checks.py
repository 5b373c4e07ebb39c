"""What a run's files must be before the reader hands them out: run.json (check_run_info), a snapshot's
sidecar (check_sidecar), each field's .npy (load_field) and the generated-sample grid (load_grid). Every
problem is a RunFormatError naming the file; nothing here unpickles. Split out of runformat/reader.py, which
calls these from Run.info, Run.snapshot_info, Run.snapshot and Run.generated_samples.
"""

from __future__ import annotations

import io

import numpy as np

from . import bounds, layout
from .bounds import ReadLimits, RunFormatError
from .layout import Storage
from .metrics_lines import is_count

STATUSES = ("running", "finished", "crashed")


def check_run_info(info, where: str) -> None:
    """run.json as the reader hands it out: an object with an integer format_version no newer than this reader,
    typed identity fields, finite (positive where a duration) times, a known status."""
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("format_version"), int)
        or isinstance(info["format_version"], bool)
    ):
        raise RunFormatError(f"{where}: not a run.json (no integer format_version)")
    for key, kind in (
        ("status", str),
        ("name", str),
        ("description", str),
        ("host", str),
        ("error", (str, type(None))),
        ("dropped_snapshots", list),
    ):
        if key in info and not isinstance(info[key], kind):
            raise RunFormatError(f"{where}: '{key}' has the wrong type ({type(info[key]).__name__})")
    for key in ("heartbeat", "created", "ended", "heartbeat_every_s", "stall_after_s"):
        if key in info:
            bounds.number(info[key], where, key, positive=key.endswith("_s"))
    if info.get("status", "running") not in STATUSES:
        raise RunFormatError(f"{where}: 'status' must be one of {', '.join(STATUSES)}, got {info['status']!r:.60}")
    if info["format_version"] > layout.FORMAT_VERSION:
        raise RunFormatError(
            f"{where}: format version {info['format_version']} is newer than this reader ({layout.FORMAT_VERSION})"
        )


def check_sidecar(sidecar, where: str, limits: ReadLimits) -> None:
    """A snapshot's sidecar: 'fields' with 'embeddings' (at most limits.snapshot_fields), typed counts and
    specs, and every field file a plain .npy name inside the snapshot folder."""
    if (
        not isinstance(sidecar, dict)
        or not isinstance(sidecar.get("fields"), dict)
        or "embeddings" not in sidecar["fields"]
    ):
        raise RunFormatError(f"{where}: sidecar has no 'fields' with 'embeddings'")
    if len(sidecar["fields"]) > limits.snapshot_fields:
        raise RunFormatError(
            f"{where}: {len(sidecar['fields']):,} fields; the reader's bound is {limits.snapshot_fields:,}"
        )
    if not is_count(sidecar.get("n", -1), -1) or not all(
        isinstance(spec, dict)
        and isinstance(spec.get("file", ""), str)
        and isinstance(spec.get("dtype", ""), str)
        and is_count(spec.get("nonfinite_rows", 0))
        and (spec.get("shape") is None or isinstance(spec["shape"], list) and all(map(is_count, spec["shape"])))
        for spec in sidecar["fields"].values()
    ):
        raise RunFormatError(f"{where}: sidecar 'n' or a field spec has the wrong type")
    if sidecar.get("wall_time") is not None:
        bounds.number(sidecar["wall_time"], where, "wall_time")
    for spec in sidecar["fields"].values():
        fname = spec.get("file", "")
        if fname and ("/" in fname or "\\" in fname or fname.startswith(".") or not fname.endswith(".npy")):
            raise RunFormatError(f"{where}: field file {fname!r} is not a plain .npy name in the snapshot folder")


def load_field(
    storage: Storage, path: str, name: str, spec: dict, n: int, budget: list[int], limits: ReadLimits
) -> np.ndarray:
    """One field's .npy (read whole, never memory-mapped), after its header passed the checks: a dtype kind and a
    number of dimensions the field allows (layout.FIELD_SHAPES), no empty matrix, within what is left of the
    snapshot's memory `budget` (decremented); then what the sidecar says of it and n rows."""
    where = storage.display(path)
    try:
        shape, dtype = bounds.npy_header(storage, path, where)
    except FileNotFoundError:
        raise RunFormatError(f"{where}: file is missing") from None
    kinds, ndims = layout.FIELD_SHAPES.get(name, (dtype.kind, (1,)))
    if (
        dtype.kind not in kinds
        or len(shape) not in ndims
        or (name in layout.IMAGE_FIELDS and len(shape) == 4 and shape[3] != 3)
    ):
        raise RunFormatError(f"{where}: {name} cannot have dtype {dtype} and shape {shape}")
    if len(shape) == 2 and (shape[0] < 1 or shape[1] < 1):
        raise RunFormatError(f"{where}: {name} of shape {shape} is empty")
    cost = bounds.budget_bytes(shape, dtype)
    if cost > budget[0]:
        raise RunFormatError(
            f"{where}: declares {'x'.join(map(str, shape))} {dtype} ({cost / 1e9:.2f} GB as "
            f"float32); with the fields before it that is over the reader's memory budget of "
            f"{limits.snapshot_bytes / 1e9:.2f} GB (set {bounds.SNAPSHOT_BYTES_ENV} to "
            "raise it)"
        )
    budget[0] -= cost
    try:  # read whole into memory, never memory-mapped: a mapped .npy truncated in place (cp over it,
        # rsync --inplace) raised SIGBUS on the next touch of the array and killed the Streamlit server
        # (issue 24); read, a changed file is a short read, i.e. a RunFormatError for the one page
        if storage.url:
            arr = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
        else:
            arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunFormatError(f"{where}: file is missing") from None
    except Exception as e:  # numpy's header parser raises SyntaxError, OverflowError, TokenError, ...
        raise RunFormatError(f"{where}: not a readable .npy without pickles ({type(e).__name__}: {e})") from None
    bounds.check_dtype(arr.dtype, where)
    arr.flags.writeable = False  # shared by every page of a server (dashboard.data), as the mapping was
    if spec.get("dtype") and arr.dtype.kind != "U" and str(arr.dtype) != spec["dtype"]:
        raise RunFormatError(f"{where}: dtype {arr.dtype} but the sidecar says {spec['dtype']}")
    if spec.get("shape") is not None and list(arr.shape) != list(spec["shape"]):
        raise RunFormatError(f"{where}: shape {tuple(arr.shape)} but the sidecar says {tuple(spec['shape'])}")
    if n >= 0 and (arr.ndim == 0 or arr.shape[0] != n):
        raise RunFormatError(f"{where}: {arr.shape[0] if arr.ndim else 0} rows but the snapshot has {n}")
    return arr


def load_grid(storage: Storage, path: str) -> np.ndarray:
    """generated.npy: a uint8 rows × columns × H × W grid, read whole (it is small) without pickles."""
    try:
        arr = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
    except Exception as e:  # numpy's header parser raises many types
        raise RunFormatError(f"{storage.display(path)}: not a readable .npy without pickles ({e})") from None
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise RunFormatError(
            f"{storage.display(path)}: expected a uint8 rows×cols×H×W grid, got {arr.dtype} {arr.shape}"
        )
    return arr
