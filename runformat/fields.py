"""What a snapshot may hold and how each field is stored: argument checks and host copies (on the caller's
thread), the storage dtype rule and the DDP gather (on the writer thread). RunWriter (writer.py) uses these."""

from __future__ import annotations

import numbers
import sys
from typing import Any, Mapping

import numpy as np

from . import distributed as ddp
from . import layout

# A float field is stored in the narrowest of these in which it reads back faithfully: every finite value stays
# finite, and in every row and every column the largest rounding error is at most `rtol` times the largest
# magnitude there. float16 rounds a normal value within 2^-11 of itself and float32 within 2^-24, so a field at a
# sane scale always passes; one whose rows (or columns) sit in the subnormal range, where float16 flushes to zero
# (2000x16 N(0,1)*1e-8 embeddings: 99.7% of values became 0, relative error 0.99), does not, and neither does
# 1e39 in float32 (inf). tests/test_hostile.py holds these cases.
STORAGE_FLOATS = ((np.float16, 2.0**-10), (np.float32, 2.0**-23), (np.float64, 0.0))


def is_tensor(x) -> bool:
    """A torch.Tensor, without importing torch: if the caller never imported it, x cannot be one."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_number(value, argument: str) -> float:
    if is_tensor(value):
        if value.numel() != 1:
            raise ValueError(f"{argument}: must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{argument}: must be a single number, got an array of shape {value.shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{argument}: must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _shape(x) -> tuple:
    return tuple(x.shape)


def _is_array(x) -> bool:
    return is_tensor(x) or isinstance(x, np.ndarray)


def validate_images(embeddings, images, argument: str) -> dict:
    """{argument: images} when they are uint8 N×H×W or N×H×W×3 with the embeddings' N; {} when None."""
    if images is None:
        return {}
    img = images if _is_array(images) else np.asarray(images)
    ok_dtype = str(img.dtype) == "torch.uint8" if is_tensor(img) else img.dtype == np.uint8
    shape = _shape(img)
    if not ok_dtype or not (len(shape) == 3 or (len(shape) == 4 and shape[-1] == 3)) or 0 in shape[1:3]:
        raise ValueError(f"{argument}: must be uint8 N×H×W or N×H×W×3, got shape {shape} dtype {img.dtype}")
    if shape[0] != _shape(embeddings)[0]:
        raise ValueError(f"{argument}: has {shape[0]} rows but embeddings has {_shape(embeddings)[0]}")
    return {argument: img}


def validate_snapshot(embeddings, positives, features, labels, metadata, images) -> dict:
    if not _is_array(embeddings) or len(_shape(embeddings)) != 2 or _shape(embeddings)[0] < 1:
        raise ValueError(
            f"embeddings: must be an N×d tensor or array with N ≥ 1, got "
            f"{_shape(embeddings) if _is_array(embeddings) else type(embeddings).__name__}"
        )
    n, _ = _shape(embeddings)
    fields: dict[str, Any] = {"embeddings": embeddings}
    for argument, x in (("embeddings", embeddings), ("positives", positives), ("features", features)):
        if x is None:
            continue
        if not _is_array(x) or len(_shape(x)) != 2 or _shape(x)[1] < 1:
            raise ValueError(
                f"{argument}: must be a 2-D tensor or array with at least one column, got "
                f"{_shape(x) if _is_array(x) else type(x).__name__}"
            )
        if not (x.dtype.is_floating_point if is_tensor(x) else np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"{argument}: must have a float dtype, got {x.dtype}")
        if _shape(x)[0] != n:
            raise ValueError(f"{argument}: has {_shape(x)[0]} rows but embeddings has {n}")
        fields[argument] = x
    if positives is not None and _shape(positives) != _shape(embeddings):
        raise ValueError(f"positives: shape {_shape(positives)} differs from embeddings {_shape(embeddings)}")
    if labels is not None:
        lab = labels if _is_array(labels) else np.asarray(labels)
        integral = (
            (not lab.dtype.is_floating_point and lab.dtype != sys.modules["torch"].bool)
            if is_tensor(lab)
            else np.issubdtype(lab.dtype, np.integer)
        )
        if len(_shape(lab)) != 1 or not integral:
            raise ValueError(f"labels: must be a 1-D array of ints, got shape {_shape(lab)} dtype {lab.dtype}")
        if _shape(lab)[0] != n:
            raise ValueError(f"labels: has {_shape(lab)[0]} rows but embeddings has {n}")
        _check_int64(lab, "labels")
        fields["labels"] = lab
    fields.update(validate_images(embeddings, images, "images"))
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValueError("metadata: must be a dict of column name -> length-N column")
        cols = {}
        for col, values in metadata.items():
            if not isinstance(col, str) or not col:
                raise ValueError(f"metadata: column name {col!r} must be a non-empty string")
            arr = values.detach().cpu().numpy() if is_tensor(values) else np.asarray(values)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"metadata[{col!r}]: must be a 1-D column of {n} values, got shape {arr.shape}")
            if arr.dtype.kind in "OSU":
                arr = arr.astype(str)
            elif arr.dtype.kind not in "biuf":
                raise ValueError(f"metadata[{col!r}]: values must be str or numbers, got dtype {arr.dtype}")
            _check_int64(arr, f"metadata[{col!r}]")
            cols[col] = arr
        fields["metadata"] = cols
    return fields


def _check_int64(x, argument: str) -> None:
    """uint64 values past 2^63 would wrap when stored as int64."""
    if str(x.dtype).endswith("uint64") and len(x) and int(x.max()) > layout.MAX_STEP:
        raise ValueError(f"{argument}: values up to {int(x.max())} do not fit int64")


def validate_paired(embeddings, paired, modality_names) -> dict:
    """paired_embeddings: the second modality, N×d like embeddings (same rows, same space), any float dtype."""
    if paired is None:
        if modality_names is not None:
            raise ValueError("modality_names: only meaningful with paired_embeddings")
        return {}
    if not _is_array(paired) or _shape(paired) != _shape(embeddings):
        raise ValueError(
            f"paired_embeddings: must be an array of the embeddings' shape {_shape(embeddings)}, got "
            f"{_shape(paired) if _is_array(paired) else type(paired).__name__}"
        )
    if not (paired.dtype.is_floating_point if is_tensor(paired) else np.issubdtype(paired.dtype, np.floating)):
        raise ValueError(f"paired_embeddings: must have a float dtype, got {paired.dtype}")
    out = {layout.PAIRED_FIELD: paired}
    if modality_names is not None:
        names = list(modality_names) if isinstance(modality_names, (list, tuple)) else None
        if names is None or len(names) != 2 or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"modality_names: must be two non-empty strings, got {modality_names!r}")
        out["modality_names"] = names
    return out


def to_host(x):
    """Detach and copy to host on the caller's thread so later in-place updates cannot leak into the file.
    Dtype conversion (bf16 has no numpy dtype) happens later, on the writer thread."""
    if is_tensor(x):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: np.array(v, copy=True) for k, v in x.items()}
    return np.array(x, copy=True)


def encode_field(name: str, x) -> tuple[np.ndarray, dict]:
    if is_tensor(x):
        source = str(x.dtype).replace("torch.", "")
        x = (x.float() if source in ("bfloat16", "float16") else x).numpy()
    else:
        source = str(x.dtype)
    spec: dict[str, Any] = {"source_dtype": source, "shape": list(x.shape)}
    if x.dtype.kind == "f":
        x = x.astype(next(t for t, rtol in STORAGE_FLOATS if _round_trips(x, t, rtol)), copy=False)
        # counted on what is stored, so the sidecar describes the file
        spec["nonfinite_rows"] = int((~np.isfinite(x).reshape(len(x), -1).all(axis=1)).sum()) if x.size else 0
    elif name == "labels" or x.dtype.kind in "iub" and name not in layout.IMAGE_FIELDS:
        x = x.astype(np.int64)
    spec["dtype"] = str(x.dtype) if x.dtype.kind != "U" else "str"
    return np.ascontiguousarray(x), spec


def _round_trips(x: np.ndarray, dtype, rtol: float, block: int = 1 << 21) -> bool:
    """Whether x stored as `dtype` reads back faithfully (the rule above STORAGE_FLOATS). x is 1-D (one column)
    or N x d; checked in blocks of rows, in x's own precision (the rounding error of a narrower float is exact
    there), so the copies stay small."""
    if np.dtype(dtype).itemsize >= x.dtype.itemsize:
        return True  # exact
    x2 = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, 1)
    col_err, col_max = np.zeros(x2.shape[1], x.dtype), np.zeros(x2.shape[1], x.dtype)
    step = max(1, block // max(1, x2.shape[1]))
    for start in range(0, len(x2), step):
        a = x2[start : start + step]
        finite = np.isfinite(a)
        if not finite.all():  # non-finite values store as themselves: judge the finite ones
            a = np.where(finite, a, 0)
        with np.errstate(over="ignore"):
            back = a.astype(dtype).astype(a.dtype)
        if np.isinf(back).any():
            return False  # overflow: a finite value would be stored as inf
        err, mag = np.abs(back - a), np.abs(a)
        if (err.max(axis=1) > rtol * mag.max(axis=1)).any():
            return False
        np.maximum(col_err, err.max(axis=0), out=col_err)
        np.maximum(col_max, mag.max(axis=0), out=col_max)
    return bool((col_err <= rtol * col_max).all())


def gather_fields(fields: dict) -> dict | None:
    import torch  # only under torch.distributed, where torch is loaded already

    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "modality_names":  # the same on every rank: not rows
            out[key] = value
        elif key == "metadata":
            cols = {}
            for col, arr in value.items():
                cols[col] = (
                    ddp.gather_strings(arr)
                    if arr.dtype.kind == "U"
                    else ddp.gather_rows(torch.from_numpy(np.ascontiguousarray(arr)))
                )
            out[key] = cols
        else:
            t = value if is_tensor(value) else torch.from_numpy(np.ascontiguousarray(value))
            out[key] = ddp.gather_rows(t)
    if not ddp.master_process():
        return None
    if "metadata" in out:
        out["metadata"] = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in out["metadata"].items()}
    return out
