"""The caption vocabulary of the caption-conditioned trainer (training/captions.py) and the layout of its
generated-sample grid (generated.npy, docs/run-format.md): rows are the digits, columns width × slant.

On the ground floor so the trainer that writes the grid and the dashboard that labels it read one list, and
the dashboard never imports training.
"""

from __future__ import annotations

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WIDTH_WORDS = ("thin", "regular", "thick")
SLANT_WORDS = ("left-slanted", "upright", "right-slanted")


def grid_captions() -> list[str]:
    """The caption of each cell of the generated-sample grid, row-major: "a <width> <slant> <digit>"."""
    return [f"a {w} {s} {d}" for d in DIGIT_WORDS for w in WIDTH_WORDS for s in SLANT_WORDS]


def grid_shape() -> tuple[int, int]:
    """(rows, columns) of the grid: one row per digit, one column per (width, slant)."""
    return len(DIGIT_WORDS), len(WIDTH_WORDS) * len(SLANT_WORDS)


def grid_labels() -> tuple[list[str], list[str]]:
    """(row labels, column labels) of the grid for display: the digits, and "<width> <slant's first word>"."""
    return list(DIGIT_WORDS), [f"{w} {s.split('-')[0]}" for w in WIDTH_WORDS for s in SLANT_WORDS]
