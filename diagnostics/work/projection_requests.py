"""Projection requests: a page asks the worker for a layout by dropping one small file under
<root>/.cache/requests/; the worker's planner lists them oldest first. Parameters are checked against their
ranges (diagnostics.work.task_limits) both when a request is made and when it is read, so a hand-written request
with n_iter = 1e9 is reported and dropped, never run."""

from __future__ import annotations

import hashlib
import json
import re
import time

from runformat import layout
from runformat.derived import DerivedFiles
from runformat.layout import Storage
from runformat.reader import RunFormatError, open_run

from .task import Task
from .task_limits import check_projection_params

REQUESTS_DIR = layout.REQUESTS_DIR
MAX_REQUEST_BYTES = 64 * 1024  # a request is ~200 bytes
# Only names request_projection writes are read or removed (runformat.derived): a foreign *.json in a
# requests/ folder, or in a folder it links to, is never touched (issue 24: a victim folder lost its files).
REQUEST_NAME = re.compile(r"[0-9a-f]{24}\.json")


def _files(root: str) -> DerivedFiles:
    return DerivedFiles.of_root(Storage(root))


def request_projection(
    root: str,
    run_name: str,
    step: int,
    method: str = "pca",
    source: str = "embeddings",
    seed: int | None = 0,
    params: dict | None = None,
    init_from_step: int | None = None,
) -> None:
    """Queue a projection for the worker: one file under <root>/.cache/requests/, written atomically.
    Asking again for the same projection while it is queued changes nothing (it keeps its place)."""
    from ..store import cache

    run = open_run(run_name, root=root)  # confines the name to the root; RunFormatError otherwise
    cache._check_projection_args(run, int(step), method, source, init_from_step)
    params = check_projection_params(method, dict(params or {}))
    body = {
        "run": run.name,
        "step": int(step),
        "method": method,
        "source": source,
        "seed": seed,
        "params": params,
        "init_from_step": init_from_step,
    }
    ident = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    files = _files(root)
    if files.read(REQUESTS_DIR, f"{ident}.json", limit=MAX_REQUEST_BYTES, what="projection request") is not None:
        return
    files.write_json(REQUESTS_DIR, f"{ident}.json", obj={**body, "requested_at": time.time()})


def queued(root: str) -> tuple[list[Task], list[tuple[str, str]]]:
    """(queued projection tasks oldest first, [(request file, why it is invalid)])."""
    files = _files(root)
    found, bad = [], []
    try:
        names = files.listdir(REQUESTS_DIR)
    except RunFormatError:  # .cache or requests/ linked elsewhere: no requests, and nothing there is touched
        names = []
    for name in names:
        if not REQUEST_NAME.fullmatch(name):  # not a file request_projection wrote: never read nor removed
            continue
        path = files.path(REQUESTS_DIR, name)
        try:
            body = files.read_json(REQUESTS_DIR, name, limit=MAX_REQUEST_BYTES, what="projection request")
            run = open_run(str(body["run"]), root=root)
            method = str(body["method"])
            params = check_projection_params(method, dict(body.get("params") or {}))
            task = Task(
                "projection",
                run,
                int(body["step"]),
                method,
                str(body["source"]),
                body.get("seed"),
                params,
                body.get("init_from_step"),
                request=path,
            )
            found.append((float(body.get("requested_at", 0.0)), name, task))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, RunFormatError) as e:
            bad.append((path, f"{files.display(path)}: not a valid projection request ({str(e)[:300]})"))
    return [t for _, _, t in sorted(found, key=lambda item: item[:2])], bad


def remove(storage: Storage, path: str) -> None:
    """Drop a request file (done, failed or invalid; a page can always ask again): only a request-shaped name
    of the requests folder itself, never through a link (runformat.derived.DerivedFiles.remove)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        DerivedFiles.of_root(storage).remove(REQUESTS_DIR, name, own=REQUEST_NAME)
    except (OSError, RunFormatError):
        pass
