"""A caption-conditioned VAE whose conditioning encoder is trained contrastively (`model.kind = "cvae"`).

    image x ──encoder──> (μ, log σ²) ──z──┐
                          μ ──head──> z_img ╲  CLIP loss (λ = contrastive.weight; λ = 0 is the ablation)
    caption ──caption encoder──> z_txt ────╱
                                 └─ ĉ = z_txt/‖z_txt‖ ──┴──> decoder([z, ĉ]) ──> x̂

loss = reconstruction + kl_weight·KL + λ·CLIP. The decoder always reads the caption embedding (so the caption
encoder also learns from reconstruction); the contrastive term adds the pull of each caption toward its image.
Generation: z ~ N(0, I), ĉ from a caption, x̂ = decoder([z, ĉ]); training/generation.py scores the samples.
Snapshots: embeddings = z_img of the clean probe image, positives = z_img of its augmented view,
paired_embeddings = z_txt of its caption (modality_names image, caption), features = μ.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from runformat import caption_words
from runformat import distributed as ddp

from .captions import CAPTION_TOKENS, VOCAB, make_captions, tokenize
from .config import HeadConfig, ModelConfig, TrainConfig
from .data import PIXELS, SIDE, PairData, Probe, augment
from .generation import generation_metrics
from .models import AutoEncoder, projection_head
from .objectives import clip_loss
from .trainer import Trainer, gather_with_grad

GRID_SEED = 2024  # the same noise for every run's sample grid and generation metrics
SAMPLES_PER_CAPTION = 2  # generation metrics: draws per held-out caption


class CaptionData(PairData):
    """Digits with one generated caption each (training/captions.py); batches are (image view, caption tokens):
    the pair `PairData.sample_batch` returns is whatever `views` makes of the sampled rows."""

    def __init__(self, cfg, seed: int):
        super().__init__(cfg, seed)
        self.captions = make_captions(self.items.numpy(), self.labels)
        self.tokens = tokenize(self.captions)  # tokens: Nx4

    def views(self, rows: torch.Tensor, generator: torch.Generator, strength=None):
        """What `sample_batch` returns here: (augmented images Bx64, their caption tokens Bx4)."""
        x = augment(self.items[rows], self.cfg.augment_strength if strength is None else strength, generator)
        return x.reshape(len(rows), PIXELS), self.tokens[rows]

    def probe(self, seed: int) -> Probe:
        p = super().probe(seed)
        p.metadata["caption"] = self.captions[self.probe_rows]
        return p


class CaptionEncoder(nn.Module):
    """4 caption tokens -> token + position embeddings -> MLP -> out_dim (the conditioning embedding)."""

    def __init__(self, head: HeadConfig):
        super().__init__()
        self.token = nn.Embedding(len(VOCAB), head.width)
        self.position = nn.Parameter(torch.zeros(CAPTION_TOKENS, head.width))
        self.mlp = nn.Sequential(
            nn.Linear(CAPTION_TOKENS * head.width, head.width), nn.GELU(), nn.Linear(head.width, head.out_dim)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.token(tokens) + self.position  # e: Bx4xwidth
        return self.mlp(e.flatten(1))  # -> Bxout_dim


class CaptionVAE(nn.Module):
    def __init__(self, model: ModelConfig, head: HeadConfig):
        super().__init__()
        self.ae = AutoEncoder(model, condition_dim=head.out_dim)
        self.head_a = projection_head(model.latent_dim, head)
        self.caption = CaptionEncoder(head)
        self.latent_dim = model.latent_dim

    def condition(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.caption(tokens), dim=1)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> dict:
        z_txt = self.caption(tokens)
        recon, h, kl = self.ae(x, F.normalize(z_txt, dim=1))
        return {"recon": recon, "x": x, "h": h, "kl": kl, "z_a": self.head_a(h), "z_b": z_txt}

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One sample per caption: z ~ N(0, I) from `generator` (on the CPU, so every device draws the same)."""
        z = torch.randn(len(tokens), self.latent_dim, generator=generator).to(tokens.device)
        return self.ae.decode(z, self.condition(tokens))


def grid_captions() -> tuple[torch.Tensor, tuple[int, int]]:
    """Tokens of the sample grid: row = digit, column = (width, slant) over all 9 combinations. -> (90x4, shape)."""
    return tokenize(caption_words.grid_captions()), caption_words.grid_shape()


class CrossModalTrainer(Trainer):
    """Trainer for `model.kind = "cvae"`: batches are (images, caption tokens); the contrastive term is CLIP's."""

    def __init__(self, cfg: TrainConfig, device: torch.device, data: CaptionData):
        super().__init__(cfg, device)
        rows = np.array_split(data.probe_rows, ddp.world_size())[ddp.rank()]  # this rank's probe shard
        self.probe_tokens = data.tokens[rows].to(device)
        self.eval_tokens = data.tokens[data.eval_rows][: len(data.eval_images())].to(device)
        self.eval_labels = torch.as_tensor(data.labels[data.eval_rows][: len(self.eval_tokens)])

    def build_model(self) -> nn.Module:
        return CaptionVAE(self.cfg.model, self.cfg.head)

    def contrastive_loss(self, out: dict, tokens: torch.Tensor, tau, step: int):
        z_img, z_txt = gather_with_grad(out["z_a"].float()), gather_with_grad(out["z_b"].float())
        loss, logits, targets = clip_loss(z_img, z_txt, tau, return_logits=True)
        return loss, logits, targets, None, float(self.world), {}  # ×world: see Trainer.contrastive_loss

    @torch.no_grad()
    def embed(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict:
        self.model.eval()
        with self.autocast:
            h_a, _ = self.model.ae.encode(x_a)
            h_b, _ = self.model.ae.encode(x_b)
            z_a, z_b = self.model.head_a(h_a), self.model.head_a(h_b)
            z_txt = self.model.caption(self.probe_tokens)
        return {
            "embeddings": z_a.float(),
            "positives": z_b.float(),
            "features": h_a.float(),
            "paired_embeddings": z_txt.float(),
            "modality_names": ("image", "caption"),
        }

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor) -> dict:
        """Held-out reconstruction given the true caption, and the generation metrics on samples drawn for
        the held-out captions; writes the sample grid beside the run (rank 0)."""
        self.model.eval()
        with self.autocast:
            h, _ = self.model.ae.encode(images)
            recon = self.model.ae.decode(h, self.model.condition(self.eval_tokens)).float()
        mse = (recon - images).pow(2).mean().item()
        g = torch.Generator().manual_seed(GRID_SEED)
        asked = self.eval_tokens.repeat(SAMPLES_PER_CAPTION, 1)
        with self.autocast:
            samples = self.model.generate(asked, g).float()
        metrics = {
            "eval/recon_mse": mse,
            "eval/psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
            **generation_metrics(samples, self.eval_labels.repeat(SAMPLES_PER_CAPTION), images, self.eval_labels),
        }
        return metrics

    @torch.no_grad()
    def generated_grid(self) -> np.ndarray | None:
        """The sample grid for the Cross-modal page (rows × columns × H × W uint8; train() hands it to
        RunWriter.log_generated), generated on rank 0 only."""
        if not ddp.master_process():
            return None
        self.model.eval()
        tokens, (rows, cols) = grid_captions()
        with self.autocast:
            x = self.model.generate(tokens.to(self.device), torch.Generator().manual_seed(GRID_SEED)).float()
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().reshape(rows, cols, SIDE, SIDE)
