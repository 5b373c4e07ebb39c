"""Record tasks on a Dask distributed cluster: `watch ROOT --cluster tcp://HOST:8786` (the `cluster` extra).

The loop (diagnostics.work.worker) stays where it is: it plans, takes each task's lease and renews it, and hands
the task to a `ClusterSlot`, which submits one task per snapshot (task.run_spec, the same code a local child
runs) to the cluster and polls its future. The root must be storage every cluster worker reaches (a shared
folder, or an fsspec URL such as s3://...). Dask over Ray, measured here (docs/benchmarks.md): 45 MB
installed with its dependencies vs 260 MB, a 2-worker local cluster up in 5.8 s vs 21.7 s, 2.3 ms vs 4.5 ms
per no-op task. A cluster that cannot be reached is a ClusterError naming the address; the worker reports
it and goes on with its local task processes.
"""

from __future__ import annotations

import time

from .sandbox import Outcome
from .task_limits import TaskBudget

CONNECT_TIMEOUT_S = 10.0


class ClusterError(RuntimeError):
    pass


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A distributed.Client of the scheduler at `address`, or ClusterError naming it and why."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(
            f"--cluster {address}: needs Dask distributed (pip install 'contrastscope[cluster]')"
        ) from None
    try:
        return Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"--cluster {address}: cluster unreachable ({type(e).__name__}: {e})") from None


class ClusterSlot:
    """One task at a time on the cluster; the same interface as sandbox.Slot for the worker's loop."""

    def __init__(self, budget: TaskBudget, runner, client, address: str):
        self.budget, self.runner, self.client, self.address = budget, runner, client, address
        self.task = None
        self.future = None
        self.started = 0.0
        self.conn = None  # nothing to select on: the loop polls

    @property
    def busy(self) -> bool:
        return self.task is not None

    def start(self, task, spec: dict) -> None:
        self.task, self.started = task, time.monotonic()
        self.future = self.client.submit(self.runner, spec, pure=False, retries=0)

    def poll(self) -> Outcome | None:
        if not self.busy:
            return None
        if self.future.done():
            try:
                self.future.result()
                outcome = Outcome(True)
            except OSError as e:
                outcome = Outcome(False, f"on {self.address}: {type(e).__name__}: {e}"[:2000], write_failed=True)
            except Exception as e:  # the task failed on the cluster, or the worker running it was lost
                outcome = Outcome(False, f"on {self.address}: {type(e).__name__}: {e}"[:2000])
            return self._end(outcome)
        if time.monotonic() - self.started > self.budget.seconds:
            self.future.cancel()
            return self._end(
                Outcome(
                    False,
                    f"ran past its time budget of {self.budget.seconds:.0f} s on {self.address}; cancelled",
                    killed=True,
                )
            )
        return None

    def _end(self, outcome: Outcome) -> Outcome:
        self.task = self.future = None
        return outcome

    def close(self) -> None:
        if self.future is not None:
            self.future.cancel()
        self.task = self.future = None
