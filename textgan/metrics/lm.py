"""An interpolated Kneser–Ney character n-gram language model (order 5 by default), vectorized.

**LM score** of samples: the mean negative log-likelihood per character (nats, and bits) of the
samples under this model fit on one half of the training split (``SCORER_PART``) — lower means
more fluent text. The n-gram baseline is fit on the other half (``BASELINE_PART``): sampled from
p and scored by p, it would be credited with p's own entropy, while every other source pays the
cross-entropy (docs/metrics.md says what the halves cost). **Reverse LM
score**: the same model fit on the samples, scoring real held-out lines — lower means the samples
cover the real data better (a generator that repeats one good line scores well on the first and
badly on the second).

Each line is its ids with trailing padding removed, preceded by ``order - 1`` PAD ids (start of
line) and followed by one PAD id (end of line) unless it fills the whole sequence length. Every
character and that end marker is predicted; the start padding is context only. PAD never occurs
inside real text, so using it for both markers is unambiguous.

Interpolated Kneser–Ney (Chen & Goodman 1998, with one discount per order):

    P_k(w | h) = max(a_k(hw) - D_k, 0) / a_k(h·) + D_k · N_k(h·) / a_k(h·) · P_{k-1}(w | h')

where h' drops the first id of h; ``a_k`` is the raw count for the highest order and, below it,
the continuation count (the number of distinct ids seen just before the k-gram); ``a_k(h·)``
sums ``a_k(hv)`` over v and ``N_k(h·)`` counts the v with ``a_k(hv) > 0``; ``D_k = n1 / (n1 +
2 n2)`` from the numbers of k-grams with ``a_k`` equal to 1 and 2. A context never seen
(``a_k(h·) = 0``) passes ``P_{k-1}`` through unchanged. The recursion ends in the uniform
distribution over all V ids, so every id has a probability above zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from textgan.errors import UserError
from textgan.metrics.cache import (
    UNREADABLE_CACHE,
    check_counts,
    load_npz,
    meta_int,
    save_cache,
    save_npz,
)
from textgan.metrics.ngrams import add_part, check_order, merge_counts, unique_counts, window_keys
from textgan.vocab import PAD

ORDER = 5
FORMAT_VERSION = 2  # 2: fit on one half of the training split (1: on all of it)
CHUNK_ROWS = 1 << 18
# The two halves of the training split, by row parity (the split is already in random order).
SCORER_PART, BASELINE_PART = "scorer", "baseline"
PARTS = {SCORER_PART: slice(1, None, 2), BASELINE_PART: slice(0, None, 2)}


def training_part(train: np.ndarray, part: str) -> np.ndarray:
    """The rows of the training split that fit the model of ``part`` (scorer or baseline)."""
    rows = np.atleast_2d(np.asarray(train))[PARTS[part]]
    if len(rows) == 0:
        raise UserError(
            f"the training split has {len(train)} line: too few to fit the scoring language "
            "model and the baseline on separate halves; give a corpus of two lines or more"
        )
    return rows


def line_lengths(ids: np.ndarray) -> np.ndarray:
    """Length of each row without its trailing padding."""
    ids = np.atleast_2d(np.asarray(ids))
    content = ids != PAD
    last = ids.shape[1] - np.argmax(content[:, ::-1], axis=1)
    return np.where(content.any(axis=1), last, 0)


def _target_windows(ids: np.ndarray, order: int, base: int) -> np.ndarray:
    """Keys of the ``order``-grams ending at each predicted position (see module docstring)."""
    ids = np.atleast_2d(np.asarray(ids))
    rows, width = ids.shape
    padded = np.full((rows, order - 1 + width + 1), PAD, dtype=ids.dtype)
    padded[:, order - 1 : order - 1 + width] = ids
    lengths = line_lengths(ids)
    predicted = lengths + (lengths < width)
    keys = window_keys(padded, order, base)
    return keys[np.arange(width + 1)[None, :] < predicted[:, None]]


def _group_by_context(keys: np.ndarray, counts: np.ndarray, base: int):
    """Sorted distinct contexts (key // base) with the sum of counts and number of types."""
    ctx = keys // np.uint64(base)
    if len(ctx) == 0:
        return ctx, counts[:0], counts[:0]
    first = np.flatnonzero(np.concatenate(([True], ctx[1:] != ctx[:-1])))
    return ctx[first], np.add.reduceat(counts, first), np.diff(np.append(first, len(ctx)))


def _discount(counts: np.ndarray) -> float:
    n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
    return n1 / (n1 + 2 * n2) if n1 else 0.5


class KneserNeyLM:
    """Interpolated Kneser–Ney over ids ``0..base-1``, from the counts of its top-order n-grams."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, base: int, order: int = ORDER):
        check_order(order, base)
        self.order, self.base = order, base
        self.top_keys, self.top_counts = keys, counts
        self.levels = []  # order k at index k-1: (keys, a, D, contexts, context sums, types)
        for k in range(order, 0, -1):
            if k < order:
                # Continuation count: distinct (k+1)-gram types ending in this k-gram.
                keys, counts = unique_counts(keys % np.uint64(base**k))
            ctx, sums, types = _group_by_context(keys, counts, base)
            self.levels.insert(0, (keys, counts, _discount(counts), ctx, sums, types))

    @classmethod
    def fit(
        cls, ids: np.ndarray, order: int = ORDER, base: int | None = None, progress: bool = False
    ) -> KneserNeyLM:
        """Fit on the lines of an ``(N, L)`` id array (chunked, so millions of rows are fine)."""
        ids = np.atleast_2d(np.asarray(ids))
        base = base or int(ids.max(initial=0)) + 1
        parts: list = []
        starts = range(0, len(ids), CHUNK_ROWS)
        for start in tqdm(starts, desc=f"{order}-gram LM", unit="chunk", disable=not progress):
            windows = _target_windows(ids[start : start + CHUNK_ROWS], order, base)
            parts = add_part(parts, unique_counts(windows))
        keys, counts = (
            merge_counts(parts) if parts else (np.zeros(0, np.uint64), np.zeros(0, np.int64))
        )
        if len(keys) == 0:
            raise ValueError("cannot fit a language model on no lines")
        return cls(keys, counts, base, order)

    def probability(self, keys: np.ndarray) -> np.ndarray:
        """P(last id | first order-1 ids) of each top-order n-gram key."""
        keys = np.asarray(keys, dtype=np.uint64)
        u1, a1, d1, _, sums1, types1 = self.levels[0]
        total = float(sums1[0])
        uni = np.full(self.base, d1 * types1[0] / total / self.base)
        uni[u1.astype(np.int64)] += np.maximum(a1 - d1, 0) / total
        p = uni[(keys % np.uint64(self.base)).astype(np.int64)]
        for k in range(2, self.order + 1):
            grams, a, d, ctx, sums, types = self.levels[k - 1]
            g = keys % np.uint64(self.base**k)
            c = _lookup(ctx, g // np.uint64(self.base))
            seen = c >= 0
            n_hw = np.where(seen, _counts_at(grams, a, g), 0)
            s = np.where(seen, sums[c], 1)
            t = np.where(seen, types[c], 0)
            p = np.where(seen, (np.maximum(n_hw - d, 0) + d * t * p) / s, p)
        return p

    def nll(self, ids: np.ndarray) -> tuple[float, int]:
        """Mean negative log-likelihood per predicted character (nats) of the lines of ``ids``,
        and the number of predicted characters (end-of-line markers included)."""
        keys = _target_windows(ids, self.order, self.base)
        if len(keys) == 0:
            raise ValueError("no characters to score")
        return float(-np.mean(np.log(self.probability(keys)))), len(keys)

    def save(self, path: str | Path, fingerprint: str = "") -> None:
        """Write the top-order counts as ``.npz`` atomically; the rest is derived on load."""
        meta = {"format": FORMAT_VERSION, "order": self.order, "base": self.base}
        meta["fingerprint"] = fingerprint
        save_npz(path, meta, {"keys": self.top_keys, "counts": self.top_counts})

    @classmethod
    def load(cls, path: str | Path) -> tuple[KneserNeyLM, str]:
        """The model saved at ``path`` and the fingerprint it was saved with."""
        meta, arrays = load_npz(path, FORMAT_VERSION)
        base, order = meta_int(meta, "base"), meta_int(meta, "order")
        check_order(order, base)
        keys, counts = arrays["keys"], arrays["counts"]
        check_counts(keys, counts, base**order)
        if len(keys) == 0:
            raise ValueError(f"{path} holds no n-gram counts")
        return cls(keys, counts, base, order), str(meta["fingerprint"])

    @classmethod
    def for_corpus(
        cls, prepared: Any, order: int = ORDER, progress: bool = False, part: str = SCORER_PART
    ) -> KneserNeyLM:
        """The model of the ``part`` half of ``prepared.train`` (``training_part``), cached
        beside the corpus as ``kn<order>.npz`` (the scorer's) or ``kn<order>-baseline.npz``."""
        suffix = "" if part == SCORER_PART else f"-{part}"
        path = Path(prepared.path) / f"kn{order}{suffix}.npz"
        base = len(prepared.vocab)
        if path.is_file():
            try:
                lm, fingerprint = cls.load(path)
                if fingerprint == prepared.fingerprint and (lm.base, lm.order) == (base, order):
                    return lm
            except UNREADABLE_CACHE:
                pass  # unreadable or old cache: refit below
        lm = cls.fit(training_part(prepared.train, part), order, base, progress)
        save_cache(lambda: lm.save(path, prepared.fingerprint), path)
        return lm


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in ``sorted_keys``, -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == keys, pos, -1)


def _counts_at(sorted_keys: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    pos = _lookup(sorted_keys, keys)
    return np.where(pos >= 0, counts[np.maximum(pos, 0)], 0)
