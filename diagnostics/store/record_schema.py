"""What a snapshot record on disk may hold (diagnostics.store.record): the numbers' schema, record.json's manifest, and
how a computed value is spelled in JSON. Checked on every load, before anything is shown.
"""

from __future__ import annotations

import math

import numpy as np

# Per-row arrays a record may hold, with the dtype each is stored in.
ARRAY_DTYPES = {
    "positive_cos": "float32",
    "positive_rank": "int32",
    "hardest_negative_cos": "float32",
    "hardest_negative_index": "int32",
    "negative_cos_sample": "float32",
    "spectrum": "float64",
    "neighbour_index": "int32",
}
INT_NUMBERS = ("step", "n", "finite_rows", "collapse_finite_rows", "dim", "nonfinite_rows", "dead_dims", "feature_dim")


def _number_ok(key: str, value) -> bool:
    if value is None:
        return True
    if key in INT_NUMBERS:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if key in ("estimated", "diverged", "negatives_sampled"):
        return isinstance(value, bool)
    if key == "histograms":
        return isinstance(value, dict) and all(
            isinstance(h, dict)
            and isinstance(h.get("counts"), list)
            and isinstance(h.get("edges"), list)
            and len(h["edges"]) == len(h["counts"]) + 1
            and all(isinstance(c, int) for c in h["counts"])
            and all(isinstance(e, (int, float)) for e in h["edges"])
            for h in value.values()
        )
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_numbers(numbers, expect: dict) -> bool:
    """True when `numbers` is a dict of the record's schema that describes the snapshot `expect` names."""
    if not isinstance(numbers, dict) or not all(isinstance(k, str) for k in numbers):
        return False
    if not all(_number_ok(k, v) for k, v in numbers.items()):
        return False
    if any(numbers.get(k) != expect[k] for k in ("step", "n", "dim") if expect.get(k, -1) >= 0):
        return False
    n, ok = numbers.get("n"), numbers.get("finite_rows")
    return isinstance(n, int) and isinstance(ok, int) and ok <= n and isinstance(numbers.get("estimated"), bool)


def check_commit(meta, expect: dict, record_version: int) -> bool:
    """True when record.json `meta` is of this format and names the snapshot `expect` describes (its seal is
    checked by the caller)."""
    if not isinstance(meta, dict) or meta.get("record_version") != record_version:
        return False
    if meta.get("content") != expect["content"] or meta.get("step") != expect["step"]:
        return False
    if any(expect[k] >= 0 and meta.get(k) != expect[k] for k in ("n", "dim")):
        return False
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict) or not isinstance(meta.get("numbers_sha256"), str):
        return False
    for name, spec in arrays.items():
        if name not in ARRAY_DTYPES or not (isinstance(spec, list) and len(spec) == 3):
            return False
        shape, dtype, digest_ = spec
        if (
            dtype != ARRAY_DTYPES[name]
            or not isinstance(digest_, str)
            or not (isinstance(shape, list) and all(isinstance(s, int) and 0 <= s < 2**40 for s in shape))
        ):
            return False
    if meta.get("groups_sha256") is not None and not isinstance(meta["groups_sha256"], str):
        return False
    return meta.get("error") is None or isinstance(meta["error"], str)


def json_number(value):
    """`value` as JSON holds it: numpy scalars as Python ones, NaN and inf as None, containers walked."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_number(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_number(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    return value
