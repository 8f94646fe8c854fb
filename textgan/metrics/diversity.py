"""How varied samples are, and whether they are memorized training lines.

- **distinct-n**: the number of distinct n-grams over all samples divided by the number of
  n-grams, counting only windows inside each sample (trailing padding removed); 1 when no
  n-gram repeats, near 0 for a generator that says the same thing over and over.
- **unique-sample rate**: distinct samples / samples.
- **copy rate**: the share of samples equal to a line of the training split (both as sequences
  of the corpus's length: a sample equal to the first ``seq_len`` characters of a longer
  training line is a copy).
"""

from __future__ import annotations

import numpy as np

from textgan.metrics.lm import line_lengths
from textgan.metrics.ngrams import unique_counts, window_keys

CHUNK_ROWS = 1 << 20


def distinct_n(ids: np.ndarray, n: int, base: int) -> float:
    """Distinct n-grams / n-grams over the rows of ``ids`` (0 when there is no n-gram)."""
    keys = window_keys(ids, n, base)
    inside = np.arange(keys.shape[1])[None, :] <= (line_lengths(ids) - n)[:, None]
    keys = keys[inside]
    return len(unique_counts(keys)[0]) / len(keys) if len(keys) else 0.0


def unique_rate(ids: np.ndarray) -> float:
    """Distinct rows / rows."""
    ids = np.atleast_2d(np.asarray(ids))
    return len(np.unique(ids, axis=0)) / len(ids)


def _row_hashes(ids: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each row (wrapping arithmetic); equal rows, equal hashes."""
    weights = np.random.default_rng(0x7E47).integers(1, 2**63, size=ids.shape[1], dtype=np.uint64)
    weights |= np.uint64(1)
    return (ids.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def copy_rate(ids: np.ndarray, train: np.ndarray) -> float:
    """Share of rows of ``ids`` equal to some row of ``train`` (exact: hash matches are checked
    row by row). ``train`` may be a memory-mapped array of millions of rows."""
    ids = np.atleast_2d(np.asarray(ids))
    if ids.shape[1] != train.shape[1]:
        raise ValueError(f"rows of length {ids.shape[1]} against training rows of {train.shape[1]}")
    wanted = _row_hashes(ids)
    copied = np.zeros(len(ids), dtype=bool)
    for start in range(0, len(train), CHUNK_ROWS):
        chunk = np.asarray(train[start : start + CHUNK_ROWS])
        hashes = _row_hashes(chunk)
        order = np.argsort(hashes)
        sorted_hashes = hashes[order]
        lo = np.searchsorted(sorted_hashes, wanted)
        hit = np.flatnonzero(~copied & (lo < len(order)))
        hit = hit[sorted_hashes[lo[hit]] == wanted[hit]]
        same = np.all(chunk[order[lo[hit]]] == ids[hit], axis=1)
        copied[hit[same]] = True
        for i in hit[~same]:  # a hash collision (rare): check every row with that hash
            block = order[lo[i] : np.searchsorted(sorted_hashes, wanted[i], side="right")]
            copied[i] = bool(np.any(np.all(chunk[block] == ids[i], axis=1)))
    return float(copied.mean())
