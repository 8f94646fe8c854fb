"""Counts of every contiguous n-gram of an ``(N, L)`` id array, without a loop over n-grams.

An n-gram of ids ``(a_1, .., a_n)`` over a vocabulary of ``V`` ids is packed into one integer,
its base-``V`` positional key ``sum_j a_j V^(n-j)`` (uint64), so a multiset of n-grams is a
sorted key array with counts and counting is sorting or ``np.bincount``. Padding ids are ordinary
ids here: every window of every row is counted, padding included, as in the reference
evaluation of Gulrajani et al. (2017).

Large arrays (a 10-million-line training split) are counted in chunks of rows. Up to n = 4
over at most 256 ids, one pass sorts each chunk's 4-grams packed into uint32 and derives the
shorter n-grams from them. Otherwise each order takes a pass: every distinct (n-1)-gram gets a
compact code (its rank) and an n-gram is indexed by ``code(prefix) * V + last id``, a range small
enough for ``np.bincount`` in the usual case, with a sort-based fallback when it is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MAX_ORDER = 8  # 8-grams over up to 256 ids still fit a uint64 key
# Largest index range counted with a dense bincount (8 bytes per bin, twice while adding).
DENSE_LIMIT = 1 << 26
CHUNK_ROWS = 1 << 19
MERGE_EVERY = 8  # chunk results held before they are merged


def check_order(n: int, base: int) -> None:
    """Raise ValueError unless n-grams of order ``n`` over ``base`` ids fit a uint64 key."""
    if not 1 <= n <= MAX_ORDER:
        raise ValueError(f"n-gram order must be in 1..{MAX_ORDER}, got {n}")
    if base < 1 or base**n > 1 << 64:
        raise ValueError(f"{n}-grams over {base} ids do not fit a 64-bit key")


def largest_base(n: int) -> int:
    """The most ids whose n-grams still fit a uint64 key (256 for n = 8)."""
    base = int(2 ** (64 / n))  # a float estimate, corrected to the exact integer below
    while base**n > 1 << 64:
        base -= 1
    while (base + 1) ** n <= 1 << 64:
        base += 1
    return base


def window_keys(ids: np.ndarray, n: int, base: int) -> np.ndarray:
    """``(N, L - n + 1)`` uint64 keys of every window of ``n`` consecutive ids of each row."""
    ids = np.atleast_2d(np.asarray(ids))
    check_order(n, base)
    rows, width = ids.shape
    if width < n:
        return np.empty((rows, 0), dtype=np.uint64)
    span = width - n + 1
    keys = ids[:, :span].astype(np.uint64)
    for j in range(1, n):
        keys *= np.uint64(base)
        keys += ids[:, j : j + span].astype(np.uint64)
    return keys


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of ``keys`` and how often each occurs (int64)."""
    flat = np.sort(keys, axis=None)
    if flat.size == 0:
        return flat, np.zeros(0, dtype=np.int64)
    first = np.empty(flat.size, dtype=bool)
    first[0] = True
    np.not_equal(flat[1:], flat[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, flat.size)).astype(np.int64)
    return flat[starts], counts


@dataclass(frozen=True)
class NgramCounts:
    """A multiset of n-grams: sorted distinct keys and their positive counts."""

    n: int
    base: int
    keys: np.ndarray
    counts: np.ndarray
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", int(self.counts.sum()))

    @classmethod
    def from_ids(cls, ids: np.ndarray, n: int, base: int) -> NgramCounts:
        """Counts of every window of ``n`` ids of every row (padding included)."""
        keys, counts = unique_counts(window_keys(ids, n, base))
        return cls(n, base, keys, counts)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Count of each key (0 where absent), same shape as ``keys``."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(self.keys) == 0:
            return np.zeros(keys.shape, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.counts[pos], 0)

    def ngrams(self) -> np.ndarray:
        """``(U, n)`` ids of the distinct n-grams, in key order."""
        out = np.empty((len(self.keys), self.n), dtype=np.int64)
        rest = self.keys.copy()
        for j in range(self.n - 1, -1, -1):
            out[:, j] = (rest % np.uint64(self.base)).astype(np.int64)
            rest //= np.uint64(self.base)
        return out


class _Level:
    """The distinct n-grams of one order as sorted dense indices; a gram's code is its rank."""

    def __init__(self, present: np.ndarray, size: int) -> None:
        self.present = present
        self.table = None
        if size <= DENSE_LIMIT:
            self.table = np.full(size, -1, dtype=np.int64)
            self.table[present] = np.arange(len(present))

    def codes(self, index: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return self.table[index]
        return np.searchsorted(self.present, index)


def _dense_index(chunk: np.ndarray, levels: list[_Level], n: int, base: int) -> np.ndarray:
    """Index ``code(prefix) * base + last`` of every window of ``n`` ids of ``chunk``."""
    ids = chunk.astype(np.int64)
    if n == 1:
        return ids
    code = levels[0].codes(ids)
    for order in range(2, n):
        code = levels[order - 1].codes(code[:, :-1] * base + ids[:, order - 1 :])
    return code[:, :-1] * base + ids[:, n - 1 :]


def _count_level(
    ids: np.ndarray,
    levels: list[_Level],
    n: int,
    base: int,
    size: int,
    chunks: list,
    tick: Callable,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct dense indices (in ``0..size-1``) of the n-grams of ``ids``, and their
    counts."""
    dense = size <= DENSE_LIMIT
    acc = np.zeros(size, dtype=np.int64) if dense else []
    for start, stop in chunks:
        index = _dense_index(np.asarray(ids[start:stop]), levels, n, base)
        if dense:
            acc += np.bincount(index.ravel(), minlength=size)
        else:
            acc = add_part(acc, unique_counts(index))
        tick()
    if dense:
        present = np.flatnonzero(acc)
        return present, acc[present]
    return merge_counts(acc)


def count_all(
    ids: np.ndarray,
    max_n: int,
    base: int,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> list[NgramCounts]:
    """Counts of the n-grams of ``ids`` for n = 1..max_n, same result as ``from_ids`` but in
    bounded memory for arrays of millions of rows (memory-mapped ones included).

    ``progress(advance, total)`` is called after each pass over a chunk of rows.
    """
    check_order(max_n, base)
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"expected an (N, L) id array, got shape {ids.shape}")
    chunks = [(s, s + chunk_rows) for s in range(0, len(ids), chunk_rows)]
    if max_n <= 4 and base <= 256 and ids.shape[1] >= 4 and len(ids):
        return _count_upto4(ids, max_n, base, chunks, progress)
    return _count_chained(ids, max_n, base, chunks, progress)


def _count_upto4(ids, max_n, base, chunks, progress) -> list[NgramCounts]:
    """n = 1..max_n ≤ 4 in one pass, for vocabularies of at most 256 ids.

    A window of four ids is one uint32, ``(a·V + b) · 2¹⁶ + (c·V + d)``, and a chunk's 4-grams
    are counted by sorting these. Every shorter n-gram is the head of the (n+1)-gram at its
    position, except the last n-gram of each row, so the trigram, bigram and unigram counts
    follow from the 4-gram counts and the ends of the rows.
    """
    fours, ends = [], {3: [], 2: [], 1: []}
    for start, stop in chunks:
        chunk = np.asarray(ids[start:stop])
        pairs = _pair_keys(chunk, base)
        keys = (pairs[:, :-2].astype(np.uint32) << np.uint32(16)) | pairs[:, 2:]
        fours = add_part(fours, unique_counts(keys))
        row_ends = {
            3: pairs[:, -2].astype(np.uint64) * np.uint64(base) + chunk[:, -1].astype(np.uint64),
            2: pairs[:, -1],
            1: chunk[:, -1],
        }
        for n, last in row_ends.items():
            ends[n] = add_part(ends[n], unique_counts(last.astype(np.uint64)))
        if progress:
            progress(1, len(chunks))
    keys, counts = merge_counts(fours)
    b = np.uint64(base)
    keys = (keys >> np.uint32(16)).astype(np.uint64) * b * b + (keys & np.uint32(0xFFFF))
    result = [NgramCounts(4, base, keys, counts)]
    for n in (3, 2, 1):
        keys, counts = merge_counts([(keys // b, counts), *ends[n]])
        result.insert(0, NgramCounts(n, base, keys, counts))
    return result[:max_n]


def add_part(parts: list, part: tuple[np.ndarray, np.ndarray]) -> list:
    """Append a chunk's (keys, counts), merging every few parts to bound memory."""
    parts.append(part)
    return [merge_counts(parts)] if len(parts) >= MERGE_EVERY else parts


def merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys of several (keys, counts) parts, counts added."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    if len(parts) > 1:
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
    if len(keys) == 0:
        return keys, counts
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[first], np.add.reduceat(counts, first)


def _pair_keys(chunk: np.ndarray, base: int) -> np.ndarray:
    """uint16 key ``a * base + b`` of every window of two ids (whatever the ids' dtype: a
    signed one would promote the sums, and the keys, to int64 and then float64)."""
    return chunk[:, :-1].astype(np.uint16) * np.uint16(base) + chunk[:, 1:].astype(np.uint16)


def _count_chained(ids, max_n, base, chunks, progress) -> list[NgramCounts]:
    """Any order, one pass per order: each n-gram is ``code(prefix) * base + last`` where the
    prefix code comes from the tables of the orders below."""
    total = len(chunks) * min(max_n, ids.shape[1])
    tick = (lambda: progress(1, total)) if progress else (lambda: None)
    levels: list[_Level] = []
    result: list[NgramCounts] = []
    keys = np.zeros(0, dtype=np.uint64)
    for n in range(1, max_n + 1):
        if n > ids.shape[1]:
            result.append(NgramCounts(n, base, np.zeros(0, np.uint64), np.zeros(0, np.int64)))
            continue
        size = base * (len(levels[-1].present) if levels else 1)
        present, counts = _count_level(ids, levels, n, base, size, chunks, tick)
        last = (present % base).astype(np.uint64)
        keys = last if n == 1 else keys[present // base] * np.uint64(base) + last
        result.append(NgramCounts(n, base, keys, counts))
        if n < max_n:
            levels.append(_Level(present, size))
    return result
