"""Read runs written by `RunWriter` (runformat/writer.py) (or any writer that follows docs/run-format.md).

Safe while a writer is writing: metrics are read up to the last complete line, snapshots only once their
sidecar exists. Never unpickles. Every file is bounded (runformat.bounds) before a parser sees it, and every
problem with a file is a `RunFormatError` naming the file.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import bounds, file_checks, layout
from .bounds import ALLOWED_DTYPES, DEFAULT_LIMITS, ReadLimits, RunFormatError, RunFormatWarning  # noqa: F401
from .layout import Storage
from .metrics_lines import MetricKeys, arrow_frame, record_problem, rows_to_frame

# A heartbeat this far in the future comes from a broken clock or a hand edit; it must not keep a dead run
# "running" for ever, so it counts as stalled. Clock skew between hosts is seconds to minutes.
FUTURE_HEARTBEAT_S = 86_400.0


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
    positive_images: np.ndarray | None = None  # row i: the picture positives[i] was computed from

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


class Run:
    """One run folder. Cheap to construct; files are read on demand."""

    def __init__(self, storage: Storage, name: str, limits: ReadLimits = DEFAULT_LIMITS):
        self.storage = storage
        self.name = name
        self.path = storage.join(name)
        self.limits = limits
        # (byte offset, reason) of each metrics line skipped as torn or malformed, for the UI to show
        self.skipped_metric_lines: list[tuple[int, str]] = []
        # the keys the frame has columns for, and those skipped past ReadLimits.metric_keys (for the UI to show)
        self.metric_keys = MetricKeys(limits.metric_keys)
        self._metrics_offset = 0
        self._metrics_identity: tuple | None = None
        self._metrics_df: pd.DataFrame | None = None
        self._config: tuple[tuple | None, dict | RunFormatError] = (None, {})  # (file identity, checked value)

    def __repr__(self) -> str:
        return f"Run({self.storage.display(self.path)!r})"

    # -- files --------------------------------------------------------------------------------------
    def file(self, *parts: str) -> str:
        path = self.storage.join(self.name, *parts)
        if not self.storage.confined(path):
            raise RunFormatError(f"{self.storage.display(path)}: points outside the runs root; refused")
        return path

    def _json(self, *parts: str, limit: int) -> Any:
        path = self.file(*parts)
        where = self.storage.display(path)
        try:
            data = bounds.read_limited(self.storage, path, limit, parts[-1])
        except FileNotFoundError:
            raise RunFormatError(f"{where}: file is missing") from None
        return bounds.parse_json(data, where, self.limits)

    # -- identity and status ------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        info = self._json(layout.RUN_FILE, limit=self.limits.run_json_bytes)
        file_checks.check_run_info(info, self.storage.display(self.file(layout.RUN_FILE)))
        return info

    @property
    def config(self) -> dict:
        """config.json: a JSON object, depth- and size-bounded, inside the root; {} when there is none. Checked
        once per version of the file (its identity): a page asks for it on every refresh."""
        path = self.file(layout.CONFIG_FILE)  # a symlink out of the root is refused here
        try:
            ident = self.storage.identity(path)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise RunFormatError(f"{self.storage.display(path)}: cannot be read ({e.strerror or e})") from None
        if self._config[0] != ident:
            try:
                self._config = (ident, self._read_config(path))
            except RunFormatError as e:
                self._config = (ident, e)
        found = self._config[1]
        if isinstance(found, RunFormatError):
            raise RunFormatError(str(found))
        return copy.deepcopy(found)  # a caller's edit never reaches the next one

    def _read_config(self, path: str) -> dict:
        cfg = self._json(layout.CONFIG_FILE, limit=self.limits.config_bytes)
        if not isinstance(cfg, dict):
            raise RunFormatError(
                f"{self.storage.display(path)}: config must be a JSON object, not {type(cfg).__name__}"
            )
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
        try:
            return bounds.read_limited(self.storage, path, self.limits.notes_bytes, "notes file").decode(
                "utf-8", "replace"
            )
        except FileNotFoundError:
            return ""

    def save_notes(self, text: str) -> None:
        """Team notes live in their own file; the writer's files are never touched."""
        data = text.encode("utf-8")
        self.storage.write_atomic(self.file(layout.NOTES_FILE), lambda f: f.write(data))

    def generated_samples(self) -> np.ndarray | None:
        """The latest generated-sample grid (rows × columns × H × W uint8), or None when the run has none."""
        path = self.file(layout.GENERATED_FILE)
        return file_checks.load_grid(self.storage, path) if self.storage.exists(path) else None

    @property
    def cache_dir(self) -> str:
        return self.file(layout.CACHE_DIR)

    # -- metrics ------------------------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        """step, wall_time and one column per metric. Re-reading a growing file reads only the new bytes."""
        path = self.file(layout.METRICS_FILE)
        if not self.storage.exists(path):
            return rows_to_frame([])
        try:
            ident = self.storage.identity(path)
        except OSError as e:
            raise RunFormatError(f"{self.storage.display(path)}: cannot be read ({e.strerror or e})") from None
        if ident == self._metrics_identity and self._metrics_df is not None:
            return self._metrics_df
        size = ident[1]
        if size < self._metrics_offset or self._metrics_df is None:  # replaced, or first read: start over
            self._metrics_offset, self._metrics_df = 0, rows_to_frame([])
            self.skipped_metric_lines, self.metric_keys = [], MetricKeys(self.limits.metric_keys)
        chunk = (
            bounds.read_limited(self.storage, path, self.limits.metrics_bytes, "metrics file", self._metrics_offset)
            if size > self._metrics_offset
            else b""
        )
        end = chunk.rfind(b"\n") + 1  # a line without its newline is still being written (or torn)
        if end:
            new = self._parse_metric_lines(chunk[:end], path)
            self._metrics_df = new if self._metrics_df.empty else pd.concat([self._metrics_df, new], ignore_index=True)
            self._metrics_offset += end
        self._metrics_identity = ident
        return self._metrics_df

    def _parse_metric_lines(self, data: bytes, path: str) -> pd.DataFrame:
        """Arrow's multi-threaded JSON reader when the lines are plain numbers; the exact Python path (which
        also understands the NaN/Infinity tokens) otherwise. Lines over the length or depth bound never reach
        a parser. A line that is not a record (torn by a crash mid-append, or garbage) is skipped with a
        RunFormatWarning and listed in `skipped_metric_lines`; the rest of the file is read."""
        unsafe = bounds.line_problems(data, self.limits)
        if not unsafe:
            try:
                frame = arrow_frame(data, self.metric_keys)
                if frame is not None:
                    return frame
            except Exception:  # a "NaN" token, mixed types, bad JSON: the slow path will say which
                pass
        rows, offset = [], self._metrics_offset
        for lineno, line in enumerate(data.split(b"\n")):
            problem = unsafe.get(lineno)
            if problem is None and line.strip():
                problem = record_problem(line, rows)
            if problem is not None:
                self._skip_metric_line(path, offset, problem)
            offset += len(line) + 1
        return rows_to_frame(rows, self.metric_keys)

    def _skip_metric_line(self, path: str, offset: int, problem: str) -> None:
        self.skipped_metric_lines.append((offset, problem))
        warnings.warn(
            f"{self.storage.display(path)}: line at byte {offset} skipped: {problem}", RunFormatWarning, stacklevel=4
        )

    # -- snapshots ----------------------------------------------------------------------------------
    def snapshot_steps(self) -> list[int]:
        names = self.storage.listdir(self.file(layout.SNAPSHOT_DIR))
        return sorted(s for s in (layout.parse_snapshot_sidecar_name(n) for n in names) if s is not None)

    def snapshot_info(self, step: int) -> dict:
        sidecar = self._json(layout.SNAPSHOT_DIR, layout.snapshot_sidecar_name(step), limit=self.limits.sidecar_bytes)
        file_checks.check_sidecar(
            sidecar,
            self.storage.display(self.file(layout.SNAPSHOT_DIR, layout.snapshot_sidecar_name(step))),
            self.limits,
        )
        return sidecar

    def snapshot(self, step: int, fields: tuple[str, ...] | None = None) -> Snapshot:
        """Load a committed snapshot. `fields` limits which arrays are read (embeddings always are)."""
        if step not in self.snapshot_steps():
            raise KeyError(f"{self.name}: no committed snapshot at step {step}")
        info = self.snapshot_info(step)
        n = int(info.get("n", -1))
        arrays: dict[str, Any] = {}
        meta: dict[str, np.ndarray] = {}
        budget = [self.limits.snapshot_bytes]
        for name, spec in info["fields"].items():
            base = name[len(layout.METADATA_PREFIX) :] if name.startswith(layout.METADATA_PREFIX) else name
            if fields is not None and name != "embeddings" and base not in fields and name not in fields:
                continue
            arr = self._load_array(step, name, spec, n, budget)
            if name.startswith(layout.METADATA_PREFIX):
                meta[base] = arr
            elif name in layout.SNAPSHOT_ARRAY_FIELDS:
                arrays[name] = arr
        paired = arrays.get(layout.PAIRED_FIELD)
        if paired is not None and paired.shape != arrays["embeddings"].shape:
            folder = self.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step))
            raise RunFormatError(
                f"{self.storage.display(folder)}: paired_embeddings shape {paired.shape} differs "
                f"from embeddings {arrays['embeddings'].shape}"
            )
        return Snapshot(step=step, metadata=pd.DataFrame(meta), wall_time=info.get("wall_time"), info=info, **arrays)

    def _load_array(self, step: int, name: str, spec: dict, n: int, budget: list[int]) -> np.ndarray:
        path = self.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step), spec.get("file", f"{name}.npy"))
        return file_checks.load_field(self.storage, path, name, spec, n, budget, self.limits)


def status_of(info: dict, now: float | None = None) -> str:
    """`status`, except that a running run whose heartbeat is older than stall_after_s (or implausibly far in
    the future) is "stalled". `info` is a checked run.json (Run.info)."""
    status = info.get("status", "running")
    age = (now or time.time()) - float(info.get("heartbeat", 0.0))
    stall_after_s = float(info.get("stall_after_s", layout.STALL_AFTER_S))
    if status == "running" and not -FUTURE_HEARTBEAT_S <= age <= stall_after_s:
        return "stalled"
    return status


def open_run(path: str, root: str | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> Run:
    """Open one run: `open_run("runs/name")`, or `open_run("name", root="runs")` to confine it to a root."""
    if root is None:
        root, name = layout.split_run_path(path)
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
    return Run(storage, name, limits)


def list_runs(root: str, limits: ReadLimits = DEFAULT_LIMITS) -> list[Run]:
    """Every run directly under `root`, sorted by name. Broken runs are listed too; their files raise
    `RunFormatError` when read, so one bad run never hides the others. Symlinks leading out are skipped, and
    so are folders whose names are not valid run names (not UTF-8, control characters): `unreadable_runs`
    says which."""
    return _scan(root, limits)[0]


def unreadable_runs(root: str) -> list[str]:
    """One message per folder under `root` that holds a run.json but that list_runs skips for its name."""
    return _scan(root, DEFAULT_LIMITS)[1]


def _scan(root: str, limits: ReadLimits) -> tuple[list[Run], list[str]]:
    storage = Storage(root)
    runs, unreadable = [], []
    for name in storage.listdir(storage.root):
        if name.startswith("."):
            continue
        path = storage.join(name)
        try:
            if not storage.confined(path) or not storage.exists(storage.join(name, layout.RUN_FILE)):
                continue
            layout.validate_run_name(name)
        except (ValueError, OSError) as e:  # an undecodable name fails the check; some file systems fail stat
            reason = str(e).split(": ", 1)[-1] if isinstance(e, ValueError) else (e.strerror or str(e))
            unreadable.append(
                f"{storage.display(storage.join(layout.printable_name(name)))}: skipped: "
                f"{reason.replace(repr(name), 'the name')}"
            )
            continue
        runs.append(Run(storage, name, limits))
    return runs, unreadable


def finite_or_none(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
