"""ContrastScope training backend. `RunWriter` is the public API for any training loop."""
from runformat.writer import RunWriter

__all__ = ["RunWriter"]
