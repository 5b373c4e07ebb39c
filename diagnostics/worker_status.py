"""worker.json as a page may trust it: every field the dashboard reads checked for type and range, anything
else dropped or replaced by its "unknown" value. worker.json sits in the served tree and anyone who can write
the root can edit it; a wrong type must cost that field, never the page (issue 24 item 13: `last_error_at: 1e20`
raised OverflowError in time.localtime on Home, and a heartbeat of 1e300 kept a dead worker "alive" for ever).
Fields this module does not know pass through untouched, for the worker's own readers.
"""
from __future__ import annotations

import math
import time

# The worker rewrites worker.json on the host that serves the root, or on one sharing its file system (NFS
# clocks agree to well under a second with NTP); a time further ahead than this is an edit or a broken clock.
FUTURE_S = 60.0
# What a page shows of the worker's last error: a traceback is ~2-5 KB; a request naming a 10 MB run once put
# 10 MB there (item 16, the worker's own bound). Home shows the head of it, and says it was cut.
SHOWN_ERROR_CHARS = 8_000
STATES = ("idle", "computing")


def _time(value, now: float) -> float | None:
    """A Unix time: a finite number (not a bool) in [0, now + FUTURE_S], else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and 0 <= value <= now + FUTURE_S else None


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63 else 0


def _text(value) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= SHOWN_ERROR_CHARS else value[:SHOWN_ERROR_CHARS] + " … (cut)"


def checked(state, now: float | None = None) -> dict:
    """`state` (worker.json as parsed, or None) with every field pages read of the type and range it must have."""
    if not isinstance(state, dict):
        return {}
    now = time.time() if now is None else now
    out = dict(state)
    for key in ("heartbeat", "last_error_at"):
        out[key] = _time(state.get(key), now)
    out["pid"] = _count(state.get("pid")) or None
    out["state"] = state.get("state") if state.get("state") in STATES else None
    out["done"], out["total"] = _count(state.get("done")), _count(state.get("total"))
    out["last_error"] = _text(state.get("last_error"))
    current = state.get("current")
    out["current"] = ({"run": current["run"], "step": current["step"], "what": current.get("what", "record")}
                      if isinstance(current, dict) and isinstance(current.get("run"), str)
                      and _count(current.get("step")) == current.get("step")
                      and isinstance(current.get("what", "record"), str) else None)
    failed = state.get("failed_requests")
    out["failed_requests"] = failed if isinstance(failed, dict) else {}
    return out
