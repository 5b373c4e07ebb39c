"""The on-disk run layout: the one module that knows file names, the format version and how bytes reach disk.

Both the writer (`runformat.writer.RunWriter`) and the reader (`runformat.reader`) go through here, so the layout
documented in docs/run-format.md lives in exactly one place.

    <root>/<run name>/
        run.json                   # atomically replaced: identity, status, heartbeat
        config.json                # atomically replaced once
        metrics.jsonl              # append-only, one complete JSON object per line
        snapshots/<step:010d>/     # one .npy file per field
        snapshots/<step:010d>.json # the sidecar, written last: it commits the folder beside it
        notes.md                   # team notes (dashboard); the writer never touches it
        writer.lock                # flocked by the one writer that owns the run; names it
        generated.npy              # optional: latest generated-sample grid, atomically replaced
        .cache/                    # diagnostics cache; derived, safe to delete
        .cache/run_state.json      # the run's verdict-ladder state for Home (diagnostics.judge.run_state)
        .cache/records/<step>-<key>/{record,numbers,groups}.json + arrays  # snapshot records (diagnostics.store.record)
        .cache/projections/<step>-<method>-<source>-<key>.npy  # 2-D projections (diagnostics.store.cache)

    <root>/.cache/worker.json      # the background worker's status (diagnostics.work.worker)
    <root>/.cache/requests/        # the pages' requests to it, one JSON file each

A root is a local folder or any fsspec URL (memory://, s3://bucket/runs).

Over 300 lines because it holds two things: the names (above Storage) and Storage, the byte I/O every name is
written and read through; Storage is the part to move into its own module when the tree is regrouped (#21).
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tempfile
import unicodedata
from typing import Callable

FORMAT_VERSION = 1

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SNAPSHOT_DIR = "snapshots"
NOTES_FILE = "notes.md"
LOCK_FILE = "writer.lock"
GENERATED_FILE = "generated.npy"  # a conditional generator's latest sample grid (uint8, see docs/run-format.md)
CACHE_DIR = ".cache"
RUN_STATE_FILE = "run_state.json"  # in CACHE_DIR: the worker's answer for Home, keyed by the records it read
SIDECAR_SUFFIX = ".json"  # snapshots/<step>.json beside the folder snapshots/<step>/ commits it
# In a run's CACHE_DIR: snapshot records (a folder per record holding these three files and .npy arrays) and
# projections (one .npy per layout).
RECORDS_DIR = "records"
RECORD_COMMIT_FILE, RECORD_NUMBERS_FILE, RECORD_GROUPS_FILE = "record.json", "numbers.json", "groups.json"
PROJECTIONS_DIR = "projections"
# In the runs root's CACHE_DIR: the background worker's status file and the folder of requests to it.
WORKER_STATUS_FILE = "worker.json"
REQUESTS_DIR = "requests"
# A heartbeat older than this means the writer is gone although it never said so (kill -9, lost node).
STALL_AFTER_S = 120.0
HEARTBEAT_EVERY_S = 10.0

RESERVED_METRIC_KEYS = ("step", "wall_time")
MAX_STEP = 2**63 - 1  # steps are stored as int64
# JSON has no NaN/Infinity; these strings stand for them in metrics.jsonl (see docs/run-format.md).
NONFINITE_TOKENS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

# The one list of a snapshot's array fields: name -> (allowed dtype kinds, allowed numbers of dimensions).
# reader.Snapshot's attributes and RunWriter.log_snapshot's arguments carry these names (tests/test_layout_names.py
# holds them to it); metadata columns (METADATA_PREFIX) are 1-D of any kind.
FIELD_SHAPES = {
    "embeddings": ("f", (2,)),
    "positives": ("f", (2,)),
    "features": ("f", (2,)),
    "labels": ("iub", (1,)),
    "images": ("u", (3, 4)),
    "paired_embeddings": ("f", (2,)),
    "positive_images": ("u", (3, 4)),
}
SNAPSHOT_ARRAY_FIELDS = tuple(FIELD_SHAPES)
# uint8 pictures of the samples: `images` those the embeddings were computed from, `positive_images` those of
# the positives (row i: the second view of sample i), so the dashboard can show an anchor beside its positive.
IMAGE_FIELDS = ("images", "positive_images")
# A second modality of the same N samples in the same d-dim space (a caption per image); the sidecar may name
# both modalities in "modality_names": [embeddings' modality, paired_embeddings' modality].
PAIRED_FIELD = "paired_embeddings"
METADATA_PREFIX = "meta."


def snapshot_dirname(step: int) -> str:
    return f"{step:010d}"


def snapshot_sidecar_name(step: int) -> str:
    """The sidecar's file name in SNAPSHOT_DIR: `run.file(SNAPSHOT_DIR, snapshot_sidecar_name(step))`."""
    return snapshot_dirname(step) + SIDECAR_SUFFIX


def parse_snapshot_sidecar_name(filename: str) -> int | None:
    stem, ext = os.path.splitext(filename)
    if ext != SIDECAR_SUFFIX or not 10 <= len(stem) <= 19 or not (stem.isascii() and stem.isdigit()):
        return None
    return int(stem) if snapshot_dirname(int(stem)) == stem else None  # one spelling per step


def validate_run_name(name: str, argument: str = "name") -> str:
    """A run name is one path component: it can never address anything outside the root, and it reads back the
    same on every file system and in every UI (no control or format characters, at most 255 UTF-8 bytes)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{argument}: a run name must be a non-empty string, got {name!r}")
    bad = [c for c in ("/", "\\", "\x00") if c in name]
    if bad or name in (".", "..") or name.startswith("."):
        raise ValueError(
            f"{argument}: run name {name!r} must be a single folder name "
            "(no path separators, no '..', not starting with '.')"
        )
    if len(name) > 200:
        raise ValueError(f"{argument}: run name is {len(name)} characters long; the limit is 200")
    # Cc: controls (newline, tab, DEL); Cf: format characters (bidi overrides); Cs: surrogates, which are
    # how Python spells a folder name that is not UTF-8; Zl/Zp: line and paragraph separators.
    odd = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    if odd:
        raise ValueError(
            f"{argument}: run name {name!r} contains control, format or non-UTF-8 characters "
            f"({', '.join(sorted({f'U+{ord(c):04X}' for c in odd}))})"
        )
    if not name.strip():
        raise ValueError(f"{argument}: run name {name!r} is only white space")
    if len(name.encode("utf-8")) > 255:
        raise ValueError(f"{argument}: run name is {len(name.encode('utf-8'))} bytes in UTF-8; file systems allow 255")
    return name


def printable_name(name: str) -> str:
    """A folder name as text anyone can read: undecodable bytes as \\xNN, control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def split_run_path(path: str) -> tuple[str, str]:
    path = str(path).rstrip("/").rstrip(os.sep)
    if is_url(path):
        root, _, name = path.rpartition("/")
        return root, name
    return os.path.dirname(os.path.abspath(path)), os.path.basename(os.path.abspath(path))


def encode_metric_value(value: float):
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def decode_metric_value(value):
    if isinstance(value, str):
        return NONFINITE_TOKENS.get(value, math.nan)
    return value


def is_url(root: str) -> bool:
    return "://" in str(root)


class Storage:
    """Bytes in and out of a local folder or an fsspec file system, with the write rules of the format.

    Local: non-append writes go to a temporary file in the same folder, are fsynced and renamed into place.
    Object stores: a PUT is already atomic, so a whole-object write is the same guarantee.
    """

    def __init__(self, root: str):
        self.url = is_url(root)
        if self.url:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(str(root))
            self.root = self.root.rstrip("/") or "/"
            self._protocol = str(root).split("://", 1)[0]
        else:
            self.fs = None
            self.root = os.path.abspath(os.fspath(root))
        self._real_root: str | None = None  # resolved on first use (confined)

    # -- paths --------------------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        if self.url:
            return "/".join([self.root.rstrip("/"), *parts])
        return os.path.join(self.root, *parts)

    def display(self, path: str) -> str:
        """The path as a user would type it (with its URL scheme), for error messages."""
        return f"{self._protocol}://{path.lstrip('/')}" if self.url else path

    def confined(self, path: str) -> bool:
        """True when `path` (after following symlinks) lies inside the root."""
        if self.url:
            norm = os.path.normpath(path)
            return norm == self.root or norm.startswith(self.root.rstrip("/") + "/")
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        real_root = self._real_root
        real = self._realpath(path)
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)

    def _realpath(self, path: str) -> str:
        """os.path.realpath(path), walking only the components below the root (resolved once per Storage: it
        was resolved again on every call, with every component of the path, ~2 realpaths per file read).
        Every component below the root is still checked on every call: one lstat each; a symlink among them,
        or an empty, "." or ".." component, sends the whole path through os.path.realpath."""
        prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep
        if not path.startswith(prefix):
            return os.path.realpath(path)
        below = path[len(prefix) :]  # as written: never normalised, so "link/.." cannot hide a symlink
        parts = below.split(os.sep)
        if any(part in ("", os.curdir, os.pardir) for part in parts):
            return os.path.realpath(path)
        where = self.root
        for part in parts:
            where = os.path.join(where, part)
            try:
                if stat.S_ISLNK(os.lstat(where).st_mode):
                    return os.path.realpath(path)
            except OSError:
                break  # missing or unreadable: realpath keeps the rest as written, and so do we
        return os.path.join(self._real_root, below)

    # -- queries ------------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.exists(path) if self.url else os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return self.fs.isdir(path) if self.url else os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        if self.url:
            try:
                return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False))
            except FileNotFoundError:
                return []
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    def size(self, path: str) -> int:
        return int(self.fs.size(path)) if self.url else os.path.getsize(path)

    def identity(self, path: str) -> tuple:
        """(path, size, mtime): changes whenever the file does; used as a cache key."""
        if self.url:
            info = self.fs.info(path)
            return (path, int(info.get("size", 0)), str(info.get("mtime", info.get("LastModified", ""))))
        st = os.stat(path)
        return (path, st.st_size, st.st_mtime_ns)

    # -- reads --------------------------------------------------------------------------------------
    def read_bytes(self, path: str, start: int = 0, size: int = -1) -> bytes:
        if self.url:
            with self.fs.open(path, "rb") as f:
                f.seek(start)
                return f.read(size)
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(size)

    def read_json(self, path: str):
        return json.loads(self.read_bytes(path).decode("utf-8"))

    # -- writes -------------------------------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        if self.url:
            self.fs.makedirs(path, exist_ok=True)
        else:
            os.makedirs(path, exist_ok=True)

    def write_atomic(self, path: str, write: Callable[[io.IOBase], None], mode: int | None = None) -> None:
        """Replace `path` atomically with what `write` writes; created 0666 & ~umask unless `mode` (0o600 for a
        secret) says otherwise."""
        if self.url:
            buf = io.BytesIO()
            write(buf)
            self.fs.pipe_file(path, buf.getvalue())
            return
        folder = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            os.fchmod(fd, 0o666 & ~_UMASK if mode is None else mode)  # mkstemp makes 0600: a teammate reads it
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(folder)

    def write_json_atomic(self, path: str, obj) -> None:
        data = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
        self.write_atomic(path, lambda f: f.write(data))

    def append(self, path: str, data: bytes) -> None:
        """Append whole lines. Locally: one write + fsync; a write that fails part-way (ENOSPC) is cut back to
        where it started, so no fragment of a line stays in the file. Object stores have no append: the object
        is rewritten whole, which a reader sees atomically."""
        if self.url:
            old = self.read_bytes(path) if self.fs.exists(path) else b""
            self.fs.pipe_file(path, old + data)
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, end)
                except OSError:
                    pass  # the writer ends the fragment with a newline before its next append
                raise
        finally:
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        if self.url:
            self.fs.pipe_file(path, self.read_bytes(path)[:size])
        else:
            with open(path, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())

    def remove_tree(self, path: str) -> None:
        if self.url:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
            return
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _process_umask() -> int:
    mask = os.umask(0o022)  # read it the only way POSIX allows, once at import (no thread writes yet)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
