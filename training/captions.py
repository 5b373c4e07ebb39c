"""Generated captions for the 8×8 digits: "a thick right-slanted seven", from the label and two measured
attributes, and the fixed vocabulary that turns a caption into token ids.

stroke width: ink mass (sum of intensities) of the image, in tertiles within its class: thin / regular / thick.
slant: the intensity-weighted shear −cov(column, row)/var(row) (positive leans right, "/"), in tertiles within
its class: left-slanted / upright / right-slanted. Tertiles within the class keep every caption word frequent
for every digit, so the words mean "thicker / more slanted than this digit usually is".
"""

from __future__ import annotations

import numpy as np
import torch

from runformat.caption_words import DIGIT_WORDS, SLANT_WORDS, WIDTH_WORDS

VOCAB = ("a",) + WIDTH_WORDS + SLANT_WORDS + DIGIT_WORDS
TOKEN_ID = {word: i for i, word in enumerate(VOCAB)}
CAPTION_TOKENS = 4  # "a", width, slant, digit


def stroke_width(images: np.ndarray) -> np.ndarray:
    """Ink mass per image. images: N×8×8 in [0, 1]."""
    return images.reshape(len(images), -1).sum(axis=1)


def slant(images: np.ndarray) -> np.ndarray:
    """−cov(col, row)/var(row) under the intensity distribution: how far the column moves right per row up."""
    n, h, w = images.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    mass = images.reshape(n, -1).astype(np.float64)
    p = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-12)  # p: N×64
    r, c = rows.ravel(), cols.ravel()
    mr, mc = p @ r, p @ c
    cov = p @ (r * c) - mr * mc
    var = np.maximum(p @ (r * r) - mr * mr, 1e-12)
    return -cov / var


def _tertile(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0, 1, 2 by tertile of `values` within each label."""
    out = np.zeros(len(values), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        lo, hi = np.quantile(values[rows], [1 / 3, 2 / 3])
        out[rows] = (values[rows] > lo).astype(np.int64) + (values[rows] > hi)
    return out


def caption_attributes(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(width level, slant level), each 0..2 per image."""
    return _tertile(stroke_width(images), labels), _tertile(slant(images), labels)


def caption(label: int, width: int, slant_level: int) -> str:
    return f"a {WIDTH_WORDS[width]} {SLANT_WORDS[slant_level]} {DIGIT_WORDS[label]}"


def tokenize(captions) -> torch.Tensor:
    """Captions -> N×4 token ids; a word outside the vocabulary is an error naming it."""
    ids = []
    for text in captions:
        words = str(text).split()
        unknown = [w for w in words if w not in TOKEN_ID]
        if unknown or len(words) != CAPTION_TOKENS:
            raise ValueError(f"caption {text!r}: needs {CAPTION_TOKENS} words from the vocabulary (unknown: {unknown})")
        ids.append([TOKEN_ID[w] for w in words])
    return torch.tensor(ids, dtype=torch.long).reshape(-1, CAPTION_TOKENS)


def make_captions(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One caption per image (numpy str array)."""
    width, slant_level = caption_attributes(images, labels)
    return np.array([caption(int(y), int(w), int(s)) for y, w, s in zip(labels, width, slant_level)])
