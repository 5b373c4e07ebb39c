"""How metrics.jsonl lines are read: one line (record_problem), a block of plain-number lines through Arrow
(arrow_frame), and the last logged value of a metric from the end of the file (last_logged).

Last value: Home asks every run for its last step and every record lookup asks for τ at a snapshot; the
reader's whole-file parse costs ~10 ms per run even for a 10-line file (Arrow and pandas set-up), while the
answer is nearly always in the last few lines. This walks the file backwards in chunks and gives the answer
the reader's frame (reader.Run.metrics) gives: complete lines only, lines over its length or depth bound and
lines that are not records skipped, values read as the reader reads them. When the walk would cost more than
the frame (a line longer than the bound, more than MAX_PARSES candidate lines) it asks the frame instead.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from . import bounds, layout
from .bounds import ReadLimits
from .layout import Storage


class RunFiles(Protocol):
    """What the last-value walk needs of a run (reader.Run has it): its files, its limits, its frame. A
    protocol, not the reader's class, so this module never imports the reader that imports it."""

    storage: Storage
    limits: ReadLimits
    config: dict

    def file(self, *parts: str) -> str: ...

    def metrics(self) -> pd.DataFrame: ...


def is_count(value, least: int = 0) -> bool:
    """A step or count as the format stores it: an int (not a bool) in [least, 2^63)."""
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= layout.MAX_STEP


def metric_value(value) -> float:
    """A metric as a float: numbers and the NaN/Infinity tokens; anything else (a list, a bool, a word) is NaN."""
    if isinstance(value, str):
        return layout.NONFINITE_TOKENS.get(value, math.nan)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.copysign(math.inf, value)


def record_problem(line: bytes, rows: list[dict]) -> str | None:
    """Parse one metrics line into `rows`; the reason it is not a record, or None."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return "not JSON (a line torn by a crash mid-append, or garbage)"
    if not isinstance(rec, dict) or not is_count(rec.get("step")):
        return "not a record with an integer step in [0, 2^63)"
    rows.append({k: (v if k == "step" else metric_value(v)) for k, v in rec.items()})
    return None


# -- distinct keys: bounded ------------------------------------------------------------------------

# The bound on distinct keys is ReadLimits.metric_keys (runformat/bounds.py, with its evidence).
SKIPPED_NAMES_SHOWN = 20  # names kept for the warning; the count is exact
SAMPLE_LINES = 2048  # lines parsed (head and an even stride) to guess the key set before Arrow reads
_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:')  # a JSON string followed by ':' is a key (of some object)


class MetricKeys:
    """Which metric keys a run's frame has columns for, in file order, and how many were skipped."""

    def __init__(self, limit: int = bounds.DEFAULT_LIMITS.metric_keys):
        self.limit = limit
        self.kept: dict[str, None] = {}  # ordered set
        self.skipped = 0
        self.skipped_names: list[str] = []
        self._skipped: set[str] = set()

    def admit(self, names) -> None:
        """Take new names in order while there is room; count the rest once each."""
        for name in names:
            if name in self.kept or name in self._skipped:
                continue
            if len(self.kept) < self.limit:
                self.kept[name] = None
                continue
            self.skipped += 1
            if len(self.skipped_names) < SKIPPED_NAMES_SHOWN:
                self.skipped_names.append(name[:80])
            if len(self._skipped) < 100_000:  # a bound on the bound's own memory; past it a name may count twice
                self._skipped.add(name)

    def fits(self, names) -> bool:
        return len(self.kept) + sum(1 for n in set(names) if n not in self.kept) <= self.limit


def _sample_keys(data: bytes) -> dict[str, None]:
    """Keys of a sample of the lines: all of them for a small block (an append), else the head and a stride."""
    if len(data) <= 64 * SAMPLE_LINES:  # ~128 KB: every line
        lines = data.split(b"\n")
    else:  # the head, then the line after each of SAMPLE_LINES evenly spaced offsets (splitting 190 MB: 0.8 s)
        lines = data[: 16 * SAMPLE_LINES].split(b"\n")[:-1]
        for offset in range(0, len(data), len(data) // SAMPLE_LINES):
            start = data.find(b"\n", offset) + 1
            end = data.find(b"\n", start)
            if start and end > start:
                lines.append(data[start:end])
    keys: dict[str, None] = {}  # ordered: the frame's columns come in the order lines name them
    for line in lines:
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            keys.update(rec)
    return keys


def _census(data: bytes, keys: MetricKeys, cap: int) -> set[str] | None:
    """Every key in `data` (a superset: keys of nested objects count too), or None once there are more than
    `cap` beyond the kept ones. Read in 1 MB pieces, so the census itself stays small."""
    found: set[str] = set()
    start = 0
    while start < len(data):  # whole lines, so a match never starts inside a string
        end = data.find(b"\n", start + (1 << 20))
        end = len(data) if end < 0 else end + 1
        for raw in set(_KEY.findall(data, start, end)):
            try:
                found.add(json.loads(b'"' + raw + b'"'))
            except ValueError:
                return None
        if len(found - keys.kept.keys()) > cap:
            return None
        start = end
    return found


def arrow_frame(data: bytes, keys: MetricKeys) -> pd.DataFrame | None:
    """Plain-number lines through Arrow's JSON reader with an explicit schema of known keys, so Arrow never
    allocates a column per unexpected key; None (the Python path decides) when the keys would pass the bound
    or a value is not a plain number."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pa_json

    names = {**keys.kept, **_sample_keys(data)}
    for attempt in range(2):
        if not keys.fits(names):
            return None
        schema = pa.schema([pa.field(n, pa.int64() if n == "step" else pa.float64()) for n in names])
        try:
            table = pa_json.read_json(
                io.BytesIO(data),
                parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
            )
            break
        except pa.ArrowInvalid as e:
            if attempt or "unexpected field" not in str(e):
                raise
            census = _census(data, keys, keys.limit - len(keys.kept))  # the sample missed a key: count them all
            if census is None:
                return None
            names.update(dict.fromkeys(census))
    if (
        "step" not in names
        or table.column("step").null_count
        or not len(table)
        or pc.min(table.column("step")).as_py() < 0
    ):
        return None
    # Arrow read every value as a number or null, so no line held a nested object or a string: the census's
    # superset is exactly the lines' keys, and every sampled key is a key some line has (null included).
    keys.admit(table.column_names)
    return _order_columns(table.to_pandas())


def _order_columns(df: pd.DataFrame) -> pd.DataFrame:
    df["step"] = df["step"].astype("int64")
    lead = [c for c in ("step", "wall_time") if c in df.columns]
    return df[lead + [c for c in df.columns if c not in lead]].astype({c: "float64" for c in df.columns if c != "step"})


def rows_to_frame(rows: list[dict], keys: MetricKeys | None = None) -> pd.DataFrame:
    """Python-parsed records as a frame, one column per kept key, filled in one pass over the values (the
    cost is the values read, not lines x keys)."""
    if not rows:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "wall_time": pd.Series(dtype="float64")})
    keys = keys or MetricKeys(limit=1 << 62)
    for row in rows:
        if len(keys.kept) >= keys.limit and row.keys() <= keys.kept.keys():
            continue
        keys.admit(row)
    seen = {k for row in rows for k in row if k in keys.kept}  # only the kept keys these rows hold
    columns = {k: np.full(len(rows), np.nan) for k in keys.kept if k in seen and k != "step"}
    step = np.empty(len(rows), np.int64)
    for i, row in enumerate(rows):
        step[i] = row["step"]
        for k, v in row.items():
            column = columns.get(k)
            if column is not None:
                column[i] = v
    return _order_columns(pd.DataFrame({"step": step, **columns}))


# -- the last value, from the end of the file ------------------------------------------------------

CHUNK = 65_536
# Candidate lines parsed from the end before reading the whole file instead: the latest snapshot's τ is within
# the last few lines; an early snapshot of a run that logs τ every step is not, and one pass of the reader over
# the file (kept on the Run, incremental) is then cheaper than these lines.
MAX_PARSES = 256


def last_logged(
    run: RunFiles, key: str | None, at_or_before: int | None = None, accept: Callable[[float], bool] = math.isfinite
) -> tuple[int, float] | None:
    """(step, value) of the last metrics record with step ≤ `at_or_before` (any step when None) that logs
    `key` with a value `accept`ed (default: finite); with key None, the last record of all (value NaN). None
    when there is none."""
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
            if (
                not isinstance(rec, dict)
                or not is_count(rec.get("step"))
                or (at_or_before is not None and rec["step"] > at_or_before)
            ):
                continue
            if key is None:
                return rec["step"], math.nan
            if key in rec:
                value = metric_value(rec[key])
                if accept(value):
                    return rec["step"], value
    return None


def temperature_for(run: RunFiles, step: int) -> float | None:
    """τ in force at `step`: the last logged metric "temperature" at or before it (a tail walk, `last_logged`),
    else the config's contrastive.temperature, else None. Non-positive or non-finite values are ignored."""
    logged = last_logged(run, "temperature", step, accept=lambda v: math.isfinite(v) and v > 0)
    if logged is not None:
        return logged[1]
    contrastive = run.config.get("contrastive")
    try:
        value = float(contrastive.get("temperature")) if isinstance(contrastive, dict) else math.nan
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _from_frame(run: RunFiles, key: str | None, at_or_before: int | None, accept) -> tuple[int, float] | None:
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
