"""The probe set a trainer callback embeds at every snapshot, and the one snapshot routine both callbacks share.

A probe set is a fixed handful of examples (a few hundred to a few thousand): the same rows at every step, so
the dashboard can follow them through training. Each has a second view (its positive), a label, a thumbnail
and metadata when you have them. `embed(model, inputs)` maps a batch of inputs to embeddings z (N×d), or to
(z, h) with h the backbone features before the projection head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from runformat import distributed as ddp

FLOAT32_MAX = float(np.finfo(np.float32).max)
Embed = Callable[[torch.nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class ProbeSet:
    inputs: Any  # a tensor with N rows, or a dict of such tensors (tokenised text)
    positives: Any = None  # the positive view of each row, same structure as inputs
    labels: Any = None  # N ints, or N strings (-> ints in sorted order + metadata "label")
    images: Any = None  # N×H×W, N×H×W×3 or N×1×H×W / N×3×H×W uint8 thumbnails
    positive_images: Any = None  # the positives' thumbnails, like images (shown beside them)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # column name -> N values (str or numbers)
    batch_size: int = 256  # rows embedded per forward pass

    def __post_init__(self):
        self.n = _rows(self.inputs, "inputs")
        if self.positives is not None and _rows(self.positives, "positives") != self.n:
            raise ValueError(f"positives: has {_rows(self.positives, 'positives')} rows but inputs has {self.n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be ≥ 1, got {self.batch_size}")
        self.images, self.positive_images = _channels_last(self.images), _channels_last(self.positive_images)
        if self.labels is not None:
            labels = np.asarray(self.labels.cpu() if isinstance(self.labels, torch.Tensor) else self.labels)
            if labels.dtype.kind in "US":  # names: the labels are their ranks, the names a metadata column
                names, codes = np.unique(labels, return_inverse=True)
                self.labels, self.metadata = codes.astype(np.int64), {"label": labels.astype(str), **self.metadata}


def _channels_last(images: Any) -> Any:
    """Thumbnails as the run format stores them: N×H×W (grey) or N×H×W×3. Torch's N×1×H×W / N×3×H×W (and
    N×H×W×1) are moved and squeezed; anything else is left for the writer to refuse with its message."""
    if images is None:
        return None
    images = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = np.moveaxis(images, 1, -1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return np.ascontiguousarray(images)


def default_embed(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
    """`model(inputs)` for a tensor, `model(**inputs)` for a dict of tensors (token ids and masks as keyword
    arguments, as Hugging Face models take them), when that returns the N×d embeddings; otherwise pass embed=."""
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    if isinstance(out, torch.Tensor) and out.dim() == 2:
        return out
    raise ValueError(
        f"embed: the model returned {type(out).__name__}, not an N×d tensor; pass "
        "embed=lambda model, x: ... returning embeddings, or (embeddings, backbone features)"
    )


def _rows(x: Any, argument: str) -> int:
    if isinstance(x, Mapping):
        sizes = {k: len(v) for k, v in x.items()}
        if not sizes or len(set(sizes.values())) != 1:
            raise ValueError(f"{argument}: a dict of tensors with the same number of rows, got {sizes}")
        return next(iter(sizes.values()))
    return len(x)


def _take(x: Any, rows: slice, device: torch.device) -> Any:
    if isinstance(x, Mapping):
        return {k: _take(v, rows, device) for k, v in x.items()}
    part = x[rows]
    return part.to(device) if isinstance(part, torch.Tensor) else part


def _embed_all(model, embed: Embed, inputs: Any, rows: range, batch_size: int, device) -> tuple:
    zs, hs = [], []
    for start in range(rows.start, rows.stop, batch_size):
        out = embed(model, _take(inputs, slice(start, min(start + batch_size, rows.stop)), device))
        z, h = out if isinstance(out, tuple) else (out, None)
        zs.append(z.detach().float().cpu())
        if h is not None:
            hs.append(h.detach().flatten(1).float().cpu())
    if not zs:
        return None, None
    return torch.cat(zs), (torch.cat(hs) if hs else None)


def _shard(values: Any, rows: range) -> Any:
    if values is None:
        return None
    return values[rows.start : rows.stop]


def log_probe_snapshot(
    writer, step: int, model: torch.nn.Module, probe: ProbeSet, embed: Embed, device: torch.device
) -> None:
    """Embed the probe set with the model in eval mode and no grad, and log it as the snapshot at `step`.

    Under torch.distributed every rank must call this: each embeds a contiguous share of the probe rows and
    RunWriter.log_snapshot gathers them to rank 0 in rank order (= the probe set's order), which alone writes.
    """
    share = np.array_split(np.arange(probe.n), ddp.world_size())[ddp.rank()]
    rows = range(int(share[0]), int(share[-1]) + 1) if len(share) else range(0)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z, h = _embed_all(model, embed, probe.inputs, rows, probe.batch_size, device)
            z_pos = None
            if probe.positives is not None:
                z_pos, _ = _embed_all(model, embed, probe.positives, rows, probe.batch_size, device)
    finally:
        model.train(was_training)
    if z is None:
        raise ValueError(f"probe: {probe.n} rows cannot give each of {ddp.world_size()} ranks a share")
    writer.log_snapshot(
        step,
        embeddings=z,
        positives=z_pos,
        features=h,
        labels=None if probe.labels is None else np.asarray(_shard(probe.labels, rows)),
        metadata={k: np.asarray(_shard(v, rows)) for k, v in probe.metadata.items()} or None,
        images=None if probe.images is None else np.asarray(_shard(probe.images, rows)),
        positive_images=None if probe.positive_images is None else np.asarray(_shard(probe.positive_images, rows)),
    )


def scalar_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of a trainer's metric dict that are single finite-or-not numbers (tensors included)."""
    out = {}
    for key, value in values.items():
        single = (
            value.dtype in (torch.float32, torch.float16, torch.bfloat16)
            if isinstance(value, torch.Tensor)
            else isinstance(value, (np.float32, np.float16))
        )
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and isinstance(key, str) and key:
            out[key] = float32_decimal(value) if single else float(value)
    return out


def float32_decimal(value: float) -> float:
    """A float32 value as the shortest decimal that reads back as it (0.2, not 0.20000000298), so a float32
    τ and a float64 τ = 0.2 are one value on an axis. Values float32 cannot hold (1e39) stay as they are."""
    value = float(value)
    if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
        return value
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value
