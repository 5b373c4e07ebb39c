"""ContrastScope: write contrastive-training runs to disk and diagnose them.

    from contrastscope import RunWriter                 # numpy only: safe on a training node
    from contrastscope import open_run, list_runs       # the reader (adds pandas)

Names load on first use, so importing the writer never imports the reader, pandas or torch.
"""

from ._namespace import module as _module

__all__ = ["RunWriter", "open_run", "list_runs", "Run", "Snapshot", "RunFormatError", "__version__"]

_READER = ("open_run", "list_runs", "Run", "Snapshot", "RunFormatError")


def __getattr__(name: str):
    if name == "RunWriter":
        return _module("runformat.writer").RunWriter
    if name in _READER:
        return getattr(_module("runformat.reader"), name)
    if name == "__version__":
        from ._version import version

        return version()
    raise AttributeError(f"module 'contrastscope' has no attribute {name!r}")
