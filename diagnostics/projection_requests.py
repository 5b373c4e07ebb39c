"""Projection requests: a page asks the worker for a layout by dropping one small file under
<root>/.cache/requests/; the worker's planner lists them oldest first. Parameters are checked against their
ranges (diagnostics.task_limits) both when a request is made and when it is read, so a hand-written request
with n_iter = 1e9 is reported and dropped, never run."""
from __future__ import annotations

import hashlib
import json
import os
import time

from runformat import layout
from runformat.layout import Storage
from runformat.reader import RunFormatError, open_run

from .task import Task
from .task_limits import check_projection_params

REQUESTS_DIR = "requests"
MAX_REQUEST_BYTES = 64 * 1024


def _path(storage: Storage, *parts: str) -> str:
    return storage.join(layout.CACHE_DIR, REQUESTS_DIR, *parts)


def request_projection(root: str, run_name: str, step: int, method: str = "pca", source: str = "embeddings",
                       seed: int | None = 0, params: dict | None = None, init_from_step: int | None = None) -> None:
    """Queue a projection for the worker: one file under <root>/.cache/requests/, written atomically.
    Asking again for the same projection while it is queued changes nothing (it keeps its place)."""
    from . import cache

    run = open_run(run_name, root=root)  # confines the name to the root; RunFormatError otherwise
    cache._check_projection_args(run, int(step), method, source, init_from_step)
    params = check_projection_params(method, dict(params or {}))
    body = {"run": run.name, "step": int(step), "method": method, "source": source, "seed": seed,
            "params": params, "init_from_step": init_from_step}
    ident = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    storage = Storage(root)
    path = _path(storage, f"{ident}.json")
    if storage.exists(path):
        return
    storage.makedirs(_path(storage))
    storage.write_json_atomic(path, {**body, "requested_at": time.time()})


def queued(root: str) -> tuple[list[Task], list[tuple[str, str]]]:
    """(queued projection tasks oldest first, [(request file, why it is invalid)])."""
    storage = Storage(root)
    found, bad = [], []
    for name in storage.listdir(_path(storage)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = _path(storage, name)
        try:
            if not storage.url and not os.path.isfile(path):
                raise ValueError("not a regular file")
            raw = storage.read_bytes(path, 0, MAX_REQUEST_BYTES + 1)
            if len(raw) > MAX_REQUEST_BYTES:
                raise ValueError(f"over {MAX_REQUEST_BYTES} bytes")
            body = json.loads(raw.decode("utf-8"))
            run = open_run(str(body["run"]), root=root)
            method = str(body["method"])
            params = check_projection_params(method, dict(body.get("params") or {}))
            task = Task("projection", run, int(body["step"]), method, str(body["source"]), body.get("seed"),
                        params, body.get("init_from_step"), request=path)
            found.append((float(body.get("requested_at", 0.0)), name, task))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, RunFormatError) as e:
            bad.append((path, f"{storage.display(path)}: not a valid projection request ({str(e)[:300]})"))
    return [t for _, _, t in sorted(found, key=lambda item: item[:2])], bad


def remove(storage: Storage, path: str) -> None:
    """Drop a request file (done, failed or invalid; a page can always ask again). Only files of the
    requests folder itself: never anything a symlinked folder leads to."""
    if not storage.url and (os.path.islink(os.path.dirname(path)) or os.path.islink(path)):
        return
    try:
        storage.remove_tree(path) if storage.url else os.unlink(path)
    except OSError:
        pass
