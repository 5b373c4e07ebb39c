"""A keyed seal (HMAC-SHA256) over derived files, with one secret key per runs root kept outside the served tree.

Derived files (records, run state, layouts) sit beside the runs, where anyone who can write the runs root can
also edit them; a plain sha256 stored beside the data only catches accidents, since an editor recomputes it.
The seal is an HMAC under a key that lives in the user's state folder, never in the root:

    $XDG_STATE_HOME/contrastscope/keys/<sha256(root)[:32]>.key   (else ~/.local/state/...; 32 random bytes, 0600)

created on first use by whichever process (worker, dashboard, CLI) needs it first; where that folder cannot be
written (a read-only home), in <tempdir>/contrastscope-<uid>/keys/ instead. Trust model (docs/run-format.md):
someone who can write the runs root but cannot read that key cannot make a derived file we accept; a file whose
seal does not verify is treated as absent and recomputed, never shown. Whoever can read the key (the user the
worker and the dashboard run as) is trusted, as they can run the engine anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from functools import lru_cache

from .bounds import RunFormatError
from .layout import Storage

STATE_ENV = "XDG_STATE_HOME"
KEY_BYTES = 32


class SealError(RunFormatError):
    """The root's key cannot be created or read; the message names the key file and what to do."""


class _Unwritable(SealError):
    """The key folder cannot be written (try the fallback)."""


def key_dir() -> str:
    base = os.environ.get(STATE_ENV) or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(os.path.abspath(base), "contrastscope", "keys")


def root_id(storage: Storage) -> str:
    """The identity a key belongs to: the resolved local path, or the URL of an object-store root."""
    return storage.display(storage.root) if storage.url else os.path.realpath(storage.root)


def seal(root: Storage | str, data: bytes) -> str:
    """The hex HMAC-SHA256 of `data` under `root`'s key (created on first use)."""
    return hmac.new(root_key(root), data, hashlib.sha256).hexdigest()


def verify(root: Storage | str, data: bytes, tag) -> bool:
    """True when `tag` is `seal(root, data)` (constant-time compare); False for anything else, a non-string too."""
    return isinstance(tag, str) and hmac.compare_digest(
        seal(root, data).encode(), tag.encode("utf-8", "surrogateescape")
    )


def fallback_dir() -> str:
    """Where keys go when key_dir() cannot be written (a read-only home): this user's folder in the temp dir."""
    return os.path.join(tempfile.gettempdir(), f"contrastscope-{os.getuid()}", "keys")


def root_key(root: Storage | str) -> bytes:
    """`root`'s 32-byte key, read from (or created in) key_dir(), else fallback_dir() when key_dir() cannot be
    written; SealError when neither is possible."""
    storage = root if isinstance(root, Storage) else Storage(str(root))
    ident = root_id(storage)
    local = None if storage.url else ident
    try:
        return _key(key_dir(), ident, local)
    except _Unwritable as first:
        try:
            return _key(fallback_dir(), ident, local)
        except SealError:
            raise first from None


@lru_cache(maxsize=256)
def _key(folder: str, ident: str, local_root: str | None) -> bytes:
    path = os.path.join(folder, hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".key")
    real = os.path.realpath(folder)
    if local_root is not None and (real == local_root or real.startswith(local_root.rstrip(os.sep) + os.sep)):
        raise SealError(
            f"{path}: the key folder lies inside the runs root {local_root}, where anyone who can "
            f"edit the runs could read it; set {STATE_ENV} to a folder outside it"
        )
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return _read_key(path)
    except OSError as e:
        raise _Unwritable(
            f"{path}: cannot create the runs root's key ({e.strerror or e}); set {STATE_ENV} to a "
            "writable folder outside the runs root"
        ) from None


def _read_key(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != KEY_BYTES or st.st_mode & 0o077 or st.st_uid != os.getuid():
            raise SealError(
                f"{path}: not a {KEY_BYTES}-byte key file of this user readable only by them; "
                "delete it (every derived file is then recomputed)"
            )
        return os.read(fd, KEY_BYTES)
    finally:
        os.close(fd)
