"""PyTorch Lightning: write a ContrastScope run from `Trainer.fit` with one callback.

    probe = ProbeSet(inputs=x_view1, positives=x_view2, labels=y, images=thumbs)       # a fixed set of rows
    trainer = L.Trainer(callbacks=[ContrastScopeCallback("runs", "simclr-tau0.1", probe, every_n_steps=100)])
    trainer.fit(model, loader)

Each optimizer step logs what the LightningModule logged with `self.log` since the last step (one name per
value: Lightning's `<name>_step` copy of an `on_step=True, on_epoch=True` value is dropped, an epoch aggregate
`<name>_epoch` is written once, at the step its epoch ended), the loss training_step returned (as `loss`, unless
a logged metric holds that same value) and each optimizer's learning rate (`lr`, `lr1`, ...). Every N steps,
and before the first and after the last, the probe set is embedded and written as a snapshot. The run is
`finished` when fit ends and `crashed` (with the error) when it raises or is interrupted. Under DDP every rank
embeds a share of the probe set and rank 0 alone writes (RunWriter gathers the shares).
"""

from __future__ import annotations

import traceback
from typing import Any, Mapping

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone `pytorch_lightning` package
    import pytorch_lightning as pl

from integrations.callback_writer import jsonable, open_writer
from integrations.probe import Embed, ProbeSet, default_embed, log_probe_snapshot, scalar_metrics
from runformat import layout
from runformat.writer import RunWriter


class ContrastScopeCallback(pl.Callback):
    """Write the run `runs_dir/name` while `Trainer.fit` trains: metrics every optimizer step, a snapshot of
    `probe` every `every_n_steps` (and at the first and last step).

    embed          `embed(module, inputs) -> z` or `(z, h)`; the default calls `module(inputs)` (`module(**inputs)`
                   for a dict of tensors) and expects an N×d tensor.
    config         what run.json's config.json holds; default: the module's `hparams`.
    description    one line shown on Home.
    resume         continue an existing run of that name. With `ckpt_path=`, training restarts at the
                   checkpoint's step and what a crashed attempt wrote after it is replaced; without a
                   checkpoint a run that has steps is refused (nothing is changed). See docs/integrations.md.
    version        write to `name-v2`, `name-v3`, ... when `name` exists (Lightning's logger versions).
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
        self._last_metrics_step = self._last_snapshot_step = -1
        self._written: dict[str, tuple] = {}  # metric name -> (the value object last seen, the number written)

    # -- fit lifecycle --------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, not in on_fit_start: Lightning restores a checkpoint's step between the two.
        config = self.config if self.config is not None else jsonable(dict(pl_module.hparams))
        self.writer = open_writer(self, trainer.global_step, config, restored=trainer.ckpt_path is not None)
        self._last_metrics_step, self._last_snapshot_step = trainer.global_step, self.writer.last_snapshot_step
        self._snapshot(trainer.global_step, pl_module)  # the starting point every trajectory is measured from

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.writer is None:
            return
        self.writer.beat()
        step = trainer.global_step  # optimizer steps so far; repeats while gradients accumulate
        if step > self._last_metrics_step:
            metrics = self._updated(trainer.callback_metrics)
            loss = scalar_metrics({"loss": outputs.get("loss") if isinstance(outputs, Mapping) else outputs})
            if loss and "loss" not in metrics and loss["loss"] not in metrics.values():
                metrics.update(loss)
            for i, optimizer in enumerate(trainer.optimizers):
                metrics[f"lr{'' if i == 0 else i}"] = float(optimizer.param_groups[0]["lr"])
            if metrics:
                self.writer.log_metrics(step, metrics)
            self._last_metrics_step = step
        if step % self.every_n_steps == 0:
            self._snapshot(step, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_updated(trainer)  # the last epoch's `*_epoch` aggregates, at the step it ended

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.writer is not None:
            self.writer.beat()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_updated(trainer)  # val metrics at the step they were measured

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.writer is None:
            return
        self._log_updated(trainer)
        self._snapshot(trainer.global_step, pl_module)
        self.writer.close("finished")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.writer is not None:
            self.writer.close("crashed", "".join(traceback.format_exception_only(exception)).strip())

    # -- helpers --------------------------------------------------------------------------------------
    def _updated(self, values: Mapping[str, Any], same_step: bool = False) -> dict[str, float]:
        """The logged values not written yet: Lightning hands back the same object until a value is logged
        again, so identity says what is new. With on_step and on_epoch, `<name>_step` duplicates `<name>` during
        the epoch, and `<name>` duplicates `<name>_epoch` after it: the copies are skipped. At an epoch's end
        Lightning re-wraps the step's values: `same_step` skips the ones equal to what was written."""
        fresh, numbers = {}, scalar_metrics(values)
        for key, number in numbers.items():
            value, (last, written) = values[key], self._written.get(key, (None, None))
            if (
                (key.endswith("_step") and key[: -len("_step")] in values)
                or last is value
                or numbers.get(key + "_epoch") == number
            ):
                continue
            self._written[key] = (value, number)
            if not (same_step and written == number):
                fresh[key] = number
        return fresh

    def _log_updated(self, trainer: pl.Trainer) -> None:
        if self.writer is not None and (metrics := self._updated(trainer.callback_metrics, same_step=True)):
            self.writer.log_metrics(max(trainer.global_step, self._last_metrics_step), metrics)

    def _snapshot(self, step: int, pl_module: pl.LightningModule) -> None:
        if step > self._last_snapshot_step:
            log_probe_snapshot(self.writer, step, pl_module, self.probe, self.embed, pl_module.device)
            self._last_snapshot_step = step
