"""The run format on the ground floor: layout (every file and folder name), writer, reader, DDP gather.

`training/` and `diagnostics/` import this package; it imports neither. The writer needs numpy only (torch
only when it is handed tensors); the reader adds pandas. Both are loaded on first use, so
`from runformat import RunWriter` on a training node never imports the reader or pandas.
"""
from .layout import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "RunWriter", "RunFormatError", "RunFormatWarning", "ReadLimits", "Run", "Snapshot",
           "list_runs", "open_run", "unreadable_runs"]

_READER = ("RunFormatError", "RunFormatWarning", "ReadLimits", "Run", "Snapshot", "list_runs", "open_run",
           "unreadable_runs")


def __getattr__(name: str):
    if name == "RunWriter":
        from .writer import RunWriter

        return RunWriter
    if name in _READER:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'runformat' has no attribute {name!r}")
