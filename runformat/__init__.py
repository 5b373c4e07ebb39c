"""The run format on the ground floor: layout (every file and folder name), writer, reader, DDP gather.

`training/` and `diagnostics/` import this package; it imports neither. The writer needs numpy only (torch
only when it is handed tensors); the reader adds pandas. The public names have one path each:
`from contrastscope import RunWriter, open_run` for users, the modules (runformat.writer, runformat.reader)
inside the project. The reader's names load on first use here, so importing the package never imports pandas.
"""

from .layout import FORMAT_VERSION

__all__ = [
    "FORMAT_VERSION",
    "RunFormatError",
    "RunFormatWarning",
    "ReadLimits",
    "Run",
    "Snapshot",
    "list_runs",
    "open_run",
    "unreadable_runs",
]

_READER = (
    "RunFormatError",
    "RunFormatWarning",
    "ReadLimits",
    "Run",
    "Snapshot",
    "list_runs",
    "open_run",
    "unreadable_runs",
)


def __getattr__(name: str):
    if name in _READER:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'runformat' has no attribute {name!r}")
