"""What is left to do on a root, found incrementally: the worker's loop (diagnostics.work.worker) asks `plan()`
every pass, and a pass costs one listing per run plus work for the snapshots that are new since the last
pass. A snapshot is looked at once, when it first appears: a record on disk settles it, else it is queued
until its task ends (record.load, with the τ lookup it needs, runs once per snapshot, never per pass).

Order: records of the runs a dashboard is showing (diagnostics.work.viewing), newest first; queued projection
requests, oldest first; every other record, newest sidecar first across runs; run states; default
projections of each run's latest snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from runformat import layout
from runformat.reader import Run, RunFormatError, list_runs

from . import projection_requests
from .task import Task
from .task_limits import TaskBudget


@dataclass
class _RunScan:
    seen: set = field(default_factory=set)  # steps looked at (settled or queued)
    queued: dict = field(default_factory=dict)  # step -> (sidecar mtime, Task) of records still to do
    latest: int | None = None  # the step whose default projection was checked


class Planner:
    def __init__(self, root: str, budget: TaskBudget = TaskBudget()):  # noqa: B008
        self.root = root
        self.budget = budget
        self.runs: dict[str, _RunScan] = {}
        self.states: dict = {}  # run name -> the records listing its kept state was checked against
        self.settled: set = set()  # idents of default projections done or failed
        self.not_before: dict = {}  # task ident -> monotonic time before which it is not offered again
        self.waiting = 0  # tasks held back by not_before at the last plan

    # -- what the loop calls --------------------------------------------------------------------------
    def plan(self, viewed: tuple[str, ...] = ()) -> tuple[list[Task], list[tuple[str, str]]]:
        """(tasks in the order they are done, [(request file, why it is invalid)])."""
        from ..store import cache

        records, states, latest = [], [], []
        now = time.monotonic()
        deferred = dict(self.not_before)
        self.not_before.clear()  # kept only for tasks still to do (so `waiting` means something is)
        self.waiting = 0

        def offered(task: Task) -> bool:
            until = deferred.get(task.ident, 0)
            if until > now:
                self.not_before[task.ident] = until
                self.waiting += 1
                return False
            return True

        requests, bad = projection_requests.queued(self.root)
        requests = [t for t in requests if offered(t)]

        for run in list_runs(self.root):
            try:
                steps = run.snapshot_steps()
            except (RunFormatError, OSError):
                continue
            scan = self.runs.setdefault(run.name, _RunScan())
            for step in steps:
                if step not in scan.seen:
                    scan.seen.add(step)
                    self._look(run, step, scan)
            records.extend(
                (mtime, run.name, step, task) for step, (mtime, task) in scan.queued.items() if offered(task)
            )
            if steps and self._state_stale(run):
                states.append(Task("state", run, steps[-1]))
            if steps and scan.latest != steps[-1]:
                task = Task("projection", run, steps[-1])
                if not offered(task):  # held by another worker: not even keyed again until it is due
                    continue
                try:
                    ready = cache.projection_if_ready(run, steps[-1]) is not None
                except (RunFormatError, OSError, ValueError, KeyError):
                    ready = False
                if ready or task.ident in self.settled:
                    scan.latest = steps[-1]
                else:
                    latest.append(task)
        records.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)  # newest sidecar first
        rank = {name: i for i, name in enumerate(viewed)}
        first = sorted((r for r in records if r[1] in rank), key=lambda r: rank[r[1]])  # stable: newest first
        rest = [r for r in records if r[1] not in rank]
        return [t for *_, t in first] + requests + [t for *_, t in rest] + states + latest, bad

    def settle(self, task: Task) -> None:
        """The task ended (done, or failed for good): not offered again."""
        if task.kind == "state":  # written or not (a read-only run): not tried again until the listing changes
            from ..judge import run_state

            try:
                self.states[task.run.name] = run_state.listing(task.run)
            except (RunFormatError, OSError):
                pass
            return
        if task.kind == "record":
            self.runs.setdefault(task.run.name, _RunScan()).queued.pop(task.step, None)
        else:
            self.settled.add(task.ident)
        self.not_before.pop(task.ident, None)

    def defer(self, task: Task, seconds: float) -> None:
        """Another worker holds it, or a write failed: offer it again after `seconds`."""
        self.not_before[task.ident] = time.monotonic() + seconds

    # -- discovery ------------------------------------------------------------------------------------
    def _look(self, run: Run, step: int, scan: _RunScan) -> None:
        from ..store import record

        if record.load(run, step) is not None:
            return
        path = run.file(layout.SNAPSHOT_DIR, layout.snapshot_sidecar_name(step))
        try:
            mtime = run.storage.identity(path)[2]
        except OSError:
            mtime = 0  # the record task reports what is wrong with it
        scan.queued[step] = (mtime if isinstance(mtime, (int, float)) else 0, Task("record", run, step))

    def _state_stale(self, run: Run) -> bool:
        """True when the run's kept state is not of its current records listing (found fresh or written once
        per listing: a pass over an unchanged root reads one directory listing per run, not the file)."""
        from ..judge import run_state

        try:
            now = run_state.listing(run)
        except (RunFormatError, OSError):
            return False
        if self.states.get(run.name) == now:
            return False
        if run_state.load(run, *now)[0]:
            self.states[run.name] = now
            return False
        return True
