"""Shared plumbing for the metric modules: arrays in, float32 torch tensors on the best device, row blocks out.

Every metric normalises in float32 (never in the float16 a snapshot is usually stored in) and walks N×N
similarity matrices in row blocks whose size is set by a memory budget, so no N×N matrix ever exists at once.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

EPS = 1e-8  # rows with a norm below this are treated as zero vectors (they stay zero instead of becoming NaN)
# Bytes one similarity block may take: a few hundred MB, so memory stays bounded at any N on either device.
BLOCK_BYTES_CPU = 256 * 2**20
BLOCK_BYTES_CUDA = 256 * 2**20


def best_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def as_matrix(x, name: str, device: torch.device | None = None, dtype=torch.float32) -> torch.Tensor:
    """An N×d float tensor (float32 unless asked otherwise) on `device`; ValueError naming `name` otherwise."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be read as an array ({e})") from None
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"{name}: needs a numeric array, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not arr.flags.writeable:  # memory-mapped snapshots are read-only
            arr = arr.astype(np.float64 if dtype == torch.float64 else np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(f"{name}: needs a 2-D array (N×d), got shape {tuple(t.shape)}")
    if t.is_complex():
        raise ValueError(f"{name}: complex values are not embeddings")
    return t.to(device=device or best_device(), dtype=dtype)


def as_vector(x, name: str, n: int | None = None) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name}: needs a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} entries but there are {n} rows")
    return arr


def same_shape(x: torch.Tensor, y: torch.Tensor, xname: str, yname: str) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{yname}: shape {tuple(y.shape)} differs from {xname} {tuple(x.shape)}")


def normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Rows scaled to unit L2 norm, computed in float32 or wider. Rows with norm below `eps` become exactly
    zero, so every row is either a unit vector or the zero vector."""
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    norm = x.norm(dim=1, keepdim=True)
    return x * torch.where(norm >= eps, 1.0 / norm, torch.zeros_like(norm))


def finite_rows(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask (N,) of rows with no NaN or inf."""
    return torch.isfinite(x).all(dim=1)


def block_rows(n_cols: int, device: torch.device, bytes_per_entry: int = 4, budget: int | None = None) -> int:
    """Rows per block so that a block × n_cols matrix stays within the memory budget."""
    if budget is None:
        budget = BLOCK_BYTES_CUDA if device.type == "cuda" else BLOCK_BYTES_CPU
    return max(1, int(budget // (bytes_per_entry * max(1, n_cols))))


def row_blocks(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def similarity_blocks(
    a: torch.Tensor,
    b: torch.Tensor,
    rows: int | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, end, a[start:end] @ b.T) for consecutive row blocks of `a`: the chunked matmul every
    N×N metric is built on. Blocks are fresh tensors the caller may modify in place."""
    rows = rows or block_rows(b.shape[0], a.device)
    for start, end in row_blocks(a.shape[0], rows):
        yield start, end, a[start:end] @ b.T  # sim: rows × M


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
