"""Contrastive objectives, in the papers' symbols. Inputs need not be normalised (each function does it);
each returns a scalar loss with gradients, and with `return_logits=True` also the logits it used and the index
of each anchor's positive, which `batch_stats` reads without recomputing anything.

Logits hold cosine/τ; entries that are not candidates (an anchor against itself) are -inf.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _nt_xent_logits(z_a: torch.Tensor, z_b: torch.Tensor, temperature) -> tuple[torch.Tensor, torch.Tensor]:
    B = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)  # z: 2Bxd
    logits = z @ z.T / temperature  # logits: 2Bx2B
    self_mask = torch.eye(2 * B, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # 2B−1 candidates per anchor
    targets = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)  # i <-> i+B
    return logits, targets


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature, return_logits: bool = False):
    """NT-Xent / InfoNCE (Chen et al. 2020): z_a[i], z_b[i] are positives, every other row of both views is a
    negative (2B−2 per anchor); the mean over all 2B anchors (the paper's scale)."""
    if z_a.shape != z_b.shape or z_a.dim() != 2 or z_a.shape[0] < 2:
        raise ValueError(f"z_a, z_b: must both be Bxd with B ≥ 2, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    logits, targets = _nt_xent_logits(z_a, z_b, temperature)
    loss = F.cross_entropy(logits, targets)
    return (loss, logits.detach(), targets) if return_logits else loss


def positive_only(z_a: torch.Tensor, z_b: torch.Tensor, temperature, return_logits: bool = False):
    """NT-Xent with the negatives removed: −cos(z_a, z_b)/τ + 1/τ (0 when views agree). Nothing keeps the
    embeddings apart, so it is minimised by mapping everything to one point: the complete-collapse demo."""
    logits, targets = _nt_xent_logits(z_a, z_b, temperature)
    pos = logits.gather(1, targets[:, None]).squeeze(1)  # pos: 2B
    loss = (1.0 / temperature - pos).mean()
    return (loss, logits.detach(), targets) if return_logits else loss


def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature, return_logits: bool = False):
    """MoCo InfoNCE (He et al. 2020): query q[i] against its key k[i] (positive, from the momentum encoder;
    no gradient flows into it) and K queued keys (negatives)."""
    if q.shape != k.shape or q.dim() != 2 or queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"q, k, queue: need Nxd, Nxd, Kxd; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(queue.shape)}"
        )
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.detach().float(), dim=1)
    queue = F.normalize(queue.detach().float(), dim=1)
    l_pos = (q * k).sum(dim=1, keepdim=True)  # l_pos: Nx1
    l_neg = q @ queue.T  # l_neg: NxK
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # logits: Nx(1+K)
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    loss = F.cross_entropy(logits, targets)
    return (loss, logits.detach(), targets) if return_logits else loss


def hard_negative_nt_xent(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature,
    beta: float = 1.0,
    tau_plus: float = 0.1,
    hard_fraction: float = 1.0,
    return_logits: bool = False,
):
    """Debiased hard-negative NT-Xent (Robinson et al. 2021, ICLR): negatives are reweighted by
    exp(β·sim/τ) (normalised to mean 1), the positive's expected share τ⁺ is subtracted, and the result is
    clamped at N·e^{−1/τ}. `hard_fraction` mixes hard weights with uniform ones: 1 = all hard, 0 = plain
    (still debiased) negatives. β = 0 and τ⁺ = 0 give exactly `nt_xent`."""
    logits, targets = _nt_xent_logits(z_a, z_b, temperature)
    n_anchor = logits.shape[0]
    N = n_anchor - 2  # negatives per anchor
    pos_mask = F.one_hot(targets, n_anchor).bool()
    neg_mask = ~pos_mask & torch.isfinite(logits)
    l_pos = logits.gather(1, targets[:, None]).squeeze(1)  # l_pos: 2B
    l_neg = logits[neg_mask].view(n_anchor, N)  # l_neg: 2Bx(2B−2)
    # work relative to each row's max so exp never overflows at small τ; ratios are unchanged
    m = torch.maximum(l_pos, l_neg.max(dim=1).values).detach()
    pos = torch.exp(l_pos - m)
    neg = torch.exp(l_neg - m[:, None])
    weights = N * torch.softmax(beta * l_neg, dim=1)  # imp / imp.mean() without overflow
    weights = hard_fraction * weights + (1.0 - hard_fraction)
    Ng = (-tau_plus * N * pos + (weights * neg).sum(dim=1)) / (1.0 - tau_plus)
    floor = N * torch.exp(-1.0 / torch.as_tensor(temperature, dtype=pos.dtype) - m)
    Ng = torch.maximum(Ng, floor)
    loss = -(torch.log(pos.clamp_min(torch.finfo(pos.dtype).tiny)) - torch.log(pos + Ng)).mean()
    return (loss, logits.detach(), targets) if return_logits else loss


def clip_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature, return_logits: bool = False):
    """CLIP's symmetric InfoNCE (Radford et al. 2021): image i against every caption of the batch and caption i
    against every image, the mean of both cross entropies; B−1 negatives per anchor, all of the other modality."""
    if z_a.shape != z_b.shape or z_a.dim() != 2 or z_a.shape[0] < 2:
        raise ValueError(f"z_a, z_b: must both be Bxd with B ≥ 2, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    a, b = F.normalize(z_a.float(), dim=1), F.normalize(z_b.float(), dim=1)
    logits_ab = a @ b.T / temperature  # logits_ab: BxB, image -> caption
    logits = torch.cat([logits_ab, logits_ab.T])  # logits: 2BxB, both directions
    targets = torch.arange(a.shape[0], device=a.device).repeat(2)
    loss = F.cross_entropy(logits, targets)  # = ½(CE_a→b + CE_b→a)
    return (loss, logits.detach(), targets) if return_logits else loss


@torch.no_grad()
def batch_stats(logits: torch.Tensor, targets: torch.Tensor, temperature, loss: torch.Tensor) -> dict[str, float]:
    """What the batch looks like to the loss: mean positive and negative cosine, each anchor's hardest
    negative (averaged), how often the positive wins (top-1), the entropy of each anchor's softmax over its
    candidates (averaged; log N = uniform, 0 = one candidate takes all), and log N − loss, the InfoNCE lower bound on
    mutual information (N = candidates per anchor; it cannot exceed log N)."""
    tau = float(temperature)
    candidates = torch.isfinite(logits)  # logits: NxM, -inf = not a candidate
    pos_mask = F.one_hot(targets, logits.shape[1]).bool()
    neg_mask = candidates & ~pos_mask
    cos = torch.where(candidates, logits * tau, torch.zeros_like(logits))
    pos_cos = cos[pos_mask]
    hardest = cos.masked_fill(~neg_mask, float("-inf")).max(dim=1).values
    n_candidates = candidates.sum(dim=1).float().mean()
    logp = torch.log_softmax(logits.float(), dim=1)
    entropy = -(logp.exp() * logp.masked_fill(~candidates, 0.0)).sum(dim=1)  # per anchor, nats
    return {
        "batch/softmax_entropy": entropy.mean().item(),
        "batch/pos_cos": pos_cos.mean().item(),
        "batch/neg_cos": cos[neg_mask].mean().item(),
        "batch/hardest_neg_cos": hardest.mean().item(),
        "batch/top1": (logits.argmax(dim=1) == targets).float().mean().item(),
        "batch/infonce_bound": math.log(n_candidates.item()) - float(loss),
    }


class Temperature(nn.Module):
    """τ as a function of the step: fixed; learnable (CLIP: log(1/τ) is the parameter, clamped so τ ≥ τ_min);
    a step schedule (τ until `change_step`, then `after`); or entropy-steered (`steer` after each step moves
    log τ toward the τ whose softmax entropy is the target, within [τ_min, τ_max])."""

    def __init__(
        self,
        initial: float,
        mode: str = "fixed",
        minimum: float = 0.01,
        change_step: int = 0,
        after: float | None = None,
    ):
        super().__init__()
        if not initial > 0:
            raise ValueError(f"initial: temperature must be > 0, got {initial}")
        if mode not in ("fixed", "learnable", "step", "entropy"):
            raise ValueError(f"mode: must be fixed, learnable, step or entropy, got {mode!r}")
        self.mode, self.initial, self.minimum = mode, float(initial), float(minimum)
        self.change_step, self.after = int(change_step), float(after if after is not None else initial)
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / initial)), requires_grad=mode == "learnable")

    def forward(self, step: int) -> torch.Tensor:
        if self.mode == "learnable":
            return 1.0 / self.log_inv_tau.clamp(max=math.log(1.0 / self.minimum)).exp()
        if self.mode == "entropy":
            return 1.0 / self.log_inv_tau.detach().exp()
        tau = self.after if self.mode == "step" and step >= self.change_step else self.initial
        return torch.tensor(tau, device=self.log_inv_tau.device)

    @torch.no_grad()
    def steer(self, entropy: float, target: float, gain: float, maximum: float) -> None:
        """Entropy mode: log τ += gain·(target − entropy). Entropy rises with τ, so a too-peaked softmax
        (entropy below target) warms τ up and a too-flat one cools it; a proportional controller on log τ."""
        log_tau = -float(self.log_inv_tau) + gain * (target - entropy)
        log_tau = min(max(log_tau, math.log(self.minimum)), math.log(maximum))
        self.log_inv_tau.fill_(-log_tau)
