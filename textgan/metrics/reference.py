"""The n-gram reference of a prepared corpus, cached beside it, and the JS evaluator.

The reference holds the counts of every n-gram (n = 1..max_n, padding included) of the training
split. It is computed once and saved as ``<corpus dir>/ngrams.npz``; later runs load it, so
scoring 640 samples is a lookup of their distinct n-grams.

A JS divergence means nothing without its sample size: 640 real sequences are themselves far
from the reference at n = 4. So every JS comes with its **floor**, the JS of N real held-out
sequences (a fixed random subset drawn from ``seed``) against the same reference, at the same N.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from textgan.errors import UserError
from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts, check_order, count_all

CACHE_NAME = "ngrams.npz"
FORMAT_VERSION = 1
# What loading a damaged or outdated cache raises (an empty file: EOFError; a truncated one:
# BadZipFile; a missing array or field: KeyError); such a cache is rebuilt, never fatal.
UNREADABLE_CACHE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)

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
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported n-gram cache format {meta.get('format')!r}")
            counts = []
            n = 1
            while f"keys_{n}" in data:
                counts.append(NgramCounts(n, meta["base"], data[f"keys_{n}"], data[f"counts_{n}"]))
                n += 1
        return cls(counts, meta["fingerprint"])

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


def save_npz(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` (as JSON, the array ``meta``) and ``arrays`` to ``path`` as ``.npz``:
    under a temporary name, renamed into place, and the temporary file removed if writing
    fails (a full disk leaves no half-written cache behind)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_cache(save: Callable[[], None], path: Path) -> None:
    """Run ``save``; a cache that cannot be written (read-only corpus folder) is a warning."""
    try:
        save()
    except OSError as err:
        warnings.warn(f"could not cache {path}: {err.strerror or err}", stacklevel=3)


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


class JSEvaluator:
    """JS-1..max_n of samples against a prepared corpus's training n-grams, with the floor.

    ``evaluator(sample_ids)`` returns ``{"n_samples": N, "js1": .., "floor_js1": .., ..}`` where
    ``floor_jsK`` is the JS-K of N real held-out sequences at the same N (computed once per N).
    """

    def __init__(
        self,
        prepared: Any,
        n_samples: int = PAPER_N_SAMPLES,
        max_n: int = 4,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        self.reference = ReferenceNgrams.for_corpus(prepared, max_n, progress)
        self.heldout = prepared.heldout
        self.n_samples = n_samples
        self.max_n = max_n
        self.seed = seed
        self._floors: dict[int, dict[str, float]] = {}
        self.floor_at(n_samples)  # checks N against the held-out split now, not mid-training

    @property
    def floor(self) -> dict[str, float]:
        """``floor_js1..`` at ``n_samples``."""
        return self.floor_at(self.n_samples)

    def floor_at(self, n: int) -> dict[str, float]:
        """JS of ``n`` real held-out sequences against the reference (``floor_js1..``)."""
        if n not in self._floors:
            js = self.reference.js(real_subset(self.heldout, n, self.seed), self.max_n)
            self._floors[n] = {f"floor_js{k}": v for k, v in js.items()}
        return self._floors[n]

    def __call__(self, sample_ids: np.ndarray) -> dict[str, float | int]:
        sample_ids = np.atleast_2d(np.asarray(sample_ids))
        if sample_ids.shape[1] != self.heldout.shape[1]:
            raise ValueError(
                f"samples have length {sample_ids.shape[1]}, the corpus {self.heldout.shape[1]}"
            )
        js = self.reference.js(sample_ids, self.max_n)
        row: dict[str, float | int] = {"n_samples": len(sample_ids)}
        row.update({f"js{k}": v for k, v in js.items()})
        row.update(self.floor_at(len(sample_ids)))
        return row
