"""One worker task at a time in a child process, under a time and memory budget (diagnostics.work.task_limits).

The worker's loop (diagnostics.work.worker) hands a task to a `Slot`, then polls it: `poll()` returns the
task's outcome once it has one, and kills the child when the task ran past its seconds or its resident
memory went past its bytes (read from /proc each poll), or when the child died (a segfault, the OOM
killer). A killed child is replaced by a fresh one for the next task. So a hung read (a FIFO in place of a
file), an endless projection or a snapshot that blows up in memory costs that task, never the loop, whose
heartbeat keeps going. The child dies with the loop (Linux PR_SET_PDEATHSIG), so kill -9 of a worker
leaves no orphan computing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
from dataclasses import dataclass

from .task_limits import TaskBudget

_ctx = mp.get_context("spawn")  # no fork of a process that may hold torch's threads
CANNOT_WRITE = "diagnostics cache: cannot write"  # how cache._write warns about a failed write


@dataclass
class Outcome:
    ok: bool
    message: str | None = None  # why not, for the snapshot's failure and worker.json
    write_failed: bool = False  # a write failed (read-only or full disk): retried with backoff
    killed: bool = False  # over its budget, hung, or the child died: never retried on these inputs


def die_with_parent() -> None:
    """In a child process: SIGKILL when the thread that started it exits (Linux PR_SET_PDEATHSIG; elsewhere
    nothing), so a killed worker or training job leaves no orphan computing."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _child_main(conn, runner) -> None:
    die_with_parent()
    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                runner(spec)
            unwritten = [str(w.message) for w in caught if str(w.message).startswith(CANNOT_WRITE)]
            conn.send(("write", unwritten[0][:2000]) if unwritten else ("ok", None))
        except OSError as e:
            conn.send(
                ("write" if e.errno in (13, 28, 30, 122) else "error", f"{type(e).__name__}: {e}"[:2000])
            )  # EACCES, ENOSPC, EROFS, EDQUOT: writing
        except Exception as e:  # the task failed: its message goes back, the child lives on
            conn.send(("error", f"{type(e).__name__}: {e}"[:2000]))


class Slot:
    """A child process that runs one task at a time."""

    def __init__(self, budget: TaskBudget, runner):
        self.budget = budget
        self.runner = runner  # a module-level function(spec: dict) run in the child (picklable by name)
        self.proc = None
        self.conn = None
        self.task = None  # what the loop gave it (opaque here)
        self.started = 0.0

    @property
    def busy(self) -> bool:
        return self.task is not None

    def start(self, task, spec: dict) -> None:
        if self.proc is None or not self.proc.is_alive():
            self._spawn()
        self.task, self.started = task, time.monotonic()
        self.conn.send(spec)

    def _spawn(self) -> None:
        parent, child = _ctx.Pipe()
        self.proc = _ctx.Process(target=_child_main, args=(child, self.runner), name="contrastscope-task", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def poll(self) -> Outcome | None:
        """The finished task's outcome (the slot is then free), or None while it runs within budget."""
        if not self.busy:
            return None
        if self.conn.poll():
            try:
                kind, message = self.conn.recv()
            except (EOFError, OSError):
                return self._end(
                    Outcome(False, f"the task process died (exit {self.proc.exitcode})", killed=True), kill=True
                )
            return self._end(Outcome(kind == "ok", message, write_failed=kind == "write"))
        if not self.proc.is_alive():
            return self._end(
                Outcome(
                    False,
                    f"the task process died (exit {self.proc.exitcode}; killed by the system for memory?)",
                    killed=True,
                ),
                kill=True,
            )
        ran = time.monotonic() - self.started
        if ran > self.budget.seconds:
            return self._end(
                Outcome(
                    False,
                    f"ran past its time budget of {self.budget.seconds:.0f} s (--task-seconds); killed",
                    killed=True,
                ),
                kill=True,
            )
        rss = resident_bytes(self.proc.pid)
        if rss > self.budget.memory_bytes:
            return self._end(
                Outcome(
                    False,
                    f"went past its memory budget ({rss / 2**30:.1f} GiB resident > "
                    f"{self.budget.memory_bytes / 2**30:.1f} GiB, --task-memory-gb); killed",
                    killed=True,
                ),
                kill=True,
            )
        return None

    def _end(self, outcome: Outcome, kill: bool = False) -> Outcome:
        if kill:
            self.close()
        self.task = None
        return outcome

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None


def resident_bytes(pid: int) -> int:
    """The process's resident set (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
