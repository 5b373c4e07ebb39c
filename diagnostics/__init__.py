"""ContrastScope diagnostics: read runs and compute what they show. No Streamlit in here."""

from runformat.reader import Run, RunFormatError, Snapshot, list_runs, open_run

__all__ = ["Run", "RunFormatError", "Snapshot", "list_runs", "open_run"]
