"""The last logged value of a metric, read from the end of metrics.jsonl.

Home asks every run for its last step and every record lookup asks for τ at a snapshot; the reader's whole-file
parse costs ~10 ms per run even for a 10-line file (Arrow and pandas set-up), while the answer is nearly always
in the last few lines. This walks the file backwards in chunks and gives the answer the reader's frame
(reader.Run.metrics) gives: complete lines only, lines over its length or depth bound and lines that are not
records skipped, values read as the reader reads them. When the walk would cost more than the frame (a line
longer than the bound, more than MAX_PARSES candidate lines) it asks the frame instead.
"""
from __future__ import annotations

import json
import math
from typing import Callable

import pandas as pd

from . import bounds, layout
from .reader import Run, _count, _metric_value

CHUNK = 65_536
# Candidate lines parsed from the end before reading the whole file instead: the latest snapshot's τ is within
# the last few lines; an early snapshot of a run that logs τ every step is not, and one pass of the reader over
# the file (kept on the Run, incremental) is then cheaper than these lines.
MAX_PARSES = 256


def last_logged(run: Run, key: str | None, at_or_before: int | None = None,
                accept: Callable[[float], bool] = math.isfinite) -> tuple[int, float] | None:
    """(step, value) of the last metrics record with step ≤ `at_or_before` (any step when None) that logs
    `key` with a value `accept`ed (default: finite); with key None, the last record of all (value NaN). None when there is none."""
    path = run.file(layout.METRICS_FILE)
    try:
        size = run.storage.size(path)
    except FileNotFoundError:
        return None
    if size > run.limits.metrics_bytes:
        return _from_frame(run, key, at_or_before, accept)  # the reader refuses the file, naming it
    needle = key.encode() if key is not None else b""
    end, rest, parsed, complete = size, b"", 0, False
    while end > 0:
        start = max(0, end - CHUNK)
        chunk, end = run.storage.read_bytes(path, start, end - start) + rest, start
        if not complete:  # the last line without its newline is still being written (or torn): not yet
            last = chunk.rfind(b"\n")
            chunk, complete = (chunk[: last + 1], True) if last >= 0 else (b"", False)
        rest = b""
        if start > 0 and chunk:  # its first line may begin in the chunk before (chunk ends with a newline)
            cut = chunk.find(b"\n") + 1
            rest, chunk = chunk[:cut], chunk[cut:]
            if len(rest) > run.limits.metrics_line_bytes + 1:
                return _from_frame(run, key, at_or_before, accept)  # over the reader's bound: it skips it
        if needle not in chunk and b"\\u" not in chunk:  # "\u" escapes could spell the key
            continue
        for line in reversed(chunk.split(b"\n")):
            if not line or (needle not in line and b"\\u" not in line):
                continue
            parsed += 1
            if parsed > MAX_PARSES:
                return _from_frame(run, key, at_or_before, accept)
            if len(line) > run.limits.metrics_line_bytes or bounds.line_problems(line + b"\n", run.limits):
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(rec, dict) or not _count(rec.get("step")) \
                    or (at_or_before is not None and rec["step"] > at_or_before):
                continue
            if key is None:
                return rec["step"], math.nan
            if key in rec:
                value = _metric_value(rec[key])
                if accept(value):
                    return rec["step"], value
    return None


def _from_frame(run: Run, key: str | None, at_or_before: int | None, accept) -> tuple[int, float] | None:
    frame = run.metrics()  # steps never decrease (docs/run-format.md): no sort, no copy of the frame
    if at_or_before is not None:
        frame = frame[frame["step"] <= at_or_before]
    if key is None:
        return (int(frame["step"].iloc[-1]), math.nan) if len(frame) else None
    if key not in frame.columns:
        return None
    values = pd.to_numeric(frame[key], errors="coerce")
    for step, value in zip(reversed(frame["step"].tolist()), reversed(values.tolist())):
        if accept(float(value)):
            return int(step), float(value)
    return None
