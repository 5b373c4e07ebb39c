"""RunWriter: the API a training loop calls to write a run (docs/run-format.md).

The training step never waits on the disk: arguments are validated and copied to host memory on the
caller's thread, and one background thread does every write. `flush()` and `close()` wait for it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import math
import numbers
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import traceback
import warnings
from typing import Any, Mapping

import numpy as np

from . import bounds, layout, lock
from . import distributed as ddp
from .fields import (
    as_number,
    encode_field,
    gather_fields,
    is_tensor,
    to_host,
    validate_images,
    validate_paired,
    validate_snapshot,
)
from .layout import Storage
from .resume import rewind, share_steps


class RunWriter:
    """Write one run. Use as a context manager; an exception inside marks the run `crashed`.

    Under torch.distributed every rank constructs it; `log_snapshot` is a collective (rows of all ranks are
    gathered to rank 0); only rank 0 touches the disk. `log_metrics` records rank 0's values: reduce
    across ranks first if you want a global mean (see docs/run-format.md).
    """

    def __init__(
        self,
        root: str,
        name: str,
        config: Mapping[str, Any] | None = None,
        *,
        resume: bool = False,
        description: str | None = None,
        heartbeat_every_s: float = layout.HEARTBEAT_EVERY_S,
        stall_after_s: float = layout.STALL_AFTER_S,
        handle_sigterm: bool = True,
        resume_step: int | None = None,
        measure_snapshots=None,
    ):
        """Open run `root/name` for writing. `resume=True` continues an existing run (else one of that name is
        refused): after its last step, or, with `resume_step` (the step of the checkpoint training restarts
        from), after that step: metrics and snapshots past it, written by an attempt that crashed, are replaced
        (docs/run-format.md, "Resume"). A refused resume leaves the run as it was. The heartbeat is the time of
        the training loop's last call (a log_* or beat()): a loop that hangs turns `stalled` after
        stall_after_s however long the process lives. `measure_snapshots`: records at the
        source, e.g. diagnostics.work.source_records.MeasureSnapshots(); each committed snapshot is measured in the
        background by that object (this module imports nothing of it)."""
        self.name = layout.validate_run_name(name)
        self._measure = measure_snapshots
        if config is not None:
            if not isinstance(config, Mapping):
                raise ValueError(f"config: must be a JSON-able dict, got {type(config).__name__}")
            try:
                config_json = json.loads(json.dumps(dict(config), allow_nan=False, sort_keys=True))
            except (TypeError, ValueError) as e:
                raise ValueError(f"config: not JSON-serialisable ({e})") from None
        self.master_process = ddp.master_process()
        self.storage = Storage(root)
        self.path = self.storage.join(self.name)
        self._lock: lock.RunLock | None = None
        self._append_failed = False
        self._last_metric_step = -1
        self._last_snapshot_step = -1
        self._closed = False
        self._last_call = time.time()  # the heartbeat: when the training loop last called in (see beat())
        self._error: BaseException | None = None
        self._heartbeat_every_s = heartbeat_every_s
        # Metrics logged every step are appended (and fsynced) in batches at most this often; flush(),
        # close() and snapshots do not wait for it.
        self._metrics_every_s = 0.5
        self._urgent = threading.Event()
        # SimpleQueue.put is reentrant: the SIGTERM handler can enqueue "close" even if the signal arrived
        # while the main thread was inside put() (a Queue's lock would deadlock there).
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        shared = resume and ddp.is_distributed() and ddp.world_size() > 1  # every rank learns the resume steps
        if not self.master_process:
            if shared:
                self._last_metric_step, self._last_snapshot_step = share_steps(self.name, None)
            return
        run_file = self.storage.join(self.name, layout.RUN_FILE)
        try:
            self.storage.makedirs(self.storage.join(self.name, layout.SNAPSHOT_DIR))
            self._lock = lock.acquire(self.storage, self.name, stall_after_s)  # refuses a run another writer owns
            exists = self.storage.exists(run_file)
            if exists and not resume:
                raise ValueError(
                    f"name: a run named {self.name!r} already exists in {root}; "
                    "pass resume=True to continue it or choose another name"
                )
            if exists:
                self._info = self._read_run_json(run_file)
                self._recover_for_resume()
                if resume_step is not None:
                    self._rewind(self._check_step(resume_step, "resume_step"))
            now = time.time()
            if exists:
                self._info["resumed"] = self._info.get("resumed", 0) + 1
            else:
                self._info = {
                    "format_version": layout.FORMAT_VERSION,
                    "name": self.name,
                    "created": now,
                    "host": socket.gethostname(),
                    "git_commit": _git_commit(),
                    "dropped_snapshots": [],
                }
            self._info.update(
                status="running",
                heartbeat=now,
                error=None,
                world_size=ddp.world_size(),
                pid=os.getpid(),
                heartbeat_every_s=heartbeat_every_s,
                stall_after_s=stall_after_s,
            )
            if description is not None:
                self._info["description"] = str(description)
            elif config is not None and "description" in config:
                self._info["description"] = str(config["description"])
            if config is not None:
                self.storage.write_json_atomic(self.storage.join(self.name, layout.CONFIG_FILE), config_json)
            self._write_run_json()
        except BaseException:
            self._release()
            if shared:  # the other ranks raise too, instead of waiting in the next collective
                with contextlib.suppress(ValueError):
                    share_steps(self.name, None)
            raise
        if shared:
            share_steps(self.name, (self._last_metric_step, self._last_snapshot_step))
        self._thread = threading.Thread(target=self._worker, name=f"RunWriter[{self.name}]", daemon=True)
        self._thread.start()
        self._start_measuring()
        atexit.register(self._flush_at_exit)
        self._previous_sigterm = None
        if handle_sigterm and threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    # -- public API ---------------------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: Mapping[str, Any], wall_time: float | None = None) -> None:
        """One metrics.jsonl record. `wall_time` (Unix seconds, finite, ≥ 0) defaults to now; pass it when the
        values were measured earlier (an import of another tool's logs)."""
        self.beat()
        step = self._check_step(step, "step")
        if step < self._last_metric_step:
            raise ValueError(f"step: {step} goes backwards (last logged metrics step is {self._last_metric_step})")
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError("metrics: must be a non-empty dict of name -> number")
        wall_time = time.time() if wall_time is None else self._check_wall_time(wall_time)
        record: dict[str, Any] = {"step": step, "wall_time": wall_time}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key or key in layout.RESERVED_METRIC_KEYS:
                raise ValueError(
                    f"metrics: key {key!r} must be a non-empty string other than {layout.RESERVED_METRIC_KEYS}"
                )
            record[key] = layout.encode_metric_value(as_number(value, f"metrics[{key!r}]"))
        self._last_metric_step = step
        if self.master_process:
            self._put(("metrics", record))

    def log_snapshot(
        self,
        step: int,
        embeddings,
        positives=None,
        features=None,
        labels=None,
        metadata: Mapping[str, Any] | None = None,
        images=None,
        paired_embeddings=None,
        modality_names: tuple[str, str] | None = None,
        positive_images=None,
        wall_time: float | None = None,
    ) -> None:
        self.beat()
        step = self._check_step(step, "step")
        if step <= self._last_snapshot_step:
            raise ValueError(
                f"step: snapshot step {step} is not after the last snapshot step {self._last_snapshot_step}"
            )
        fields = validate_snapshot(embeddings, positives, features, labels, metadata, images)
        fields.update(validate_images(embeddings, positive_images, "positive_images"))
        fields.update(validate_paired(embeddings, paired_embeddings, modality_names))
        if ddp.is_distributed() and ddp.world_size() > 1:
            fields = gather_fields(fields)
            if fields is None:  # not rank 0
                self._last_snapshot_step = step
                return
        host = {k: (v if k == "modality_names" else to_host(v)) for k, v in fields.items()}
        self._last_snapshot_step = step
        self._put(("snapshot", step, time.time() if wall_time is None else self._check_wall_time(wall_time), host))

    @property
    def last_metrics_step(self) -> int:
        """The step of the last metrics record logged (or on disk before a resume); -1 for none."""
        return self._last_metric_step

    @property
    def last_snapshot_step(self) -> int:
        """The step of the last snapshot logged (or committed before a resume); -1 for none."""
        return self._last_snapshot_step

    def beat(self) -> None:
        """A sign of life from the training loop. log_metrics and log_snapshot beat; call it in a long phase
        that logs nothing (an evaluation), so that the run is not shown `stalled` after stall_after_s."""
        self._last_call = time.time()

    def log_generated(self, grid) -> None:
        """Replace the run's generated-sample grid (layout.GENERATED_FILE: rows × columns × H × W uint8, shown on
        the Cross-modal page), written atomically by the background thread; rank 0 only under DDP."""
        grid = np.array(to_host(grid) if is_tensor(grid) else grid)  # a copy: the caller may reuse its buffer
        if grid.dtype != np.uint8 or grid.ndim != 4:
            raise ValueError(f"grid: needs a uint8 rows×cols×H×W array, got {grid.dtype} {grid.shape}")
        if self.master_process:
            self._put(("generated", grid))

    def flush(self) -> None:
        """Wait until everything logged so far is on disk."""
        if not self.master_process or self._closed:
            return
        done = threading.Event()
        self._put(("flush", done))
        done.wait()

    def close(self, status: str = "finished", error: str | None = None, heartbeat: float | None = None) -> None:
        """Mark the run `status` (with `error` text) and wait for every write. `heartbeat`: when the run last
        showed life, when not now (an import of another tool's log); a run closed `running` with it turns
        `stalled` when that is older than stall_after_s."""
        if self._closed:
            return
        if self.master_process:
            self._stop_measuring()
            done = threading.Event()
            self._put(("close", status, error, done, heartbeat))
            done.wait()
            self._thread.join()
            self._release()
            if self._previous_sigterm is not None:
                try:
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
                except ValueError:
                    pass
        self._closed = True

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close("finished")
        else:
            text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.close("crashed", text)

    # -- caller-thread helpers ----------------------------------------------------------------------
    def _put(self, item) -> None:
        if self._closed:
            raise ValueError(f"run {self.name!r} is closed")
        self._queue.put(item)
        if item[0] != "metrics":
            self._urgent.set()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    @staticmethod
    def _check_wall_time(wall_time) -> float:
        wall_time = as_number(wall_time, "wall_time")
        if not (math.isfinite(wall_time) and wall_time >= 0):
            raise ValueError(f"wall_time: must be finite Unix seconds ≥ 0, got {wall_time}")
        return wall_time

    @staticmethod
    def _check_step(step, argument: str) -> int:
        if isinstance(step, bool) or not (isinstance(step, numbers.Integral) or is_tensor(step)):
            raise ValueError(f"{argument}: must be a non-negative int, got {step!r}")
        step = int(step)
        if not 0 <= step <= layout.MAX_STEP:
            raise ValueError(f"{argument}: must be an int in [0, 2^63), got {step}")
        return step

    def _on_sigterm(self, signum, frame) -> None:
        try:
            self.close("crashed", "terminated by SIGTERM")
        finally:
            previous = self._previous_sigterm
            if callable(previous):
                previous(signum, frame)
            else:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

    def _flush_at_exit(self) -> None:
        if not self._closed:
            try:
                self.flush()
            except Exception:
                pass

    # -- resume -------------------------------------------------------------------------------------
    def _read_run_json(self, path: str) -> dict:
        where = self.storage.display(path)
        try:
            info = bounds.parse_json(
                bounds.read_limited(self.storage, path, bounds.DEFAULT_LIMITS.run_json_bytes, layout.RUN_FILE), where
            )
        except bounds.RunFormatError as e:
            raise ValueError(f"resume: {e}; refusing to touch the run") from None
        if not isinstance(info, dict) or not isinstance(info.get("format_version", 0), int):
            raise ValueError(f"resume: {where} is not a run.json; refusing to touch the run")
        if info.get("format_version", 0) > layout.FORMAT_VERSION:
            raise ValueError(
                f"resume: {path} has format version {info.get('format_version')}, newer than "
                f"this writer ({layout.FORMAT_VERSION})"
            )
        return info

    def _recover_for_resume(self) -> None:
        metrics = self.storage.join(self.name, layout.METRICS_FILE)
        if self.storage.exists(metrics):
            data = self.storage.read_bytes(metrics)
            complete = data.rfind(b"\n") + 1
            if complete < len(data):  # a torn last line from a killed writer: cut it before appending
                self.storage.truncate(metrics, complete)
            for line in reversed(data[:complete].split(b"\n")[-64:]):  # the last record a reader accepts
                try:
                    step = json.loads(line)["step"]
                except (ValueError, TypeError, KeyError, RecursionError):
                    continue
                if isinstance(step, int) and 0 <= step <= layout.MAX_STEP:
                    self._last_metric_step = step
                    break
        snap_dir = self.storage.join(self.name, layout.SNAPSHOT_DIR)
        names = self.storage.listdir(snap_dir)
        committed = {layout.parse_snapshot_sidecar_name(n) for n in names} - {None}
        for n in names:  # folders without a sidecar were never committed: leftovers of a crash
            if n.isdigit() and int(n) not in committed:
                self.storage.remove_tree(self.storage.join(self.name, layout.SNAPSHOT_DIR, n))
        self._last_snapshot_step = max(committed, default=-1)

    def _rewind(self, step: int) -> None:
        """Resume from a checkpoint at `step` (runformat.resume.rewind says the rule and what it cuts)."""
        cut = rewind(self.storage, self.name, self._info, step, self._last_metric_step, self._last_snapshot_step)
        if cut is not None:
            self._info.setdefault("rewinds", []).append(cut)
            self._last_metric_step = min(self._last_metric_step, step)
            self._last_snapshot_step = min(self._last_snapshot_step, step)

    # -- background thread --------------------------------------------------------------------------
    def _worker(self) -> None:
        last_beat = time.time()
        while True:
            try:
                item = self._queue.get(timeout=self._heartbeat_every_s)
            except queue.Empty:
                item = None
            batch = [item] if item is not None else []
            while True:  # drain: many metric records become one append
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = self._handle(batch)
            if batch and not stop and all(i[0] == "metrics" for i in batch):
                # Only metrics: let more accumulate so a loop logging every step costs one append per
                # interval, not one write and fsync per step. Anything else wakes us at once.
                self._urgent.wait(self._metrics_every_s)
            self._urgent.clear()
            if (
                time.time() - last_beat >= self._heartbeat_every_s
                and not stop
                and self._last_call > self._info["heartbeat"]
            ):  # a hung loop stops the heartbeat
                self._info["heartbeat"] = self._last_call
                self._safe(self._write_run_json)
                last_beat = time.time()
            if stop:
                return

    def _handle(self, batch: list) -> bool:
        lines = []
        events, stop = [], False
        for item in batch:
            kind = item[0]
            if kind == "metrics":
                lines.append(json.dumps(item[1], allow_nan=False))
                continue
            if lines:  # keep order: metrics logged before a snapshot land before it
                self._safe(self._append_metrics, lines)
                lines = []
            if kind == "snapshot":
                self._write_snapshot(*item[1:])
            elif kind == "generated":
                self._safe(
                    self.storage.write_atomic,
                    self.storage.join(self.name, layout.GENERATED_FILE),
                    lambda f, grid=item[1]: np.save(f, grid, allow_pickle=False),
                )
            elif kind == "flush":
                events.append(item[1])
            elif kind == "close":
                _, status, error, done, beat = item
                at = time.time() if beat is None else float(beat)
                self._info.update(status=status, error=error, heartbeat=at, ended=at)
                if status == "running":
                    del self._info["ended"]
                self._safe(self._write_run_json)
                events.append(done)
                stop = True
        if lines:
            self._safe(self._append_metrics, lines)
        for e in events:
            e.set()
        return stop

    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except OSError as e:
            warnings.warn(f"RunWriter[{self.name}]: write failed ({e}); training goes on", RuntimeWarning, stacklevel=2)

    def _append_metrics(self, lines: list[str]) -> None:
        path = self.storage.join(self.name, layout.METRICS_FILE)
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if (
            self._append_failed
            and not self.storage.url
            and os.path.getsize(path)
            and self.storage.read_bytes(path, os.path.getsize(path) - 1) != b"\n"
        ):
            data = b"\n" + data  # the failed append could not be cut back: end its fragment (readers skip it)
        try:
            self.storage.append(path, data)
            self._append_failed = False
        except OSError:
            self._append_failed = True
            self._info["dropped_metric_lines"] = self._info.get("dropped_metric_lines", 0) + len(lines)
            raise

    def _write_run_json(self) -> None:
        self.storage.write_json_atomic(self.storage.join(self.name, layout.RUN_FILE), self._info)

    def _write_snapshot(self, step: int, wall_time: float, host: dict) -> None:
        folder_parts = (self.name, layout.SNAPSHOT_DIR, layout.snapshot_dirname(step))
        folder = self.storage.join(*folder_parts)
        try:
            self.storage.makedirs(folder)
            sidecar = {
                "format_version": layout.FORMAT_VERSION,
                "step": step,
                "wall_time": wall_time,
                "n": int(host["embeddings"].shape[0]),
                "fields": {},
            }
            if "modality_names" in host:
                sidecar["modality_names"] = host["modality_names"]
            meta_names = list(host.get("metadata", {}).keys())
            arrays = [(k, v) for k, v in host.items() if k not in ("metadata", "modality_names")]
            arrays += [(layout.METADATA_PREFIX + col, host["metadata"][col]) for col in meta_names]
            for i, (field_name, arr) in enumerate(arrays):
                stored, spec = encode_field(field_name, arr)
                spec["file"] = (
                    f"meta-{i:03d}.npy" if field_name.startswith(layout.METADATA_PREFIX) else f"{field_name}.npy"
                )
                self.storage.write_atomic(
                    self.storage.join(*folder_parts, spec["file"]),
                    lambda f, a=stored: np.save(f, a, allow_pickle=False),
                )
                sidecar["fields"][field_name] = spec
            # The sidecar is the commit: a reader sees the snapshot only once every array is in place.
            self.storage.write_json_atomic(folder + ".json", sidecar)
            self._measure_committed(step)
        except OSError as e:
            self.storage.remove_tree(folder)
            if e.errno != errno.ENOSPC:
                warnings.warn(
                    f"RunWriter[{self.name}]: snapshot at step {step} dropped: {e}", RuntimeWarning, stacklevel=2
                )
            else:
                warnings.warn(
                    f"RunWriter[{self.name}]: disk full, snapshot at step {step} dropped; training goes on",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self._info.setdefault("dropped_snapshots", []).append({"step": step, "error": str(e)})
            self._safe(self._write_run_json)

    # -- records at the source (measure_snapshots) ----------------------------------------------------
    def _start_measuring(self) -> None:
        if self._measure is not None and self.master_process:
            self._measure.start(self)

    def _measure_committed(self, step: int) -> None:
        """After a sidecar commit (the writer's thread): hand the step over; the measurer only queues it."""
        if self._measure is not None:
            self._measure.submit(step)

    def _stop_measuring(self) -> None:
        """At close: every snapshot written, then the queued records measured, before the last run.json (which
        keeps the measurer's notes)."""
        if self._measure is not None and self.master_process:
            self.flush()
            self._measure.close()


def available_name(root: str, name: str) -> str:
    """`name`, or the first of `name-v2`, `name-v3`, ... with no run under `root` (as Lightning's loggers number
    versions): what the callbacks' version=True writes to."""
    storage = Storage(root)
    base = layout.validate_run_name(name)
    candidate, version = base, 1
    while storage.exists(storage.join(candidate, layout.RUN_FILE)):
        version += 1
        candidate = layout.validate_run_name(f"{base}-v{version}")
    return candidate


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
