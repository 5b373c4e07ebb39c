"""One unit of the worker's work (a snapshot's record, a run's state, a projection) and how it is done;
shared by `watch` (diagnostics.work.worker, in a child process: diagnostics.work.sandbox) and the CLI's `compute`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from runformat.reader import Run, open_run


@dataclass
class Task:
    kind: str  # "record", "state" or "projection"
    run: Run
    step: int
    method: str = "pca"
    source: str = "embeddings"
    seed: int | None = 0
    params: dict = field(default_factory=dict)
    init_from_step: int | None = None
    request: str | None = None  # the request file this task came from

    @property
    def what(self) -> str:
        return self.kind if self.kind in ("record", "state") else f"{self.method} of {self.source}"

    @property
    def ident(self) -> tuple:
        return (
            self.kind,
            self.run.name,
            self.step,
            self.method,
            self.source,
            self.seed,
            json.dumps(self.params, sort_keys=True),
            self.init_from_step,
        )

    def spec(self, root: str) -> dict:
        """What a child process needs to redo this task (plain data)."""
        return {
            "root": root,
            "run": self.run.name,
            "kind": self.kind,
            "step": self.step,
            "method": self.method,
            "source": self.source,
            "seed": self.seed,
            "params": dict(self.params),
            "init_from_step": self.init_from_step,
        }


def run_task(task: Task, progress=None) -> None:
    """Do one task (shared by `watch` and the CLI's `compute`)."""
    from ..judge import alerts, run_state
    from ..store import cache, record

    if task.kind == "record":
        record.get_or_compute(task.run, task.step)
        alerts.notify(task.run, run_state.write(task.run))  # the run's judgement, kept for every surface
    elif task.kind == "state":
        alerts.notify(task.run, run_state.write(task.run))
    else:
        cache.cached_projection(
            task.run,
            task.step,
            task.method,
            task.source,
            task.seed,
            task.params or None,
            task.init_from_step,
            progress=progress,
        )


def run_spec(spec: dict) -> None:
    """run_task of a Task.spec(): what diagnostics.work.sandbox's child process calls. `threads` (set by the pool:
    cores // task processes) caps torch's intra-op threads: two 2-thread children on 2 cores spin-wait on each
    other (bench_worker_pool measured --workers 2 at 0.55x the records/hour of one with the default threads)."""
    threads = spec.get("threads")
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(int(threads))
    run = open_run(spec["run"], root=spec["root"])
    run_task(
        Task(
            spec["kind"],
            run,
            spec["step"],
            spec["method"],
            spec["source"],
            spec["seed"],
            spec["params"],
            spec["init_from_step"],
        )
    )
