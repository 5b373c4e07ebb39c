"""Schedules that change the contrastive task while training: negative hardness rising on a schedule and a
temperature steered to a target softmax entropy.

Hardness: Robinson et al. 2021 weight each negative by exp(β·sim/τ); β = 0 is uniform (easy, plain NT-Xent
weights), larger β concentrates the loss on the nearest negatives. Annealing β from `beta_start` to `beta`
over `beta_anneal_steps` is a curriculum: spread the embedding first, then separate the confusable pairs.

Temperature: τ sets how peaked each anchor's softmax over candidates is. As the embedding separates, the same τ
gives an ever more peaked softmax (entropy falls toward 0 and the gradients vanish on easy negatives);
steering log τ toward the τ whose mean entropy is `target_entropy` keeps the effective number of competing
candidates, exp(entropy), near a chosen value instead.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from runformat import distributed as ddp

from .config import ContrastiveConfig
from .objectives import Temperature


def beta_at(c: ContrastiveConfig, step: int) -> float:
    """β in force at `step`: constant `beta`, or linear from `beta_start` to `beta` over `beta_anneal_steps`."""
    if c.beta_schedule == "constant" or c.beta_anneal_steps == 0:
        return c.beta
    return c.beta_start + (c.beta - c.beta_start) * min(1.0, step / c.beta_anneal_steps)


def steer_temperature(temperature: Temperature, c: ContrastiveConfig, entropy: float) -> None:
    """One controller step on this batch's mean softmax entropy (averaged over ranks, so every rank keeps
    the same τ even where the logits are local, as with MoCo)."""
    if ddp.is_distributed() and ddp.world_size() > 1:
        t = torch.tensor([entropy], dtype=torch.float64, device=temperature.log_inv_tau.device)
        dist.all_reduce(t)
        entropy = float(t) / ddp.world_size()
    temperature.steer(entropy, c.target_entropy, c.temperature_gain, c.temperature_max)
