"""Storing: what the worker computed, kept beside each run under `<run>/.cache/`.

The versioned snapshot record (record), projection layouts and other derived entries (cache), and the keyed
seal that makes a derived file no more trusted than the data it came from. Everything under `.cache` is read
and written here, through the run's confined storage and the reader's size bounds.
"""
