"""Which runs the dashboards on a root are showing, so the worker measures them first (issue #23 item 7).

A page that waits for records (dashboard/pending.py) calls `show_runs`: one small file per viewer under
<root>/.cache/viewing/, rewritten only when its runs change or it is about to go stale. The planner
(diagnostics.work.planner) puts the records of the runs in the freshest views first, newest snapshot first.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from runformat import layout
from runformat.layout import Storage

VIEWING_DIR = "viewing"
FRESH_S = 30.0  # a view older than this is gone (a closed tab); a page rewrites it every FRESH_S / 2
MAX_VIEWERS = 32  # files read per pass (the freshest); more viewers than this share the rest of the root
MAX_RUNS = 64  # runs named per view
MAX_BYTES = 16 * 1024
_written: dict[str, tuple[tuple[str, ...], float]] = {}


def _folder(storage: Storage) -> str:
    return storage.join(layout.CACHE_DIR, VIEWING_DIR)


def show_runs(root: str, runs, viewer: str) -> None:
    """Tell the worker that `viewer` (a dashboard session) is showing `runs` (first = most wanted)."""
    runs = tuple(str(r) for r in list(runs)[:MAX_RUNS])
    name = hashlib.sha256(viewer.encode("utf-8")).hexdigest()[:16] + ".json"
    key = f"{root}\0{name}"
    last = _written.get(key)
    if last is not None and last[0] == runs and time.time() - last[1] < FRESH_S / 2:
        return
    storage = Storage(root)
    try:
        storage.makedirs(_folder(storage))
        storage.write_json_atomic(
            storage.join(layout.CACHE_DIR, VIEWING_DIR, name), {"runs": list(runs), "at": time.time()}
        )
        _written[key] = (runs, time.time())
    except OSError:
        pass  # a read-only root: the worker keeps its own order


def viewed_runs(root: str, now: float | None = None) -> tuple[str, ...]:
    """Run names in the fresh views, freshest view first (each run once)."""
    now = time.time() if now is None else now
    storage = Storage(root)
    views = []
    for name in storage.listdir(_folder(storage))[: 4 * MAX_VIEWERS]:
        path = storage.join(layout.CACHE_DIR, VIEWING_DIR, name)
        try:
            if not name.endswith(".json") or (not storage.url and not os.path.isfile(path)):
                continue
            body = json.loads(storage.read_bytes(path, 0, MAX_BYTES + 1)[:MAX_BYTES].decode("utf-8"))
            at = float(body["at"])
            if now - FRESH_S <= at <= now + FRESH_S and isinstance(body["runs"], list):
                views.append((at, [str(r) for r in body["runs"][:MAX_RUNS]]))
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            continue
    out: list[str] = []
    for _, runs in sorted(views, key=lambda v: -v[0])[:MAX_VIEWERS]:
        out.extend(r for r in runs if r not in out)
    return tuple(out)
