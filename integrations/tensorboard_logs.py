"""Reading a TensorBoard run's folder: event files (scalars, the hparams session end) and the projector's
embeddings (tensors.tsv, metadata.tsv, sprite), checked as they are read; every failure is a TensorBoardLogError
whose one-line message names the file. integrations.tensorboard_import turns what is read into runs.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from integrations.probe import float32_decimal
from runformat import layout

EVENT_FILE = re.compile(r"events\.out\.tfevents\.")
PROJECTOR_CONFIG = "projector_config.pbtxt"
LABEL_COLUMNS = ("label", "labels", "class", "target")  # an all-integer metadata column by this name is the label
POSITIVES_SUFFIX = "/positives"  # the projector tag of an embedding's positives: `<tag>/positives`
# A sprite holds N thumbnails; beyond this many pixels it is refused before decoding (PIL's own bomb limit is
# 89M pixels; 64M is 8000², a 1000-row probe set of 250² thumbnails).
MAX_SPRITE_PIXELS = 64_000_000
# hparams SessionEndInfo.status (tensorboard/plugins/hparams/api.proto): 1 success, 2 failure, 3 running, 4 aborted
SESSION_STATUS = {1: "finished", 2: "crashed", 3: "running", 4: "crashed"}


class TensorBoardLogError(ValueError):
    """A TensorBoard file that cannot be imported; the message (one line) names it."""

    def __init__(self, message: str):
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass
class Embedding:
    step: int
    tag: str
    vectors: np.ndarray  # N×d float32
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    images: np.ndarray | None = None  # N×H×W(×3) uint8
    positives: np.ndarray | None = None  # N×d float32: the `<tag>/positives` embedding


@dataclass
class TensorBoardRun:
    path: Path
    scalars: dict[int, dict[str, float]]  # step -> tag -> value
    embeddings: list[Embedding]
    wall_times: dict[int, float] = field(default_factory=dict)  # step -> Unix seconds of its last scalar event
    status: str | None = None  # from the hparams session end; None: no end marker


def find_runs(logdir: Path) -> list[Path]:
    found = [
        Path(d)
        for d, _, files in os.walk(logdir)
        if PROJECTOR_CONFIG in files or any(EVENT_FILE.match(f) for f in files)
    ]
    return sorted(found)


# -- scalars ------------------------------------------------------------------------------------------


def _records(path: Path, partial_ok: bool):
    """The TFRecord payloads of an event file: length (u64), its masked crc32c, payload, its crc. A length past
    the file's end is a torn tail (a writer mid-record: skipped when `partial_ok`) or a corrupt length field."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    size = path.stat().st_size
    with open(path, "rb") as f:
        n = 0
        while True:
            offset = f.tell()
            header = f.read(12)
            if not header:
                return
            if len(header) == 12:
                length, length_crc = struct.unpack("<QI", header)
                if masked_crc32c(header[:8]) != length_crc:
                    raise TensorBoardLogError(
                        f"{path}: corrupt or truncated record after {n} events (bad length checksum)"
                    )
                if offset + 16 + length <= size:
                    payload, crc = f.read(length), f.read(4)
                    if struct.unpack("<I", crc)[0] != masked_crc32c(payload):
                        raise TensorBoardLogError(
                            f"{path}: corrupt or truncated record after {n} events (bad data checksum)"
                        )
                    n += 1
                    yield n, payload
                    continue
                if length > size:
                    raise TensorBoardLogError(
                        f"{path}: record {n + 1} declares {length} bytes, more than the "
                        f"file's {size}: corrupt length field"
                    )
            if partial_ok:
                return
            raise TensorBoardLogError(
                f"{path}: truncated record after {n} events; if training is still writing "
                "it, import once it has finished, or follow it (--follow)"
            )


def read_scalars(run_dir: Path, partial_ok: bool = False) -> tuple[dict, dict, str | None]:
    """(step -> tag -> value, step -> wall time of the event that last wrote a scalar of that step, the status
    of the hparams session end, None without one)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    scalars: dict[int, dict[str, float]] = {}
    wall_times: dict[int, float] = {}
    status = None
    for path in sorted(p for p in run_dir.iterdir() if EVENT_FILE.match(p.name) and p.is_file()):
        for n, record in _records(path, partial_ok):
            try:
                event = event_pb2.Event.FromString(record)
            except Exception as e:  # a record whose checksum passed but whose bytes are not an Event
                raise TensorBoardLogError(f"{path}: record {n} is not a TensorBoard event ({e})") from None
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "hparams" and value.tag == "_hparams_/session_end_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    status = SESSION_STATUS.get(data.session_end_info.status, status)
                    continue
                if value.HasField("simple_value"):
                    number = float32_decimal(value.simple_value)  # float32 in the log: its shortest decimal
                elif value.HasField("tensor") and plugin == "scalars":
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size != 1:
                        continue
                    number = float(array.reshape(()))  # float64 kept as float64 (1e39 is not inf)
                    if array.dtype != np.float64:
                        number = float32_decimal(number)
                else:
                    continue  # histograms, images, text: not metrics
                if not value.tag:
                    raise TensorBoardLogError(f"{path}: event {n} has a scalar with an empty tag")
                if not 0 <= event.step <= layout.MAX_STEP:
                    raise TensorBoardLogError(f"{path}: event {n} has step {event.step}, not in [0, 2^63)")
                if not (math.isfinite(event.wall_time) and event.wall_time >= 0):
                    raise TensorBoardLogError(f"{path}: event {n} has wall time {event.wall_time}, not Unix seconds")
                tag = value.tag if value.tag not in layout.RESERVED_METRIC_KEYS else f"tb/{value.tag}"
                scalars.setdefault(int(event.step), {})[tag] = number  # a later write of a step wins (restarts)
                wall_times[int(event.step)] = float(event.wall_time)
    return scalars, wall_times, status


# -- projector ----------------------------------------------------------------------------------------


def read_projector(run_dir: Path) -> list[Embedding]:
    config_path = run_dir / PROJECTOR_CONFIG
    if not config_path.is_file():
        return []
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    try:
        config = text_format.Parse(config_path.read_text(encoding="utf-8"), ProjectorConfig())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise TensorBoardLogError(f"{config_path}: not a projector config ({e})") from None
    embeddings = []
    for info in config.embeddings:
        tag, _, step_text = info.tensor_name.rpartition(":")
        if not step_text.isdigit():  # written by other tools: the step is the folder SummaryWriter names it by
            folder = Path(info.tensor_path).parts[0] if info.tensor_path else ""
            tag, step_text = info.tensor_name, folder if folder.isdigit() else "0"
        if not info.tensor_path:
            raise TensorBoardLogError(f"{config_path}: embedding {info.tensor_name!r} has no tensor_path")
        vectors = _read_tensors(_inside(run_dir, info.tensor_path, config_path))
        e = Embedding(step=int(step_text), tag=tag or "default", vectors=vectors)
        if info.metadata_path:
            e.metadata = _read_metadata(_inside(run_dir, info.metadata_path, config_path), len(vectors))
            e.labels = _labels_from(e.metadata)
        if info.sprite.image_path:
            e.images = _read_sprite(
                _inside(run_dir, info.sprite.image_path, config_path), tuple(info.sprite.single_image_dim), len(vectors)
            )
        embeddings.append(e)
    return embeddings


def _inside(run_dir: Path, relative: str, config_path: Path) -> Path:
    """A path from the config, refused if it leaves the TensorBoard run's folder."""
    path = (run_dir / relative).resolve()
    if not path.is_relative_to(run_dir.resolve()):
        raise TensorBoardLogError(f"{config_path}: {relative!r} points outside {run_dir}; refused")
    if not path.is_file():
        raise TensorBoardLogError(f"{path}: missing (named in {config_path})")
    return path


def _read_tensors(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise TensorBoardLogError(f"{path}: no vectors")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise TensorBoardLogError(f"{path}: line {i + 1} has {len(row)} values, line 1 has {width}")
    try:
        return np.array(rows, dtype=np.float32)
    except ValueError as e:
        raise TensorBoardLogError(f"{path}: not tab-separated numbers ({e})") from None


def _read_metadata(path: Path, n: int) -> dict[str, np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) == n and lines and "\t" not in lines[0]:  # TensorBoard's rule: one column has no header line
        header, body = ["label"], lines
    elif lines:
        header, body = lines[0].split("\t"), lines[1:]
    else:
        header, body = [], []
    if len(body) != n:
        raise TensorBoardLogError(f"{path}: {len(body)} rows for {n} vectors")
    rows = [line.split("\t") for line in body]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise TensorBoardLogError(
                f"{path}: line {i + 1 + (body is not lines)} has {len(row)} columns, the header has {len(header)}"
            )
    return {
        name or f"column{i}": _typed(np.array(column, dtype=str))
        for i, (name, column) in enumerate(zip(header, zip(*rows)))
    }


def _typed(values: np.ndarray) -> np.ndarray:
    for dtype in (np.int64, np.float64):
        try:
            return values.astype(dtype)
        except ValueError:
            pass
    return values


def _labels_from(metadata: dict[str, np.ndarray]) -> np.ndarray | None:
    for name, values in metadata.items():
        if name.lower() in LABEL_COLUMNS and values.dtype == np.int64:
            return values
    return None


def _read_sprite(path: Path, single_image_dim: tuple, n: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise TensorBoardLogError(f"{path}: reading sprite thumbnails needs Pillow (pip install pillow)") from None
    if len(single_image_dim) != 2 or min(single_image_dim) < 1:
        raise TensorBoardLogError(f"{path}: the config's single_image_dim {list(single_image_dim)} is not [w, h]")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_SPRITE_PIXELS:
                raise TensorBoardLogError(
                    f"{path}: {im.width}×{im.height} pixels, more than the "
                    f"{MAX_SPRITE_PIXELS} a sprite may have; refused before decoding"
                )
            sprite = np.asarray(im.convert("RGB"))
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        if isinstance(e, TensorBoardLogError):
            raise
        raise TensorBoardLogError(f"{path}: not a readable image ({e})") from None
    w, h = single_image_dim
    per_row = math.ceil(math.sqrt(n))  # the projector's layout: a square grid, row-major
    if sprite.shape[0] < math.ceil(n / per_row) * h or sprite.shape[1] < per_row * w:
        raise TensorBoardLogError(
            f"{path}: {sprite.shape[1]}×{sprite.shape[0]} pixels cannot hold {n} "
            f"thumbnails of {w}×{h} in rows of {per_row}"
        )
    tiles = np.stack(
        [
            sprite[(i // per_row) * h : (i // per_row + 1) * h, (i % per_row) * w : (i % per_row + 1) * w]
            for i in range(n)
        ]
    )
    grey = (tiles[..., 0] == tiles[..., 1]).all() and (tiles[..., 1] == tiles[..., 2]).all()
    return np.ascontiguousarray(tiles[..., 0] if grey else tiles)


def _paired(embeddings: list[Embedding], config_path: Path) -> list[Embedding]:
    """Each `<tag>/positives` embedding becomes the positives of `<tag>`'s embedding at its step."""
    anchors = {(e.step, e.tag): e for e in embeddings if not e.tag.endswith(POSITIVES_SUFFIX)}
    for e in embeddings:
        if e.tag.endswith(POSITIVES_SUFFIX):
            anchor = anchors.get((e.step, e.tag[: -len(POSITIVES_SUFFIX)]))
            if anchor is None or anchor.vectors.shape != e.vectors.shape:
                raise TensorBoardLogError(
                    f"{config_path}: {e.tag!r} at step {e.step} has no embedding "
                    f"{e.tag[: -len(POSITIVES_SUFFIX)]!r} of its shape {e.vectors.shape}"
                )
            anchor.positives = e.vectors
    return list(anchors.values())


def read_run(d: Path, partial_ok: bool = False) -> TensorBoardRun:
    scalars, wall_times, status = read_scalars(d, partial_ok)
    embeddings = _paired(read_projector(d), d / PROJECTOR_CONFIG)
    steps = [(e.tag, e.step) for e in embeddings]
    if len(set(steps)) != len(steps):
        raise TensorBoardLogError(f"{d / PROJECTOR_CONFIG}: two embeddings of one tag at the same step")
    return TensorBoardRun(d, scalars, embeddings, wall_times, status)
