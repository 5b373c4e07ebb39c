"""The worker's status on a root: each worker process writes its own <root>/.cache/workers/<host>-<pid>.json
from its loop (a few hundred bytes, on change and at most every HEARTBEAT_EVERY_S otherwise); `status` merges
them for Home, `heartbeat_of` is the supervisor's liveness check (dashboard/worker_process.py), and `checked`
is that status as a page may trust it (every field a page reads of its type and range). All of it is read and
written through runformat.derived: nothing through a linked .cache, only regular files under a size bound."""

from __future__ import annotations

import math
import os
import re
import socket
import time

from runformat import layout
from runformat.derived import DerivedFiles
from runformat.layout import Storage
from runformat.reader import RunFormatError

from . import lease as leases

STATUS_FILE = layout.WORKER_STATUS_FILE  # written by workers before the pool: still read when no workers/ file exists
WORKERS_DIR = "workers"
HEARTBEAT_EVERY_S = 2.0  # a worker's status file is rewritten at least this often while its loop runs
MAX_ERROR_CHARS = 2000  # last_error is cut to this (a request naming a 10 MB run was 10 MB of JSON)
STATUS_BYTES = 1 << 20  # a status file is ~1 KB (20 failed requests, 10 notes); anything larger is not ours
WORKER_FILE = re.compile(r"[\w.-]+-\d+\.json")  # <host>-<pid>.json: the only names swept or removed


def cache_path(storage: Storage, *parts: str) -> str:
    return storage.join(layout.CACHE_DIR, *parts)


def status(root: str) -> dict | None:
    """The workers' state on this root, merged (see RECORD_API.md): the freshest heartbeat and its pid, the
    task of any that computes, the newest error; None when no worker has run on this root."""
    files = DerivedFiles.of_root(Storage(root))
    found = []
    try:
        names = [("workers", n) for n in files.listdir(WORKERS_DIR) if WORKER_FILE.fullmatch(n)]
    except RunFormatError:  # a linked .cache or workers/: nothing there is read
        names = []
    for parts in [*names, (STATUS_FILE,)]:
        try:
            value = files.read_json(*parts, limit=STATUS_BYTES, what="worker status")
        except (OSError, RunFormatError):
            continue
        if isinstance(value, dict) and isinstance(value.get("heartbeat"), (int, float)):
            found.append(value)
    if not found:
        return None
    found.sort(key=lambda s: -float(s["heartbeat"]))
    merged = dict(found[0])
    computing = [s for s in found if s.get("state") == "computing" and time.time() - s["heartbeat"] < 30]
    if computing:
        merged.update(
            state="computing",
            current=computing[0].get("current"),
            done=sum(int(s.get("done") or 0) for s in computing),
            total=sum(int(s.get("total") or 0) for s in computing),
        )
    errors = [s for s in found if s.get("last_error") and isinstance(s.get("last_error_at"), (int, float))]
    if errors:
        newest = max(errors, key=lambda s: s["last_error_at"])
        merged.update(last_error=newest["last_error"], last_error_at=newest["last_error_at"])
    merged["workers"] = len([s for s in found if time.time() - s["heartbeat"] < 30])
    return merged


def host_slots(root: str) -> int:
    """Task processes of the live workers on this host sharing this root (their status files' `slots`; a file
    older than 30 s, or of a pid that is gone, counts nothing): what the cores are shared out between."""
    files, host, now = DerivedFiles.of_root(Storage(root)), socket.gethostname(), time.time()
    try:
        names = [n for n in files.listdir(WORKERS_DIR) if WORKER_FILE.fullmatch(n) and n.startswith(host + "-")]
    except RunFormatError:
        return 0
    total = 0
    for name in names:
        try:
            value = checked(files.read_json(WORKERS_DIR, name, limit=STATUS_BYTES, what="worker status"), now)
        except (OSError, RunFormatError):
            continue
        pid, beat = value.get("pid"), value.get("heartbeat")
        if beat is not None and now - beat < 30 and isinstance(pid, int) and leases._alive(pid):
            total += min(256, max(1, _count(value.get("slots"))))  # watch --workers is 1..256
    return total


def heartbeat_of(root: str, pid: int) -> float | None:
    """When the worker process `pid` of this host last wrote its status (None: never, or unreadable)."""
    files = DerivedFiles.of_root(Storage(root))
    try:
        beat = files.read_json(
            WORKERS_DIR, f"{socket.gethostname()}-{pid}.json", limit=STATUS_BYTES, what="worker status"
        )["heartbeat"]
    except (OSError, KeyError, TypeError, RunFormatError):
        return None
    return float(beat) if isinstance(beat, (int, float)) and not isinstance(beat, bool) else None


class StatusFile:
    """This worker's status file: rewritten when its state changes and at most every HEARTBEAT_EVERY_S
    otherwise (a few hundred bytes), always from the loop."""

    def __init__(self, root: str, slots: int):
        self.storage = Storage(root)
        self.files = DerivedFiles.of_root(self.storage)
        self.name = f"{socket.gethostname()}-{os.getpid()}.json"
        self.path = cache_path(self.storage, WORKERS_DIR, self.name)
        self.written_at = 0.0
        self.state = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "slots": slots,
            "heartbeat": time.time(),
            "state": "idle",
            "current": None,
            "done": 0,
            "total": 0,
            "last_error": None,
            "last_error_at": None,
            "failed_requests": {},
            "write_error": None,
            "notes": [],
        }

    def sweep(self) -> None:
        """Remove the status files of this host's workers that are not running (killed -9, crashed)."""
        if self.storage.url:
            return
        prefix = f"{socket.gethostname()}-"
        try:
            names = self.files.listdir(WORKERS_DIR)
        except RunFormatError:
            return
        for name in names:
            pid = name[len(prefix) : -len(".json")] if name.startswith(prefix) and name.endswith(".json") else ""
            if pid.isdigit() and int(pid) != os.getpid() and not leases._alive(int(pid)):
                try:
                    self.files.remove(WORKERS_DIR, name, own=WORKER_FILE)
                except (OSError, RunFormatError):
                    pass

    def update(self, **changes) -> None:
        changed = any(self.state.get(k) != v for k, v in changes.items())
        self.state.update(changes)
        if changed or time.time() - self.written_at >= HEARTBEAT_EVERY_S:
            self._write()

    def _write(self) -> None:
        self.state["heartbeat"] = self.written_at = time.time()
        try:
            self.files.write_json(WORKERS_DIR, self.name, obj=self.state)
            if self.state.get("write_error", {}) and self.state["write_error"].get("path") == self.path:
                self.state["write_error"] = None
        except (OSError, ValueError, RunFormatError) as e:  # read-only, full or linked: the worker still computes
            self.state["write_error"] = {
                "path": self.storage.display(self.path),
                "reason": str(e)[:300],
                "at": time.time(),
            }

    def error(self, message: str) -> None:
        self.update(last_error=message[:MAX_ERROR_CHARS], last_error_at=time.time())

    def note(self, message: str) -> None:
        self.update(notes=(list(self.state["notes"]) + [message[:500]])[-10:])

    def remove(self) -> None:
        try:
            self.files.remove(WORKERS_DIR, self.name, own=WORKER_FILE)
        except (OSError, RunFormatError):
            pass


# -- the status as a page may trust it (issue 24 item 13) ----------------------------------------------
# worker.json sits in the served tree and anyone who can write the root can edit it; a wrong type must cost that
# field, never the page (`last_error_at: 1e20` raised OverflowError in time.localtime on Home, and a heartbeat of
# 1e300 kept a dead worker "alive" for ever). Fields not known here pass through untouched.

# The worker rewrites worker.json on the host that serves the root, or on one sharing its file system (NFS
# clocks agree to well under a second with NTP); a time further ahead than this is an edit or a broken clock.
FUTURE_S = 60.0
# What a page shows of the worker's last error: a traceback is ~2-5 KB; a request naming a 10 MB run once put
# 10 MB there (item 16, the worker's own bound). Home shows the head of it, and says it was cut.
SHOWN_ERROR_CHARS = 8_000
STATES = ("idle", "computing")


def _time(value, now: float) -> float | None:
    """A Unix time: a finite number (not a bool) in [0, now + FUTURE_S], else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and 0 <= value <= now + FUTURE_S else None


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63 else 0


def _text(value) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= SHOWN_ERROR_CHARS else value[:SHOWN_ERROR_CHARS] + " … (cut)"


def checked(state, now: float | None = None) -> dict:
    """`state` (worker.json as parsed, or None) with every field pages read of the type and range it must have."""
    if not isinstance(state, dict):
        return {}
    now = time.time() if now is None else now
    out = dict(state)
    for key in ("heartbeat", "last_error_at"):
        out[key] = _time(state.get(key), now)
    out["pid"] = _count(state.get("pid")) or None
    out["state"] = state.get("state") if state.get("state") in STATES else None
    out["done"], out["total"] = _count(state.get("done")), _count(state.get("total"))
    out["last_error"] = _text(state.get("last_error"))
    current = state.get("current")
    out["current"] = (
        {"run": current["run"], "step": current["step"], "what": current.get("what", "record")}
        if isinstance(current, dict)
        and isinstance(current.get("run"), str)
        and _count(current.get("step")) == current.get("step")
        and isinstance(current.get("what", "record"), str)
        else None
    )
    failed = state.get("failed_requests")
    out["failed_requests"] = failed if isinstance(failed, dict) else {}
    return out
