"""Typed training config: nested dataclasses, loaded from TOML or JSON, overridden with `--set a.b=v`,
validated before anything trains. `asdict(config)` is what the run records."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass
class DataConfig:
    kind: str = "digits"  # digits (8×8 sklearn digits, two augmented views) | sequences (moving patterns)
    augment_strength: float = 1.0  # scales shift, rotation, noise and intensity jitter of the views
    imbalance: float = 1.0  # largest/smallest class size; 1 = as bundled
    oversample: bool = False  # draw rare classes more often (sampling ∝ 1/class size)
    eval_fraction: float = 0.2  # held out for eval/recon_mse
    probe_size: int = 600  # fixed rows logged at every snapshot
    n_sequences: int = 1200  # sequences: clips generated
    frames: int = 8  # sequences: T frames per clip
    frame_noise: float = 0.05  # sequences: pixel noise std


@dataclass
class ModelConfig:
    kind: str = "ae"  # ae | vae | cvae (caption-conditioned VAE + caption encoder: crossmodal.py)
    hidden: int = 256
    latent_dim: int = 32
    kl_weight: float = 1.0  # VAE: weight on loss/kl


@dataclass
class HeadConfig:
    depth: int = 2  # linear layers in the projection head
    width: int = 128
    out_dim: int = 64
    norm: str = "batchnorm"  # batchnorm | layernorm | none
    dropout: float = 0.0
    sharing: str = "shared"  # shared: one head for both views | per_view: view A and view B heads
    output_batchnorm: bool = False  # BatchNorm1d(affine=False) on the output: blocks point collapse only


@dataclass
class ContrastiveConfig:
    objective: str = "nt_xent"  # nt_xent | moco | hard_negative | clip (image vs caption; model.kind = cvae)
    weight: float = 1.0  # λ after warm-up
    warmup_steps: int = 100  # λ(step) rises linearly from 0
    temperature: float = 0.1  # τ (initial τ when learnable or scheduled)
    temperature_mode: str = "fixed"  # fixed | learnable (log-parameterised, clamped) | step | entropy (steered)
    temperature_min: float = 0.01  # learnable: clamp, as CLIP clamps its logit scale at 100
    temperature_max: float = 1.0  # entropy: upper bound of τ
    target_entropy: float = 2.0  # entropy: target mean softmax entropy per anchor (nats)
    temperature_gain: float = 0.05  # entropy: log τ moves by gain·(target − entropy) per step
    temperature_step: int = 0  # step mode: τ becomes temperature_after at this step
    temperature_after: float = 0.1
    negatives_off_step: int = -1  # ≥ 0: from this step the loss keeps only the positive term (collapse demo)
    queue_size: int = 1024  # moco: K negatives
    momentum: float = 0.99  # moco: key encoder EMA
    beta: float = 1.0  # hard_negative: concentration on hard negatives (the final β when annealed)
    beta_schedule: str = "constant"  # hard_negative: constant | linear (β rises from beta_start over beta_anneal_steps)
    beta_start: float = 0.0
    beta_anneal_steps: int = 0
    tau_plus: float = 0.1  # hard_negative: class prior for debiasing
    hard_fraction: float = 1.0  # hard_negative: mix of hard-weighted (1) and uniform (0) negatives


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | constant (after warm-up)
    grad_clip: float = 0.0  # 0 = no clipping (grad_norm is logged either way)


@dataclass
class TrainConfig:
    description: str = "Contrastive autoencoder on digits."
    seed: int = 0
    steps: int = 600
    batch_size: int = 128
    snapshot_every: int = 50
    checkpoint_every: int = 200  # 0 = only at the end
    device: str = "auto"  # auto | cpu | cuda
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


CHOICES = {
    "device": {"auto", "cpu", "cuda"},
    "data.kind": {"digits", "sequences"},
    "model.kind": {"ae", "vae", "cvae"},
    "head.norm": {"batchnorm", "layernorm", "none"},
    "head.sharing": {"shared", "per_view"},
    "contrastive.objective": {"nt_xent", "moco", "hard_negative", "clip"},
    "contrastive.temperature_mode": {"fixed", "learnable", "step", "entropy"},
    "contrastive.beta_schedule": {"constant", "linear"},
    "optim.schedule": {"cosine", "constant"},
}
POSITIVE = {
    "steps",
    "batch_size",
    "snapshot_every",
    "data.probe_size",
    "data.n_sequences",
    "model.hidden",
    "model.latent_dim",
    "head.depth",
    "head.width",
    "head.out_dim",
    "contrastive.temperature",
    "contrastive.temperature_min",
    "contrastive.temperature_after",
    "contrastive.temperature_max",
    "contrastive.target_entropy",
    "contrastive.temperature_gain",
    "contrastive.queue_size",
    "optim.lr",
    "data.augment_strength",
}
NON_NEGATIVE = {
    "checkpoint_every",
    "contrastive.weight",
    "contrastive.warmup_steps",
    "contrastive.temperature_step",
    "contrastive.beta",
    "contrastive.beta_start",
    "contrastive.beta_anneal_steps",
    "model.kl_weight",
    "optim.weight_decay",
    "optim.warmup_steps",
    "optim.grad_clip",
    "data.frame_noise",
    "head.dropout",
}


def from_dict(d: Mapping[str, Any], cls=TrainConfig, prefix: str = ""):
    """Build `cls` from a nested dict, refusing unknown keys and wrong types (the message names the key)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in d.items():
        dotted = prefix + key
        if key not in names:
            raise ValueError(f"{dotted}: unknown config key (known: {', '.join(sorted(names))})")
        kwargs[key] = _typed(value, hints[key], dotted)
    return cls(**kwargs)


def _typed(value, hint, dotted: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(value, hint, dotted + ".")
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ValueError(f"{dotted}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def validate(cfg: TrainConfig, dataset_size: int | None = None) -> TrainConfig:
    """Refuse impossible settings. `dataset_size` (training rows) bounds the batch size when known."""
    flat = flatten(dataclasses.asdict(cfg))
    for key, allowed in CHOICES.items():
        if flat[key] not in allowed:
            raise ValueError(f"{key}: must be one of {sorted(allowed)}, got {flat[key]!r}")
    for key in POSITIVE:
        if not flat[key] > 0:
            raise ValueError(f"{key}: must be > 0, got {flat[key]}")
    for key in NON_NEGATIVE:
        if not flat[key] >= 0:
            raise ValueError(f"{key}: must be ≥ 0, got {flat[key]}")
    c = cfg.contrastive
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size: must be ≥ 2 so every anchor has a negative, got {cfg.batch_size}")
    if dataset_size is not None and cfg.batch_size > dataset_size:
        raise ValueError(f"batch_size: {cfg.batch_size} exceeds the {dataset_size} training rows")
    if not 0 < cfg.data.eval_fraction < 1:
        raise ValueError(f"data.eval_fraction: must be in (0, 1), got {cfg.data.eval_fraction}")
    if cfg.data.imbalance < 1:
        raise ValueError(f"data.imbalance: must be ≥ 1 (largest/smallest class), got {cfg.data.imbalance}")
    if cfg.data.frames < 2:
        raise ValueError(f"data.frames: must be ≥ 2 so adjacent frames exist, got {cfg.data.frames}")
    if not 0 <= cfg.head.dropout < 1:
        raise ValueError(f"head.dropout: must be in [0, 1), got {cfg.head.dropout}")
    if not 0 <= c.tau_plus < 1:
        raise ValueError(f"contrastive.tau_plus: must be in [0, 1), got {c.tau_plus}")
    if not 0 <= c.hard_fraction <= 1:
        raise ValueError(f"contrastive.hard_fraction: must be in [0, 1], got {c.hard_fraction}")
    if not 0 <= c.momentum < 1:
        raise ValueError(f"contrastive.momentum: must be in [0, 1), got {c.momentum}")
    if c.temperature_mode == "learnable" and c.temperature < c.temperature_min:
        raise ValueError(f"contrastive.temperature: {c.temperature} is below contrastive.temperature_min")
    if (cfg.model.kind == "cvae") != (c.objective == "clip"):
        raise ValueError(
            f"contrastive.objective: clip goes with model.kind = cvae and only with it, got "
            f"{c.objective!r} with {cfg.model.kind!r}"
        )
    if cfg.model.kind == "cvae" and cfg.data.kind != "digits":
        raise ValueError(f"data.kind: model.kind = cvae captions digits, got {cfg.data.kind!r}")
    if c.temperature_mode == "entropy" and not c.temperature_min <= c.temperature <= c.temperature_max:
        raise ValueError(f"contrastive.temperature: {c.temperature} is outside [temperature_min, temperature_max]")
    if c.objective == "moco" and c.queue_size < cfg.batch_size:
        raise ValueError(f"contrastive.queue_size: must be ≥ batch_size ({cfg.batch_size}), got {c.queue_size}")
    return cfg


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value`; the value is read as TOML (0.2, true, "x"), bare words fall back to strings."""
    if "=" not in item:
        raise ValueError(f"--set: expected key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def load_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config: no such file {path}")
        text = p.read_text(encoding="utf-8")
        try:
            d = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"config: {path} does not parse ({e})") from None
    for item in overrides:
        keys, value = parse_override(item)
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"{'.'.join(keys)}: {k} is not a table")
        node[keys[-1]] = value
    return validate(from_dict(d))


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
