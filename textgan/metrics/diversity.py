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
    """A 64-bit hash of each row: its bytes read as 64-bit words, a weighted sum with wrapping
    arithmetic. Equal rows hash alike; a collision is caught by the exact check after it."""
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(len(ids), -1)
    width = -(-raw.shape[1] // 8) * 8
    if width != raw.shape[1]:
        raw = np.pad(raw, ((0, 0), (0, width - raw.shape[1])))
    words = np.ascontiguousarray(raw).view(np.uint64)
    weights = np.random.default_rng(0x7E47).integers(1, 2**63, words.shape[1], dtype=np.uint64)
    return (words * (weights | np.uint64(1))).sum(axis=1, dtype=np.uint64)


class RowIndex:
    """Exact membership of rows in a large (memory-mapped) array, through sorted row hashes:
    build once (one pass over the array), then look up any number of row sets."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        hashes = np.concatenate(
            [
                _row_hashes(np.asarray(rows[s : s + CHUNK_ROWS]))
                for s in range(0, len(rows), CHUNK_ROWS)
            ]
            or [np.zeros(0, np.uint64)]
        )
        self.order = np.argsort(hashes)
        self.hashes = hashes[self.order]

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Whether each row of ``ids`` equals some row of the indexed array."""
        ids = np.atleast_2d(np.asarray(ids))
        if ids.shape[1] != self.rows.shape[1]:
            raise ValueError(
                f"rows of length {ids.shape[1]} against indexed rows of {self.rows.shape[1]}"
            )
        wanted = _row_hashes(ids.astype(self.rows.dtype))
        lo = np.searchsorted(self.hashes, wanted, side="left")
        hi = np.searchsorted(self.hashes, wanted, side="right")
        found = np.zeros(len(ids), dtype=bool)
        hit = np.flatnonzero(hi > lo)
        first = np.asarray(self.rows[self.order[lo[hit]]])
        same = np.all(first == ids[hit], axis=1)
        found[hit[same]] = True
        for i in hit[~same]:  # a hash collision (rare): check every row with that hash
            block = np.asarray(self.rows[np.sort(self.order[lo[i] : hi[i]])])
            found[i] = bool(np.any(np.all(block == ids[i], axis=1)))
        return found


def copy_rate(ids: np.ndarray, train: np.ndarray | RowIndex) -> float:
    """Share of rows of ``ids`` equal to some row of ``train`` (exact). Pass a ``RowIndex`` of
    the training rows to score several sets against the same millions of rows."""
    index = train if isinstance(train, RowIndex) else RowIndex(train)
    return float(index.contains(ids).mean())
