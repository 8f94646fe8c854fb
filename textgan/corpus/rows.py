"""Lines to rows of one-byte provisional symbol ids, grown in place.

Symbols get provisional ids 1..254 as they appear; the rare ones beyond are kept aside as
(row, column, symbol). Lines are encoded in batches of bounded size, so the temporaries stay
small however long ``seq_len`` is, and memory is checked before rows are added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from textgan.corpus.reading import Blocks
from textgan.devices import memory_limit
from textgan.errors import UserError
from textgan.vocab import PAD, SYMBOL_SPACE, text_to_codes

ESC = 255  # provisional id of a symbol kept aside (no free one-byte slot)
PIECE_BYTES = 1 << 22  # temporaries of whole-array passes stay about this size
MEMORY_SHARE = 0.9  # of the machine's memory the arrays may take; the rest runs the process


def row_step(row_bytes: int, budget: int = PIECE_BYTES) -> int:
    """Rows per piece of a pass over an array whose rows take ``row_bytes``."""
    return max(1, budget // max(row_bytes, 1))


def ensure_memory(nbytes: int, rows: int, seq_len: int) -> None:
    """UserError before allocating ``nbytes`` for ``rows`` rows when they cannot fit."""
    limit = memory_limit()
    if nbytes > MEMORY_SHARE * limit:
        raise UserError(
            f"{rows:,} lines of corpus.seq_len {seq_len:,} symbols would take "
            f"{nbytes / 2**30:.2f} GiB, more than {MEMORY_SHARE:.0%} of the "
            f"{limit / 2**30:.2f} GiB of memory here; lower corpus.seq_len or corpus.max_lines"
        )


class Symbols:
    """Provisional one-byte ids 1..254 given to symbols as they appear (0 = padding)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.slot = np.full(SYMBOL_SPACE[kind], ESC, dtype=np.uint8)
        self.slot[0] = PAD
        self.symbols = [0]  # provisional id -> symbol

    def add(self, codes: np.ndarray) -> bool:
        """Give free slots to unseen symbols of ``codes``, most frequent first; whether any
        symbol got one."""
        free = ESC - len(self.symbols)
        if free <= 0:
            return False
        values, counts = np.unique(codes, return_counts=True)
        new = self.slot[values] == ESC
        values, counts = values[new], counts[new]
        order = np.lexsort((values, -counts))[:free]
        for s in values[order].tolist():
            self.slot[s] = len(self.symbols)
            self.symbols.append(s)
        return len(order) > 0


class Rows:
    """Rows of provisional ids, grown in place; rare symbols kept aside as (row, col, symbol)."""

    def __init__(self, symbols: Symbols, seq_len: int, capacity: int) -> None:
        self.sym = symbols
        self.seq_len = seq_len
        # Pages of the reservation never written cost no memory.
        self.buf = np.empty((max(capacity, 1), seq_len), dtype=np.uint8)
        self.n = 0
        self.counts = np.zeros(256, dtype=np.int64)  # per provisional id
        self.aside: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.truncated = 0
        self.symbols_total = 0

    def add(self, lines: list[str]) -> None:
        # UTF-32 codes take 4 bytes a symbol: bounded batches, not one block at a time.
        step = row_step(4 * self.seq_len)
        for start in range(0, len(lines), step):
            self._add_batch(lines[start : start + step])

    def _add_batch(self, lines: list[str]) -> None:
        ensure_memory((self.n + len(lines)) * self.seq_len, self.n + len(lines), self.seq_len)
        codes = text_to_codes(lines, self.seq_len, self.sym.kind)
        prov = self.sym.slot[codes]
        rare = prov == ESC
        if rare.any():
            if self.sym.add(codes[rare]):
                prov = self.sym.slot[codes]
                rare = prov == ESC
            if rare.any():
                r, c = np.nonzero(rare)
                self.aside.append((r + self.n, c.astype(np.int32), codes[r, c]))
        del codes
        self.counts += count_ids(prov)
        if self.sym.kind == "chars":
            lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        else:
            lengths = np.fromiter((len(s.encode()) for s in lines), np.int64, len(lines))
        self.truncated += int((lengths > self.seq_len).sum())
        self.symbols_total += int(lengths.sum())
        self._append(prov)

    def _append(self, prov: np.ndarray) -> None:
        end = self.n + len(prov)
        if end > len(self.buf):
            grown = np.empty((max(end, 2 * len(self.buf)), self.seq_len), dtype=np.uint8)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : end] = prov
        self.n = end

    def rows(self) -> np.ndarray:
        return self.buf[: self.n]

    def aside_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The symbols kept aside as three arrays (rows, columns, symbols)."""
        if not self.aside:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32)
        if len(self.aside) > 1:  # joined once: the vocabulary and the final ids both ask
            self.aside = [tuple(np.concatenate(parts) for parts in zip(*self.aside, strict=True))]
        return self.aside[0]


def count_ids(rows: np.ndarray) -> np.ndarray:
    """Counts of each one-byte id in ``rows``, in pieces: bincount widens to 8 bytes an id."""
    flat = rows.reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, len(flat), PIECE_BYTES // 8):
        counts += np.bincount(flat[start : start + PIECE_BYTES // 8], minlength=256)
    return counts


@dataclass
class Tally:
    read: int = 0  # lines seen, empty ones included
    empty: int = 0
    reached_max_lines: bool = False


def collect(
    blocks: Blocks, rows: Rows, limit: int, on_block: Callable[[int, int], object] | None = None
) -> Tally:
    """Feed non-empty lines of ``blocks`` into ``rows`` until ``limit`` rows are kept;
    ``on_block(lines, advance)`` follows the progress."""
    tally = Tally()
    if rows.n >= limit:  # holdout 0: leave the source unopened rather than misread a block
        return tally
    for text, advance in blocks:
        parts = text.split("\n")
        room = limit - rows.n
        lines = [p for p in parts if p]
        if len(lines) >= room:
            tally.reached_max_lines = True
            parts = parts[: _index_of_nth_nonempty(parts, room) + 1]
            lines = lines[:room]
        tally.read += len(parts)
        tally.empty += len(parts) - len(lines)
        if lines:
            rows.add(lines)
        if on_block is not None:
            on_block(len(parts), advance)
        if rows.n >= limit:
            break
    return tally


def _index_of_nth_nonempty(parts: list[str], n: int) -> int:
    seen = 0
    for i, p in enumerate(parts):
        if p:
            seen += 1
            if seen == n:
                return i
    return len(parts) - 1
