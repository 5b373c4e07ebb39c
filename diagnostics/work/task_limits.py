"""What one worker task may cost, checked before it starts: the snapshot's declared size against the
memory budget, and a projection's parameters against their ranges. diagnostics.work.sandbox enforces the
same budget while the task runs (time, resident memory) and kills a task that goes past it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

# The engine's peak resident memory is a multiple of the snapshot's declared bytes: bench_engine measured a
# 100,000 x 128 float32 record (51 MB of embeddings) peaking at ~0.5 GB (10x: normalised copy, float64 spectrum,
# kNN blocks, sampled negatives) and 50,000 x 128 at ~0.3 GB. 16x leaves room for features and labels;
# tests/test_worker_pool.py's over-budget snapshot (60M x 8 declared) is refused by this estimate.
ENGINE_BYTES_PER_INPUT_BYTE = 16
BASE_BYTES = 400 * 2**20  # the child process itself: Python + numpy + torch imported (~350 MB measured RSS)


def _default_memory() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(min(8 * 2**30, total // 2))  # half the machine, at most 8 GiB: a dashboard shares the box


@dataclass(frozen=True)
class TaskBudget:
    """Per task: wall seconds and resident bytes of the child process that runs it."""

    seconds: float = 1800.0  # a 200k x 128 record is ~4 min on 2 cores (50k: 12.7 s, time ~ N^2)
    memory_bytes: int = _default_memory()

    @classmethod
    def from_args(cls, seconds: float | None, memory_gb: float | None) -> "TaskBudget":
        base = cls()
        for name, value in (("--task-seconds", seconds), ("--task-memory-gb", memory_gb)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: a positive number, got {value}")
        return cls(
            seconds=base.seconds if seconds is None else float(seconds),
            memory_bytes=base.memory_bytes if memory_gb is None else int(memory_gb * 2**30),
        )


def declared_bytes(info: dict) -> int:
    """The bytes a snapshot's sidecar says its numeric fields hold (shape x dtype; unknown shapes count 0)."""
    total = 0
    for spec in info.get("fields", {}).values():
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            continue
        try:
            itemsize = max(np.dtype(spec.get("dtype") or "float32").itemsize, 4)
        except TypeError:
            itemsize = 4
        total += math.prod(shape) * itemsize
    return total


def record_over_budget(info: dict, budget: TaskBudget) -> str | None:
    """Why measuring this snapshot would exceed the memory budget, or None when it fits."""
    need = BASE_BYTES + ENGINE_BYTES_PER_INPUT_BYTE * declared_bytes(info)
    if need <= budget.memory_bytes:
        return None
    return (
        f"declares {declared_bytes(info) / 1e9:.2f} GB of arrays; measuring it needs ~{need / 2**30:.1f} GiB, "
        f"over the worker's task memory budget of {budget.memory_bytes / 2**30:.1f} GiB (--task-memory-gb)"
    )


# Projection parameters a request may set, with their ranges (the dashboard's inputs stay inside these:
# dashboard/projection_controls.py: perplexity 2-500, neighbours 2-200, min. distance 0-1). Iteration counts
# are bounded so a request is minutes, not weeks (openTSNE ~1 s per 100 iterations at 10k points).
PROJECTION_PARAMS = {
    "tsne": {
        "perplexity": (2.0, 500.0),
        "n_iter": (10, 5000),
        "early_exaggeration_iter": (0, 2000),
        "early_exaggeration": (1.0, 100.0),
        "learning_rate": (1.0, 1e5),
        "n_jobs": (1, 64),
    },
    "umap": {
        "n_neighbors": (2, 200),
        "min_dist": (0.0, 1.0),
        "n_epochs": (10, 5000),
        "spread": (0.1, 10.0),
        "learning_rate": (1e-3, 100.0),
    },
    "pca": {},
    "unit_pca": {},
}
INTEGER_PARAMS = ("n_iter", "early_exaggeration_iter", "n_jobs", "n_neighbors", "n_epochs")


def check_projection_params(method: str, params) -> dict:
    """`params` as the projection gets them, or ValueError naming the parameter and its range."""
    allowed = PROJECTION_PARAMS.get(method)
    if allowed is None:
        raise ValueError(f"method: one of {tuple(PROJECTION_PARAMS)}, got {method!r}")
    if not isinstance(params, dict):
        raise ValueError(f"params: a mapping of parameter to number, got {type(params).__name__}")
    out = {}
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(f"params: {method} takes {', '.join(allowed) or 'no parameters'}, got {key!r}")
        lo, hi = allowed[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not lo <= value <= hi
        ):
            raise ValueError(f"params: {key} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        out[key] = int(value) if key in INTEGER_PARAMS else float(value)
    return out
