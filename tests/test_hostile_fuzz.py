"""Hypothesis over what a hostile or broken run hands the dashboard (issue 24): metrics lines (the frame equals a
line-by-line reference, with the first `metric_keys` distinct keys kept and the rest counted, read at once or
in two appends), config.json (a dict or a RunFormatError, never anything else) and worker.json (every field a
page reads has its type and range, whatever the file held)."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics import RunFormatError, open_run
from diagnostics.work import worker_status
from runformat import layout
from runformat.bounds import ReadLimits, RunFormatWarning
from runformat.metrics_lines import metric_value
from runformat.writer import RunWriter

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = st.sampled_from(
    ["loss", "lr", "a/b", "temperature", "wall_time", "é", 'q"uote', "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"]
)
NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-(2**53), 2**53))
VALUE = st.one_of(
    NUMBER,
    NUMBER,
    NUMBER,
    st.none(),
    st.booleans(),
    st.sampled_from(["NaN", "Infinity", "x"]),
    st.lists(st.integers(), max_size=2),
)
RECORD = st.builds(
    lambda step, values: {"step": step, **values}, st.integers(0, 10**6), st.dictionaries(KEYS, VALUE, max_size=6)
)
NUMERIC = st.builds(
    lambda step, values: json.dumps({"step": step, **values}),
    st.integers(0, 10**6),
    st.dictionaries(KEYS, NUMBER | st.none(), max_size=6),
)  # what Arrow's path reads
LINE = st.one_of(
    RECORD.map(json.dumps),
    RECORD.map(json.dumps),
    RECORD.map(json.dumps),
    st.sampled_from(['{"step": -1}', "[1, 2]", '{"step": "3"}', "not json", '{"torn": 1']),
)


def reference(lines: list[str], limit: int) -> tuple[dict[str, list], int]:
    """What the frame must hold, line by line: {column: values} over the record lines, and the keys skipped."""
    rows = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(rec, dict)
            and isinstance(rec.get("step"), int)
            and not isinstance(rec["step"], bool)
            and rec["step"] >= 0
        ):
            rows.append(rec)
    kept, skipped = {}, set()
    for rec in rows:
        for k in rec:
            if k not in kept and len(kept) < limit:
                kept[k] = None
            elif k not in kept:
                skipped.add(k)
    return {
        k: [(r[k] if k == "step" else metric_value(r[k])) if k in r else math.nan for r in rows] for k in kept
    }, len(skipped)


def assert_frame(df: pd.DataFrame, expected: dict[str, list]) -> None:
    assert set(df.columns) == set(expected), (list(df.columns), list(expected))
    for k, values in expected.items():
        got = df[k].to_numpy(dtype=float)
        want = np.array(values, dtype=float)
        assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True), (k, got, want)


@FUZZ
@given(lines=st.lists(LINE, max_size=40) | st.lists(NUMERIC, max_size=40), limit=st.integers(2, 8), cut=st.floats(0, 1))
def test_metrics_frame_equals_the_line_by_line_reference(tmp_path_factory, lines, limit, cut):
    root = str(tmp_path_factory.mktemp("m"))
    with RunWriter(root, "r"):
        pass
    path = os.path.join(root, "r", layout.METRICS_FILE)
    at = int(len(lines) * cut)
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines[:at])
    run = open_run(os.path.join(root, "r"), limits=ReadLimits(metric_keys=limit))
    with _quiet():
        run.metrics()  # the first append
        with open(path, "a") as f:
            f.writelines(line + "\n" for line in lines[at:])
        df = run.metrics()  # the rest, read incrementally
    expected, skipped = reference(lines, limit)
    if not expected:  # no record line: the empty frame
        assert len(df) == 0
        return
    assert_frame(df, expected)
    assert run.metric_keys.skipped == skipped and len(run.metric_keys.kept) <= limit
    whole = open_run(os.path.join(root, "r"), limits=ReadLimits(metric_keys=limit))
    with _quiet():
        assert_frame(whole.metrics(), expected)  # at once: the same frame


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RunFormatWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


@FUZZ
@given(
    body=st.one_of(
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
        st.integers(1, 200).map(lambda d: b"[" * d + b"]" * d),
        st.integers(1, 200).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    )
)
def test_config_is_a_dict_or_a_run_format_error(tmp_path_factory, body):
    root = str(tmp_path_factory.mktemp("c"))
    with RunWriter(root, "r"):
        pass
    with open(os.path.join(root, "r", layout.CONFIG_FILE), "wb") as f:
        f.write(body)
    run = open_run(os.path.join(root, "r"))
    for _ in range(2):  # the second read comes from the check made once per file identity
        try:
            cfg = run.config
        except RunFormatError as e:
            assert "config.json" in str(e)
        else:
            assert isinstance(cfg, dict)
            cfg["mutated"] = True  # a caller's edit never reaches the next caller
    if isinstance(run_config := _try(run), dict):
        assert "mutated" not in run_config


def _try(run):
    try:
        return run.config
    except RunFormatError:
        return None


WORKER_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        k: JSONISH | st.floats() | st.sampled_from([1e20, 1e300, -1.0, float("nan"), float("inf"), True])
        for k in (
            "pid",
            "heartbeat",
            "state",
            "current",
            "done",
            "total",
            "last_error",
            "last_error_at",
            "failed_requests",
        )
    },
)


@FUZZ
@given(
    state=st.one_of(WORKER_FIELDS, JSONISH),
    current=st.one_of(st.none(), st.fixed_dictionaries({"run": JSONISH, "step": JSONISH | st.integers(-5, 5)})),
)
def test_worker_json_fields_have_their_types_whatever_the_file_held(state, current):
    if isinstance(state, dict) and current is not None:
        state = {**state, "current": current}
    now = time.time()
    out = worker_status.checked(state, now)
    if not isinstance(state, dict):
        assert out == {}
        return
    for key in ("heartbeat", "last_error_at"):
        assert out[key] is None or (isinstance(out[key], float) and 0 <= out[key] <= now + worker_status.FUTURE_S)
    for key in ("done", "total"):
        assert isinstance(out[key], int) and not isinstance(out[key], bool) and out[key] >= 0
    assert out["state"] in (None, *worker_status.STATES)
    assert out["last_error"] is None or (
        isinstance(out["last_error"], str) and len(out["last_error"]) <= worker_status.SHOWN_ERROR_CHARS + 10
    )
    c = out["current"]
    assert c is None or (
        isinstance(c["run"], str) and isinstance(c["step"], int) and c["step"] >= 0 and isinstance(c["what"], str)
    )
    assert isinstance(out["failed_requests"], dict)
    time.strftime("%H:%M:%S", time.localtime(out["last_error_at"] or 0))  # what Home does with it


def test_a_key_the_sample_misses_is_counted_and_kept(tmp_path):
    """20,000 plain-number lines (past the size read whole for the key sample) with a key on one line only:
    Arrow refuses the unexpected field, the census finds it, and the frame has it at that row only."""
    with RunWriter(str(tmp_path), "r"):
        pass
    lines = [json.dumps({"step": i, "loss": 1.0}) for i in range(20_000)]
    lines[12_345] = json.dumps({"step": 12_345, "loss": 1.0, "eval/once": 0.25})
    with open(tmp_path / "r" / layout.METRICS_FILE, "w") as f:
        f.write("\n".join(lines) + "\n")
    df = open_run(str(tmp_path / "r")).metrics()
    assert list(df.columns) == ["step", "loss", "eval/once"] and len(df) == 20_000
    assert df["eval/once"].notna().sum() == 1 and df.loc[12_345, "eval/once"] == 0.25
