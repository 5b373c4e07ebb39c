"""One training step: the model, optimiser, temperature and MoCo state, and the loss
reconstruction (+ KL for the VAE) + λ(step)·contrastive, λ warmed up linearly from 0. training/train.py runs
the loop and writes the run; training/crossmodal.py subclasses Trainer for the caption-conditioned VAE.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from runformat import distributed as ddp

from .config import TrainConfig, to_dict
from .curriculum import beta_at, steer_temperature
from .models import ContrastiveAE, MomentumEncoder
from .objectives import Temperature, batch_stats, hard_negative_nt_xent, moco_loss, nt_xent, positive_only


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows in rank order; the local slice is the local tensor itself, so gradients reach it
    (the other slices are constants here; their ranks get their own gradients the same way)."""
    if not ddp.is_distributed() or ddp.world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(ddp.world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[ddp.rank()] = x
    return torch.cat(parts)


def contrastive_weight(cfg: TrainConfig, step: int) -> float:
    c = cfg.contrastive
    return c.weight if c.warmup_steps == 0 else c.weight * min(1.0, step / c.warmup_steps)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    progress = (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps)
    return o.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Model, optimiser, temperature, MoCo state and the loss of one step. `run` drives the loop."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.world, self.rank = ddp.world_size(), ddp.rank()
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = self.build_model().to(device)
        c = cfg.contrastive
        self.temperature = Temperature(
            c.temperature, c.temperature_mode, c.temperature_min, c.temperature_step, c.temperature_after
        ).to(device)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=c.objective == "moco" and cfg.head.sharing == "per_view",
            )
        groups = [{"params": list(self.model.parameters()), "weight_decay": cfg.optim.weight_decay}]
        if c.temperature_mode == "learnable":
            groups.append({"params": [self.temperature.log_inv_tau], "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr)
        self.key_encoder = self.queue = None
        if c.objective == "moco":
            self.key_encoder = MomentumEncoder(self.model, c.momentum).to(device)
            g = torch.Generator().manual_seed(cfg.seed + 1)
            self.queue = F.normalize(torch.randn(c.queue_size, cfg.head.out_dim, generator=g), dim=1).to(device)
            self.queue_ptr = 0
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        torch.manual_seed(cfg.seed + 1000 * self.rank)  # VAE noise and dropout differ per rank

    def build_model(self) -> torch.nn.Module:
        return ContrastiveAE(self.cfg.model, self.cfg.head)

    def losses(self, x_a: torch.Tensor, x_b: torch.Tensor, step: int):
        """-> (what to backpropagate, metrics dict, keys to enqueue or None)."""
        with self.autocast:
            out = self.net(x_a, x_b)
        recon = (out["recon"].float() - out["x"]).pow(2).sum(dim=1).mean()  # summed over the 64 pixels
        kl = out["kl"].float().mean() if out["kl"] is not None else None
        tau = self.temperature(step)
        contrastive, logits, targets, keys, scale, extra = self.contrastive_loss(out, x_b, tau, step)
        lam = contrastive_weight(self.cfg, step)
        total = recon + (self.cfg.model.kl_weight * kl if kl is not None else 0.0) + lam * contrastive
        backward = total + lam * (scale - 1.0) * contrastive
        metrics = {
            "loss/total": total.item(),
            "loss/contrastive": contrastive.item(),
            "loss/reconstruction": recon.item(),
            "lambda": lam,
            "temperature": float(tau.detach()),
            **extra,
        }
        if kl is not None:
            metrics["loss/kl"] = kl.item()
        metrics.update(batch_stats(logits, targets, float(tau.detach()), contrastive.detach()))
        return backward, metrics, keys

    def contrastive_loss(self, out: dict, x_b: torch.Tensor, tau, step: int):
        """-> (loss, logits, targets, MoCo keys or None, gradient scale under DDP, extra metrics)."""
        c = self.cfg.contrastive
        keys, extra = None, {}
        if c.objective == "moco":
            with torch.no_grad(), self.autocast:
                keys = self.key_encoder(x_b).float()
            contrastive, logits, targets = moco_loss(out["z_a"], keys, self.queue, tau, return_logits=True)
            scale = 1.0  # local queries: DDP's gradient mean is already the global mean
        else:
            z_a, z_b = gather_with_grad(out["z_a"].float()), gather_with_grad(out["z_b"].float())
            if 0 <= c.negatives_off_step <= step:
                contrastive, logits, targets = positive_only(z_a, z_b, tau, return_logits=True)
            elif c.objective == "hard_negative":
                extra["beta"] = beta_at(c, step)
                contrastive, logits, targets = hard_negative_nt_xent(
                    z_a, z_b, tau, extra["beta"], c.tau_plus, c.hard_fraction, return_logits=True
                )
            else:
                contrastive, logits, targets = nt_xent(z_a, z_b, tau, return_logits=True)
            # Every rank computes the loss over the global batch but gets gradients only through its own
            # rows; DDP averages over ranks, so ×world restores the exact gradient of the global loss.
            scale = float(self.world)
        return contrastive, logits, targets, keys, scale, extra

    def step(self, x_a: torch.Tensor, x_b: torch.Tensor, step: int) -> dict:
        self.model.train()
        lr = learning_rate(self.cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        backward, metrics, keys = self.losses(x_a, x_b, step)
        self.optimizer.zero_grad(set_to_none=True)
        backward.backward()
        if self.temperature.log_inv_tau.grad is not None and self.world > 1:  # τ lives outside DDP
            dist.all_reduce(self.temperature.log_inv_tau.grad)
            self.temperature.log_inv_tau.grad /= self.world
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, clip).item()
        self.optimizer.step()
        if self.cfg.contrastive.temperature_mode == "entropy":
            steer_temperature(self.temperature, self.cfg.contrastive, metrics["batch/softmax_entropy"])
        if keys is not None:
            self._enqueue(keys)
            self.key_encoder.update(self.model)
        metrics["lr"] = lr
        return metrics

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        if self.world > 1:
            parts = [torch.empty_like(keys) for _ in range(self.world)]
            dist.all_gather(parts, keys.contiguous())
            keys = torch.cat(parts)
        K = self.queue.shape[0]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % K
        self.queue[idx] = F.normalize(keys, dim=1)
        self.queue_ptr = int((self.queue_ptr + keys.shape[0]) % K)

    @torch.no_grad()
    def embed(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict:
        """Probe outputs with the model in eval mode: embeddings (view-A head), positives (view-B head),
        features (the backbone latent of view A)."""
        self.model.eval()
        with self.autocast:
            h_a, _ = self.model.ae.encode(x_a)
            h_b, _ = self.model.ae.encode(x_b)
            z_a, z_b = self.model.project(h_a, "a"), self.model.project(h_b, "b")
        return {"embeddings": z_a.float(), "positives": z_b.float(), "features": h_a.float()}

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor) -> dict:
        self.model.eval()
        with self.autocast:
            h, _ = self.model.ae.encode(images)
            recon = self.model.ae.decode(h).float()
        mse = (recon - images).pow(2).mean().item()
        return {"eval/recon_mse": mse, "eval/psnr": 10 * math.log10(1.0 / max(mse, 1e-12))}

    def generated_grid(self) -> np.ndarray | None:
        """A grid of generated samples to show beside the run (training/crossmodal.py); none here."""
        return None

    def state(self, next_step: int, generator: torch.Generator) -> dict:
        gens = generator.get_state()
        if self.world > 1:  # every rank's sampler state, so a resumed DDP run draws the same batches
            parts = [torch.empty_like(gens) for _ in range(self.world)]
            dist.all_gather(parts, gens)
            gens = torch.stack(parts)
        else:
            gens = gens[None]
        s = {
            "step": next_step,
            "model": self.model.state_dict(),
            "temperature": self.temperature.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": gens,
            "torch_rng": torch.get_rng_state(),
            "config": to_dict(self.cfg),
        }
        if self.queue is not None:
            s.update(key_encoder=self.key_encoder.state_dict(), queue=self.queue.cpu(), queue_ptr=self.queue_ptr)
        return s

    def load_state(self, s: dict, generator: torch.Generator) -> int:
        self.model.load_state_dict(s["model"])
        self.temperature.load_state_dict(s["temperature"])
        self.optimizer.load_state_dict(s["optimizer"])
        gens = s["generators"]
        if gens.shape[0] == self.world:
            generator.set_state(gens[self.rank].contiguous())
            if self.world == 1:  # VAE noise and dropout (per-rank streams are not saved under DDP)
                torch.set_rng_state(s["torch_rng"])
        if self.queue is not None:
            self.key_encoder.load_state_dict(s["key_encoder"])
            self.queue.copy_(s["queue"].to(self.device))
            self.queue_ptr = int(s["queue_ptr"])
        return int(s["step"])
