"""The worker's status on a root: each worker process writes its own <root>/.cache/workers/<host>-<pid>.json
from its loop (a few hundred bytes, on change and at most every HEARTBEAT_EVERY_S otherwise); `status` merges
them for Home, `heartbeat_of` is the supervisor's liveness check (dashboard/worker_process.py)."""
from __future__ import annotations

import os
import socket
import time

from runformat import layout
from runformat.layout import Storage

from . import lease as leases

STATUS_FILE = "worker.json"   # written by workers before the pool: still read when no workers/ file exists
WORKERS_DIR = "workers"
HEARTBEAT_EVERY_S = 2.0       # a worker's status file is rewritten at least this often while its loop runs
MAX_ERROR_CHARS = 2000        # last_error is cut to this (a request naming a 10 MB run was 10 MB of JSON)


def _cache_path(storage: Storage, *parts: str) -> str:
    return storage.join(layout.CACHE_DIR, *parts)


def status(root: str) -> dict | None:
    """The workers' state on this root, merged (see RECORD_API.md): the freshest heartbeat and its pid, the
    task of any that computes, the newest error; None when no worker has run on this root."""
    storage = Storage(root)
    found = []
    names = [n for n in storage.listdir(_cache_path(storage, WORKERS_DIR)) if n.endswith(".json")]
    for path in [_cache_path(storage, WORKERS_DIR, n) for n in names] + [_cache_path(storage, STATUS_FILE)]:
        try:
            if not storage.url and not os.path.isfile(path):
                continue
            value = storage.read_json(path)
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(value, dict) and isinstance(value.get("heartbeat"), (int, float)):
            found.append(value)
    if not found:
        return None
    found.sort(key=lambda s: -float(s["heartbeat"]))
    merged = dict(found[0])
    computing = [s for s in found if s.get("state") == "computing" and time.time() - s["heartbeat"] < 30]
    if computing:
        merged.update(state="computing", current=computing[0].get("current"),
                      done=sum(int(s.get("done") or 0) for s in computing),
                      total=sum(int(s.get("total") or 0) for s in computing))
    errors = [s for s in found if s.get("last_error") and isinstance(s.get("last_error_at"), (int, float))]
    if errors:
        newest = max(errors, key=lambda s: s["last_error_at"])
        merged.update(last_error=newest["last_error"], last_error_at=newest["last_error_at"])
    merged["workers"] = len([s for s in found if time.time() - s["heartbeat"] < 30])
    return merged


def heartbeat_of(root: str, pid: int) -> float | None:
    """When the worker process `pid` of this host last wrote its status (None: never, or unreadable)."""
    storage = Storage(root)
    try:
        beat = storage.read_json(_cache_path(storage, WORKERS_DIR, f"{socket.gethostname()}-{pid}.json"))["heartbeat"]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None
    return float(beat) if isinstance(beat, (int, float)) and not isinstance(beat, bool) else None


class _Status:
    """This worker's status file: rewritten when its state changes and at most every HEARTBEAT_EVERY_S
    otherwise (a few hundred bytes), always from the loop."""

    def __init__(self, root: str, slots: int):
        self.storage = Storage(root)
        self.path = _cache_path(self.storage, WORKERS_DIR, f"{socket.gethostname()}-{os.getpid()}.json")
        self.written_at = 0.0
        self.state = {"pid": os.getpid(), "host": socket.gethostname(), "slots": slots, "heartbeat": time.time(),
                      "state": "idle", "current": None, "done": 0, "total": 0, "last_error": None,
                      "last_error_at": None, "failed_requests": {}, "write_error": None, "notes": []}

    def sweep(self) -> None:
        """Remove the status files of this host's workers that are not running (killed -9, crashed)."""
        if self.storage.url:
            return
        prefix = f"{socket.gethostname()}-"
        for name in self.storage.listdir(_cache_path(self.storage, WORKERS_DIR)):
            pid = name[len(prefix):-len(".json")] if name.startswith(prefix) and name.endswith(".json") else ""
            if pid.isdigit() and int(pid) != os.getpid() and not leases._alive(int(pid)):
                try:
                    os.unlink(_cache_path(self.storage, WORKERS_DIR, name))
                except OSError:
                    pass

    def update(self, **changes) -> None:
        changed = any(self.state.get(k) != v for k, v in changes.items())
        self.state.update(changes)
        if changed or time.time() - self.written_at >= HEARTBEAT_EVERY_S:
            self._write()

    def _write(self) -> None:
        self.state["heartbeat"] = self.written_at = time.time()
        try:
            self.storage.makedirs(_cache_path(self.storage, WORKERS_DIR))
            self.storage.write_json_atomic(self.path, self.state)
            if self.state.get("write_error", {}) and self.state["write_error"].get("path") == self.path:
                self.state["write_error"] = None
        except (OSError, ValueError) as e:  # a read-only or full root: the worker still computes
            self.state["write_error"] = {"path": self.storage.display(self.path), "reason": str(e)[:300],
                                         "at": time.time()}

    def error(self, message: str) -> None:
        self.update(last_error=message[:MAX_ERROR_CHARS], last_error_at=time.time())

    def note(self, message: str) -> None:
        self.update(notes=(list(self.state["notes"]) + [message[:500]])[-10:])

    def remove(self) -> None:
        try:
            os.unlink(self.path) if not self.storage.url else self.storage.fs.rm(self.path)
        except OSError:
            pass
