"""Checkpoints: written atomically (temp file, fsync, os.replace) and read back without unpickling code."""

from __future__ import annotations

import os
import tempfile

import torch


def save_checkpoint(path: str, state: dict) -> None:
    """`state` holds tensors, numbers, strings, lists and dicts only (what weights_only=True can read)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    if not os.path.isfile(path):
        raise ValueError(f"path: no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)
