"""How a trainer callback opens its run: the name (or its next version), and the resume rule both callbacks
share (docs/integrations.md, "Resume").

Resume rule: training restarted from a checkpoint continues the run from the checkpoint's step. Metrics and
snapshots an earlier attempt wrote after that step (it went on, then crashed) are replaced by the ones the
resumed training writes; what was replaced is listed in run.json's `rewinds`. A finished run is only continued
from its last step (training it further). A resume without a checkpoint over a run that exists is refused, as
is any resume the rule forbids, before anything is written: a refused resume leaves the earlier run as it was.
"""

from __future__ import annotations

import json
from typing import Any

from runformat import layout
from runformat.writer import RunWriter, available_name


def open_writer(callback, step: int, config: Any, restored: bool) -> RunWriter:
    """The RunWriter for `callback` (its runs_dir, name, resume, version, description, stall_after_s), with
    training starting at `step`; `restored`: from a checkpoint."""
    name = available_name(callback.runs_dir, callback.name) if callback.version else callback.name
    storage = layout.Storage(callback.runs_dir)
    exists = storage.exists(storage.join(layout.validate_run_name(name), layout.RUN_FILE))
    if callback.resume and exists and not restored:
        raise ValueError(
            f"resume: run {name!r} exists in {callback.runs_dir} but training starts at step {step} "
            "without a checkpoint; resume from one (Lightning: fit(..., ckpt_path=...), Hugging Face: "
            "train(resume_from_checkpoint=...)), or pass version=True for a new run. The run is "
            "left as it was"
        )
    return RunWriter(
        callback.runs_dir,
        name,
        config=config,
        resume=callback.resume,
        description=callback.description,
        stall_after_s=callback.stall_after_s,
        resume_step=step if callback.resume and restored else None,
    )


def jsonable(value: Any) -> dict:
    """A trainer's config may hold objects (a model, a transform): keep what JSON can say, their text otherwise."""
    return json.loads(json.dumps(value, default=str))
