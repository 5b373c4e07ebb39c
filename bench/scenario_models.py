"""One small training loop for the labelled scenario suite (bench/scenarios.py): the project's encoder, heads,
objectives and data (training/), plus what the trainer lacks: methods written the way their papers give them
(a SimSiam predictor whose stop-gradient can be removed; BYOL's EMA target and predictor; VICReg's variance,
invariance and covariance terms; a CLIP-style two-tower with a learned temperature), and faults switched on at
a known step (negatives removed, stop-gradient removed, predictor removed, VICReg's variance and covariance
terms removed, heavy weight decay, a learning-rate blow-up, τ far too low or too high, a mis-set spectral
regulariser on the head), plus a small batch and a cyclic learning rate for a noisy healthy run.

Every run is written through runformat's RunWriter, so the diagnostics read it exactly as a trainer's run.
The config records the method and the switch the way a user's config would (e.g.
contrastive.negatives_off_step); the ground truth lives in the suite, not in the run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from runformat.writer import RunWriter
from training.config import DataConfig, HeadConfig, ModelConfig
from training.data import PairData
from training.models import ContrastiveAE, MomentumEncoder
from training.objectives import batch_stats, moco_loss, nt_xent, positive_only

FAULTS = (
    "negatives_off",
    "stopgrad_off",
    "predictor_off",
    "redundancy_off",
    "variance_off",
    "weight_decay",
    "lr_blowup",
    "tau",
    "head_rank",
    "lambda",
)
NO_TEMPERATURE = ("simsiam", "byol", "vicreg", "barlow")  # methods without a τ: their loops log none


@dataclass
class Scenario:
    name: str
    objective: str = "nt_xent"  # nt_xent | moco | simsiam | byol | vicreg | barlow | clip | vae | ae (+ λ·NT-Xent)
    seed: int = 0
    steps: int = 300
    snapshot_every: int = 10
    lr: float = 2e-3
    temperature: float = 0.2
    lambda_warmup: int = 0  # vae: λ rises linearly from 0 over this many steps
    tau_after: float = 0.0  # > 0: a healthy τ schedule, τ → tau_after at tau_step
    tau_step: int = 0
    fault: str | None = None  # one of FAULTS; None = a healthy run
    onset: int = -1  # the step the fault is switched on (ground truth)
    fault_value: float = 0.0  # weight decay, lr growth per step, τ or the regulariser's weight
    truth: str = "healthy"  # what happens: healthy | collapse | diverge | tau_high | tau_low
    batch: int = 128
    lr_cycle: int = 0  # > 0: a cyclic learning rate, lr·(1 + 0.9·sin(2π·step/lr_cycle))


def run_config(s: Scenario) -> dict:
    """What the run records: the method and its switches under the trainer's key names."""
    c = {
        "objective": s.objective,
        "temperature": s.temperature,
        "weight": 1.0,
        "warmup_steps": s.lambda_warmup,
        "temperature_mode": "step" if s.tau_after or s.fault == "tau" else "fixed",
        "temperature_step": s.tau_step if s.tau_after else (s.onset if s.fault == "tau" else 0),
        "temperature_after": s.tau_after or (s.fault_value if s.fault == "tau" else s.temperature),
        "negatives_off_step": s.onset if s.fault == "negatives_off" else -1,
    }
    if s.fault == "lambda":  # λ stepped at the onset, as a mis-set schedule would
        c.update(weight_step=s.onset, weight_after=s.fault_value)
    if s.objective == "moco":
        c.update(queue_size=1024, momentum=0.99)
    if s.objective in NO_TEMPERATURE:  # no τ in these objectives: a user's config has none
        for key in ("temperature", "temperature_mode", "temperature_step", "temperature_after"):
            c.pop(key)
    if s.objective == "clip":  # CLIP's learned logit scale: τ = 1/scale, from 0.07, scale clamped at 100
        c.update(temperature=0.07, temperature_mode="learned", temperature_step=0, temperature_after=0.07)
    if s.fault == "head_rank":  # a spectral regulariser on the head, its sign mis-set: it rewards a few directions
        c.update(spectral_reg_weight=s.fault_value, spectral_reg_step=s.onset)
    cfg = {
        "description": f"Scenario {s.name}",
        "seed": s.seed,
        "steps": s.steps,
        "batch_size": s.batch,
        "snapshot_every": s.snapshot_every,
        "contrastive": c,
        "head": {"depth": 2, "width": 128, "out_dim": 32},
        "optim": {
            "lr": s.lr,
            "weight_decay": 1e-4,
            "schedule": "constant",
            "weight_decay_step": s.onset if s.fault == "weight_decay" else -1,
            "weight_decay_after": s.fault_value if s.fault == "weight_decay" else 1e-4,
            "lr_growth_step": s.onset if s.fault == "lr_blowup" else -1,
            "lr_growth": s.fault_value if s.fault == "lr_blowup" else 1.0,
            "lr_cycle": s.lr_cycle,
        },
    }
    if s.objective == "ae":  # an autoencoder + λ·NT-Xent: no KL, so its reconstruction uses the latent
        cfg["model"] = {"kind": "ae", "hidden": 128, "latent_dim": 32}
    if s.objective == "vae":  # the other objectives train no decoder
        cfg["model"] = {"kind": "vae", "hidden": 128, "latent_dim": 32, "kl_weight": 1.0}
    if s.objective == "byol":
        cfg["target"] = {"momentum": 0.99}
        cfg["predictor"] = {"hidden": 128, "off_step": s.onset if s.fault == "predictor_off" else -1}
    if s.objective == "vicreg":
        cfg["vicreg"] = {
            "invariance": 25.0,
            "variance": 25.0,
            "covariance": 1.0,
            "variance_off_step": s.onset if s.fault == "variance_off" else -1,
        }
    if s.objective == "barlow":
        cfg["barlow"] = {"lambda": 5e-3 * 32, "redundancy_off_step": s.onset if s.fault == "redundancy_off" else -1}
    if s.objective == "clip":
        cfg["towers"] = {"a": "8x8 digit, the project's encoder and head", "b": "4x4 thumbnail, MLP 16-128-32"}
    if s.objective == "simsiam":
        cfg["predictor"] = {
            "hidden": 16,
            "stop_gradient": True,
            "stop_gradient_off_step": s.onset if s.fault == "stopgrad_off" else -1,
        }
    return cfg


def predictor(dim: int, hidden: int) -> nn.Sequential:
    """SimSiam's bottleneck predictor h (Chen & He 2021): dim -> hidden -> dim."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))


def simsiam_loss(p_a, p_b, z_a, z_b, stop_gradient: bool = True) -> torch.Tensor:
    """D(p_a, sg(z_b))/2 + D(p_b, sg(z_a))/2 with D = −cos. Without the stop-gradient the trivial constant
    solution is reachable and the embeddings collapse (Chen & He 2021, fig. 2)."""
    sg = (lambda t: t.detach()) if stop_gradient else (lambda t: t)  # noqa: E731
    return -(F.cosine_similarity(p_a, sg(z_b)).mean() + F.cosine_similarity(p_b, sg(z_a)).mean()) / 2


def byol_loss(p_a, p_b, t_a, t_b) -> torch.Tensor:
    """BYOL (Grill et al. 2020): ‖p̂ − t̂‖² = 2 − 2cos(p, t), each view's prediction against the other view's
    EMA target, symmetrised. Without the predictor the EMA target alone does not stop collapse (their table 5b)."""
    return (2 - 2 * F.cosine_similarity(p_a, t_b)).mean() / 2 + (2 - 2 * F.cosine_similarity(p_b, t_a)).mean() / 2


def vicreg_loss(z_a, z_b, variance: bool = True) -> torch.Tensor:
    """VICReg (Bardes et al. 2022) with its weights 25/25/1: invariance = MSE(z_a, z_b); variance = hinge of
    each dimension's std at 1; covariance = squared off-diagonal covariances / d. Invariance alone is minimised
    by a constant: the complete-collapse fault."""
    n, d = z_a.shape
    loss = 25.0 * F.mse_loss(z_a, z_b)
    if not variance:
        return loss
    for z in (z_a, z_b):
        z = z - z.mean(dim=0)
        c = (z.T @ z) / (n - 1)  # c: dxd
        off = c - torch.diag(torch.diagonal(c))
        loss = loss + 25.0 * F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() + off.pow(2).sum() / d
    return loss


def barlow_loss(z_a, z_b, lam: float, redundancy: bool = True) -> torch.Tensor:
    """Barlow Twins (Zbontar et al. 2021): C = the cross-correlation of the batch-standardised views (dxd);
    Σ(1 − C_ii)² + λ Σ_{i≠j} C_ij². Without the redundancy term every dimension may carry the same feature."""
    n = z_a.shape[0]
    std = lambda z: (z - z.mean(0)) / (z.std(0) + 1e-5)  # noqa: E731
    c = std(z_a).T @ std(z_b) / n  # c: dxd
    on = (1 - torch.diagonal(c)).pow(2).sum()
    return on + lam * (c - torch.diag(torch.diagonal(c))).pow(2).sum() if redundancy else on


def thumbnail(x: torch.Tensor) -> torch.Tensor:
    """CLIP's second modality here: the 8x8 digit pooled to 4x4 (Bx64 -> Bx16)."""
    return F.avg_pool2d(x.view(-1, 1, 8, 8), 2).flatten(1)


def clip_logits(z_a, z_b, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP (Radford et al. 2021): logits = scale·ẑ_a ŷ_bᵀ, the positive on the diagonal. logits: BxB"""
    logits = scale * F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T
    return logits, torch.arange(len(z_a))


def outside_top_share(z: torch.Tensor, k: int = 2) -> torch.Tensor:
    """1 − the top-k share of the batch's centred variance: what the mis-set regulariser drives to 0."""
    lam = torch.linalg.svdvals(z - z.mean(dim=0)).square()
    return 1 - lam[:k].sum() / lam.sum().clamp_min(1e-12)


def train_scenario(s: Scenario, root: str) -> str:
    """Train `s` on digits (CPU, one thread is enough) and write the run root/s.name; returns its path."""
    if s.fault is not None and (s.fault not in FAULTS or s.onset < 0):
        raise ValueError(f"{s.name}: fault must be one of {FAULTS} with an onset ≥ 0")
    torch.manual_seed(s.seed)
    data = PairData(DataConfig(probe_size=512), s.seed)
    model = ContrastiveAE(
        ModelConfig(kind="vae" if s.objective == "vae" else "ae", hidden=128, latent_dim=32),
        HeadConfig(depth=2, width=128, out_dim=32),
    )
    head_params = list(model.head_a.parameters())
    extra = [predictor(32, 16)] if s.objective == "simsiam" else []
    if s.objective == "byol":  # BYOL's predictor widens (4096 for a 256-d projection): 32 -> 128 -> 32 here
        extra = [predictor(32, 128)]
    if s.objective == "clip":  # tower b and the log of CLIP's logit scale (1/0.07 at the start)
        extra = [nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 32))]
        log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    others = [p for p in model.ae.parameters()] + [p for m in extra for p in m.parameters()]
    if s.objective == "clip":
        others.append(log_scale)
    opt = torch.optim.AdamW(
        [{"params": others, "weight_decay": 1e-4}, {"params": head_params, "weight_decay": 1e-4}], lr=s.lr
    )
    key_encoder = MomentumEncoder(model, 0.99) if s.objective in ("moco", "byol") else None
    queue = F.normalize(torch.randn(1024, 32, generator=torch.Generator().manual_seed(s.seed + 1)), dim=1)
    probe = data.probe(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    with RunWriter(root, s.name, run_config(s), description=f"Scenario {s.name}") as writer:
        for step in range(s.steps + 1):
            if step % s.snapshot_every == 0 and step > 0:
                _snapshot(writer, step, model, probe, extra[0] if s.objective == "clip" else None)
            if step == s.steps:
                break
            faulty = s.fault is not None and step >= s.onset
            tau = s.temperature
            if s.tau_after and step >= s.tau_step:
                tau = s.tau_after
            if faulty and s.fault == "tau":
                tau = s.fault_value
            lr = s.lr * (s.fault_value ** (step - s.onset + 1) if faulty and s.fault == "lr_blowup" else 1.0)
            if s.lr_cycle:
                lr *= 1 + 0.9 * math.sin(2 * math.pi * step / s.lr_cycle)
            for g in opt.param_groups:
                g["lr"] = lr
            if faulty and s.fault == "weight_decay":
                opt.param_groups[1]["weight_decay"] = s.fault_value
            model.train()
            x_a, x_b = data.sample_batch(s.batch, gen)
            out = model(x_a, x_b)
            if s.objective == "clip":  # τ is learned: the loop logs what it is now
                tau = float(1 / log_scale.detach().exp().clamp(max=100.0))
            metrics = {"lr": lr} if s.objective in NO_TEMPERATURE else {"lr": lr, "temperature": tau}
            logits = targets = None
            if s.objective == "byol":
                with torch.no_grad():
                    keys = key_encoder(torch.cat([x_a, x_b]))
                t_a, t_b = keys.chunk(2)
                on = not (faulty and s.fault == "predictor_off")
                p_a, p_b = (extra[0](out["z_a"]), extra[0](out["z_b"])) if on else (out["z_a"], out["z_b"])
                loss = byol_loss(p_a, p_b, t_a, t_b)
            elif s.objective == "vicreg":
                loss = vicreg_loss(out["z_a"], out["z_b"], not (faulty and s.fault == "variance_off"))
            elif s.objective == "barlow":
                loss = barlow_loss(out["z_a"], out["z_b"], 5e-3 * 32, not (faulty and s.fault == "redundancy_off"))
            elif s.objective == "clip":
                y_b = extra[0](thumbnail(x_b))
                logits, targets = clip_logits(out["z_a"], y_b, log_scale.exp().clamp(max=100.0))
                if faulty and s.fault == "negatives_off":  # only the diagonal is left: −cos/τ
                    loss = -logits.diagonal().mean()
                else:
                    loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
                logits = logits.detach()
            elif s.objective == "simsiam":
                p_a, p_b = extra[0](out["z_a"]), extra[0](out["z_b"])
                loss = simsiam_loss(p_a, p_b, out["z_a"], out["z_b"], not (faulty and s.fault == "stopgrad_off"))
            elif s.objective == "moco":
                with torch.no_grad():
                    keys = key_encoder(x_b)
                if faulty and s.fault == "negatives_off":  # the queue is dropped: only −cos(q, k)/τ is left
                    loss = -(F.normalize(out["z_a"], dim=1) * F.normalize(keys, dim=1)).sum(1).mean() / tau
                else:
                    loss, logits, targets = moco_loss(out["z_a"], keys, queue, tau, return_logits=True)
            else:
                fn = positive_only if faulty and s.fault == "negatives_off" else nt_xent
                loss, logits, targets = fn(out["z_a"], out["z_b"], tau, return_logits=True)
            metrics["loss/contrastive"] = loss.item()
            total = loss
            if faulty and s.fault == "head_rank":  # in the head only: the backbone's features keep their spread
                total = total + s.fault_value * outside_top_share(out["z_a"])
            if s.objective in ("vae", "ae"):
                lam = min(1.0, step / s.lambda_warmup) if s.lambda_warmup else 1.0
                if faulty and s.fault == "lambda":
                    lam = s.fault_value
                recon = (out["recon"] - out["x"]).pow(2).sum(1).mean()
                kl = out["kl"].mean() if out["kl"] is not None else torch.zeros(())
                total = recon + kl + lam * loss
                metrics.update({"loss/reconstruction": recon.item(), "lambda": lam})
                if out["kl"] is not None:  # an autoencoder has no KL to log
                    metrics["loss/kl"] = kl.item()
            metrics["loss/total"] = total.item()
            if logits is not None and torch.isfinite(loss):  # a diverged batch has no statistics
                metrics.update(batch_stats(logits, targets, tau, loss.detach()))
            opt.zero_grad(set_to_none=True)
            total.backward()
            metrics["grad_norm"] = float(
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], float("inf"))
            )
            opt.step()
            if s.objective == "moco":
                with torch.no_grad():
                    queue = torch.cat([F.normalize(keys, dim=1), queue])[:1024]
            if key_encoder is not None:  # MoCo's key encoder, BYOL's target: EMA of the online network
                key_encoder.update(model)
            writer.log_metrics(step, metrics)  # NaN/inf are encoded by the writer
    return writer.path


@torch.no_grad()
def _snapshot(writer: RunWriter, step: int, model: ContrastiveAE, probe, tower_b=None) -> None:
    """The probe's view a through the model; its positives: view b through the model, or through tower b."""
    model.eval()
    h_a, _ = model.ae.encode(probe.view_a)
    if tower_b is not None:
        positives = tower_b(thumbnail(probe.view_b))
    else:
        positives = model.project(model.ae.encode(probe.view_b)[0], "b")
    writer.log_snapshot(step, model.project(h_a, "a"), positives=positives, features=h_a, labels=probe.labels)


def as_dict(s: Scenario) -> dict:
    return asdict(s)
