"""The background worker: computes what pages only read, off the request path (no Streamlit in here).

    python -m diagnostics watch ROOT [--once]

Each pass over the root it does one task, in this order:
  1. queued projection requests (`request_projection`, dropped by a page), oldest first;
  2. the record (diagnostics.record) of every committed snapshot that has none, newest snapshot first
     across runs;
  3. the run state Home shows (diagnostics.run_state) of each run whose kept one is not of its current
     records (also rewritten right after each record the worker computes);
  4. the default projection (PCA of the embeddings, seed 0) of each run's latest snapshot.
A snapshot the engine cannot use gets a record whose .error says why; any other failure is kept as
`last_error` in <root>/.cache/worker.json and the task is not retried until its inputs change, so the loop
never dies on bad input. `compute` (the CLI) runs the same tasks through `run_task`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import traceback
from dataclasses import dataclass, field

from runformat import layout
from runformat.derived import DerivedFiles
from runformat.layout import Storage
from runformat.reader import Run, RunFormatError, list_runs, open_run

STATUS_FILE = "worker.json"
REQUESTS_DIR = "requests"
HEARTBEAT_EVERY_S = 2.0   # worker.json is rewritten at least this often while the worker lives
MAX_FAILED_REQUESTS = 20  # failed requests remembered in worker.json (newest kept)
# Derived-file rules (runformat.derived): only names the worker writes are read or removed, under size bounds.
REQUEST_NAME = re.compile(r"[0-9a-f]{24}\.json")
REQUEST_BYTES, STATUS_BYTES = 64 << 10, 1 << 20  # a request is ~200 bytes; worker.json ~2 KB with 20 failures


@dataclass
class Task:
    kind: str                      # "record", "state" or "projection"
    run: Run
    step: int
    method: str = "pca"
    source: str = "embeddings"
    seed: int | None = 0
    params: dict = field(default_factory=dict)
    init_from_step: int | None = None
    request: str | None = None     # the request file this task came from

    @property
    def what(self) -> str:
        return self.kind if self.kind in ("record", "state") else f"{self.method} of {self.source}"

    @property
    def ident(self) -> tuple:
        return (self.kind, self.run.name, self.step, self.method, self.source, self.seed,
                json.dumps(self.params, sort_keys=True), self.init_from_step)


def run_task(task: Task, progress=None) -> None:
    """Do one task (shared by `watch` and the CLI's `compute`)."""
    from . import alerts, cache, record, run_state

    if task.kind == "record":
        record.get_or_compute(task.run, task.step)
        alerts.notify(task.run, run_state.write(task.run))  # Home reads the run's judgement from here
    elif task.kind == "state":
        alerts.notify(task.run, run_state.write(task.run))
    else:
        cache.cached_projection(task.run, task.step, task.method, task.source, task.seed, task.params or None,
                                task.init_from_step, progress=progress)


# -- requests -------------------------------------------------------------------------------------

def _storage(root: str) -> Storage:
    return Storage(root)


def _cache_path(storage: Storage, *parts: str) -> str:
    return storage.join(layout.CACHE_DIR, *parts)


def request_projection(root: str, run_name: str, step: int, method: str = "pca", source: str = "embeddings",
                       seed: int | None = 0, params: dict | None = None, init_from_step: int | None = None) -> None:
    """Queue a projection for the worker: one file under <root>/.cache/requests/, written atomically.
    Asking again for the same projection while it is queued changes nothing (it keeps its place)."""
    from . import cache

    run = open_run(run_name, root=root)  # confines the name to the root; RunFormatError otherwise
    cache._check_projection_args(run, int(step), method, source, init_from_step)
    body = {"run": run.name, "step": int(step), "method": method, "source": source, "seed": seed,
            "params": dict(params or {}), "init_from_step": init_from_step}
    ident = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    files = DerivedFiles.of_root(_storage(root))
    if files.read(REQUESTS_DIR, f"{ident}.json", limit=REQUEST_BYTES, what="projection request") is not None:
        return
    files.write_json(REQUESTS_DIR, f"{ident}.json", obj={**body, "requested_at": time.time()})


def _requests(root: str) -> tuple[list[Task], list[tuple[str, str]]]:
    """(queued projection tasks oldest first, [(request file, why it is invalid)])."""
    storage = _storage(root)
    files = DerivedFiles.of_root(storage)
    found, bad = [], []
    try:
        names = files.listdir(REQUESTS_DIR)
    except RunFormatError:  # .cache or requests/ linked elsewhere: no requests, and nothing there is touched
        names = []
    for name in names:
        if not REQUEST_NAME.fullmatch(name):  # not a file request_projection wrote: never read nor removed
            continue
        path = storage.join(layout.CACHE_DIR, REQUESTS_DIR, name)
        try:
            body = files.read_json(REQUESTS_DIR, name, limit=REQUEST_BYTES, what="projection request")
            run = open_run(str(body["run"]), root=root)
            task = Task("projection", run, int(body["step"]), str(body["method"]), str(body["source"]),
                        body.get("seed"), dict(body.get("params") or {}), body.get("init_from_step"), request=path)
            found.append((float(body.get("requested_at", 0.0)), name, task))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, RunFormatError) as e:
            bad.append((path, f"{storage.display(path)}: not a valid projection request ({e})"))
    return [t for _, _, t in sorted(found, key=lambda item: item[:2])], bad


# -- status ---------------------------------------------------------------------------------------

def status(root: str) -> dict | None:
    """The worker's last written state (see RECORD_API.md), or None when no worker has run on this root."""
    try:
        value = DerivedFiles.of_root(_storage(root)).read_json(STATUS_FILE, limit=STATUS_BYTES, what="worker state")
    except (OSError, RunFormatError):
        return None
    return value if isinstance(value, dict) else None


class _Status:
    """worker.json, rewritten atomically on every change and by a heartbeat thread."""

    def __init__(self, root: str):
        self.storage = _storage(root)
        self.path = _cache_path(self.storage, STATUS_FILE)
        self.lock = threading.Lock()
        self.state = {"pid": os.getpid(), "heartbeat": time.time(), "state": "idle", "current": None,
                      "done": 0, "total": 0, "last_error": None, "last_error_at": None, "failed_requests": {}}

    def update(self, **changes) -> None:
        with self.lock:
            self.state.update(changes)
            self.state["heartbeat"] = time.time()
            try:
                DerivedFiles.of_root(self.storage).write_json(STATUS_FILE, obj=self.state)
            except (OSError, ValueError, RunFormatError):
                pass  # a read-only root, a linked .cache: the worker still computes; nobody can see its state

    def error(self, message: str) -> None:
        self.update(last_error=message, last_error_at=time.time())


# -- the loop -------------------------------------------------------------------------------------

class _Planner:
    """What is left to do on a root. Finished and failed tasks are remembered by their inputs' identity, so a
    pass over a root with nothing new reads only directory listings and sidecar stats."""

    def __init__(self, root: str):
        self.root = root
        self.settled: set = set()   # (task ident, sidecar identity) done or failed
        self.states: dict = {}      # run name -> the records listing its kept state was checked against

    def _sidecar(self, run: Run, step: int):
        path = run.file(layout.SNAPSHOT_DIR, layout.snapshot_dirname(step) + ".json")
        try:
            return run.storage.identity(path)
        except (OSError, FileNotFoundError):
            return None

    def settle(self, task: Task) -> None:
        if task.kind == "state":  # written or not (a read-only run): not tried again until the listing changes
            from . import run_state
            try:
                self.states[task.run.name] = run_state.listing(task.run)
            except (RunFormatError, OSError):
                pass
            return
        self.settled.add((task.ident, self._sidecar(task.run, task.step)))

    def plan(self) -> tuple[list[Task], list[tuple[str, str]]]:
        """(tasks in the order they are done, [(request file, why it is invalid)])."""
        from . import cache, record

        requests, bad = _requests(self.root)
        records, states, latest = [], [], []
        for run in list_runs(self.root):
            try:
                steps = run.snapshot_steps()
            except (RunFormatError, OSError):
                continue
            for step in steps:
                task = Task("record", run, step)
                ident = (task.ident, self._sidecar(run, step))
                if ident in self.settled:
                    continue
                if record.load(run, step) is not None:
                    self.settled.add(ident)
                    continue
                records.append((ident[1][2] if ident[1] else 0, run.name, step, task))
            if steps and self._state_stale(run):
                states.append(Task("state", run, steps[-1]))
            if steps:
                task = Task("projection", run, steps[-1])
                ident = (task.ident, self._sidecar(run, steps[-1]))
                if ident in self.settled:
                    continue
                try:
                    ready = cache.projection_if_ready(run, steps[-1]) is not None
                except (RunFormatError, OSError, ValueError, KeyError):
                    ready = False
                if ready:
                    self.settled.add(ident)
                else:
                    latest.append(task)
        records.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)  # newest sidecar first
        return requests + [t for *_, t in records] + states + latest, bad

    def _state_stale(self, run: Run) -> bool:
        """True when the run's kept state is not of its current records listing (found fresh or written once
        per listing: a pass over an unchanged root reads one directory listing per run, not the file)."""
        from . import run_state

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


def watch(root: str, *, once: bool = False, poll_s: float = 1.0) -> None:
    """Compute every record and default projection the root lacks, then queued requests as they come;
    forever (or until nothing is left, with once=True)."""
    if not layout.is_url(root) and not os.path.isdir(root):
        raise RunFormatError(f"{root}: not a folder of runs")
    state = _Status(root)
    planner = _Planner(root)
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_EVERY_S):
            state.update()

    threading.Thread(target=beat, name="worker-heartbeat", daemon=True).start()
    done = 0
    try:
        while True:
            try:
                tasks, bad = planner.plan()
                _drop(bad, state)
            except Exception as e:  # a listing that failed (network root, permissions): try again later
                state.error(f"scanning {root}: {type(e).__name__}: {e}")
                tasks = []
            if not tasks:
                done = 0
                state.update(state="idle", current=None, done=0, total=0)
                if once:
                    return
                time.sleep(poll_s)
                continue
            # run states take ~5 ms each and a pass over the root ~1 s at 200 runs: all of a plan's in one go
            batch = [t for t in tasks if t.kind == "state"] if tasks[0].kind == "state" else tasks[:1]
            for task in batch:
                state.update(state="computing", done=done, total=done + len(tasks),
                             current={"run": task.run.name, "step": task.step, "what": task.what})
                _attempt(task, state)
                planner.settle(task)
                done += 1
    finally:
        stop.set()


def _attempt(task: Task, state: _Status) -> None:
    try:
        run_task(task)
    except Exception as e:  # never die on one task: say what failed and move on
        message = f"{task.run.name} step {task.step} {task.what}: {type(e).__name__}: {e}"
        state.error(message)
        if task.request:
            failed = dict(state.state.get("failed_requests") or {})
            failed[os.path.basename(task.request)] = message
            state.update(failed_requests=dict(list(failed.items())[-MAX_FAILED_REQUESTS:]))
        traceback.print_exc()
    finally:
        if task.request:
            _remove_request(state.storage, task.request)


def _drop(bad: list[tuple[str, str]], state: _Status) -> None:
    """Invalid request files are reported and removed (a page can always ask again)."""
    for path, message in bad:
        state.error(message)
        _remove_request(state.storage, path)


def _remove_request(storage: Storage, path: str) -> None:
    """Delete a request file the worker read: only by its own name pattern, never through a link."""
    try:
        DerivedFiles.of_root(storage).remove(REQUESTS_DIR, os.path.basename(path), own=REQUEST_NAME)
    except (OSError, RunFormatError):
        pass
