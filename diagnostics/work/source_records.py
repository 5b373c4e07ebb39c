"""Records at the source: the training job measures each snapshot it commits, where its GPU already is.

    from diagnostics.work.source_records import MeasureSnapshots
    with RunWriter(root, name, config, measure_snapshots=MeasureSnapshots()) as w:
        ...

The writer (runformat.writer, numpy-only: it imports nothing from here) hands each committed step to
`submit` from its background thread, right after the sidecar commit; `submit` only queues it. One daemon
thread of this object measures queued steps in order with record.get_or_compute: the same engine, key and
file as the worker's record (on CUDA when torch has it: diagnostics.measure._tensor.best_device), so the dashboard and
the worker find it done. The thread runs at low priority next to training, never in a step. On a CPU the
engine runs in a child process the thread feeds (`in_process=False`, the default there): the engine's Python
between its tensor calls held the GIL the training step needed (1.086x a step in a thread, bench_source_records,
quiet box); the child is a plain `python -c` (never multiprocessing's spawn, which re-runs a training script
that has no main guard), reads the committed files, and dies with its thread. A snapshot over
`max_cells` (rows x dim) is skipped with a note in run.json's "measure_notes" (the worker measures it
instead); so is every step queued while `max_pending` wait, so a job that snapshots faster than it measures
never falls behind for good. The worker's lease (diagnostics.work.lease) is taken too: a watcher on the same root
never computes the same record at the same time.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

# A record costs ~2 matrix products of N x N x d (the engine is at its floor, bench_engine): 10k x 128 is ~0.5 s
# on one CPU core, 50k x 128 12.7 s on 2 cores. On a CPU the default bound keeps a record near a second, so a
# job snapshotting every 100 steps of ~10 ms pays it in the background; on CUDA, 1M x 128 is ~100 ms of matmuls.
CPU_MAX_CELLS = 20_000 * 128
CUDA_MAX_CELLS = 1_000_000 * 128


@dataclass
class MeasureSnapshots:
    """What `RunWriter(measure_snapshots=...)` takes: measure every committed snapshot in the background."""

    max_cells: int | None = None  # rows x dim above which a snapshot is left to the worker (None: by device)
    max_pending: int = 2  # steps queued beyond this are left to the worker (noted)
    nice: int = 10  # the measuring thread's (and its child's) niceness increment (Linux: per thread)
    in_process: bool | None = None  # measure in this process's thread (None: on CUDA; on a CPU a child process)
    measured: list = field(default_factory=list, repr=False)  # steps measured, in order
    skipped: list = field(default_factory=list, repr=False)  # (step, why)

    def start(self, writer) -> None:
        """Called by the writer once (rank 0) with itself: where runs live and the run's info to note into.
        The engine (torch) is imported here, in the caller's thread: imported by the measuring thread, the
        writer's thread could meet a half-initialised torch in sys.modules (runformat.fields.is_tensor)."""
        from ..judge import run_state  # noqa: F401
        from ..measure import engine  # noqa: F401
        from ..store import record  # noqa: F401

        self._writer = writer
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._thread = threading.Thread(target=self._loop, name=f"measure[{writer.name}]", daemon=True)
        self._thread.start()

    def submit(self, step: int) -> None:
        """A committed snapshot (the writer's thread, after the sidecar commit): queue it, never wait."""
        if self._pending >= self.max_pending:
            self._note(step, f"{self._pending} snapshots already waiting to be measured; left to the worker")
            return
        self._pending += 1
        self._queue.put(step)

    def close(self, timeout_s: float | None = None) -> None:
        """Finish what is queued (the writer's close); the thread exits."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    # -- the measuring thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)  # this thread only (Linux)
        except (OSError, AttributeError, ValueError):
            pass

        from ..measure._tensor import best_device

        cuda = best_device().type == "cuda"
        limit = self.max_cells or (CUDA_MAX_CELLS if cuda else CPU_MAX_CELLS)
        child = None if (cuda if self.in_process is None else self.in_process) else _Child(self.nice)
        self._child = child  # (tests reach it)
        try:
            self._measure_queued(limit, child)
        finally:
            if child is not None:
                child.close()

    def _measure_queued(self, limit: int, child) -> None:
        from runformat.reader import RunFormatError, open_run

        from ..judge import run_state
        from ..store import record
        from . import lease

        while (step := self._queue.get()) is not None:
            self._pending -= 1
            try:
                storage = self._writer.storage
                root = storage.display(storage.root) if storage.url else storage.root
                run = open_run(self._writer.name, root=root)
                shape = run.snapshot_info(step)["fields"]["embeddings"].get("shape") or [0, 0]
                cells = int(shape[0]) * int(shape[1] if len(shape) > 1 else 1)
                if cells > limit:
                    self._note(
                        step,
                        f"{shape[0]} x {shape[1]} is over the writer's budget of {limit:,} cells "
                        "(MeasureSnapshots.max_cells); left to the worker",
                    )
                    continue
                held, why = lease.acquire(
                    storage, lease.lease_path(storage, self._writer.name, step), "record (at the source)"
                )
                if held is None:
                    self._note(step, f"not measured here: {why}")
                    continue
                try:
                    if child is not None:
                        child.measure(root, self._writer.name, step)
                    else:
                        record.get_or_compute(run, step)
                        run_state.write(run)
                    self.measured.append(step)
                finally:
                    held.release()
            except (RunFormatError, OSError, KeyError, ValueError, RuntimeError, MemoryError) as e:
                self._note(step, f"could not be measured here ({type(e).__name__}: {e}); left to the worker")

    def _note(self, step: int, why: str) -> None:
        self.skipped.append((step, why))
        notes = self._writer._info.setdefault("measure_notes", [])
        notes.append({"step": int(step), "note": why[:500], "at": time.time()})
        del notes[:-20]  # the newest 20: run.json stays small


class _Child:
    """A `python -c` process measuring one step at a time: a JSON line in (root, run, step), a JSON line out."""

    def __init__(self, nice: int):
        self.nice = nice
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        # this module by its own name (diagnostics.work..., or contrastscope.diagnostics.work... installed), on
        # the parent's sys.path (a script's sys.path.insert included)
        code = (
            "import sys, json; *path, nice = json.loads(sys.stdin.readline()); sys.path[:0] = path; "
            f"from {__name__} import _child_main; _child_main(nice)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        proc.stdin.write(json.dumps([p for p in sys.path if isinstance(p, str)] + [self.nice]) + "\n")
        proc.stdin.flush()
        return proc

    def measure(self, root: str, name: str, step: int) -> None:
        """The record and run state of `step`, computed in the child; RuntimeError with its error otherwise. A
        child that died (killed for memory, say) costs its step only: the next step starts a fresh one."""
        if self.proc.poll() is not None:
            self.proc = self._spawn()
        self.proc.stdin.write(json.dumps({"root": root, "run": name, "step": int(step)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the measuring process died (exit {self.proc.wait()})")
        error = json.loads(line).get("error")
        if error:
            raise RuntimeError(error)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def _child_main(nice: int) -> None:
    """The measuring process: low priority, dies with the thread that started it (Linux), one torch thread (the
    job's own threads keep the rest), one step per line of stdin until it closes."""
    from .sandbox import die_with_parent

    die_with_parent()
    try:
        os.nice(nice)
    except OSError:
        pass
    import torch

    from runformat.reader import open_run

    from ..judge import run_state
    from ..store import record

    torch.set_num_threads(1)
    for line in sys.stdin:
        try:
            task = json.loads(line)
            run = open_run(task["run"], root=task["root"])
            record.get_or_compute(run, int(task["step"]))
            run_state.write(run)
            out = {}
        except Exception as e:  # the thread notes it and leaves the step to the worker
            out = {"error": f"{type(e).__name__}: {e}"[:2000]}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
