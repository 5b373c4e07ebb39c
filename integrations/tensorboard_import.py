"""`contrastscope import tensorboard LOGDIR --runs DIR`: TensorBoard logs become ContrastScope runs.

Every folder under LOGDIR holding event files or a projector_config.pbtxt is one TensorBoard run and becomes one
run (named prefix + its path under LOGDIR, `/` -> `-`). Scalars become metrics (a tag is the metric name); each
projector embedding (tensors.tsv, metadata.tsv with its columns, the sprite's thumbnails) becomes the snapshot
at its step. A run with several embedding tags becomes one run per tag (`<run>-<tag>`): a snapshot holds one
embedding matrix. Everything is read and checked before anything is written, so a bad file stops the import
with an error naming it and leaves the runs root as it was.

Steps, values and wall times are TensorBoard's: a step's metrics record carries the wall time of the last event
that wrote one of its scalars (a later write of a step wins, as for its values).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runformat import layout
from runformat.writer import RunWriter

EVENT_FILE = re.compile(r"events\.out\.tfevents\.")
PROJECTOR_CONFIG = "projector_config.pbtxt"
LABEL_COLUMNS = ("label", "labels", "class", "target")  # an all-integer metadata column by this name is the label


class TensorBoardLogError(ValueError):
    """A TensorBoard file that cannot be imported; the message names it."""


@dataclass
class Embedding:
    step: int
    tag: str
    vectors: np.ndarray                                   # N×d float32
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    images: np.ndarray | None = None                      # N×H×W(×3) uint8


@dataclass
class TensorBoardRun:
    path: Path
    scalars: dict[int, dict[str, float]]                  # step -> tag -> value
    embeddings: list[Embedding]
    wall_times: dict[int, float] = field(default_factory=dict)  # step -> Unix seconds of its last scalar event


def find_runs(logdir: Path) -> list[Path]:
    found = [Path(d) for d, _, files in os.walk(logdir)
             if PROJECTOR_CONFIG in files or any(EVENT_FILE.match(f) for f in files)]
    return sorted(found)


# -- scalars ------------------------------------------------------------------------------------------

def read_scalars(run_dir: Path) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
    """(step -> tag -> value, step -> wall time of the event that last wrote a scalar of that step)."""
    from tensorboard.backend.event_processing.event_file_loader import _make_tf_record_iterator
    from tensorboard.compat import tf
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    scalars: dict[int, dict[str, float]] = {}
    wall_times: dict[int, float] = {}
    for path in sorted(p for p in run_dir.iterdir() if EVENT_FILE.match(p.name) and p.is_file()):
        records = _make_tf_record_iterator(str(path))
        n = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except tf.errors.DataLossError as e:
                raise TensorBoardLogError(f"{path}: corrupt or truncated record after {n} events ({e}); "
                                          "if training is still writing it, import once it has finished") from None
            try:
                event = event_pb2.Event.FromString(record)
            except Exception as e:  # a record whose checksum passed but whose bytes are not an Event
                raise TensorBoardLogError(f"{path}: record {n} is not a TensorBoard event ({e})") from None
            n += 1
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = float(value.simple_value)
                elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    array = tensor_util.make_ndarray(value.tensor)
                    if array.size != 1:
                        continue
                    number = float(array.reshape(()))
                else:
                    continue  # histograms, images, text: not metrics
                tag = value.tag if value.tag not in layout.RESERVED_METRIC_KEYS else f"tb/{value.tag}"
                scalars.setdefault(int(event.step), {})[tag] = number  # a later write of a step wins (restarts)
                if not (math.isfinite(event.wall_time) and event.wall_time >= 0):
                    raise TensorBoardLogError(f"{path}: event {n} has wall time {event.wall_time}, not Unix seconds")
                wall_times[int(event.step)] = float(event.wall_time)
    return scalars, wall_times


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
            e.images = _read_sprite(_inside(run_dir, info.sprite.image_path, config_path),
                                    tuple(info.sprite.single_image_dim), len(vectors))
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
            raise TensorBoardLogError(f"{path}: line {i + 1 + (body is not lines)} has {len(row)} columns, "
                                      f"the header has {len(header)}")
    return {name or f"column{i}": _typed(np.array(column, dtype=str))
            for i, (name, column) in enumerate(zip(header, zip(*rows)))}


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
            sprite = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise TensorBoardLogError(f"{path}: not a readable image ({e})") from None
    w, h = single_image_dim
    per_row = math.ceil(math.sqrt(n))  # the projector's layout: a square grid, row-major
    if sprite.shape[0] < math.ceil(n / per_row) * h or sprite.shape[1] < per_row * w:
        raise TensorBoardLogError(f"{path}: {sprite.shape[1]}×{sprite.shape[0]} pixels cannot hold {n} "
                                  f"thumbnails of {w}×{h} in rows of {per_row}")
    tiles = np.stack([sprite[(i // per_row) * h:(i // per_row + 1) * h, (i % per_row) * w:(i % per_row + 1) * w]
                      for i in range(n)])
    grey = (tiles[..., 0] == tiles[..., 1]).all() and (tiles[..., 1] == tiles[..., 2]).all()
    return np.ascontiguousarray(tiles[..., 0] if grey else tiles)


# -- import -------------------------------------------------------------------------------------------

def _run_names(logdir: Path, run: TensorBoardRun, prefix: str) -> list[tuple[str, list[Embedding]]]:
    relative = run.path.relative_to(logdir)
    base = prefix + ("-".join(relative.parts) if relative.parts else logdir.resolve().name)
    tags = sorted({e.tag for e in run.embeddings})
    if len(tags) <= 1:
        return [(base, run.embeddings)]
    return [(f"{base}-{tag.replace('/', '-')}", [e for e in run.embeddings if e.tag == tag]) for tag in tags]


def import_logdir(logdir: str, runs_root: str, prefix: str = "tb-") -> list[str]:
    """Import every TensorBoard run under logdir into runs_root; return the names of the runs written."""
    root = Path(logdir)
    if not root.is_dir():
        raise TensorBoardLogError(f"{logdir}: not a folder")
    runs = []
    for d in find_runs(root):
        scalars, wall_times = read_scalars(d)
        runs.append(TensorBoardRun(d, scalars, read_projector(d), wall_times))
    if not runs:
        raise TensorBoardLogError(f"{logdir}: no TensorBoard event files (events.out.tfevents.*) or "
                                  f"{PROJECTOR_CONFIG} found")
    plan = [(name, run, embeddings) for run in runs for name, embeddings in _run_names(root, run, prefix)]
    storage = layout.Storage(runs_root)
    existing = [name for name, _, _ in plan
                if storage.exists(storage.join(layout.validate_run_name(name), layout.RUN_FILE))]
    if existing:
        raise FileExistsError(f"{runs_root}: already has run(s) {', '.join(existing)}; remove them or pass "
                              "another --prefix")
    for name, run, embeddings in plan:
        steps = [e.step for e in embeddings]
        if len(set(steps)) != len(steps):
            raise TensorBoardLogError(f"{run.path / PROJECTOR_CONFIG}: two embeddings of one tag at the same step")
    for name, run, embeddings in plan:
        config = {"source": "tensorboard", "logdir": str(logdir),
                  "tensorboard_run": str(run.path.relative_to(root)) or "."}
        with RunWriter(runs_root, name, config=config, handle_sigterm=False) as writer:
            for step in sorted(run.scalars):
                writer.log_metrics(step, run.scalars[step], wall_time=run.wall_times.get(step))
            for e in sorted(embeddings, key=lambda e: e.step):
                writer.log_snapshot(e.step, embeddings=e.vectors, labels=e.labels, images=e.images,
                                    metadata=e.metadata or None)
    return [name for name, _, _ in plan]
