"""Small torch.distributed helpers: who is the master process, and gathering ragged rows to rank 0."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def master_process() -> bool:
    return rank() == 0


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(x: torch.Tensor) -> torch.Tensor | None:
    """Concatenate each rank's rows (N_r may differ per rank) in rank order; the result lands on rank 0,
    other ranks get None. Every rank must call it (it is a collective)."""
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
