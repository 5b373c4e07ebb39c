"""Read runs written by `training.RunWriter` (or any writer that follows docs/run-format.md).

Safe while a writer is writing: metrics are read up to the last complete line, snapshots only once their
sidecar exists. Never unpickles. Every problem with a file is a `RunFormatError` naming the file.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import layout
from .layout import Storage


class RunFormatError(Exception):
    """A run file is missing, unreadable or does not follow the run format. The message names the file."""


ALLOWED_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}


@dataclass
class Snapshot:
    step: int
    embeddings: np.ndarray
    positives: np.ndarray | None = None
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)
    images: np.ndarray | None = None
    wall_time: float | None = None
    info: dict = field(default_factory=dict)  # the sidecar: stored dtypes, non-finite counts, ...
    paired_embeddings: np.ndarray | None = None  # the second modality, N×d (docs/run-format.md)

    @property
    def modality_names(self) -> tuple[str, str]:
        """Names of (embeddings, paired_embeddings)' modalities; ("embeddings", "paired") when unnamed."""
        names = self.info.get("modality_names")
        ok = isinstance(names, list) and len(names) == 2 and all(isinstance(x, str) for x in names)
        return (names[0], names[1]) if ok else ("embeddings", "paired")

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def nonfinite_rows(self) -> int:
        return int(self.info.get("fields", {}).get("embeddings", {}).get("nonfinite_rows", 0))


def _check_dtype(arr_dtype: np.dtype, where: str) -> None:
    if arr_dtype.kind == "U":
        return
    if arr_dtype.hasobject or arr_dtype.name not in ALLOWED_DTYPES:
        raise RunFormatError(f"{where}: dtype {arr_dtype} is not allowed in a run")


class Run:
    """One run folder. Cheap to construct; files are read on demand."""

    def __init__(self, storage: Storage, name: str):
        self.storage = storage
        self.name = name
        self.path = storage.join(name)
        self._metrics_offset = 0
        self._metrics_identity: tuple | None = None
        self._metrics_df: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return f"Run({self.storage.display(self.path)!r})"

    # -- files --------------------------------------------------------------------------------------
    def file(self, *parts: str) -> str:
        path = self.storage.join(self.name, *parts)
        if not self.storage.confined(path):
            raise RunFormatError(f"{self.storage.display(path)}: points outside the runs root; refused")
        return path

    def _json(self, *parts: str) -> Any:
        path = self.file(*parts)
        try:
            return self.storage.read_json(path)
        except FileNotFoundError:
            raise RunFormatError(f"{self.storage.display(path)}: file is missing") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise RunFormatError(f"{self.storage.display(path)}: not valid JSON ({e})") from None

    # -- identity and status ------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        info = self._json(layout.RUN_FILE)
        where = self.storage.display(self.file(layout.RUN_FILE))
        if not isinstance(info, dict) or not isinstance(info.get("format_version"), int):
            raise RunFormatError(f"{where}: not a run.json (no integer format_version)")
        for key, kind in (("heartbeat", (int, float)), ("status", str), ("name", str)):
            if key in info and not isinstance(info[key], kind):
                raise RunFormatError(f"{where}: '{key}' has the wrong type ({type(info[key]).__name__})")
        if info["format_version"] > layout.FORMAT_VERSION:
            raise RunFormatError(f"{self.storage.display(self.file(layout.RUN_FILE))}: format version "
                                 f"{info['format_version']} is newer than this reader ({layout.FORMAT_VERSION})")
        return info

    @property
    def config(self) -> dict:
        path = self.file(layout.CONFIG_FILE)
        if not self.storage.exists(path):
            return {}
        cfg = self._json(layout.CONFIG_FILE)
        if not isinstance(cfg, dict):
            raise RunFormatError(f"{self.storage.display(path)}: config must be a JSON object")
        return cfg

    @property
    def description(self) -> str:
        cfg = self.config
        return str(self.info.get("description") or cfg.get("description") or "")

    @property
    def status(self) -> str:
        return status_of(self.info)

    def heartbeat_age(self, now: float | None = None) -> float:
        return (now or time.time()) - float(self.info.get("heartbeat", 0.0))

    @property
    def notes(self) -> str:
        path = self.file(layout.NOTES_FILE)
        return self.storage.read_bytes(path).decode("utf-8", "replace") if self.storage.exists(path) else ""

    def save_notes(self, text: str) -> None:
        """Team notes live in their own file; the writer's files are never touched."""
        data = text.encode("utf-8")
        self.storage.write_atomic(self.file(layout.NOTES_FILE), lambda f: f.write(data))

    def generated_samples(self) -> np.ndarray | None:
        """The latest generated-sample grid (rows × columns × H × W uint8), or None when the run has none."""
        path = self.file(layout.GENERATED_FILE)
        if not self.storage.exists(path):
            return None
        try:
            arr = np.load(io.BytesIO(self.storage.read_bytes(path)), allow_pickle=False)
        except Exception as e:  # numpy's header parser raises many types
            raise RunFormatError(f"{self.storage.display(path)}: not a readable .npy without pickles ({e})") from None
        if arr.dtype != np.uint8 or arr.ndim != 4:
            raise RunFormatError(f"{self.storage.display(path)}: expected a uint8 rows×cols×H×W grid, "
                                 f"got {arr.dtype} {arr.shape}")
        return arr

    @property
    def cache_dir(self) -> str:
        return self.file(layout.CACHE_DIR)

    # -- metrics ------------------------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        """step, wall_time and one column per metric. Re-reading a growing file reads only the new bytes."""
        path = self.file(layout.METRICS_FILE)
        if not self.storage.exists(path):
            return _rows_to_frame([])
        ident = self.storage.identity(path)
        if ident == self._metrics_identity and self._metrics_df is not None:
            return self._metrics_df
        size = ident[1]
        if size < self._metrics_offset or self._metrics_df is None:  # replaced, or first read: start over
            self._metrics_offset, self._metrics_df = 0, _rows_to_frame([])
        chunk = self.storage.read_bytes(path, self._metrics_offset) if size > self._metrics_offset else b""
        end = chunk.rfind(b"\n") + 1  # a line without its newline is still being written (or torn)
        if end:
            new = self._parse_metric_lines(chunk[:end], path)
            self._metrics_df = new if self._metrics_df.empty else pd.concat([self._metrics_df, new],
                                                                             ignore_index=True)
            self._metrics_offset += end
        self._metrics_identity = ident
        return self._metrics_df

    def _parse_metric_lines(self, data: bytes, path: str) -> pd.DataFrame:
        """Arrow's multi-threaded JSON reader when the lines are plain numbers; the exact Python path (which
        also understands the NaN/Infinity tokens and names the bad record) otherwise."""
        try:
            frame = _arrow_lines(data)
            if frame is not None:
                return frame
        except Exception:  # a "NaN" token, mixed types, bad JSON: the slow path will say which
            pass
        rows = []
        for lineno, line in enumerate(data.split(b"\n")):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise RunFormatError(f"{self.storage.display(path)}: record {lineno} after byte "
                                     f"{self._metrics_offset} is not JSON") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                raise RunFormatError(f"{self.storage.display(path)}: record {lineno} after byte "
                                     f"{self._metrics_offset} has no integer step")
            rows.append(rec)
        return _rows_to_frame(rows)

    # -- snapshots ----------------------------------------------------------------------------------
    def snapshot_steps(self) -> list[int]:
        names = self.storage.listdir(self.file(layout.SNAPSHOT_DIR))
        return sorted(s for s in (layout.parse_snapshot_sidecar_name(n) for n in names) if s is not None)

    def snapshot_info(self, step: int) -> dict:
        sidecar = self._json(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step) + ".json")
        where = self.storage.display(self.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step) + ".json"))
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get("fields"), dict) \
                or "embeddings" not in sidecar["fields"]:
            raise RunFormatError(f"{where}: sidecar has no 'fields' with 'embeddings'")
        if not isinstance(sidecar.get("n", -1), int) or not all(
                isinstance(spec, dict) and isinstance(spec.get("file", ""), str) for spec in sidecar["fields"].values()):
            raise RunFormatError(f"{where}: sidecar 'n' or a field spec has the wrong type")
        for spec in sidecar["fields"].values():
            fname = spec.get("file", "")
            if fname and ("/" in fname or "\\" in fname or fname.startswith(".") or not fname.endswith(".npy")):
                raise RunFormatError(f"{where}: field file {fname!r} is not a plain .npy name in the snapshot folder")
        return sidecar

    def snapshot(self, step: int, fields: tuple[str, ...] | None = None) -> Snapshot:
        """Load a committed snapshot. `fields` limits which arrays are read (embeddings always are)."""
        if step not in self.snapshot_steps():
            raise KeyError(f"{self.name}: no committed snapshot at step {step}")
        info = self.snapshot_info(step)
        n = int(info.get("n", -1))
        arrays: dict[str, Any] = {}
        meta: dict[str, np.ndarray] = {}
        for name, spec in info["fields"].items():
            base = name[len(layout.METADATA_PREFIX):] if name.startswith(layout.METADATA_PREFIX) else name
            if fields is not None and name != "embeddings" and base not in fields and name not in fields:
                continue
            arr = self._load_array(step, name, spec, n)
            if name.startswith(layout.METADATA_PREFIX):
                meta[base] = arr
            elif name in layout.SNAPSHOT_ARRAY_FIELDS:
                arrays[name] = arr
        paired = arrays.get(layout.PAIRED_FIELD)
        if paired is not None and paired.shape != arrays["embeddings"].shape:
            raise RunFormatError(f"{self.storage.display(self.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step)))}"
                                 f": paired_embeddings shape {paired.shape} differs from embeddings "
                                 f"{arrays['embeddings'].shape}")
        return Snapshot(step=step, metadata=pd.DataFrame(meta), wall_time=info.get("wall_time"),
                        info=info, **arrays)

    def _load_array(self, step: int, name: str, spec: dict, n: int) -> np.ndarray:
        path = self.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step), spec.get("file", f"{name}.npy"))
        where = self.storage.display(path)
        try:
            if self.storage.url:
                arr = np.load(io.BytesIO(self.storage.read_bytes(path)), allow_pickle=False)
            else:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise RunFormatError(f"{where}: file is missing") from None
        except Exception as e:  # numpy's header parser raises SyntaxError, OverflowError, TokenError, ...
            raise RunFormatError(f"{where}: not a readable .npy without pickles "
                                 f"({type(e).__name__}: {e})") from None
        _check_dtype(arr.dtype, where)
        if spec.get("dtype") and arr.dtype.kind != "U" and str(arr.dtype) != spec["dtype"]:
            raise RunFormatError(f"{where}: dtype {arr.dtype} but the sidecar says {spec['dtype']}")
        if spec.get("shape") is not None and list(arr.shape) != list(spec["shape"]):
            raise RunFormatError(f"{where}: shape {tuple(arr.shape)} but the sidecar says {tuple(spec['shape'])}")
        if n >= 0 and (arr.ndim == 0 or arr.shape[0] != n):
            raise RunFormatError(f"{where}: {arr.shape[0] if arr.ndim else 0} rows but the snapshot has {n}")
        return arr


def status_of(info: dict, now: float | None = None) -> str:
    status = info.get("status", "running")
    if status == "running" and (now or time.time()) - float(info.get("heartbeat", 0.0)) > \
            float(info.get("stall_after_s", layout.STALL_AFTER_S)):
        return "stalled"
    return status


def _arrow_lines(data: bytes) -> pd.DataFrame | None:
    import pyarrow as pa
    import pyarrow.json as pa_json

    table = pa_json.read_json(io.BytesIO(data))
    if "step" not in table.column_names or not pa.types.is_integer(table.schema.field("step").type):
        return None
    if not all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_null(f.type)
               for f in table.schema):
        return None
    return _order_columns(table.to_pandas().astype({c: "float64" for c in table.column_names if c != "step"}))


def _order_columns(df: pd.DataFrame) -> pd.DataFrame:
    df["step"] = df["step"].astype("int64")
    lead = [c for c in ("step", "wall_time") if c in df.columns]
    return df[lead + [c for c in df.columns if c not in lead]]


def _rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "wall_time": pd.Series(dtype="float64")})
    df = pd.DataFrame.from_records(rows)
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):  # "NaN" / "Infinity" tokens
            df[col] = pd.to_numeric(df[col].astype(object).map(layout.decode_metric_value), errors="coerce")
    return _order_columns(df)


def _split_path(path: str) -> tuple[str, str]:
    path = str(path).rstrip("/").rstrip(os.sep)
    if layout.is_url(path):
        root, _, name = path.rpartition("/")
        return root, name
    return os.path.dirname(os.path.abspath(path)), os.path.basename(os.path.abspath(path))


def open_run(path: str, root: str | None = None) -> Run:
    """Open one run: `open_run("runs/name")`, or `open_run("name", root="runs")` to confine it to a root."""
    if root is None:
        root, name = _split_path(path)
    else:
        name = str(path)
    try:
        layout.validate_run_name(name, "path")
    except ValueError as e:
        raise RunFormatError(str(e)) from None
    storage = Storage(root)
    run_path = storage.join(name)
    if not storage.confined(run_path):
        raise RunFormatError(f"{run_path}: resolves outside the runs root {storage.root}; refused")
    if not storage.exists(storage.join(name, layout.RUN_FILE)):
        raise RunFormatError(f"{storage.display(storage.join(name, layout.RUN_FILE))}: not a run (no run.json)")
    return Run(storage, name)


def list_runs(root: str) -> list[Run]:
    """Every run directly under `root`, sorted by name. Broken runs are listed too; their files raise
    `RunFormatError` when read, so one bad run never hides the others. Symlinks leading out are skipped."""
    storage = Storage(root)
    runs = []
    for name in storage.listdir(storage.root):
        if name.startswith("."):
            continue
        path = storage.join(name)
        if not storage.confined(path) or not storage.exists(storage.join(name, layout.RUN_FILE)):
            continue
        runs.append(Run(storage, name))
    return runs


def finite_or_none(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
