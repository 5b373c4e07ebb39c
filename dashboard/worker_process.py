"""The background worker, supervised: one `python -m diagnostics watch ROOT` process per runs root per
server. It computes every snapshot's record and the default projections off the request path; pages only
read what it wrote.

A separate process, so a crash, a parser failure or a segfault in it never takes the server down. Its loop
writes a heartbeat every pass (diagnostics.work.worker); one that stops beating for STUCK_AFTER_S is stuck
(a hang outside any task's budget) and is killed, then restarted like a crash. When it
exits it is restarted after an exponential backoff (1 s, 2 s, 4 s, ... up to a minute; back to 1 s once it
has run for a while), and the tail of its stderr is kept as the last error, which Home shows. The child
asks the kernel for SIGTERM when the thread that started it dies (Linux `PR_SET_PDEATHSIG`), so a killed
server leaves no worker behind.

CONTRASTSCOPE_WORKER=0 starts none (tests that fill the records themselves; a team that runs
`python -m diagnostics watch` elsewhere).
"""

from __future__ import annotations

import atexit
import collections
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WORKER_ENV = "CONTRASTSCOPE_WORKER"
REPO = Path(__file__).resolve().parent.parent
# The child: die with the supervising thread (Linux), then run `python -m diagnostics <args>`.
CHILD = (
    "import sys\n"
    "try:\n"
    "    import ctypes, signal\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "import runpy\n"
    "runpy.run_module('diagnostics', run_name='__main__', alter_sys=True)\n"
)
STDERR_LINES = 30
# The loop beats every 2 s (diagnostics.work.worker.HEARTBEAT_EVERY_S) and a child needs ~5-15 s to import numpy and
# torch before its first beat: 60 s of silence after the first beat is a loop that is stuck.
STUCK_AFTER_S = 60.0


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    most_s: float = 60.0
    healthy_after_s: float = 60.0  # a child that ran this long starts the backoff over

    def delay(self, failures: int) -> float:
        return min(self.first_s * 2 ** max(failures - 1, 0), self.most_s)


class Supervisor:
    """Keeps one child process running: start, wait, keep its stderr tail, restart after a backoff."""

    def __init__(self, command: list[str], backoff: Backoff = Backoff(), env: dict | None = None, heartbeat=None):
        self.command = command
        self.heartbeat = heartbeat  # pid -> when that child last beat (None: not yet); None: not watched
        self.backoff = backoff
        self.env = env
        self.pid: int | None = None
        self.starts = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.next_start_at: float | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="contrastscope-worker", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        if self.heartbeat is not None:
            threading.Thread(target=self._watchdog, name="contrastscope-worker-watchdog", daemon=True).start()
        return self

    def _watchdog(self) -> None:
        """Kill a child whose loop stopped beating (the supervisor loop then restarts it)."""
        while not self._stop.wait(STUCK_AFTER_S / 6):
            proc = self._proc
            if proc is None or proc.poll() is not None:
                continue
            beat = self.heartbeat(proc.pid)
            if beat is not None and time.time() - beat > STUCK_AFTER_S:
                self._stderr.append(f"worker pid {proc.pid} stopped beating for {time.time() - beat:.0f} s: killed\n")
                proc.kill()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        self._thread.join(timeout=timeout_s)

    def state(self) -> dict:
        """What Home shows: pid (None between starts), starts so far, the last error and when it came."""
        return {
            "pid": self.pid,
            "starts": self.starts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "next_start_at": self.next_start_at,
            "alive": self._proc is not None and self._proc.poll() is None,
        }

    def stderr_tail(self) -> str:
        """The last STDERR_LINES lines the current (or last) child wrote to stderr."""
        return "".join(self._stderr).strip()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            rc = self._run_once()
            if self._stop.is_set():
                return
            ran_s = time.monotonic() - started
            failures = 1 if ran_s >= self.backoff.healthy_after_s else failures + 1
            tail = self.stderr_tail()
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
            self.last_error = f"worker {how} after {ran_s:.0f} s" + (f":\n{tail[-2000:]}" if tail else "")
            self.last_error_at = time.time()
            delay = self.backoff.delay(failures)
            self.next_start_at = time.time() + delay
            self._stop.wait(delay)
            self.next_start_at = None

    def _run_once(self) -> int:
        self._stderr.clear()
        try:
            proc = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as e:
            self._stderr.append(f"could not start {self.command[0]}: {e}\n")
            return 127
        self._proc, self.pid = proc, proc.pid
        self.starts += 1
        for raw in proc.stderr:  # until the child closes it (exits)
            self._stderr.append(raw.decode("utf-8", "replace"))
        rc = proc.wait()
        proc.stderr.close()
        self.pid = None
        return rc


def watch_command(root: str) -> list[str]:
    return [sys.executable, "-c", CHILD, "watch", str(root)]


_supervisors: dict[str, Supervisor] = {}
_lock = threading.Lock()


def enabled() -> bool:
    """Whether this server runs a worker for its root (CONTRASTSCOPE_WORKER=0 switches it off)."""
    return os.environ.get(WORKER_ENV, "1") != "0"


def _where(root: str) -> str:
    """`root` as the worker child must be given it: the child runs in the clone (cwd=REPO), so a relative runs
    root is made absolute against this server's folder first (else it watched the clone's own folder of that
    name: `streamlit run app.py -- --runs sample_runs` from a copy measured the clone's sample_runs)."""
    from runformat.layout import is_url

    return root if is_url(root) else os.path.abspath(root)


def ensure_worker(root: str) -> Supervisor | None:
    """The supervised worker of `root` in this server, started on first call (None when switched off)."""
    if not enabled():
        return None
    key = _where(root)
    with _lock:
        sup = _supervisors.get(key)
        if sup is None:
            from diagnostics.work import worker

            sup = _supervisors[key] = Supervisor(
                watch_command(key),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                heartbeat=lambda pid: worker.heartbeat_of(root, pid),
            ).start()
    return sup


def supervisor(root: str) -> Supervisor | None:
    """This server's supervisor of `root`, if one was started."""
    return _supervisors.get(_where(root))


@atexit.register
def _stop_all() -> None:
    for sup in list(_supervisors.values()):
        sup.stop(timeout_s=5.0)


def start_background_work(root: str) -> None:
    """The supervised worker of `root` (t-SNE, UMAP and every N×N pass run there, never in a page)."""
    ensure_worker(root)
