"""Resume from a checkpoint: the rule for what an earlier attempt wrote past it (docs/run-format.md, "Resume"),
and, under torch.distributed, rank 0's resulting steps shared with every rank."""

from __future__ import annotations

import json
import os
import time

from . import distributed as ddp
from . import layout
from .layout import Storage


def rewind(
    storage: Storage, name: str, info: dict, step: int, last_metric_step: int, last_snapshot_step: int
) -> dict | None:
    """Cut the metrics records and snapshots after `step` (what an attempt that went on past the checkpoint
    wrote, then crashed) so the resumed training writes them anew; return what was cut (run.json `rewinds`),
    None when nothing is past `step`. A run that finished keeps its history: only a resume from its last step
    (training it further) is allowed. Every check comes before anything is cut."""
    last = max(last_metric_step, last_snapshot_step)
    if step >= last:
        return None
    if info.get("status") == "finished":
        raise ValueError(
            f"resume_step: run {name!r} finished at step {last}; resuming it from step {step} "
            "would replace steps it finished with. Resume from its last checkpoint, or start a "
            "new run (another name, or version=True in the callbacks)"
        )
    metrics = storage.join(name, layout.METRICS_FILE)
    cut_lines = 0
    if storage.exists(metrics):
        offset, keep = 0, None
        for line in storage.read_bytes(metrics).split(b"\n"):  # steps never decrease: cut at the first past it
            try:
                line_step = json.loads(line)["step"]
            except (ValueError, TypeError, KeyError, RecursionError):
                line_step = None
            if keep is None and isinstance(line_step, int) and line_step > step:
                keep = offset
            if keep is not None and line.strip():
                cut_lines += 1
            offset += len(line) + 1
        if keep is not None:
            storage.truncate(metrics, keep)
    snap_dir = storage.join(name, layout.SNAPSHOT_DIR)
    cut_snapshots = sorted(
        s for s in {layout.parse_snapshot_sidecar_name(n) for n in storage.listdir(snap_dir)} - {None} if s > step
    )
    for s in cut_snapshots:  # the sidecar is the commit: un-commit first, then remove the arrays
        sidecar = storage.join(snap_dir, layout.snapshot_sidecar_name(s))
        if storage.url:
            storage.fs.rm(sidecar)
        else:
            os.remove(sidecar)
        storage.remove_tree(storage.join(snap_dir, layout.snapshot_dirname(s)))
    return {
        "to_step": step,
        "from_step": last,
        "at": time.time(),
        "metric_records_replaced": cut_lines,
        "snapshots_replaced": cut_snapshots,
    }


def share_steps(name: str, steps: tuple[int, int] | None) -> tuple[int, int]:
    """Rank 0's (last metrics step, last snapshot step) after a resume, on every rank (a collective): the
    callbacks decide from them which snapshots to take, and a snapshot is a collective too. None on rank 0:
    it refused, and every rank raises."""
    import torch

    message = torch.tensor([steps is not None, *(steps or (-1, -1))], dtype=torch.long, device=ddp._comm_device())
    ddp._dist().broadcast(message, src=0)
    if not message[0]:
        raise ValueError(f"resume: rank 0 refused to open run {name!r} (its error says why)")
    return int(message[1]), int(message[2])
