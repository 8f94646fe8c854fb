"""Provisional rows to the final arrays: the held-out split, the vocabulary of the training
split, and the final ids, written over the provisional ones where they fit one byte."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from textgan.corpus.rows import ESC, Rows, Symbols, count_ids, ensure_memory, row_step
from textgan.errors import UserError
from textgan.vocab import UNK, Vocab

if TYPE_CHECKING:
    from textgan.corpus.config import CorpusConfig


def heldout_rows(cfg: CorpusConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows to hold out, drawn from the seed: ``holdout`` of them, or min(10,000, 10 %)."""
    held = min(10_000, n // 10) if cfg.holdout is None else cfg.holdout
    if held >= n:
        raise UserError(
            f"--holdout {held} leaves no training lines ({n} lines in all); choose fewer"
        )
    return rng.choice(n, size=held, replace=False)


def drop_rows(data: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """The rows of ``data`` not in ``drop``, moved up in place (no copy of the whole array)."""
    step = row_step(data[0].nbytes if len(data) else 1)  # bounded overlap buffers
    dst = src = 0
    for row in [*np.sort(drop).tolist(), len(data)]:
        for start in range(src, row, step):
            stop = min(row, start + step)
            data[dst + start - src : dst + stop - src] = data[start:stop]
        dst, src = dst + row - src, row + 1
    return data[:dst]


def vocabulary(
    cfg: CorpusConfig, symbols: Symbols, rows: Rows, held_idx: np.ndarray | None
) -> tuple[Vocab, dict]:
    """Vocabulary from the counts of ``rows`` less the held-out ones, with coverage stats."""
    prov_counts = rows.counts.copy()
    a_rows, _, a_syms = rows.aside_arrays()
    if held_idx is not None and len(held_idx):
        step = row_step(rows.seq_len)
        for start in range(0, len(held_idx), step):
            prov_counts -= count_ids(rows.buf[held_idx[start : start + step]])
        a_syms = a_syms[~np.isin(a_rows, held_idx)]
    rare, rare_counts = np.unique(a_syms, return_counts=True)
    syms = np.concatenate([np.asarray(symbols.symbols[1:], np.int64), rare.astype(np.int64)])
    counts = np.concatenate([prov_counts[1 : len(symbols.symbols)], rare_counts])
    vocab = Vocab.from_symbol_counts(syms, counts, cfg.tokens, cfg.max_vocab)
    total = int(counts.sum())
    in_vocab = int(counts[np.isin(syms, vocab.symbols)].sum())
    top = np.lexsort((syms, -counts))[:10]
    top = top[counts[top] > 0]
    names = vocab.describe(vocab.codes_to_ids(syms[top]).tolist())
    return vocab, {
        "symbols_seen": int(np.count_nonzero(counts)),
        "symbols_kept": len(vocab.symbols),
        "coverage": round(in_vocab / total, 6) if total else 1.0,
        "unk_share": round(1 - in_vocab / total, 6) if total else 0.0,
        "top": [[n, round(int(c) / total, 6)] for n, c in zip(names, counts[top], strict=True)],
    }


def final_ids(vocab: Vocab, symbols: Symbols, rows: Rows) -> np.ndarray:
    """Provisional ids to vocabulary ids: in place when they fit one byte."""
    table = np.zeros(256, dtype=vocab.dtype)
    table[ESC] = UNK
    known = np.asarray(symbols.symbols[1:], dtype=np.uint32)
    table[1 : len(symbols.symbols)] = vocab.codes_to_ids(known)
    a_rows, a_cols, a_syms = rows.aside_arrays()
    data = rows.rows()
    if vocab.dtype == np.uint8:
        out = data
    else:  # the wider array is allocated beside the provisional one
        ensure_memory((1 + vocab.dtype.itemsize) * data.size, rows.n, rows.seq_len)
        out = np.empty(data.shape, dtype=vocab.dtype)
    step = row_step(rows.seq_len)
    for start in range(0, rows.n, step):
        out[start : start + step] = table[data[start : start + step]]
    out[a_rows, a_cols] = vocab.codes_to_ids(a_syms)
    return out
