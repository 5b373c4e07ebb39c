"""The background worker: computes what pages only read, off the request path (no Streamlit in here).

    python -m diagnostics watch ROOT [--once] [--workers N]

One loop per process hands tasks to N child processes (diagnostics.work.sandbox: each task under a time and
memory budget, killed past it) in the planner's order (diagnostics.work.planner: the runs a dashboard shows
first, then projection requests, then every other record newest first, run states, default projections).
Before a task starts the loop takes its lease (diagnostics.work.lease), so any number of watchers, dashboards and
pools on one root compute each record once; the loop renews its leases and writes its heartbeat every pass,
so a worker that is stuck stops looking alive. A task that fails keeps its failure in its lease and is not
retried until its inputs change (a failed write: retried with backoff, and shown on Home). Each worker
process writes its own <root>/.cache/workers/<host>-<pid>.json; `status` merges them for Home.
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from multiprocessing.connection import wait as wait_any

from runformat import layout
from runformat.layout import Storage
from runformat.reader import RunFormatError

from . import lease as leases
from . import projection_requests, viewing
from .planner import Planner
from .projection_requests import REQUESTS_DIR, request_projection  # noqa: F401  (the worker's public API)
from .sandbox import CANNOT_WRITE, Outcome, Slot
from .task import Task, run_spec, run_task  # noqa: F401
from .task_limits import TaskBudget, record_over_budget
from .worker_status import (
    HEARTBEAT_EVERY_S,
    MAX_ERROR_CHARS,
    STATUS_FILE,  # noqa: F401
    WORKERS_DIR,  # noqa: F401
    StatusFile,
    cache_path,
    heartbeat_of,  # noqa: F401
    host_slots,
    status,  # noqa: F401
)

MAX_FAILED_REQUESTS = 20  # failed requests remembered (newest kept)
WRITE_RETRY_S = (5.0, 300.0)  # a failed write is retried after 5 s, doubling, at most every 5 min
HELD_RETRY_S = 5.0  # a task another worker holds is looked at again after this


# -- the loop -------------------------------------------------------------------------------------


class _InlineSlot(Slot):
    """A task in this process with no budget (isolate=False: tests that patch the task's code)."""

    def start(self, task, spec: dict) -> None:
        import warnings

        self.task = task
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.runner(spec)
                failed = [str(w.message) for w in caught if "cannot write" in str(w.message)]
                self.outcome = Outcome(not failed, failed[0] if failed else None, write_failed=bool(failed))
            except Exception as e:
                traceback.print_exc()
                self.outcome = Outcome(False, f"{type(e).__name__}: {e}"[:MAX_ERROR_CHARS])

    def poll(self):
        return self._end(self.outcome) if self.busy else None


def _lease_path(storage: Storage, task: Task) -> str:
    if task.request:
        return cache_path(storage, leases.LEASES_DIR, "request-" + os.path.basename(task.request))
    kind = task.kind if task.kind == "record" else f"{task.method}-{task.source}-{task.seed}"
    return leases.lease_path(storage, task.run.name, task.step, kind)


def _inputs(task: Task):
    path = task.run.file(layout.SNAPSHOT_DIR, layout.snapshot_sidecar_name(task.step))
    try:
        return list(task.run.storage.identity(path))
    except OSError:
        return None


def watch(
    root: str,
    *,
    once: bool = False,
    poll_s: float = 1.0,
    workers: int = 1,
    budget: TaskBudget | None = None,
    isolate: bool = True,
    cluster: str | None = None,
) -> None:
    """Compute every record and default projection the root lacks, then queued requests as they come;
    forever (or until nothing is left, with once=True), with `workers` task processes here and, with
    `cluster` (a Dask scheduler address), one task per cluster worker thread there (diagnostics.work.cluster)."""
    if not layout.is_url(root) and not os.path.isdir(root):
        raise RunFormatError(f"{root}: not a folder of runs")
    if not (isinstance(workers, int) and 1 <= workers <= 256):
        raise ValueError(f"--workers: a whole number from 1 to 256, got {workers}")
    budget = budget or TaskBudget()
    state, planner = StatusFile(root, workers), Planner(root, budget)
    state.sweep()
    state.update(
        state="idle"
    )  # written at once: a watcher started beside this one shares the cores from its first task
    slots = [(Slot if isolate else _InlineSlot)(budget, run_spec) for _ in range(workers)]
    for slot in slots:  # this pool's task processes; the cores are shared out per task (_threads)
        slot.threads = workers if isolate else None
    slots += _cluster_slots(cluster, budget, state)
    held: dict[int, leases.Lease] = {}  # slot index -> the lease of its task
    queue: list[Task] = []
    planned_at, done, last_kind = 0.0, 0, None
    try:
        while True:
            free = [i for i, s in enumerate(slots) if not s.busy]
            if free and (not queue or time.monotonic() - planned_at >= poll_s):
                queue = _plan(planner, state, root, slots)
                planned_at = time.monotonic()
            for i in free:
                task = _pick(queue, last_kind)
                while task is not None and not _claim(task, slots[i], i, held, planner, state, root):
                    task = _pick(queue, last_kind)
                if task is None:
                    break
                last_kind = "request" if task.request else task.kind
            busy = [s for s in slots if s.busy]
            if not busy:
                state.update(state="idle", current=None, done=0, total=0)
                done = 0
                if once and not queue and not planner.waiting:
                    return
                time.sleep(poll_s)
                planned_at = 0.0
                continue
            current = busy[0].task
            state.update(
                state="computing",
                done=done,
                total=done + len(busy) + len(queue),
                current={"run": current.run.name, "step": current.step, "what": current.what},
            )
            conns = [s.conn for s in busy if s.conn is not None]
            if conns and len(conns) == len(busy):
                wait_any(conns, timeout=min(HEARTBEAT_EVERY_S, 0.5))
            else:  # cluster futures: polled
                time.sleep(0.05)
            for i, slot in enumerate(slots):
                task = slot.task
                outcome = slot.poll() if task is not None else None
                if outcome is not None:
                    _finish(task, outcome, held.pop(i, None), planner, state, once)
                    done += 1
            for lease in held.values():
                lease.renew()
    finally:
        for slot in slots:
            slot.close()
        if not once:
            state.remove()  # a stopped worker leaves no heartbeat that reads as alive


_Planner = Planner  # the name tests and benches knew


def _cluster_slots(address: str | None, budget: TaskBudget, state: StatusFile) -> list:
    """One slot per thread of the cluster's workers; none (with the error kept) when it cannot be reached."""
    if not address:
        return []
    from . import cluster

    try:
        client = cluster.connect(address)
    except cluster.ClusterError as e:
        state.error(str(e))
        print(f"error: {e}; going on with the local task processes", file=sys.stderr, flush=True)
        return []
    threads = max(sum(client.nthreads().values()), 1)
    return [cluster.ClusterSlot(budget, run_spec, client, address) for _ in range(threads)]


def _plan(planner: Planner, state: StatusFile, root: str, slots) -> list[Task]:
    try:
        tasks, bad = planner.plan(viewing.viewed_runs(root))
    except Exception as e:  # a listing that failed (network root, permissions): try again later
        state.error(f"scanning {root}: {type(e).__name__}: {e}")
        return []
    for path, message in bad:  # invalid request files are reported and removed (a page can ask again)
        state.error(message)
        projection_requests.remove(state.storage, path)
    running = {s.task.ident for s in slots if s.busy and s.task is not None}
    return [t for t in tasks if t.ident not in running]


def _pick(queue: list[Task], last_kind: str | None) -> Task | None:
    """The next task; after a projection request, a record if one waits (requests never starve records)."""
    if not queue:
        return None
    if last_kind == "request" and queue[0].request:
        for i, task in enumerate(queue):
            if task.kind == "record":
                return queue.pop(i)
    return queue.pop(0)


def _claim(task: Task, slot: Slot, i: int, held: dict, planner: Planner, state: StatusFile, root: str) -> bool:
    """Take the task's lease and start it; False when it is not ours to do (held, done, failed)."""
    from ..store import record

    inputs = _inputs(task) if task.kind != "state" else None
    lease = None
    if task.kind != "state":  # run states are idempotent and ~5 ms: no lease
        lease, why = leases.acquire(state.storage, _lease_path(state.storage, task), task.what, inputs)
        if lease is None:
            if why.startswith("failed"):
                planner.settle(task)
            else:
                planner.defer(task, HELD_RETRY_S)
            return False
        for note in lease.notes:
            state.note(note)
        over = _over_budget(task, slot.budget)
        if over is not None:  # refused before anything is loaded: kept as the snapshot's failure
            message = f"{task.run.name} step {task.step} {task.what}: {over}"
            lease.fail(message, inputs)
            state.error(message)
            planner.settle(task)
            return False
        if task.kind == "record" and record.load(task.run, task.step) is not None:  # another worker did it
            lease.release()
            planner.settle(task)
            return False
    slot.start(task, {**task.spec(root), "threads": _threads(slot, root)})
    if lease is not None:
        held[i] = lease
    return True


def _threads(slot, root: str) -> int | None:
    """torch threads for the task a local slot starts: this host's cores shared out between the task processes
    of every live worker here on this root (host_slots), re-read at each task, so a second watcher
    started beside a running one takes its share from the next task on. Two watchers with 2 threads each on 2
    cores spin-waited on each other: 3.06x the wall and 3.25x the CPU of one (bench_worker_pool, quiet box)."""
    own = getattr(slot, "threads", None)  # this pool's slot count; None: in-process or a cluster slot
    if own is None:
        return None
    return max(1, (os.cpu_count() or 1) // max(own, host_slots(root)))


def _finish(task: Task, outcome: Outcome, lease, planner: Planner, state: StatusFile, once: bool) -> None:
    if outcome.ok:
        if lease is not None:
            lease.release()
        planner.settle(task)
        if state.state.get("write_error") and not outcome.write_failed:
            state.update(write_error=None)  # writing works again
    elif outcome.write_failed:
        attempts = lease.attempts if lease is not None else 0
        wait_s = min(WRITE_RETRY_S[0] * 2**attempts, WRITE_RETRY_S[1])
        state.update(
            write_error={
                **_write_error(outcome.message or ""),
                "at": time.time(),
                "retry_at": None if once else time.time() + wait_s,
            }
        )
        if lease is not None:
            lease.fail(f"write failed: {outcome.message}", _inputs(task), wait_s)
        planner.settle(task) if once else planner.defer(task, wait_s)
    else:
        message = f"{task.run.name} step {task.step} {task.what}: {outcome.message}"
        state.error(message)
        if lease is not None:
            lease.fail(message, _inputs(task))
        planner.settle(task)
    if task.request:
        if not outcome.ok:
            failed = dict(state.state.get("failed_requests") or {})
            failed[os.path.basename(task.request)] = (outcome.message or "")[:MAX_ERROR_CHARS]
            state.update(failed_requests=dict(list(failed.items())[-MAX_FAILED_REQUESTS:]))
        if not outcome.write_failed:
            projection_requests.remove(state.storage, task.request)


def _write_error(message: str) -> dict:
    """{"path", "reason"} of a failed write, from cache._write's warning ("... cannot write P (why); ...")
    or an OSError's text."""
    match = re.match(re.escape(CANNOT_WRITE) + r" (.*?) \((.*)\); not cached", message)
    if match:
        return {"path": match.group(1), "reason": match.group(2)[:300]}
    match = re.search(r"\[Errno \d+\] ([^:]+): '(.*)'", message)
    return {"path": match.group(2), "reason": match.group(1)} if match else {"path": None, "reason": message[:300]}


def _over_budget(task: Task, budget: TaskBudget) -> str | None:
    """Why the task's snapshot, by its declared shapes, would not fit the memory budget (None: it fits, or
    its sidecar is unreadable, which the task itself reports)."""
    try:
        return record_over_budget(task.run.snapshot_info(task.step), budget)
    except (OSError, RunFormatError, KeyError, ValueError, TypeError):
        return None
