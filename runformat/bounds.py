"""Bounds on what the reader parses. Every file a run hands the reader is sized and shaped here before a parser
(json, pyarrow, numpy) sees it, so a hostile or broken file costs a RunFormatError naming it, never a signal,
a RecursionError or the machine's memory. Measured failures this guards against (issue 12): a metrics line
nested 20,000 deep segfaults pyarrow's JSON reader; 100,000 '[' make json raise RecursionError; a 4 KB sparse
.npy declaring 10^8 x 8 drove `summarize` to 5 GB.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass

import numpy as np


class RunFormatError(Exception):
    """A run file is missing, unreadable or does not follow the run format. The message names the file."""


class RunFormatWarning(UserWarning):
    """Part of a run file was skipped (a torn metrics line); the rest was read. The message names the file."""


ALLOWED_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
SNAPSHOT_BYTES_ENV = "CONTRASTSCOPE_SNAPSHOT_BYTES"


@dataclass(frozen=True)
class ReadLimits:
    # Configs nest 3-5 levels and metrics lines 1; json recurses in C to ~1,000 and pyarrow segfaults near 20,000.
    json_depth: int = 64
    run_json_bytes: int = 1 << 20  # the writer's run.json is ~1 KB; dropped_snapshots can grow it
    config_bytes: int = 16 << 20
    sidecar_bytes: int = 16 << 20  # ~150 bytes a field
    notes_bytes: int = 4 << 20
    metrics_line_bytes: int = 1 << 20  # a line of 100 metrics is ~3 KB
    metrics_bytes: int = 4 << 30  # a 1,000,000-line file of 8 metrics is 190 MB
    snapshot_fields: int = 4096
    # Distinct metric keys a run's frame keeps (the first in file order; the rest are skipped and named). The
    # frame is dense, L lines x kept keys x 8 bytes: unbounded, a 1.1 MB file of 50,000 lines each naming a new
    # key asked for 50,000 x 50,000 cells (18.6 GiB; issue 24 item 3). Real runs log 5-100 metrics; 256 keeps
    # per-layer statistics of a 100-layer model and bounds that file at 102 MB (tests/test_hostile_metrics.py).
    metric_keys: int = 256
    # Sum over the arrays one `Run.snapshot` call loads, float fields counted as float32 (what diagnostics
    # compute in), the others at their stored size. A 100k x 128 snapshot with positives, 2048-d features and
    # 32x32 thumbnails is 1.2 GB; the 10^8 x 8 claim is 3.2 GB.
    snapshot_bytes: int = 2 << 30

    @classmethod
    def from_env(cls) -> "ReadLimits":
        raw = os.environ.get(SNAPSHOT_BYTES_ENV, "").strip()
        return cls(snapshot_bytes=int(raw)) if raw.isdigit() else cls()


DEFAULT_LIMITS = ReadLimits.from_env()

# A JSON string literal (unrolled: linear time); its contents cannot open or close a level.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def json_depth(data: bytes) -> int:
    """Deepest nesting of brackets outside string literals (unbalanced ones count)."""
    codes = np.frombuffer(_STRING.sub(b'""', data), np.uint8)
    step = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE).astype(np.int32)
    return int(np.cumsum(step).max(initial=0))


def _reject_constant(token: str):
    raise ValueError(f"{token} is not JSON (the run format has no NaN/Infinity literals here)")


def parse_json(data: bytes, where: str, limits: ReadLimits = DEFAULT_LIMITS, allow_nan: bool = False):
    """json.loads, after checking the nesting depth; every failure is a RunFormatError naming `where`."""
    if (data.count(b"[") + data.count(b"{")) > limits.json_depth and json_depth(data) > limits.json_depth:
        raise RunFormatError(f"{where}: JSON nested deeper than {limits.json_depth} levels; refused")
    try:
        return json.loads(data.decode("utf-8"), **({} if allow_nan else {"parse_constant": _reject_constant}))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise RunFormatError(f"{where}: not valid JSON ({str(e)[:200]})") from None


def file_size(storage, path: str, where: str) -> int:
    """Size of a regular file; a FIFO, a device or a folder (which would block or fail a read) is refused."""
    if storage.url:
        return storage.size(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise RunFormatError(f"{where}: not a regular file")
    return st.st_size


def read_limited(storage, path: str, limit: int, what: str, start: int = 0) -> bytes:
    """The bytes of a regular file from `start`, refusing more than `limit` of them. FileNotFoundError passes
    through; other OSErrors become RunFormatError."""
    where = storage.display(path)
    try:
        size = file_size(storage, path, where)
        if size - start > limit:
            raise RunFormatError(f"{where}: {size - start:,} bytes; a {what} may have at most {limit:,}")
        return storage.read_bytes(path, start)
    except (FileNotFoundError, RunFormatError):
        raise
    except OSError as e:
        raise RunFormatError(f"{where}: cannot be read ({e.strerror or e})") from None


def number(value, where: str, key: str, positive: bool = False) -> float:
    """A finite JSON number (not a bool), else a RunFormatError naming the file and the key."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        raise RunFormatError(
            f"{where}: '{key}' must be a finite{' positive' if positive else ''} number, got {value!r:.60}"
        )
    return float(value)


# -- metrics lines ----------------------------------------------------------------------------------


def line_problems(data: bytes, limits: ReadLimits = DEFAULT_LIMITS) -> dict[int, str]:
    """{line index: why it cannot be parsed safely} for lines over the length or depth bound. `data` is whole
    lines. A line's depth is at most the brackets it holds: when every line starts with '{' and the file holds
    few brackets beyond one a line (the normal case), no line can be deep and nothing is scanned per line."""
    codes = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(codes == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    bad = {
        int(i): f"line of {int(ends[i] - starts[i]):,} bytes is over the {limits.metrics_line_bytes:,}-byte bound"
        for i in np.flatnonzero(ends - starts > limits.metrics_line_bytes)
    }
    brackets = data.count(b"[") + data.count(b"{")
    if (codes[starts] == 123).all() and 1 + brackets - len(ends) <= limits.json_depth:
        return bad
    opens = np.flatnonzero((codes == 91) | (codes == 123))
    per_line = np.bincount(np.searchsorted(ends, opens), minlength=len(ends))
    for i in np.flatnonzero(per_line > limits.json_depth):
        i = int(i)
        if i not in bad and json_depth(data[starts[i] : ends[i]]) > limits.json_depth:
            bad[i] = f"JSON nested deeper than {limits.json_depth} levels"
    return bad


# -- .npy headers -----------------------------------------------------------------------------------

NPY_HEAD_BYTES = 10 + 10_000  # numpy's own limit on a header it will parse (max_header_size)


def npy_header(storage, path: str, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy header, read without loading the body; the file must hold the body the header
    declares. Raises RunFormatError for anything else (pickles, bad dtypes, truncation, a non-file)."""
    try:
        size = file_size(storage, path, where)
        head = storage.read_bytes(path, 0, NPY_HEAD_BYTES)
    except (FileNotFoundError, RunFormatError):
        raise
    except OSError as e:
        raise RunFormatError(f"{where}: cannot be read ({e.strerror or e})") from None
    f = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, OverflowError, ...
        raise RunFormatError(f"{where}: not a readable .npy header ({type(e).__name__}: {str(e)[:200]})") from None
    check_dtype(dtype, where)
    declared = math.prod(shape) * dtype.itemsize
    if size - f.tell() < declared:
        raise RunFormatError(
            f"{where}: header declares {'x'.join(map(str, shape)) or 'a scalar'} {dtype} "
            f"({declared:,} bytes) but the file holds {max(size - f.tell(), 0):,}"
        )
    return tuple(shape), dtype


def check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind == "U" and dtype.byteorder in "<=|" and not dtype.hasobject:
        return
    if dtype.hasobject or dtype.name not in ALLOWED_DTYPES or dtype.byteorder == ">":
        raise RunFormatError(f"{where}: dtype {dtype} is not allowed in a run")


def budget_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """What an array costs against ReadLimits.snapshot_bytes: float fields as float32, others as stored."""
    return math.prod(shape) * (max(dtype.itemsize, 4) if dtype.kind == "f" else dtype.itemsize)
