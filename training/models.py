"""The generative component (an MLP autoencoder or VAE on 8×8 images) and the projection head that carries
the contrastive term from the encoder latent."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .config import HeadConfig, ModelConfig
from .data import PIXELS


class AutoEncoder(nn.Module):
    """x -> h (latent, the backbone feature) -> x̂. As a VAE the encoder gives (μ, log σ²), the decoder sees a
    sample z = μ + σ·ε while training, and h = μ is what the head and the snapshots see."""

    def __init__(self, cfg: ModelConfig, condition_dim: int = 0):
        super().__init__()
        self.variational = cfg.kind in ("vae", "cvae")
        out = 2 * cfg.latent_dim if self.variational else cfg.latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(PIXELS, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, out),
        )
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent_dim + condition_dim, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, PIXELS),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: Bx64 -> (h: Bxlatent, logvar or None)."""
        out = self.encoder(x)
        if not self.variational:
            return out, None
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """z: Bxlatent (and condition: Bxcondition_dim for a conditional decoder) -> Bx64."""
        return torch.sigmoid(self.decoder(z if condition is None else torch.cat([z, condition], dim=1)))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None):
        """-> (reconstruction, h, kl per sample or None)."""
        h, logvar = self.encode(x)
        if logvar is None:
            return self.decode(h, condition), h, None
        z = h + torch.randn_like(h) * (0.5 * logvar).exp() if self.training else h
        kl = 0.5 * (h.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)  # KL(q(z|x) ‖ N(0, I))
        return self.decode(z, condition), h, kl


def projection_head(in_dim: int, cfg: HeadConfig) -> nn.Sequential:
    """depth linear layers; between them norm -> ReLU -> dropout; the last layer is plain."""
    norms = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm, "none": lambda _: nn.Identity()}
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(cfg.depth - 1):
        layers += [nn.Linear(d, cfg.width), norms[cfg.norm](cfg.width), nn.ReLU()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        d = cfg.width
    layers.append(nn.Linear(d, cfg.out_dim))
    if cfg.output_batchnorm:
        layers.append(nn.BatchNorm1d(cfg.out_dim, affine=False))
    return nn.Sequential(*layers)


class ContrastiveAE(nn.Module):
    """Autoencoder + projection head(s). `sharing="per_view"` gives view B its own head (asymmetric views,
    e.g. frame t vs frame t+1); snapshots then show each head's output."""

    def __init__(self, model: ModelConfig, head: HeadConfig):
        super().__init__()
        self.ae = AutoEncoder(model)
        self.head_a = projection_head(model.latent_dim, head)
        self.head_b = projection_head(model.latent_dim, head) if head.sharing == "per_view" else None

    def project(self, h: torch.Tensor, view: str) -> torch.Tensor:
        head = self.head_b if view == "b" and self.head_b is not None else self.head_a
        return head(h)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor):
        """Both views in one pass (batchnorm sees 2B rows). -> dict of recon, h, kl, z_a, z_b."""
        B = x_a.shape[0]
        recon, h, kl = self.ae(torch.cat([x_a, x_b]))
        z_a = self.project(h[:B], "a")
        z_b = self.project(h[B:], "b")
        return {"recon": recon, "x": torch.cat([x_a, x_b]), "h": h, "kl": kl, "z_a": z_a, "z_b": z_b}


class MomentumEncoder(nn.Module):
    """MoCo's key encoder: an EMA copy of the query encoder and head, never trained by gradients."""

    def __init__(self, model: ContrastiveAE, momentum: float):
        super().__init__()
        self.m = momentum
        self.encoder = copy.deepcopy(model.ae.encoder).requires_grad_(False)
        self.variational = model.ae.variational
        src = model.head_b if model.head_b is not None else model.head_a
        self.head = copy.deepcopy(src).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: ContrastiveAE) -> None:
        src_head = model.head_b if model.head_b is not None else model.head_a
        for mine, theirs in ((self.encoder, model.ae.encoder), (self.head, src_head)):
            for p_k, p_q in zip(mine.parameters(), theirs.parameters()):
                p_k.mul_(self.m).add_(p_q.detach(), alpha=1 - self.m)
            for b_k, b_q in zip(mine.buffers(), theirs.buffers()):
                b_k.copy_(b_q)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if self.variational:
            h = h.chunk(2, dim=1)[0]
        return self.head(h)
