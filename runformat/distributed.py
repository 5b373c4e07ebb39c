"""Small torch.distributed helpers: who is the master process, and gathering ragged rows to rank 0.

torch is never imported here: a process that has not imported it cannot be in a torch.distributed group,
so a writer-only install (numpy, no torch) works unchanged.
"""

from __future__ import annotations

import sys

import numpy as np


def _dist():
    torch = sys.modules.get("torch")
    return None if torch is None else torch.distributed


def is_distributed() -> bool:
    dist = _dist()
    return dist is not None and dist.is_available() and dist.is_initialized()


def rank() -> int:
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    return _dist().get_world_size() if is_distributed() else 1


def master_process() -> bool:
    return rank() == 0


def _comm_device():
    import torch

    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(x):
    """Concatenate each rank's rows (N_r may differ per rank) in rank order; the result lands on rank 0,
    other ranks get None. Every rank must call it (it is a collective)."""
    import torch
    import torch.distributed as dist

    device = _comm_device()
    x = x.detach().to(device).contiguous()
    n_local = torch.tensor([x.shape[0]], device=device, dtype=torch.long)
    counts = [torch.zeros_like(n_local) for _ in range(world_size())]
    dist.all_gather(counts, n_local)
    counts = [int(c.item()) for c in counts]
    n_max = max(counts)
    padded = torch.zeros((n_max, *x.shape[1:]), dtype=x.dtype, device=device)
    padded[: x.shape[0]] = x
    # all_gather rather than gather: NCCL and gloo both support it for every dtype we ship.
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    if not master_process():
        return None
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).cpu()


def gather_strings(values: np.ndarray) -> np.ndarray | None:
    """gather_rows for a 1-D array of str: UTF-8 bytes travel as a padded uint8 matrix."""
    import torch
    import torch.distributed as dist

    encoded = [str(v).encode("utf-8") for v in values]
    width = torch.tensor([max((len(e) for e in encoded), default=0)], dtype=torch.long, device=_comm_device())
    dist.all_reduce(width, op=dist.ReduceOp.MAX)
    width = max(int(width.item()), 1)
    mat = np.zeros((len(encoded), width), dtype=np.uint8)
    for i, e in enumerate(encoded):
        mat[i, : len(e)] = np.frombuffer(e, dtype=np.uint8)
    gathered = gather_rows(torch.from_numpy(mat))
    if gathered is None:
        return None
    return np.array([bytes(row).rstrip(b"\x00").decode("utf-8") for row in gathered.numpy()], dtype=str)
