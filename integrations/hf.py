"""Hugging Face transformers: write a ContrastScope run from `Trainer.train` with one TrainerCallback.

    probe = ProbeSet(inputs={"input_ids": ids}, positives={"input_ids": ids_view2}, labels=y)
    callback = ContrastScopeCallback("runs", "simcse-tau0.05", probe, every_n_steps=100,
                                     embed=lambda model, x: model.encode(**x))          # -> z, or (z, h)
    trainer = Trainer(model=model, args=TrainingArguments(..., logging_steps=1), train_dataset=ds,
                      callbacks=[callback])
    trainer.train()                      # the run: `finished`, or `crashed` with the error

Metrics are what the Trainer logs (loss, grad_norm, learning_rate, epoch, eval_*), at each `logging_steps`
(1 for every step). The probe set is embedded before the first step, every N steps and after the last.
The Trainer calls no callback when training raises: at the Trainer's `on_init_end` event the callback finds
the Trainer it was given to and wraps that Trainer's `train`, so an exception marks the run `crashed` with its
text and is raised on. A callback added later with `trainer.add_callback` misses that event: use
`with callback: trainer.train()` there. Under DDP every rank embeds a share of the probe set and rank 0 alone
writes.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from typing import Any, Mapping

from transformers import Trainer, TrainerCallback

from integrations.callback_writer import jsonable, open_writer
from integrations.probe import Embed, ProbeSet, default_embed, log_probe_snapshot, scalar_metrics
from runformat import layout
from runformat.writer import RunWriter


class ContrastScopeCallback(TrainerCallback):
    """Write the run `runs_dir/name` while `Trainer.train` trains: what the Trainer logs, and a snapshot of
    `probe` every `every_n_steps` (and at the first and last step).

    embed          `embed(model, inputs) -> z` or `(z, h)`; the default calls `model(inputs)` (`model(**inputs)`
                   for a dict of tensors) and expects an N×d tensor.
    config         config.json; default `{"training_args": ..., "model_config": ...}`.
    description    one line shown on Home.
    resume         continue an existing run of that name from `train(resume_from_checkpoint=...)`: what a crashed
                   attempt wrote after the checkpoint's step is replaced; without a checkpoint a run that has
                   steps is refused (nothing is changed). See docs/integrations.md.
    version        write to `name-v2`, `name-v3`, ... when `name` exists.
    stall_after_s  the run shows `stalled` when no training step happened for this long (a hang).
    """

    def __init__(
        self,
        runs_dir: str,
        name: str,
        probe: ProbeSet,
        *,
        embed: Embed = default_embed,
        every_n_steps: int = 100,
        config: Mapping[str, Any] | None = None,
        description: str | None = None,
        resume: bool = False,
        version: bool = False,
        stall_after_s: float = layout.STALL_AFTER_S,
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps: must be ≥ 1, got {every_n_steps}")
        if resume and version:
            raise ValueError("resume, version: pick one (continue the run, or write a new version of it)")
        self.runs_dir, self.name, self.probe, self.embed = runs_dir, name, probe, embed
        self.every_n_steps, self.config, self.description = every_n_steps, config, description
        self.resume, self.version, self.stall_after_s = resume, version, stall_after_s
        self.writer: RunWriter | None = None
        self._last_snapshot_step = -1
        self._watched: set[int] = set()  # ids of the Trainers whose train() reports a crash to this callback

    # -- the Trainer's events -------------------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        trainer = _calling_trainer(self)
        if trainer is not None and id(trainer) not in self._watched:
            trainer.train = self._reporting_crash(trainer.train)
            self._watched.add(id(trainer))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        config = self.config
        if config is None:  # what this run was: the TrainingArguments, and the model's config when it has one
            config = {"training_args": args.to_dict()}
            if hasattr(getattr(model, "config", None), "to_dict"):
                config["model_config"] = model.config.to_dict()
            config = jsonable(config)
        # state.global_step is the checkpoint's when train(resume_from_checkpoint=...) restored one
        self.writer = open_writer(self, state.global_step, config, restored=state.global_step > 0)
        self._last_snapshot_step = self.writer.last_snapshot_step
        self._snapshot(state.global_step, model)

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = scalar_metrics(logs or {})
        if self.writer is not None and metrics:
            self.writer.log_metrics(state.global_step, metrics)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.writer is not None:
            self.writer.beat()
            if state.global_step % self.every_n_steps == 0:
                self._snapshot(state.global_step, model)

    def on_substep_end(self, args, state, control, **kwargs):  # gradient accumulation: still alive
        if self.writer is not None:
            self.writer.beat()

    def on_prediction_step(self, args, state, control, **kwargs):  # a long evaluation is not a hang
        if self.writer is not None:
            self.writer.beat()

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.writer is not None:
            self._snapshot(state.global_step, model)
            self.writer.close("finished")

    # -- crashes --------------------------------------------------------------------------------------
    def _reporting_crash(self, train):
        @functools.wraps(train)
        def train_reporting_crash(*args, **kwargs):
            try:
                return train(*args, **kwargs)
            except BaseException as e:
                self._crashed(e)
                raise

        return train_reporting_crash

    def _crashed(self, exc: BaseException) -> None:
        if self.writer is not None:
            self.writer.close("crashed", "".join(traceback.format_exception_only(type(exc), exc)).strip())

    def __enter__(self) -> "ContrastScopeCallback":  # for a callback given to the Trainer after its __init__
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._crashed(exc)

    def _snapshot(self, step: int, model) -> None:
        if model is not None and step > self._last_snapshot_step:
            device = next(model.parameters()).device
            log_probe_snapshot(self.writer, step, model, self.probe, self.embed, device)
            self._last_snapshot_step = step


def _calling_trainer(callback: ContrastScopeCallback) -> Trainer | None:
    """The Trainer whose event is being handled: the nearest caller frame's `self` that is a Trainer holding
    this callback (the events' arguments do not include it)."""
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer) and callback in getattr(owner.callback_handler, "callbacks", ()):
            return owner
        frame = frame.f_back
    return None
