"""The simplest language model as a generator: samples from a Kneser–Ney character n-gram
model (``textgan.metrics.lm``) fit on the baseline's half of the training split. The LM score
is computed by the same kind of model fit on the other half: a baseline scored by the model it
samples from would be credited with that model's own entropy (docs/metrics.md).

A line is written one id at a time, left to right, from ``P(w | previous order−1 ids)`` with the
start padding as the first context, exactly the events the model was fit on: drawing PAD ends
the line (the model's end-of-line marker), and a line stops at the sequence length. With a
temperature T each step samples from ``P^(1/T)`` renormalized; T → 0 approaches the most likely
continuation. Step t of sample i draws with the uniform of (seed, i, t) (``IndexedDraws``), so a
sample set is the same whatever the batch size. All rows of a batch advance together, so one
step scores ``batch × V`` n-grams in one vectorized call.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from textgan.errors import UserError
from textgan.generation.sampling import DECODE, IndexedDraws, check_seed, samples_to_text
from textgan.metrics.lm import BASELINE_PART, KneserNeyLM
from textgan.vocab import PAD, Vocab, id_dtype

BASELINES = ("kn5",)


class NgramSampler:
    """Draws ``(n, seq_len)`` id arrays from a ``KneserNeyLM``."""

    def __init__(self, lm: KneserNeyLM, seq_len: int) -> None:
        self.lm, self.seq_len = lm, seq_len
        base = np.uint64(lm.base)
        self._next = np.arange(lm.base, dtype=np.uint64)  # every candidate next id
        self._shift = base  # a context key times V, plus the next id, is the n-gram's key
        self._mod = np.uint64(lm.base ** (lm.order - 1))  # keeps the last order−1 ids

    def next_distribution(self, contexts: np.ndarray, temperature: float) -> np.ndarray:
        """``(B, V)`` probabilities of the next id after each context key (order−1 ids)."""
        keys = contexts[:, None] * self._shift + self._next[None, :]
        p = self.lm.probability(keys.ravel()).reshape(keys.shape)
        if temperature != 1.0:
            logp = np.log(p) / temperature
            p = np.exp(logp - logp.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def sample(self, uniforms: np.ndarray, temperature: float) -> np.ndarray:
        """One line of ids per row of ``uniforms`` ``(n, seq_len)``, PAD after each line's
        end: step t of row r takes the symbol where the cumulative probability first exceeds
        ``uniforms[r, t]`` (inverse CDF)."""
        n = len(uniforms)
        out = np.full((n, self.seq_len), PAD, dtype=id_dtype(self.lm.base))
        contexts = np.zeros(n, dtype=np.uint64)  # all-PAD start context
        alive = np.ones(n, dtype=bool)
        for t in range(self.seq_len):
            rows = np.flatnonzero(alive)
            if len(rows) == 0:
                break
            cdf = np.cumsum(self.next_distribution(contexts[rows], temperature), axis=1)
            u = uniforms[rows, t][:, None] * cdf[:, -1:]
            drawn = np.minimum((cdf < u).sum(axis=1), self.lm.base - 1).astype(np.uint64)
            out[rows, t] = drawn
            alive[rows[drawn == PAD]] = False
            contexts[rows] = (contexts[rows] * self._shift + drawn) % self._mod
        return out

    def batches(
        self, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 1024
    ) -> Iterator[np.ndarray]:
        """``n`` samples in batches of at most ``batch_size`` rows; sample i depends on
        ``seed`` and i only."""
        if not (np.isfinite(temperature) and temperature > 0):
            raise UserError(f"the temperature must be a positive number, got {temperature}")
        check_seed(seed)
        # Checked above, at the call; the batches come lazily from the inner generator.
        return self._stream(n, temperature, IndexedDraws(seed, DECODE, self.seq_len), batch_size)

    def _stream(
        self, n: int, temperature: float, draws: IndexedDraws, batch_size: int
    ) -> Iterator[np.ndarray]:
        for start in range(0, n, batch_size):
            yield self.sample(draws.rows(start, min(n, start + batch_size)), temperature)

    def lines(
        self, vocab: Vocab, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 1024
    ) -> Iterator[list[str]]:
        """``batches`` as strings, one list per batch, decoded as a generator's samples are."""
        return (
            samples_to_text(ids, vocab) for ids in self.batches(n, temperature, seed, batch_size)
        )


def baseline_sampler(name: str, prepared, progress: bool = False) -> NgramSampler:
    """The sampler of baseline ``name`` (``kn5``) fit on the baseline's half of a prepared
    corpus's training split (the scoring LM is fit on the other half)."""
    if name not in BASELINES:
        raise UserError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    order = int(name[2:])
    lm = KneserNeyLM.for_corpus(prepared, order=order, progress=progress, part=BASELINE_PART)
    return NgramSampler(lm, prepared.seq_len)
