"""The n-gram reference of a prepared corpus, cached beside it, the n-grams of its held-out
lines, and the real held-out lines.

The reference holds the counts of every n-gram (n = 1..max_n, padding included) of the training
split. It is computed once and saved as ``<corpus dir>/ngrams.npz``; later runs load it, so
scoring 640 samples is a lookup of their distinct n-grams.

A JS divergence means nothing without its sample size: 640 real sequences are themselves far
from the reference at n = 4. So every JS comes with its **floor**, the JS of N real held-out
sequences (a fixed random subset drawn from ``seed``) against the same reference, at the same N.
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
from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts, check_order, count_all

CACHE_NAME = "ngrams.npz"
FORMAT_VERSION = 1

# The reference scores 640 samples (ten batches of 64); JS is only comparable at equal N.
PAPER_N_SAMPLES = 640


class ReferenceNgrams:
    """Counts of the n-grams (n = 1..max_n) of a reference id array."""

    def __init__(self, counts: list[NgramCounts], fingerprint: str = "") -> None:
        self.counts = counts
        self.fingerprint = fingerprint

    @property
    def max_n(self) -> int:
        return len(self.counts)

    @property
    def base(self) -> int:
        return self.counts[0].base

    @classmethod
    def build(
        cls, ids: np.ndarray, max_n: int, base: int, fingerprint: str = "", progress: bool = False
    ) -> ReferenceNgrams:
        """Count the n-grams of ``ids`` (chunked: fine for memory-mapped millions of rows)."""
        with tqdm(desc="n-gram reference", unit="pass", disable=not progress) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done)

            counts = count_all(ids, max_n, base, progress=advance)
        return cls(counts, fingerprint)

    def save(self, path: str | Path) -> None:
        """Write ``.npz`` atomically (``save_npz``)."""
        meta = {"format": FORMAT_VERSION, "fingerprint": self.fingerprint, "base": self.base}
        arrays: dict[str, np.ndarray] = {}
        for c in self.counts:
            arrays[f"keys_{c.n}"] = c.keys
            arrays[f"counts_{c.n}"] = c.counts
        save_npz(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceNgrams:
        """The reference saved at ``path``; ValueError (or another of ``UNREADABLE_CACHE``)
        for anything but what ``save`` writes."""
        meta, arrays = load_npz(path, FORMAT_VERSION)
        base = meta_int(meta, "base")
        counts = []
        while f"keys_{len(counts) + 1}" in arrays:
            n = len(counts) + 1
            check_order(n, base)
            keys, count = arrays[f"keys_{n}"], arrays[f"counts_{n}"]
            check_counts(keys, count, base**n)
            counts.append(NgramCounts(n, base, keys, count))
        if not counts:
            raise ValueError(f"{path} holds no n-gram counts")
        return cls(counts, str(meta["fingerprint"]))

    @classmethod
    def for_corpus(cls, prepared: Any, max_n: int = 4, progress: bool = True) -> ReferenceNgrams:
        """The reference of ``prepared.train``, from ``prepared.path / ngrams.npz`` when that
        cache matches (same data fingerprint and vocabulary size, at least ``max_n``), else
        computed and cached."""
        base = len(prepared.vocab)
        check_order(max_n, base)
        path = Path(prepared.path) / CACHE_NAME
        if path.is_file():
            try:
                cached = cls.load(path)
            except UNREADABLE_CACHE:
                cached = None  # unreadable or old cache: rebuilt below
            if (
                cached is not None
                and cached.fingerprint == prepared.fingerprint
                and cached.base == base
                and cached.max_n >= max_n
            ):
                return cached.truncated(max_n)
        ref = cls.build(prepared.train, max_n, base, prepared.fingerprint, progress)
        save_cache(lambda: ref.save(path), path)
        return ref

    def truncated(self, max_n: int) -> ReferenceNgrams:
        return ReferenceNgrams(self.counts[:max_n], self.fingerprint)

    def js(self, ids: np.ndarray, max_n: int | None = None) -> dict[int, float]:
        """JS divergence (bits) of the n-grams of ``ids`` against this reference, n = 1..max_n."""
        max_n = max_n or self.max_n
        if max_n > self.max_n:
            raise ValueError(f"reference holds n-grams up to {self.max_n}, asked for {max_n}")
        ids = np.atleast_2d(np.asarray(ids))
        if len(ids) == 0:
            raise ValueError("no sequences to score")
        if ids.min() < 0 or ids.max() >= self.base:
            raise ValueError(f"ids outside the reference vocabulary of size {self.base}")
        return {
            n: js_divergence(NgramCounts.from_ids(ids, n, self.base), self.counts[n - 1])
            for n in range(1, max_n + 1)
        }


class HeldoutNgrams:
    """JS against text the generator never saw: the n-grams of the held-out lines outside the N
    real ones of the floor. Samples and real lines are scored against the same lines, and a
    real line is never its own reference (as the reverse LM)."""

    def __init__(self, heldout: np.ndarray, base: int) -> None:
        self.heldout, self.base = heldout, base
        self._refs: dict[tuple[int, bytes], ReferenceNgrams | None] = {}  # one per N and max_n

    def js(self, ids: np.ndarray, max_n: int, real_rows: np.ndarray) -> dict[int, float] | None:
        """JS-1..max_n of ``ids`` against the held-out rows not in ``real_rows``; None when
        every held-out row is a real one."""
        key = (max_n, np.asarray(real_rows).tobytes())
        if key not in self._refs:
            rest = np.delete(np.asarray(self.heldout), real_rows, axis=0)
            self._refs[key] = ReferenceNgrams.build(rest, max_n, self.base) if len(rest) else None
        ref = self._refs[key]
        return None if ref is None else ref.js(ids)


def subset_rows(m: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` of ``m`` rows drawn without replacement by ``seed``."""
    if n < 1:
        raise UserError(f"the number of samples must be positive, got {n}")
    if n > m:
        raise UserError(
            f"N = {n} is larger than the held-out split ({m} lines); "
            f"use -n {m} or less, or prepare the corpus with a larger --holdout"
        )
    return np.sort(np.random.default_rng(seed).choice(m, n, replace=False))


def real_subset(heldout: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of ``heldout`` drawn without replacement by ``seed`` (always the same rows)."""
    return np.asarray(heldout[subset_rows(len(heldout), n, seed)])
