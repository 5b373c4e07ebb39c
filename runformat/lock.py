"""Who owns a run: one RunWriter at a time, by an exclusive flock on `<run>/writer.lock`, a file that also names
its holder (host, pid, since when) so a refused writer can say who is writing.

The kernel drops a flock when its process dies, however it dies, so a lock left by a killed writer is free:
the file still names the dead owner, and the next writer (a resume) takes it over and rewrites it. A network
file system may not share flocks between hosts, so a lock naming another host is also honoured while that
run's heartbeat is fresh. Object stores (fsspec URLs) cannot lock; there only the run.json check guards.
"""

from __future__ import annotations

import json
import os
import socket
import time

from . import layout
from .layout import Storage


class RunOwnedError(ValueError):
    """Another writer owns the run. The message names it."""


def describe(owner: dict) -> str:
    since = owner.get("acquired")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if isinstance(since, (int, float)) else ""
    return f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}{when}"


class RunLock:
    def __init__(self, fd: int, previous: dict):
        self.fd = fd
        self.previous = previous  # what the file said before we took it: a dead writer's name, or {}

    def release(self) -> None:
        """Closing the descriptor drops the flock. The file stays: unlinking it would let a writer that opened
        the old file and one that creates a new file both hold 'the' lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def acquire(storage: Storage, name: str, stall_after_s: float) -> RunLock | None:
    """Take `name`'s lock or raise RunOwnedError naming the owner. None on an object store."""
    if storage.url:
        return None
    import fcntl

    path = storage.join(name, layout.LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunOwnedError(
                f"name: run {name!r} is being written by {describe(_read(fd))} "
                f"({storage.display(path)}); wait for it to finish or choose another name"
            ) from None
        previous = _read(fd)
        host = socket.gethostname()
        if previous.get("host", host) != host and _heartbeat_fresh(storage, name, stall_after_s):
            raise RunOwnedError(
                f"name: run {name!r} is being written by {describe(previous)} on another host "
                f"(its heartbeat is fresh; {storage.display(path)})"
            )
        data = json.dumps({"host": host, "pid": os.getpid(), "acquired": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return RunLock(fd, previous)
    except BaseException:
        os.close(fd)
        raise


def _read(fd: int) -> dict:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (ValueError, OSError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _heartbeat_fresh(storage: Storage, name: str, stall_after_s: float) -> bool:
    try:
        info = storage.read_json(storage.join(name, layout.RUN_FILE))
        age = time.time() - float(info.get("heartbeat", 0.0))
        return info.get("status") == "running" and 0 <= age <= stall_after_s
    except (OSError, ValueError, TypeError, AttributeError, RecursionError):
        return False
