"""A run's judgement (diagnostics.judge.judgement: verdict, onset, findings), computed once by the worker and kept
beside the run for Home, Live's banner and the report.

    <run>/.cache/run_state.json   # {"listing": {"steps": [...], "records": [...]}, "state": {...} | null,
                                  #  "seal": HMAC of both under the root's key (runformat.seal)}

`state_of` is the one computation (the worker writes its answer, a reader without a file computes it the same
way); `write` and `load` are the one pair that touches the file (versioned: JUDGEMENT_VERSION; schema-checked). The
file is keyed by the records listing it was computed from: the committed steps and the record folder
names (a folder name holds the step and its record's content key), so a new snapshot or a new record makes it
stale. `load` trusts nothing: a file that is missing, over its size or depth bound, not a regular file inside
the run's own .cache (runformat.derived), of the wrong shape, of another listing or not sealed by this root's
key (an edited verdict) is None, and the caller computes.
"""

from __future__ import annotations

import math

from runformat import layout, seal
from runformat.derived import DerivedFiles, canonical
from runformat.reader import Run, RunFormatError

from .advice import RunContext
from .judgement import FINDING_FIELDS, JUDGEMENT_VERSION, RUN_VERDICTS, SEVERITIES, judge_run
from .summary import ready_summaries, run_table

MAX_BYTES = 1 << 20  # ~1 KB a run (one snapshot's numbers); a run with 10^4 steps lists ~300 KB of names


def listing(run: Run) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(committed snapshot steps, record folder names): what the state is computed from."""
    from ..store.record import folders

    return tuple(run.snapshot_steps()), folders(run)


def with_record(records: tuple[str, ...]) -> set[int]:
    """The steps that have a record folder among `records` (folder names `<step:010d>-<key>`)."""
    return {int(f.split("-", 1)[0]) for f in records if f.split("-", 1)[0].isdigit()}


def state_of(run: Run, records: tuple[str, ...]) -> dict | None:
    """The run's judgement (judgement.judge_run: "version", "verdict", "since", "step", "explanation",
    "suggestions", "severity", "findings") plus "pending" (steps) and "latest" (the last ready snapshot's
    numbers and own verdict, summary.summary_of), from the run's ready records; None while none is ready.
    `records`: the record folder names; a step with none is pending without opening anything (a cold root)."""
    rows, pending = ready_summaries(run, with_record(records))
    if not rows:
        return None
    try:
        context = RunContext.of_run(run)  # config and metrics: they fit the words, never the verdict
    except (RunFormatError, OSError, ValueError):
        context = RunContext(run.config if _has_config(run) else None)
    return {**judge_run(run_table(rows), context), "pending": pending, "latest": rows[-1]}


def _has_config(run: Run) -> bool:
    try:
        return isinstance(run.config, dict)
    except (RunFormatError, OSError, ValueError):
        return False


def _key(steps, records) -> dict:
    return {"steps": [int(s) for s in steps], "records": [str(r) for r in records]}


def write(run: Run) -> dict | None:
    """Compute the run's state from its records now and keep it with the listing it came from (atomically).
    A folder that cannot be written (someone else's run) or a value JSON cannot hold is skipped: readers compute."""
    steps, records = listing(run)
    state = state_of(run, records)
    body = {"listing": _key(steps, records), "state": state}
    try:  # sealed (runformat.seal): an edited verdict is not this root's key's, and is recomputed
        DerivedFiles.of_run(run).write_json(
            layout.RUN_STATE_FILE, obj={**body, "seal": seal.seal(run.storage, _sealed(run, body))}
        )
    except (OSError, ValueError, TypeError, RunFormatError):
        pass
    return state


def _sealed(run: Run, body: dict) -> bytes:
    """What the seal is taken over: the listing and the state, and the run they are of."""
    return canonical({"run": run.name, "run_state": {"listing": body.get("listing"), "state": body.get("state")}})


def load(run: Run, steps, records) -> tuple[bool, dict | None]:
    """(found, state): the kept state when the file is there, well formed and of exactly this listing; else
    (False, None) and the caller computes with `state_of`."""
    try:
        body = DerivedFiles.of_run(run).read_json(layout.RUN_STATE_FILE, limit=MAX_BYTES, what="run state file")
        if not isinstance(body, dict) or body.get("listing") != _key(steps, records) or "state" not in body:
            return False, None
        if not seal.verify(run.storage, _sealed(run, body), body.get("seal")):
            return False, None
    except (RunFormatError, OSError, ValueError, TypeError):
        return False, None
    state = body["state"]
    return (True, state) if state is None or _well_formed(state, steps) else (False, None)


def _scalar(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


STATE_KEYS = {
    "version",
    "verdict",
    "since",
    "step",
    "explanation",
    "suggestions",
    "severity",
    "findings",
    "pending",
    "latest",
}


def _well_formed(state, steps) -> bool:
    """The shape `state_of` returns, with steps among the run's: what Home reads cannot raise or mislead."""
    if not isinstance(state, dict) or set(state) != STATE_KEYS or state["version"] != JUDGEMENT_VERSION:
        return False
    latest, pending, known = state["latest"], state["pending"], set(steps)
    if state["verdict"] not in RUN_VERDICTS or not isinstance(state["explanation"], str) or not _int(state["since"]):
        return False
    if state["severity"] not in (None, *SEVERITIES[1:]) or not _int(state["step"]) or state["step"] not in known:
        return False
    if (
        not _strings(state["suggestions"])
        or not isinstance(state["findings"], list)
        or not all(_finding(f, known) for f in state["findings"])
    ):
        return False
    if not isinstance(pending, list) or not all(_int(s) and s in known for s in pending):
        return False
    if not isinstance(latest, dict) or not _int(latest.get("step")) or latest["step"] not in known:
        return False
    if state["since"] not in known or latest["step"] in pending:
        return False
    return all(
        isinstance(k, str) and (_scalar(v) or isinstance(v, list) and all(_scalar(x) for x in v))
        for k, v in latest.items()
    )


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _finding(f, known: set) -> bool:
    """One finding as judgement.judge_run writes it (the Alarm fields), its steps among the run's."""
    if not isinstance(f, dict) or set(f) != set(FINDING_FIELDS) or f["severity"] not in SEVERITIES:
        return False
    if not all(isinstance(f[k], str) for k in ("kind", "message", "suggestion")) or not _strings(f["signals"]):
        return False
    return all(_int(f[k]) and f[k] in known for k in ("step_started", "step_detected")) and (
        f["step_before"] is None or _int(f["step_before"]) and f["step_before"] in known
    )


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
