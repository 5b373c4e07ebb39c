"""RunWriter under torch.distributed: two CPU processes on gloo, unequal rows per rank, rank 0 writes."""

import os
import subprocess
import sys
import textwrap

import numpy as np
from browser import free_port

from diagnostics import open_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = """
import os, sys, numpy as np, torch, torch.distributed as dist
from runformat.writer import RunWriter
dist.init_process_group("gloo")
rank = dist.get_rank()
n = 3 if rank == 0 else 5                     # unequal N per rank
z = torch.full((n, 4), float(rank), dtype=torch.bfloat16)
with RunWriter(sys.argv[1], "ddp", config={"world": dist.get_world_size()}) as run:
    run.log_metrics(0, {"loss": 1.0 + rank})  # only rank 0's value is recorded
    run.log_snapshot(0, embeddings=z, positives=z.float() + 1, labels=torch.arange(n) + 10 * rank,
                     metadata={"rank": np.full(n, rank), "who": [f"r{rank}-{i}" for i in range(n)]},
                     images=np.full((n, 2, 2), rank, np.uint8))
dist.destroy_process_group()
"""


def test_two_gloo_ranks_gather_to_rank_0(tmp_path):
    port = free_port()
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            PYTHONPATH=REPO,
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / "runs")],
                env=env,
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    run = open_run(tmp_path / "runs" / "ddp")
    assert run.info["world_size"] == 2 and run.status == "finished"
    assert list(run.metrics()["loss"]) == [1.0]
    snap = run.snapshot(0)
    assert snap.n == 8
    np.testing.assert_array_equal(snap.embeddings[:, 0], [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(snap.positives[:, 0], [1, 1, 1, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(snap.labels, [0, 1, 2, 10, 11, 12, 13, 14])
    assert list(snap.metadata["who"]) == ["r0-0", "r0-1", "r0-2", "r1-0", "r1-1", "r1-2", "r1-3", "r1-4"]
    np.testing.assert_array_equal(snap.metadata["rank"], [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(snap.images[:, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1])
