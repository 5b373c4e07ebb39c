"""Hugging Face transformers: write a ContrastScope run from `Trainer.train` with one TrainerCallback.

    probe = ProbeSet(inputs={"input_ids": ids}, positives={"input_ids": ids_view2}, labels=y)
    callback = ContrastScopeCallback("runs", "simcse-tau0.05", probe, every_n_steps=100,
                                     embed=lambda model, x: model.encode(**x))          # -> z, or (z, h)
    trainer = Trainer(model=model, args=TrainingArguments(..., logging_steps=1), train_dataset=ds,
                      callbacks=[callback])
    with callback:                       # optional: an exception in train() marks the run `crashed`
        trainer.train()

Metrics are what the Trainer logs (loss, grad_norm, learning_rate, epoch, eval_*), at each `logging_steps`
(1 for every step). The probe set is embedded before the first step, every N steps and after the last.
The Trainer has no hook for an exception, hence the `with`: without it a run whose training raised keeps
`running` until its heartbeat goes stale, and the dashboard then shows it as `stalled`. Under DDP every rank
embeds a share of the probe set and rank 0 alone writes.
"""
from __future__ import annotations

import json
import traceback
from typing import Any, Mapping

from transformers import TrainerCallback

from integrations.probe import Embed, ProbeSet, default_embed, log_probe_snapshot, scalar_metrics
from runformat.writer import RunWriter


class ContrastScopeCallback(TrainerCallback):
    def __init__(self, runs_dir: str, name: str, probe: ProbeSet, *, embed: Embed = default_embed,
                 every_n_steps: int = 100, config: Mapping[str, Any] | None = None, resume: bool = False):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps: must be ≥ 1, got {every_n_steps}")
        self.runs_dir, self.name, self.probe, self.embed = runs_dir, name, probe, embed
        self.every_n_steps, self.config, self.resume = every_n_steps, config, resume
        self.writer: RunWriter | None = None
        self._last_snapshot_step = -1

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        config = self.config
        if config is None:  # what this run was: the TrainingArguments, and the model's config when it has one
            config = {"training_args": args.to_dict()}
            if hasattr(getattr(model, "config", None), "to_dict"):
                config["model_config"] = model.config.to_dict()
            config = json.loads(json.dumps(config, default=str))
        self.writer = RunWriter(self.runs_dir, self.name, config=config, resume=self.resume)
        self._snapshot(state.global_step, model)

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = scalar_metrics(logs or {})
        if self.writer is not None and metrics:
            self.writer.log_metrics(state.global_step, metrics)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_n_steps == 0:
            self._snapshot(state.global_step, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.writer is not None:
            self._snapshot(state.global_step, model)
            self.writer.close("finished")

    # -- `with callback: trainer.train()` -----------------------------------------------------------------
    def __enter__(self) -> "ContrastScopeCallback":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self.writer is not None:
            self.writer.close("crashed", "".join(traceback.format_exception_only(exc_type, exc)).strip())

    def _snapshot(self, step: int, model) -> None:
        if model is not None and step > self._last_snapshot_step:
            device = next(model.parameters()).device
            log_probe_snapshot(self.writer, step, model, self.probe, self.embed, device)
            self._last_snapshot_step = step
