"""While the background worker computes: pages show what is ready, plus a progress line ("computing step 200
of run-a, 2 of 3"), and a fragment that reruns the page as soon as what it waits for has arrived, so
the numbers fill in without a reload. Also the worker's state and last error, for Home."""

from __future__ import annotations

import time
from typing import Callable

import streamlit as st

from . import data, worker_process
from .text import md

REFRESH_S = 1.0
# worker.json is rewritten at least every 2 s while the worker lives (diagnostics.work.worker.HEARTBEAT_EVERY_S);
# five missed beats mean it is gone.
STALE_AFTER_S = 10.0


def worker_state() -> dict:
    """The worker's own status (diagnostics.work.worker.status) merged with this server's supervisor's view."""
    from diagnostics.work import worker, worker_status

    state = worker_status.checked(worker.status(data.runs_root()))  # types and ranges checked: see there
    sup = worker_process.supervisor(data.runs_root())
    beat = state.get("heartbeat")
    state["alive"] = isinstance(beat, (int, float)) and -STALE_AFTER_S < time.time() - beat < STALE_AFTER_S
    # app.py starts the supervisor after the first page has drawn: until then that page would read "not
    # running; start one", which is wrong for a server that is about to start it.
    state["supervised"] = sup is not None or worker_process.enabled()
    if sup is not None:
        state["supervisor"] = sup.state()
    return state


def progress_line(state: dict | None = None) -> tuple[str, float | None]:
    """("Background worker: computing step 200 of run-a, 2 of 3.", the fraction done of its batch or None)."""
    state = worker_state() if state is None else state
    if not state.get("alive"):
        how = (
            "starting (it is restarted by itself if it stops)."
            if state.get("supervised")
            else f"not running; start one with `python -m diagnostics watch {data.runs_root()}`."
        )
        return f"Background worker: {how}", None
    current, done, total = state.get("current"), state.get("done") or 0, state.get("total") or 0
    if state.get("state") != "computing" or not isinstance(current, dict):
        return "Background worker: idle.", None
    what = "" if current.get("what") == "record" else f" ({current.get('what')})"
    return (
        f"Background worker: computing step {current.get('step')} of {current.get('run')}{what}, "
        f"{done + 1} of {max(total, done + 1)}.",
        done / max(total, 1),
    )


def show_progress(waiting_for: str) -> None:
    line, fraction = progress_line()
    text = f"{md(waiting_for)} {md(line)}"
    if fraction is None:
        st.caption(text)
    else:
        st.progress(min(max(fraction, 0.0), 1.0), text=text)


def wait(waiting_for: str, ready: Callable[[], bool], key: str) -> None:
    """A progress line that refreshes itself every REFRESH_S and reruns the page when ready() turns true."""

    @st.fragment(run_every=REFRESH_S)
    def _progress() -> None:
        if ready():
            st.rerun(scope="app")
        show_progress(waiting_for)

    with st.container(key=f"pending-{key}"):
        _progress()


def _viewer() -> str:
    """This browser session's id (one view file per session), or the server's when there is none."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return ctx.session_id if ctx is not None else "server"
    except ImportError:
        return "server"


def _failures(checks: list[tuple[str, int]]) -> list[str]:
    """'run step N: why' for pending snapshots whose task failed for good (over a budget, unreadable)."""
    from diagnostics.work import lease
    from runformat.layout import Storage

    storage = Storage(data.runs_root())
    out = []
    for name, step in checks:
        failed = lease.failure(storage, name, step)
        if failed and not failed.get("retry_at"):
            out.append(str(failed.get("message") or "failed"))
    return out


def wait_for_records(pending: dict[str, list[int]], most: int = 20) -> None:
    """Progress for the runs whose records are pending; the page reruns when any of them arrives. The worker
    is told these runs are in view, so it measures them first (diagnostics.work.viewing)."""
    if not pending:
        return
    from diagnostics.work import viewing

    viewing.show_runs(data.runs_root(), list(pending), _viewer())
    count = sum(len(s) for s in pending.values())
    checks = [(n, s) for n, steps in pending.items() for s in steps][:most]
    failed = _failures(checks)
    if failed:
        st.caption(
            md(
                f"{len(failed)} snapshot{'s' if len(failed) > 1 else ''} could not be measured: "
                + "; ".join(failed[:3])
            )
        )
    wait(
        f"{count} snapshot{'s' if count > 1 else ''} still being measured; showing what is ready.",
        lambda: any(data.record(n, s) is not None for n, s in checks),
        key="records",
    )


def worker_panel() -> None:
    """Home: the worker's state, and its last error (as text) when it has one."""
    state = worker_state()
    line, _ = progress_line(state)
    sup = state.get("supervisor") or {}
    restarts = max(sup.get("starts", 0) - 1, 0)
    st.caption(md(line) + (f" Restarted {restarts} time{'s' if restarts > 1 else ''}." if restarts else ""))
    errors = [
        (at, text)
        for at, text in (
            (sup.get("last_error_at"), sup.get("last_error")),
            (state.get("last_error_at"), state.get("last_error")),
        )
        if text
    ]
    write = state.get("write_error")
    if isinstance(write, dict):  # issue #24 item 14: say which path and why, and when it is tried again
        retry = write.get("retry_at")
        st.warning(
            md(
                f"The worker cannot write {write.get('path') or 'under the runs root'}: "
                f"{write.get('reason')}. Records stay pending"
                + (
                    f"; retried at {time.strftime('%H:%M:%S', time.localtime(retry))}."
                    if isinstance(retry, (int, float)) and 0 < retry < 1e11
                    else "."
                )
            )
        )
    if errors:
        at, text = max(errors, key=lambda e: e[0] or 0)
        try:
            when = time.strftime("%H:%M:%S", time.localtime(at or 0))
        except (OverflowError, ValueError, OSError, TypeError):
            when = "unknown time"
        with st.expander(f"Worker's last error ({when})"):
            st.code(text, language=None, wrap_lines=True)
