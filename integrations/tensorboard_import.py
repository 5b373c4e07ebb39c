"""`contrastscope import tensorboard LOGDIR --runs DIR [--follow]`: TensorBoard logs become ContrastScope runs.

Every folder under LOGDIR holding event files or a projector_config.pbtxt is one TensorBoard run and becomes one
run (named prefix + its path under LOGDIR, `/` -> `-`). Scalars become metrics (a tag is the metric name); each
projector embedding (tensors.tsv, metadata.tsv with its columns, the sprite's thumbnails) becomes the snapshot
at its step, and an embedding tagged `<tag>/positives` at the same step is the positives of `<tag>`'s rows. A run
with several embedding tags becomes one run per tag (`<run>-<tag>`): a snapshot holds one embedding matrix.

Every TensorBoard run is read and checked before anything is written, so a bad file stops the import with a
one-line error naming it and leaves the runs root as it was. Importing again appends what is new (metrics after
the run's last step, snapshots after its last snapshot): an import that stopped half-way is finished by a retry,
and `follow` re-reads a log while training writes it. Steps, values and wall times are TensorBoard's: a step's
metrics record carries the wall time of the last event that wrote one of its scalars (a later write of a step
wins, as for its values), a snapshot the wall time of the last scalar event at or before its step. The status
is the log's: the hparams plugin's session end (torch's add_hparams writes one) says finished or crashed; a log
without one imports as `running` with its last event as the heartbeat, so it shows `stalled` once that is older
than stall_after_s, unless `finished=True` (`--finished`) says it ended.
"""

from __future__ import annotations

import time
from pathlib import Path

from integrations.tensorboard_logs import (
    PROJECTOR_CONFIG,
    Embedding,
    TensorBoardLogError,  # noqa: F401
    TensorBoardRun,
    find_runs,
    read_run,
)
from runformat import layout
from runformat.writer import RunWriter

FOLLOW_EVERY_S = 10.0


def _run_names(logdir: Path, run: TensorBoardRun, prefix: str) -> list[tuple[str, list[Embedding]]]:
    relative = run.path.relative_to(logdir)
    base = prefix + ("-".join(relative.parts) if relative.parts else logdir.resolve().name)
    tags = sorted({e.tag for e in run.embeddings})
    named = (
        [(base, run.embeddings)]
        if len(tags) <= 1
        else [(f"{base}-{tag.replace('/', '-')}", [e for e in run.embeddings if e.tag == tag]) for tag in tags]
    )
    for name, _ in named:
        try:
            layout.validate_run_name(name)
        except ValueError as e:
            raise TensorBoardLogError(f"{str(run.path)!r}: its path cannot name a run ({e})") from None
    return named


def import_logdir(
    logdir: str, runs_root: str, prefix: str = "tb-", finished: bool = False, partial_ok: bool = False
) -> list[str]:
    """Import every TensorBoard run under logdir into runs_root, appending to runs an earlier import wrote;
    return the names of the runs written. `partial_ok`: a torn last record (a log being written) is left for
    the next import instead of refused."""
    root = Path(logdir)
    if not root.is_dir():
        raise TensorBoardLogError(f"{logdir}: not a folder")
    runs = [read_run(d, partial_ok) for d in find_runs(root)]
    if not runs:
        raise TensorBoardLogError(
            f"{logdir}: no TensorBoard event files (events.out.tfevents.*) or {PROJECTOR_CONFIG} found"
        )
    plan = [(name, run, embeddings) for run in runs for name, embeddings in _run_names(root, run, prefix)]
    storage = layout.Storage(runs_root)
    for name, run, _ in plan:  # an existing run of that name must be this log's earlier import
        if storage.exists(storage.join(name, layout.RUN_FILE)):
            config = _config_of(storage, name)
            if (
                config.get("source") != "tensorboard"
                or config.get("tensorboard_run") != _relative(root, run)
                or config.get("logdir") != str(root.resolve())
            ):
                raise FileExistsError(
                    f"{runs_root}: already has a run {name} that is not an import of "
                    f"{run.path}; remove it or pass another --prefix"
                )
    for name, run, embeddings in plan:
        _write(storage, runs_root, name, root, run, embeddings, finished)
    return [name for name, _, _ in plan]


def follow(
    logdir: str,
    runs_root: str,
    prefix: str = "tb-",
    every_s: float = FOLLOW_EVERY_S,
    rounds: int | None = None,
    say=print,
) -> None:
    """Import `logdir` again every `every_s` seconds while training writes it (`--follow`), until every run's
    log has ended (an hparams session end) or `rounds` imports ran; Ctrl-C stops it, the runs as they are."""
    done = 0
    while rounds is None or done < rounds:
        names = import_logdir(logdir, runs_root, prefix, partial_ok=True)
        done += 1
        say(f"{time.strftime('%H:%M:%S')} imported {', '.join(names)}")
        storage = layout.Storage(runs_root)
        if all(storage.read_json(storage.join(n, layout.RUN_FILE)).get("status") != "running" for n in names):
            return
        time.sleep(every_s)


def _relative(root: Path, run: TensorBoardRun) -> str:
    return str(run.path.relative_to(root)) or "."


def _config_of(storage: layout.Storage, name: str) -> dict:
    try:
        config = storage.read_json(storage.join(name, layout.CONFIG_FILE))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _write(
    storage, runs_root: str, name: str, root: Path, run: TensorBoardRun, embeddings: list[Embedding], finished: bool
) -> None:
    """Append what the run lacks: metrics after its last step, snapshots after its last snapshot."""
    config = {"source": "tensorboard", "logdir": str(root.resolve()), "tensorboard_run": _relative(root, run)}
    exists = storage.exists(storage.join(name, layout.RUN_FILE))
    writer = RunWriter(runs_root, name, config=config, resume=exists, handle_sigterm=False)
    try:
        last_metrics = writer.last_metrics_step if exists else -1
        for step in sorted(s for s in run.scalars if s > last_metrics):
            writer.log_metrics(step, run.scalars[step], wall_time=run.wall_times.get(step))
        times = sorted(run.wall_times.items())
        for e in sorted((e for e in embeddings if e.step > writer.last_snapshot_step), key=lambda e: e.step):
            before = [t for s, t in times if s <= e.step]
            writer.log_snapshot(
                e.step,
                embeddings=e.vectors,
                positives=e.positives,
                labels=e.labels,
                images=e.images,
                metadata=e.metadata or None,
                wall_time=before[-1] if before else None,
            )
    except BaseException as exc:
        writer.__exit__(type(exc), exc, None)
        raise
    status = run.status or ("finished" if finished else "running")
    last_event = max(run.wall_times.values(), default=None)
    writer.close(
        status,
        "the TensorBoard hparams session ended with a failure" if status == "crashed" else None,
        heartbeat=last_event,
    )
