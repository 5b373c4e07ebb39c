"""Leases: which worker is computing a snapshot's record, so any number of watchers, dashboards and pool
processes on one root compute each record once.

    <run>/.cache/leases/<step:010d>.json   {"token", "host", "pid", "written_at", "expires_at", "what",
                                            "failed": None | {"message", "inputs", "retry_at"}}

A lease is taken atomically and lives `ttl_s`; its holder renews it from its task loop (diagnostics.work.worker)
every heartbeat, so a lease outlives a record only when its holder died. A lease that is garbage, written
in the future, expired, or held by a dead process of this host is taken over, with a note saying which.
Locally the take is `os.link` of a complete temporary file (fails when the lease exists: no torn lease is
ever read) and a take-over goes through an exclusive `.break-<digest of the stale bytes>` file, so of two
workers that both saw the same stale lease only one replaces it. On object storage there is no exclusive
create: a lease is written, read back after a short wait and held only if it is still ours (S3 reads its
own writes), which leaves a narrow window where two workers compute the same record. That costs time,
never correctness: a record is a pure function of its snapshot and is committed by record.json last.

A finished task's lease is removed; a task that failed for good (killed over its time or memory budget,
an invalid request) leaves a lease whose `failed` names why and the inputs it failed on, so no worker on
the root retries it until the snapshot changes; a write failure carries a `retry_at` (backoff).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from runformat import layout
from runformat.layout import Storage

LEASES_DIR = "leases"
TTL_S = 30.0  # a holder renews every heartbeat (2 s): fifteen missed renewals mean it is gone
CLOCK_SKEW_S = 60.0  # a lease written further than this in the future is from a wrong clock: taken over
BREAK_STALE_S = 60.0  # a break file left by a worker that died mid-take-over is itself stale after this
READBACK_S = 0.2  # object storage: wait before reading a written lease back (see the module doc)
MAX_LEASE_BYTES = 64 * 1024
HOST = socket.gethostname()


@dataclass
class Lease:
    storage: Storage
    path: str
    token: str
    what: str
    ttl_s: float = TTL_S
    notes: list[str] = field(default_factory=list)  # what was taken over, and why
    attempts: int = 0  # failed attempts before this one (write-failure backoff)

    def body(self, failed: dict | None = None) -> dict:
        now = time.time()
        return {
            "token": self.token,
            "host": HOST,
            "pid": os.getpid(),
            "written_at": now,
            "expires_at": now + self.ttl_s,
            "what": self.what,
            "failed": failed,
        }

    def renew(self) -> bool:
        """Push the expiry on; False when the lease is no longer ours (taken over after a long stall)."""
        current = _read(self.storage, self.path)
        if not isinstance(current, dict) or current.get("token") != self.token:
            return False
        _write(self.storage, self.path, self.body())
        return True

    def release(self) -> None:
        """The task finished: remove the lease (only ours)."""
        current = _read(self.storage, self.path)
        if isinstance(current, dict) and current.get("token") == self.token:
            _remove(self.storage, self.path)

    def fail(self, message: str, inputs, retry_in_s: float | None = None) -> None:
        """The task failed for good on these inputs (or until retry_in_s passes): keep why, for every worker."""
        failed = {
            "message": message[:2000],
            "inputs": list(inputs) if inputs is not None else None,
            "retry_at": None if retry_in_s is None else time.time() + retry_in_s,
            "attempts": self.attempts + 1,
        }
        _write(self.storage, self.path, {**self.body(failed), "expires_at": None})


def lease_path(storage: Storage, run_name: str, step: int, kind: str = "record") -> str:
    """Where the lease of one task lives: beside the run's other derived files."""
    return storage.join(run_name, layout.CACHE_DIR, LEASES_DIR, f"{layout.snapshot_dirname(step)}-{kind}.json")


def acquire(
    storage: Storage, path: str, what: str, inputs=None, ttl_s: float = TTL_S, now: float | None = None
) -> tuple[Lease | None, str | None]:
    """(the lease, None) when this worker may compute; (None, why not) when another holds it or the task
    failed for good on these inputs. A stale lease is taken over; Lease.notes says so."""
    now = time.time() if now is None else now
    lease = Lease(storage, path, uuid.uuid4().hex, what, ttl_s)
    for _ in range(3):  # lost races: at most a few rounds
        raw = _read_raw(storage, path)
        if raw is None:
            if _create(storage, path, lease.body()):
                return lease, None
            continue
        current = _parse(raw)
        why_stale = _stale(current, now, inputs)
        if why_stale is None:
            failed = current.get("failed")
            if failed:
                return None, f"failed: {failed.get('message')}"
            return None, f"held by {current.get('host')} pid {current.get('pid')}"
        if isinstance(current, dict) and isinstance(current.get("failed"), dict):
            lease.attempts = (
                int(current["failed"].get("attempts") or 0) if isinstance(current["failed"].get("attempts"), int) else 0
            )
        if _break(storage, path, raw, lease.body()):
            lease.notes.append(f"{storage.display(path)}: took over a lease that was {why_stale}")
            return lease, None
    return None, "lost the race for the lease to another worker"


def failure(storage: Storage, run_name: str, step: int, kind: str = "record") -> dict | None:
    """The kept failure of a snapshot's task ({"message", "inputs", "retry_at", "attempts"}), or None."""
    current = _read(storage, lease_path(storage, run_name, step, kind))
    failed = current.get("failed") if isinstance(current, dict) else None
    return failed if isinstance(failed, dict) else None


# -- staleness ------------------------------------------------------------------------------------


def _stale(current, now: float, inputs) -> str | None:
    """Why `current` may be taken over, or None when it stands."""
    if not isinstance(current, dict) or not isinstance(current.get("token"), str):
        return "garbage (not a lease this code wrote)"
    written = current.get("written_at")
    if not isinstance(written, (int, float)) or isinstance(written, bool):
        return "garbage (no written_at)"
    if written > now + CLOCK_SKEW_S:
        return f"written {written - now:.0f} s in the future (a wrong clock)"
    failed = current.get("failed")
    if isinstance(failed, dict):
        if inputs is not None and failed.get("inputs") != list(inputs):
            return "a failure of an earlier version of the snapshot"
        retry_at = failed.get("retry_at")
        if isinstance(retry_at, (int, float)) and not isinstance(retry_at, bool) and retry_at <= now:
            return "a failure due for a retry"
        return None
    expires = current.get("expires_at")
    if not isinstance(expires, (int, float)) or isinstance(expires, bool):
        return "garbage (no expires_at)"
    if expires > now + TTL_S + CLOCK_SKEW_S:
        return f"expiring {expires - now:.0f} s from now (a wrong clock)"
    if expires < now:
        return f"expired {now - expires:.0f} s ago (its holder stopped renewing it)"
    pid = current.get("pid")
    if current.get("host") == HOST and isinstance(pid, int) and not _alive(pid):
        return f"held by pid {pid} of this host, which is not running"
    return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OverflowError:
        return False
    return True


# -- bytes ----------------------------------------------------------------------------------------


def _read_raw(storage: Storage, path: str) -> bytes | None:
    try:
        if not storage.url and not _regular(path):
            return b"" if os.path.lexists(path) else None  # a FIFO or device in its place: garbage
        data = storage.read_bytes(path, 0, MAX_LEASE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return b""
    return data


def _regular(path: str) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _parse(raw: bytes):
    if len(raw) > MAX_LEASE_BYTES:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _read(storage: Storage, path: str):
    raw = _read_raw(storage, path)
    return None if raw is None else _parse(raw)


def _encode(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True).encode("utf-8")


def _write(storage: Storage, path: str, body: dict) -> None:
    storage.makedirs(os.path.dirname(path) if not storage.url else path.rsplit("/", 1)[0])
    storage.write_atomic(path, lambda f: f.write(_encode(body)))


def _remove(storage: Storage, path: str) -> None:
    try:
        if storage.url:
            storage.fs.rm(path)
        else:
            os.unlink(path)
    except (FileNotFoundError, OSError):
        pass


def _create(storage: Storage, path: str, body: dict) -> bool:
    """Create the lease only if none exists (locally: link of a complete temporary file)."""
    if storage.url:
        _write(storage, path, body)
        time.sleep(READBACK_S)
        current = _read(storage, path)
        return isinstance(current, dict) and current.get("token") == body["token"]
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{body['token']}")
    with open(tmp, "wb") as f:
        f.write(_encode(body))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _break(storage: Storage, path: str, stale: bytes, body: dict) -> bool:
    """Replace the stale lease whose bytes are `stale` with ours; only one of several breakers wins."""
    if storage.url:
        _write(storage, path, body)
        time.sleep(READBACK_S)
        current = _read(storage, path)
        return isinstance(current, dict) and current.get("token") == body["token"]
    marker = f"{path}.break-{hashlib.sha256(stale).hexdigest()[:16]}"
    try:
        if time.time() - os.lstat(marker).st_mtime > BREAK_STALE_S:
            os.unlink(marker)  # its breaker died mid-take-over
    except OSError:
        pass
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    try:
        if _read_raw(storage, path) != stale:
            return False  # someone replaced it meanwhile
        if os.path.lexists(path):
            os.unlink(path)
        return _create(storage, path, body)
    finally:
        os.unlink(marker)
