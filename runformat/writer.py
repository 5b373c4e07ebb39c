"""RunWriter: the API a training loop calls to write a run (docs/run-format.md).

The training step never waits on the disk: arguments are validated and copied to host memory on the
caller's thread, and one background thread does every write. `flush()` and `close()` wait for it.
"""
from __future__ import annotations

import atexit
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

import sys

import numpy as np

from . import bounds, layout, lock
from .layout import Storage

from . import distributed as ddp

# A float field is stored in the narrowest of these in which it reads back faithfully: every finite value stays
# finite, and in every row and every column the largest rounding error is at most `rtol` times the largest
# magnitude there. float16 rounds a normal value within 2^-11 of itself and float32 within 2^-24, so a field at a
# sane scale always passes; one whose rows (or columns) sit in the subnormal range, where float16 flushes to zero
# (2000x16 N(0,1)*1e-8 embeddings: 99.7% of values became 0, relative error 0.99), does not, and neither does
# 1e39 in float32 (inf). tests/test_hostile.py holds these cases.
STORAGE_FLOATS = ((np.float16, 2.0**-10), (np.float32, 2.0**-23), (np.float64, 0.0))


def _is_tensor(x) -> bool:
    """A torch.Tensor, without importing torch: if the caller never imported it, x cannot be one."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class RunWriter:
    """Write one run. Use as a context manager; an exception inside marks the run `crashed`.

    Under torch.distributed every rank constructs it; `log_snapshot` is a collective (rows of all ranks are
    gathered to rank 0); only rank 0 touches the disk. `log_metrics` records rank 0's values: reduce
    across ranks first if you want a global mean (see docs/run-format.md).
    """

    def __init__(self, root: str, name: str, config: Mapping[str, Any] | None = None, *,
                 resume: bool = False, description: str | None = None,
                 heartbeat_every_s: float = layout.HEARTBEAT_EVERY_S,
                 stall_after_s: float = layout.STALL_AFTER_S, handle_sigterm: bool = True):
        self.name = layout.validate_run_name(name)
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
        self._error: BaseException | None = None
        self._heartbeat_every_s = heartbeat_every_s
        # Metrics logged every step are appended (and fsynced) in batches at most this often; flush(),
        # close() and snapshots do not wait for it.
        self._metrics_every_s = 0.5
        self._urgent = threading.Event()
        # SimpleQueue.put is reentrant: the SIGTERM handler can enqueue "close" even if the signal arrived
        # while the main thread was inside put() (a Queue's lock would deadlock there).
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        if not self.master_process:
            return
        run_file = self.storage.join(self.name, layout.RUN_FILE)
        self.storage.makedirs(self.storage.join(self.name, layout.SNAPSHOT_DIR))
        self._lock = lock.acquire(self.storage, self.name, stall_after_s)  # refuses a run another writer owns
        try:
            exists = self.storage.exists(run_file)
            if exists and not resume:
                raise ValueError(f"name: a run named {self.name!r} already exists in {root}; "
                                 "pass resume=True to continue it or choose another name")
            if exists:
                self._info = self._read_run_json(run_file)
                self._recover_for_resume()
            now = time.time()
            if exists:
                self._info["resumed"] = self._info.get("resumed", 0) + 1
            else:
                self._info = {"format_version": layout.FORMAT_VERSION, "name": self.name, "created": now,
                              "host": socket.gethostname(), "git_commit": _git_commit(),
                              "dropped_snapshots": []}
            self._info.update(status="running", heartbeat=now, error=None, world_size=ddp.world_size(),
                              pid=os.getpid(), heartbeat_every_s=heartbeat_every_s, stall_after_s=stall_after_s)
            if description is not None:
                self._info["description"] = str(description)
            elif config is not None and "description" in config:
                self._info["description"] = str(config["description"])
            if config is not None:
                self.storage.write_json_atomic(self.storage.join(self.name, layout.CONFIG_FILE), config_json)
            self._write_run_json()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._worker, name=f"RunWriter[{self.name}]", daemon=True)
        self._thread.start()
        atexit.register(self._flush_at_exit)
        self._previous_sigterm = None
        if handle_sigterm and threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    # -- public API ---------------------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: Mapping[str, Any], wall_time: float | None = None) -> None:
        """One metrics.jsonl record. `wall_time` (Unix seconds, finite, ≥ 0) defaults to now; pass it when the
        values were measured earlier (an import of another tool's logs)."""
        step = self._check_step(step, "step")
        if step < self._last_metric_step:
            raise ValueError(f"step: {step} goes backwards (last logged metrics step is {self._last_metric_step})")
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError("metrics: must be a non-empty dict of name -> number")
        if wall_time is None:
            wall_time = time.time()
        else:
            wall_time = _as_number(wall_time, "wall_time")
            if not (math.isfinite(wall_time) and wall_time >= 0):
                raise ValueError(f"wall_time: must be finite Unix seconds ≥ 0, got {wall_time}")
        record: dict[str, Any] = {"step": step, "wall_time": wall_time}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key or key in layout.RESERVED_METRIC_KEYS:
                raise ValueError(f"metrics: key {key!r} must be a non-empty string other than "
                                 f"{layout.RESERVED_METRIC_KEYS}")
            record[key] = layout.encode_metric_value(_as_number(value, f"metrics[{key!r}]"))
        self._last_metric_step = step
        if self.master_process:
            self._put(("metrics", record))

    def log_snapshot(self, step: int, embeddings, positives=None, features=None, labels=None,
                     metadata: Mapping[str, Any] | None = None, images=None, paired_embeddings=None,
                     modality_names: tuple[str, str] | None = None, positive_images=None) -> None:
        step = self._check_step(step, "step")
        if step <= self._last_snapshot_step:
            raise ValueError(f"step: snapshot step {step} is not after the last snapshot step "
                             f"{self._last_snapshot_step}")
        fields = _validate_snapshot(embeddings, positives, features, labels, metadata, images)
        fields.update(_validate_images(embeddings, positive_images, "positive_images"))
        fields.update(_validate_paired(embeddings, paired_embeddings, modality_names))
        if ddp.is_distributed() and ddp.world_size() > 1:
            fields = _gather_fields(fields)
            if fields is None:  # not rank 0
                self._last_snapshot_step = step
                return
        host = {k: (v if k == "modality_names" else _to_host(v)) for k, v in fields.items()}
        self._last_snapshot_step = step
        self._put(("snapshot", step, time.time(), host))

    def flush(self) -> None:
        """Wait until everything logged so far is on disk."""
        if not self.master_process or self._closed:
            return
        done = threading.Event()
        self._put(("flush", done))
        done.wait()

    def close(self, status: str = "finished", error: str | None = None) -> None:
        if self._closed:
            return
        if self.master_process:
            done = threading.Event()
            self._put(("close", status, error, done))
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
    def _check_step(step, argument: str) -> int:
        if isinstance(step, bool) or not (isinstance(step, numbers.Integral) or _is_tensor(step)):
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
            info = bounds.parse_json(bounds.read_limited(self.storage, path, bounds.DEFAULT_LIMITS.run_json_bytes,
                                                         layout.RUN_FILE), where)
        except bounds.RunFormatError as e:
            raise ValueError(f"resume: {e}; refusing to touch the run") from None
        if not isinstance(info, dict) or not isinstance(info.get("format_version", 0), int):
            raise ValueError(f"resume: {where} is not a run.json; refusing to touch the run")
        if info.get("format_version", 0) > layout.FORMAT_VERSION:
            raise ValueError(f"resume: {path} has format version {info.get('format_version')}, newer than "
                             f"this writer ({layout.FORMAT_VERSION})")
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
            if time.time() - last_beat >= self._heartbeat_every_s and not stop:
                self._info["heartbeat"] = time.time()
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
            elif kind == "flush":
                events.append(item[1])
            elif kind == "close":
                _, status, error, done = item
                self._info.update(status=status, error=error, heartbeat=time.time(), ended=time.time())
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
            warnings.warn(f"RunWriter[{self.name}]: write failed ({e}); training goes on", RuntimeWarning)

    def _append_metrics(self, lines: list[str]) -> None:
        path = self.storage.join(self.name, layout.METRICS_FILE)
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self._append_failed and not self.storage.url and os.path.getsize(path) \
                and self.storage.read_bytes(path, os.path.getsize(path) - 1) != b"\n":
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
            sidecar = {"format_version": layout.FORMAT_VERSION, "step": step, "wall_time": wall_time,
                       "n": int(host["embeddings"].shape[0]), "fields": {}}
            if "modality_names" in host:
                sidecar["modality_names"] = host["modality_names"]
            meta_names = list(host.get("metadata", {}).keys())
            arrays = [(k, v) for k, v in host.items() if k not in ("metadata", "modality_names")]
            arrays += [(layout.METADATA_PREFIX + col, host["metadata"][col]) for col in meta_names]
            for i, (field_name, arr) in enumerate(arrays):
                stored, spec = _encode_field(field_name, arr)
                spec["file"] = (f"meta-{i:03d}.npy" if field_name.startswith(layout.METADATA_PREFIX)
                                else f"{field_name}.npy")
                self.storage.write_atomic(self.storage.join(*folder_parts, spec["file"]),
                                          lambda f, a=stored: np.save(f, a, allow_pickle=False))
                sidecar["fields"][field_name] = spec
            # The sidecar is the commit: a reader sees the snapshot only once every array is in place.
            self.storage.write_json_atomic(folder + ".json", sidecar)
        except OSError as e:
            self.storage.remove_tree(folder)
            if e.errno != errno.ENOSPC:
                warnings.warn(f"RunWriter[{self.name}]: snapshot at step {step} dropped: {e}", RuntimeWarning)
            else:
                warnings.warn(f"RunWriter[{self.name}]: disk full, snapshot at step {step} dropped; "
                              "training goes on", RuntimeWarning)
            self._info.setdefault("dropped_snapshots", []).append({"step": step, "error": str(e)})
            self._safe(self._write_run_json)


# -- validation and conversion (caller thread) --------------------------------------------------------

def _as_number(value, argument: str) -> float:
    if _is_tensor(value):
        if value.numel() != 1:
            raise ValueError(f"{argument}: must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{argument}: must be a single number, got an array of shape {value.shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{argument}: must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _shape(x) -> tuple:
    return tuple(x.shape)


def _is_array(x) -> bool:
    return _is_tensor(x) or isinstance(x, np.ndarray)


def _validate_images(embeddings, images, argument: str) -> dict:
    """{argument: images} when they are uint8 N×H×W or N×H×W×3 with the embeddings' N; {} when None."""
    if images is None:
        return {}
    img = images if _is_array(images) else np.asarray(images)
    ok_dtype = (str(img.dtype) == 'torch.uint8' if _is_tensor(img) else img.dtype == np.uint8)
    shape = _shape(img)
    if not ok_dtype or not (len(shape) == 3 or (len(shape) == 4 and shape[-1] == 3)) or 0 in shape[1:3]:
        raise ValueError(f"{argument}: must be uint8 N×H×W or N×H×W×3, got shape {shape} dtype {img.dtype}")
    if shape[0] != _shape(embeddings)[0]:
        raise ValueError(f"{argument}: has {shape[0]} rows but embeddings has {_shape(embeddings)[0]}")
    return {argument: img}


def _validate_snapshot(embeddings, positives, features, labels, metadata, images) -> dict:
    if not _is_array(embeddings) or len(_shape(embeddings)) != 2 or _shape(embeddings)[0] < 1:
        raise ValueError(f"embeddings: must be an N×d tensor or array with N ≥ 1, got "
                         f"{_shape(embeddings) if _is_array(embeddings) else type(embeddings).__name__}")
    n, _ = _shape(embeddings)
    fields: dict[str, Any] = {"embeddings": embeddings}
    for argument, x in (("embeddings", embeddings), ("positives", positives), ("features", features)):
        if x is None:
            continue
        if not _is_array(x) or len(_shape(x)) != 2 or _shape(x)[1] < 1:
            raise ValueError(f"{argument}: must be a 2-D tensor or array with at least one column, got "
                             f"{_shape(x) if _is_array(x) else type(x).__name__}")
        if not (x.dtype.is_floating_point if _is_tensor(x) else np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"{argument}: must have a float dtype, got {x.dtype}")
        if _shape(x)[0] != n:
            raise ValueError(f"{argument}: has {_shape(x)[0]} rows but embeddings has {n}")
        fields[argument] = x
    if positives is not None and _shape(positives) != _shape(embeddings):
        raise ValueError(f"positives: shape {_shape(positives)} differs from embeddings {_shape(embeddings)}")
    if labels is not None:
        lab = labels if _is_array(labels) else np.asarray(labels)
        integral = (not lab.dtype.is_floating_point and lab.dtype != sys.modules['torch'].bool) if _is_tensor(lab) \
            else np.issubdtype(lab.dtype, np.integer)
        if len(_shape(lab)) != 1 or not integral:
            raise ValueError(f"labels: must be a 1-D array of ints, got shape {_shape(lab)} dtype {lab.dtype}")
        if _shape(lab)[0] != n:
            raise ValueError(f"labels: has {_shape(lab)[0]} rows but embeddings has {n}")
        _check_int64(lab, "labels")
        fields["labels"] = lab
    fields.update(_validate_images(embeddings, images, "images"))
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValueError("metadata: must be a dict of column name -> length-N column")
        cols = {}
        for col, values in metadata.items():
            if not isinstance(col, str) or not col:
                raise ValueError(f"metadata: column name {col!r} must be a non-empty string")
            arr = values.detach().cpu().numpy() if _is_tensor(values) else np.asarray(values)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"metadata[{col!r}]: must be a 1-D column of {n} values, got shape {arr.shape}")
            if arr.dtype.kind in "OSU":
                arr = arr.astype(str)
            elif arr.dtype.kind not in "biuf":
                raise ValueError(f"metadata[{col!r}]: values must be str or numbers, got dtype {arr.dtype}")
            _check_int64(arr, f"metadata[{col!r}]")
            cols[col] = arr
        fields["metadata"] = cols
    return fields


def _check_int64(x, argument: str) -> None:
    """uint64 values past 2^63 would wrap when stored as int64."""
    if str(x.dtype).endswith("uint64") and len(x) and int(x.max()) > layout.MAX_STEP:
        raise ValueError(f"{argument}: values up to {int(x.max())} do not fit int64")


def _validate_paired(embeddings, paired, modality_names) -> dict:
    """paired_embeddings: the second modality, N×d like embeddings (same rows, same space), any float dtype."""
    if paired is None:
        if modality_names is not None:
            raise ValueError("modality_names: only meaningful with paired_embeddings")
        return {}
    if not _is_array(paired) or _shape(paired) != _shape(embeddings):
        raise ValueError(f"paired_embeddings: must be an array of the embeddings' shape {_shape(embeddings)}, got "
                         f"{_shape(paired) if _is_array(paired) else type(paired).__name__}")
    if not (paired.dtype.is_floating_point if _is_tensor(paired) else np.issubdtype(paired.dtype, np.floating)):
        raise ValueError(f"paired_embeddings: must have a float dtype, got {paired.dtype}")
    out = {layout.PAIRED_FIELD: paired}
    if modality_names is not None:
        names = list(modality_names) if isinstance(modality_names, (list, tuple)) else None
        if names is None or len(names) != 2 or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"modality_names: must be two non-empty strings, got {modality_names!r}")
        out["modality_names"] = names
    return out


def _to_host(x):
    """Detach and copy to host on the caller's thread so later in-place updates cannot leak into the file.
    Dtype conversion (bf16 has no numpy dtype) happens later, on the writer thread."""
    if _is_tensor(x):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: np.array(v, copy=True) for k, v in x.items()}
    return np.array(x, copy=True)


def _encode_field(name: str, x) -> tuple[np.ndarray, dict]:
    if _is_tensor(x):
        source = str(x.dtype).replace("torch.", "")
        x = (x.float() if source in ('bfloat16', 'float16') else x).numpy()
    else:
        source = str(x.dtype)
    spec: dict[str, Any] = {"source_dtype": source, "shape": list(x.shape)}
    if x.dtype.kind == "f":
        x = x.astype(next(t for t, rtol in STORAGE_FLOATS if _round_trips(x, t, rtol)), copy=False)
        # counted on what is stored, so the sidecar describes the file
        spec["nonfinite_rows"] = int((~np.isfinite(x).reshape(len(x), -1).all(axis=1)).sum()) if x.size else 0
    elif name == "labels" or x.dtype.kind in "iub" and name not in layout.IMAGE_FIELDS:
        x = x.astype(np.int64)
    spec["dtype"] = str(x.dtype) if x.dtype.kind != "U" else "str"
    return np.ascontiguousarray(x), spec


def _round_trips(x: np.ndarray, dtype, rtol: float, block: int = 1 << 21) -> bool:
    """Whether x stored as `dtype` reads back faithfully (the rule above STORAGE_FLOATS). x is 1-D (one column)
    or N x d; checked in blocks of rows, in x's own precision (the rounding error of a narrower float is exact
    there), so the copies stay small."""
    if np.dtype(dtype).itemsize >= x.dtype.itemsize:
        return True  # exact
    x2 = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, 1)
    col_err, col_max = np.zeros(x2.shape[1], x.dtype), np.zeros(x2.shape[1], x.dtype)
    step = max(1, block // max(1, x2.shape[1]))
    for start in range(0, len(x2), step):
        a = x2[start:start + step]
        finite = np.isfinite(a)
        if not finite.all():  # non-finite values store as themselves: judge the finite ones
            a = np.where(finite, a, 0)
        with np.errstate(over="ignore"):
            back = a.astype(dtype).astype(a.dtype)
        if np.isinf(back).any():
            return False  # overflow: a finite value would be stored as inf
        err, mag = np.abs(back - a), np.abs(a)
        if (err.max(axis=1) > rtol * mag.max(axis=1)).any():
            return False
        np.maximum(col_err, err.max(axis=0), out=col_err)
        np.maximum(col_max, mag.max(axis=0), out=col_max)
    return bool((col_err <= rtol * col_max).all())


def _gather_fields(fields: dict) -> dict | None:
    import torch  # only under torch.distributed, where torch is loaded already

    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "modality_names":  # the same on every rank: not rows
            out[key] = value
        elif key == "metadata":
            cols = {}
            for col, arr in value.items():
                cols[col] = ddp.gather_strings(arr) if arr.dtype.kind == "U" else \
                    ddp.gather_rows(torch.from_numpy(np.ascontiguousarray(arr)))
            out[key] = cols
        else:
            t = value if _is_tensor(value) else torch.from_numpy(np.ascontiguousarray(value))
            out[key] = ddp.gather_rows(t)
    if not ddp.master_process():
        return None
    if "metadata" in out:
        out["metadata"] = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in out["metadata"].items()}
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
