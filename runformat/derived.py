"""Derived files: everything under a `.cache` folder (a run's <run>/.cache/, the root's <root>/.cache/) is read,
written, listed and removed only through `DerivedFiles`.

We write these files, but they sit where anyone who can write the runs root can replace them, so they are read
as warily as run files (runformat.bounds) and confined more narrowly than run files are:
  - a path must resolve inside its own .cache folder, and that folder must be no symlink: `.cache` linked to
    another folder (or another run's cache), or a link inside it leading anywhere, is a DerivedFileError naming
    it; nothing is read, written or created through it;
  - only regular files are read (a FIFO, a device, /dev/zero: refused before a read could block or never end),
    and the size is checked against the caller's bound before a byte is read (a 1 TB sparse layout costs a stat);
  - `remove` deletes only names the project writes (patterns the caller states), never a folder's other files.
Measured failures this guards against (issue 24): a symlinked .cache/requests made the worker delete a victim
folder's *.json; record.json linked to /dev/zero or a sparse 1 TB layout stopped measurement of every run.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat

import numpy as np

from . import bounds, layout
from .bounds import RunFormatError
from .layout import Storage

READ_CHUNK = 1 << 20


class DerivedFileError(RunFormatError):
    """A derived file is not one we may read or write (outside its .cache, not a regular file, over its bound)."""


class DerivedFiles:
    """One .cache folder: `DerivedFiles.of_run(run)` or `DerivedFiles.of_root(storage)`."""

    def __init__(self, storage: Storage, folder: str):
        self.storage, self.folder = storage, folder
        self._real: str | None = None

    @classmethod
    def of_run(cls, run) -> DerivedFiles:
        return cls(run.storage, run.file(layout.CACHE_DIR))  # run.file: inside the runs root, or RunFormatError

    @classmethod
    def of_root(cls, storage: Storage) -> DerivedFiles:
        return cls(storage, storage.join(layout.CACHE_DIR))

    # -- paths --------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """The path of `parts` (plain names, no separators or dots) under the folder, checked to stay there."""
        for part in parts:
            if not isinstance(part, str) or not part or part in (".", "..") or any(c in part for c in "/\\\x00"):
                raise DerivedFileError(f"{self.display()}: {part!r} is not a plain file name")
        path = "/".join([self.folder, *parts]) if self.storage.url else os.path.join(self.folder, *parts)
        self._confine(path)
        return path

    def display(self, path: str | None = None) -> str:
        return self.storage.display(path or self.folder)

    def _confine(self, path: str) -> None:
        if self.storage.url:
            return  # object stores have no links; names are plain (checked above)
        if self._real is None:  # where the folder must be: its own name in its parent, the parent resolved
            parent, name = os.path.split(self.folder)
            self._real = os.path.join(os.path.realpath(parent), name)
        real = os.path.realpath(path)
        if not (real == self._real or real.startswith(self._real + os.sep)) or (
            real == self._real and os.path.islink(self.folder)
        ):
            raise DerivedFileError(
                f"{self.display(path)}: resolves to {real}, outside {self._real} (a symlink); "
                "derived files are never read or written through links"
            )

    # -- reads --------------------------------------------------------------------------------------
    def read(self, *parts: str, limit: int, what: str) -> bytes | None:
        """The bytes of a regular file of at most `limit` bytes; None when it does not exist. Anything else (a
        link, a FIFO, a device, too big, unreadable) is a DerivedFileError naming the file."""
        path = self.path(*parts)
        where = self.display(path)
        if self.storage.url:
            try:
                size = self.storage.size(path)
            except FileNotFoundError:
                return None
            if size > limit:
                raise DerivedFileError(f"{where}: {size:,} bytes; a {what} may have at most {limit:,}")
            return self.storage.read_bytes(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            why = "a symlink" if e.errno == errno.ELOOP else (e.strerror or str(e))
            raise DerivedFileError(f"{where}: cannot be read ({why})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise DerivedFileError(f"{where}: not a regular file")
            if st.st_size > limit:
                raise DerivedFileError(f"{where}: {st.st_size:,} bytes; a {what} may have at most {limit:,}")
            chunks, left = [], limit + 1  # a file growing under us still stops at its bound
            while left > 0:
                chunk = os.read(fd, min(READ_CHUNK, left))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as e:
            raise DerivedFileError(f"{where}: cannot be read ({e.strerror or e})") from None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > limit:
            raise DerivedFileError(f"{where}: grew past {limit:,} bytes while read; a {what} may not")
        return data

    def read_json(self, *parts: str, limit: int, what: str):
        """A JSON value under the reader's depth bound (runformat.bounds.parse_json); None when missing."""
        data = self.read(*parts, limit=limit, what=what)
        return None if data is None else bounds.parse_json(data, self.display(self.path(*parts)))

    def read_array(self, *parts: str, shape: tuple, dtype: str, what: str) -> np.ndarray | None:
        """A .npy of exactly `shape` and `dtype` (no pickles), read whole into memory (no mmap can outlive
        it); None when missing, DerivedFileError when it is anything else."""
        data = self.read(*parts, limit=npy_bytes(shape, dtype), what=what)
        return None if data is None else array_from(data, shape, dtype, self.display(self.path(*parts)))

    def listdir(self, *parts: str) -> list[str]:
        """Names in a folder under this one (sorted); [] when it does not exist."""
        return self.storage.listdir(self.path(*parts) if parts else self.check())

    def check(self) -> str:
        """The folder itself, when it is no link (DerivedFileError otherwise): for whole-cache operations."""
        self._confine(self.folder)
        return self.folder

    # -- writes -------------------------------------------------------------------------------------
    def write(self, *parts: str, data: bytes) -> None:
        """Write a file atomically (temp file + rename; one PUT on object stores), making its folders. OSError
        (a full disk, a read-only root) and DerivedFileError (a link on the way) pass to the caller."""
        path = self.path(*parts)
        parent = path.rsplit("/", 1)[0] if self.storage.url else os.path.dirname(path)
        self.storage.makedirs(parent)
        self._confine(path)  # a link swapped in while the folders were made
        self.storage.write_atomic(path, lambda f: f.write(data))

    def write_json(self, *parts: str, obj) -> None:
        """`write` of a JSON value, spelled as Storage.write_json_atomic spells it (no NaN)."""
        self.write(*parts, data=json.dumps(obj, indent=1, sort_keys=True, allow_nan=False).encode("utf-8"))

    def remove(self, *parts: str, own: re.Pattern, inside: re.Pattern | None = None) -> None:
        """Delete a file, or a folder of files, that the project wrote: the last name must match `own`; in a
        folder only entries matching `inside` are deleted, and the folder only when that empties it. A link is
        unlinked, never followed. Missing is fine; anything else the caller may catch as OSError."""
        if not own.fullmatch(parts[-1]):
            raise DerivedFileError(f"{self.display()}: {parts[-1]!r} is not a file the project writes; kept")
        path = self.path(*parts[:-1]) if len(parts) > 1 else self.folder
        path = "/".join([path, parts[-1]]) if self.storage.url else os.path.join(path, parts[-1])
        if self.storage.url:
            if self.storage.exists(path):
                self.storage.fs.rm(path, recursive=inside is not None)
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return
        if inside is None:
            raise DerivedFileError(f"{self.display(path)}: a folder where the project writes a file; kept")
        self._confine(path)
        for name in os.listdir(path):
            if inside.fullmatch(name) and not stat.S_ISDIR(os.lstat(os.path.join(path, name)).st_mode):
                os.unlink(os.path.join(path, name))
        try:
            os.rmdir(path)
        except OSError:
            pass  # something we did not write is in it: kept


# -- arrays -----------------------------------------------------------------------------------------


def npy_bytes(shape, dtype: str) -> int:
    """The largest .npy of this shape and dtype numpy writes: its header bound plus the body."""
    count = 1
    for s in shape:
        count *= int(s)
    return bounds.NPY_HEAD_BYTES + count * np.dtype(dtype).itemsize


def npy_encode(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def array_from(data: bytes, shape, dtype: str, where: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, EOFError, ...
        raise DerivedFileError(f"{where}: not a readable .npy ({type(e).__name__})") from None
    if not isinstance(arr, np.ndarray) or list(arr.shape) != list(shape) or str(arr.dtype) != dtype:
        raise DerivedFileError(f"{where}: not the {dtype} {tuple(shape)} array expected")
    return arr


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    """The one byte spelling of a JSON value that seals and hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def digest(*parts) -> str:
    """A 24-hex key of JSON-able parts (a derived file's name holds it)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def snapshot_key(run, step: int) -> tuple[str, int]:
    """(content key, number of rows) of a committed snapshot: what everything derived from it is keyed by. A
    committed snapshot never changes, so its sidecar's bytes (step, wall time, shapes, dtypes) and its array
    files' sizes identify it. The sidecar is read under the reader's size bound and checked by
    `run.snapshot_info`, so a hostile sidecar is a RunFormatError naming it; KeyError when the step is not
    committed."""
    sidecar_path = run.file(layout.SNAPSHOT_DIR, layout.snapshot_sidecar_name(step))
    try:
        sidecar = bounds.read_limited(run.storage, sidecar_path, run.limits.sidecar_bytes, "snapshot sidecar")
    except FileNotFoundError:
        raise KeyError(f"{run.name}: no committed snapshot at step {step}") from None
    info = run.snapshot_info(step)
    folder = (layout.SNAPSHOT_DIR, layout.snapshot_dirname(step))
    sizes = {}
    for name, spec in sorted(info["fields"].items()):
        path = run.file(*folder, spec.get("file") or f"{name}.npy")
        sizes[name] = run.storage.size(path) if run.storage.exists(path) else -1
    return digest(sha256(sidecar), sizes), int(info.get("n", -1))
