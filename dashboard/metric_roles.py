"""Which logged metric plays which role on Live: the alias table (docs/integrations.md), and the metrics a
user adds to Live from its picker.

Live's panels chart roles under our trainer's names (`loss/total`, `lr`, ...). A run from Lightning, Hugging
Face or TensorBoard logs the same quantities under its own names (`train/loss`, `learning_rate`, `lr-AdamW`,
`Loss/train`, ...). `charted(frame)` gives each role the first alias a run logged, under the role's name, so
the panels draw it without configuration; everything else a run logs is offered in Live's picker.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import pandas as pd

from diagnostics.draw import figures

from .text import plot

# role (the column Live's panels read) -> the names it goes by, in order of preference: the first one a run
# logged plays the role. Our trainer's name first, then Lightning's (`self.log` names people use, and
# LearningRateMonitor's `lr-<Optimizer>`), Hugging Face Trainer's, and TensorBoard tutorials' (`Loss/train`).
ALIASES: dict[str, tuple[str, ...]] = {
    "loss/total": (
        "loss/total",
        "loss",
        "train/loss",
        "train_loss",
        "training_loss",
        "loss/train",
        "Loss/train",
        "train/loss_step",
        "train_loss_step",
        "loss_step",
        "Loss",
    ),
    "loss/contrastive": (
        "loss/contrastive",
        "contrastive_loss",
        "train/contrastive_loss",
        "loss_contrastive",
        "train/loss_contrastive",
        "nce_loss",
        "infonce_loss",
        "loss/infonce",
    ),
    "loss/reconstruction": (
        "loss/reconstruction",
        "reconstruction_loss",
        "train/reconstruction_loss",
        "recon_loss",
        "train/recon_loss",
        "loss_recon",
        "loss/recon",
        "mse_loss",
    ),
    "lr": ("lr", "learning_rate", "train/lr", "train/learning_rate", "lr/pg0", "LearningRate"),
    "temperature": ("temperature", "tau", "train/temperature", "train/tau", "τ"),
    "grad_norm": ("grad_norm", "train/grad_norm", "grad_2.0_norm_total", "gradient_norm", "grad_norm/total"),
}
# Lightning's LearningRateMonitor logs `lr-Adam`, `lr-AdamW/pg1`, ...: the first optimizer's first group is lr.
_LR_MONITOR = re.compile(r"^lr-[A-Za-z]\w*$")

# Columns Live's panels already read under their own names (figures.live_panels), never offered in the picker.
PANEL_COLUMNS = frozenset(ALIASES) | {
    "lambda",
    "batch/pos_cos",
    "batch/neg_cos",
    "batch/hardest_neg_cos",
    "batch/top1",
    "loss/kl",
}
NOT_METRICS = ("step", "wall_time")


def sources(columns: Iterable[str]) -> dict[str, str]:
    """{role: the logged column that plays it} for the roles a run has a column for."""
    columns = list(columns)
    present = set(columns)
    found = {}
    for role, names in ALIASES.items():
        hit = next((n for n in names if n in present), None)
        if hit is None and role == "lr":
            hit = next((c for c in columns if _LR_MONITOR.match(c)), None)
        if hit is not None:
            found[role] = hit
    return found


def charted(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each role's source column also under the role's name (a role logged under its own name
    keeps it). The frame passed in is not changed."""
    extra = {role: frame[source] for role, source in sources(frame.columns).items() if role != source}
    return frame.assign(**extra) if extra else frame


def charted_frames(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {name: charted(frame) for name, frame in frames.items()}


def pickable(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """The metrics any of the runs logged that no panel draws yet: what Live's picker offers, sorted."""
    out = set()
    for frame in frames.values():
        used = set(sources(frame.columns).values())
        out |= {c for c in frame.columns if c not in NOT_METRICS and c not in PANEL_COLUMNS and c not in used}
    return sorted(out)


def picked_panels(frames: Mapping[str, pd.DataFrame], picked: Iterable[str]) -> list:
    """One step chart per metric picked on Live (the ones no run has are skipped)."""
    offered = set(pickable(frames))
    return [figures.lines(frames, [m], plot(m), plot(m), labels={m: plot(m)}) for m in picked if m in offered]


def error_text(run) -> str | None:
    """A crashed run's error as the writer recorded it (run.json `error`), None when it has none. Shown as
    text on Home and Live (dashboard/text.md for Markdown)."""
    info = getattr(run, "info", None) or {}
    error = info.get("error") if isinstance(info, Mapping) else None
    if not isinstance(error, str) or not error.strip():
        return None
    return error.strip()
