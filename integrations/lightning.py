"""PyTorch Lightning: write a ContrastScope run from `Trainer.fit` with one callback.

    probe = ProbeSet(inputs=x_view1, positives=x_view2, labels=y, images=thumbs)       # a fixed set of rows
    trainer = L.Trainer(callbacks=[ContrastScopeCallback("runs", "simclr-tau0.1", probe, every_n_steps=100)])
    trainer.fit(model, loader)

Each optimizer step logs what the LightningModule logged with `self.log` (and the loss its training_step
returned, and each optimizer's learning rate); every N steps, and before the first and after the last, the
probe set is embedded and written as a snapshot. The run is `finished` when fit ends and `crashed` (with the
error) when it raises or is interrupted. Under DDP every rank embeds a share of the probe set and rank 0 alone
writes (RunWriter gathers the shares).
"""
from __future__ import annotations

import json
import traceback
from typing import Any, Mapping

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone `pytorch_lightning` package
    import pytorch_lightning as pl

from integrations.probe import Embed, ProbeSet, default_embed, log_probe_snapshot, scalar_metrics
from runformat.writer import RunWriter


class ContrastScopeCallback(pl.Callback):
    def __init__(self, runs_dir: str, name: str, probe: ProbeSet, *, embed: Embed = default_embed,
                 every_n_steps: int = 100, config: Mapping[str, Any] | None = None, resume: bool = False):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps: must be ≥ 1, got {every_n_steps}")
        self.runs_dir, self.name, self.probe, self.embed = runs_dir, name, probe, embed
        self.every_n_steps, self.config, self.resume = every_n_steps, config, resume
        self.writer: RunWriter | None = None
        self._last_metrics_step = self._last_snapshot_step = -1

    # -- fit lifecycle --------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        config = self.config if self.config is not None else _jsonable(dict(pl_module.hparams))
        self.writer = RunWriter(self.runs_dir, self.name, config=config, resume=self.resume)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot(trainer.global_step, pl_module)  # the starting point every trajectory is measured from

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps so far; repeats while gradients accumulate
        if step > self._last_metrics_step:
            metrics = scalar_metrics(trainer.callback_metrics)
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            metrics.update(scalar_metrics({"loss": loss}) if "loss" not in metrics else {})
            for i, optimizer in enumerate(trainer.optimizers):
                metrics[f"lr{'' if i == 0 else i}"] = float(optimizer.param_groups[0]["lr"])
            if metrics:
                self.writer.log_metrics(step, metrics)
            self._last_metrics_step = step
        if step % self.every_n_steps == 0:
            self._snapshot(step, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.writer is None:
            return
        self._snapshot(trainer.global_step, pl_module)
        self.writer.close("finished")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.writer is not None:
            self.writer.close("crashed", "".join(traceback.format_exception_only(exception)).strip())

    def _snapshot(self, step: int, pl_module: pl.LightningModule) -> None:
        if step > self._last_snapshot_step:
            log_probe_snapshot(self.writer, step, pl_module, self.probe, self.embed, pl_module.device)
            self._last_snapshot_step = step


def _jsonable(value: Any) -> dict:
    """hparams may hold objects (a model, a transform): keep what JSON can say, and their text otherwise."""
    return json.loads(json.dumps(value, default=str))
