"""word_known: the share of the samples' words that occur in the training text.

A word is a maximal run of ids between separators: the space, PAD, and the ends of the row. A
row that fills the whole sequence length was usually cut there, so its last run is left out
unless a space ends it (on both sides: the training lines are cut the same way, and a cut
"gove" must count neither as a known nor as an unknown word). A character outside the
vocabulary is UNK on both sides and matches any other UNK.

Words are compared by a 64-bit FNV-1a hash of their ids: a million distinct training words
make a false match about 1 in 10¹³ per word, far below anything the share can show.
"""

from __future__ import annotations

import numpy as np

from textgan.metrics.ngrams import NgramCounts, add_part, merge_counts, unique_counts
from textgan.vocab import PAD, UNK, Vocab

SPACE = 0x20  # the space: its code point in a character vocabulary, its byte in a byte one
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
CHUNK_ROWS = 1 << 20
HASH_IDS = 1 << 64  # a word's hash is one symbol of an alphabet of 2⁶⁴


def space_id(vocab: Vocab) -> int | None:
    """The id of the space in ``vocab``, None when it has none (a line is then one word)."""
    found = int(vocab.codes_to_ids(np.array([SPACE]))[0])
    return None if found == UNK else found


def word_hashes(ids: np.ndarray, space: int | None) -> np.ndarray:
    """The hash of every word of the rows of ``ids`` (module docstring)."""
    ids = np.atleast_2d(np.asarray(ids))
    hashes = np.full(len(ids), FNV_OFFSET)
    inside = np.zeros(len(ids), dtype=bool)  # a word is open at this column
    words = []
    for column in ids.T.astype(np.uint64):
        ends = column == PAD if space is None else (column == PAD) | (column == space)
        words.append(hashes[ends & inside])
        hashes = np.where(ends, FNV_OFFSET, (hashes ^ column) * FNV_PRIME)
        inside = ~ends
    return np.concatenate(words) if words else np.zeros(0, np.uint64)


def word_counts(rows: np.ndarray, space: int | None) -> NgramCounts:
    """How often each word (by hash) occurs in the rows of a (memory-mapped) id array: the
    word-unigram distribution, as 1-grams over the hash alphabet."""
    parts: list = []
    for s in range(0, len(rows), CHUNK_ROWS):
        parts = add_part(
            parts, unique_counts(word_hashes(np.asarray(rows[s : s + CHUNK_ROWS]), space))
        )
    keys, counts = merge_counts(parts) if parts else (np.zeros(0, np.uint64), np.zeros(0, np.int64))
    return NgramCounts(1, HASH_IDS, keys, counts)


class KnownWords:
    """The words of the rows of a (memory-mapped) id array: their counts, and the distinct
    ones as sorted hashes."""

    def __init__(self, rows: np.ndarray, space: int | None) -> None:
        self.space = space
        self.counts = word_counts(rows, space)
        self.hashes = self.counts.keys

    def share(self, ids: np.ndarray) -> float | None:
        """Share of the words of ``ids`` that are known; None when ``ids`` hold no word."""
        words = word_hashes(ids, self.space)
        if len(words) == 0:
            return None
        if len(self.hashes) == 0:
            return 0.0
        pos = np.minimum(np.searchsorted(self.hashes, words), len(self.hashes) - 1)
        return float(np.mean(self.hashes[pos] == words))
