"""BLEU and Self-BLEU with characters as tokens, computed by n-gram key counting.

**BLEU-n** of a set of hypotheses against a set of references is the mean over hypotheses of
NLTK's ``sentence_bleu(references, hypothesis, weights=(1/n,) * n,
smoothing_function=SmoothingFunction().method1)``: for k = 1..n the clipped precision
p_k = Σ_g min(c_hyp(g), max_ref c_ref(g)) / max(1, Σ_g c_hyp(g)) over the hypothesis's k-grams g;
method 1 replaces a zero numerator by 0.1 (so p_k = 0.1 / denominator); the score is
BP · exp(Σ_k log(p_k) / n), and 0 when no unigram matches. The brevity penalty BP is 1 when the
hypothesis is longer than the closest reference length (ties to the shorter), 0 for an empty
hypothesis, else exp(1 - r / h).

**Self-BLEU-n** is BLEU-n of each sample against all the *other* samples: the sample itself is
never among its own references (a known bug elsewhere makes every Self-BLEU 1). Lower means more
diverse samples.

Tokens are ids with trailing padding removed. The clipping counts come from sorting (row, key)
pairs, never a loop over sentences or n-grams: the largest and second-largest count of each
n-gram over the references are enough to exclude any one reference.
"""

from __future__ import annotations

import numpy as np

from textgan.metrics.lm import line_lengths
from textgan.metrics.ngrams import window_keys

EPSILON = 0.1  # NLTK SmoothingFunction().method1


def _row_counts(ids: np.ndarray, lengths: np.ndarray, n: int, base: int):
    """(keys, rows, counts) of every distinct (n-gram, row) pair, sorted by key then row,
    counting only windows inside each row's length."""
    keys = window_keys(ids, n, base)
    inside = np.arange(keys.shape[1])[None, :] <= (lengths - n)[:, None]
    rows = np.broadcast_to(np.arange(len(ids))[:, None], keys.shape)[inside]
    keys = keys[inside]
    order = np.lexsort((rows, keys))
    keys, rows = keys[order], rows[order]
    if len(keys) == 0:
        return keys, rows, np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(
        np.concatenate(([True], (keys[1:] != keys[:-1]) | (rows[1:] != rows[:-1])))
    )
    counts = np.diff(np.append(first, len(keys)))
    return keys[first], rows[first], counts


def _top_two(keys: np.ndarray, counts: np.ndarray):
    """Per distinct key: the largest and second-largest count over rows (0 if one row)."""
    order = np.lexsort((-counts, keys))
    keys, counts = keys[order], counts[order]
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    size = np.diff(np.append(first, len(keys)))
    second = np.where(size > 1, counts[np.minimum(first + 1, len(keys) - 1)], 0)
    return keys[first], counts[first], second


def _closest_ref_len(hyp_lens: np.ndarray, ref_lens: np.ndarray, exclude_own: bool):
    """NLTK's closest reference length (ties to the shorter), each hypothesis's own reference
    (of its own length) left out when ``exclude_own``."""
    tally = np.bincount(ref_lens, minlength=max(ref_lens.max(), hyp_lens.max()) + 1)
    lengths = np.arange(len(tally))
    out = np.empty(len(hyp_lens), dtype=np.int64)
    for h in np.unique(hyp_lens):  # a loop over distinct lengths (≤ sequence length + 1)
        cand = lengths[(tally - (exclude_own & (lengths == h))) > 0]
        out[hyp_lens == h] = cand[np.argmin(np.abs(cand - h) * len(tally) + cand)]
    return out


def bleu(
    hyps: np.ndarray, refs: np.ndarray, max_n: int, base: int, own: np.ndarray | None = None
) -> float:
    """Mean sentence BLEU-``max_n`` of the ``hyps`` rows against all ``refs`` rows (module
    docstring). ``own[i]`` is the row of ``refs`` that *is* hypothesis i, left out of its
    references (Self-BLEU: ``bleu(x, x, n, base, own=np.arange(len(x)))``)."""
    return bleu_orders(hyps, refs, (max_n,), base, own)[max_n]


def bleu_orders(
    hyps: np.ndarray,
    refs: np.ndarray,
    orders: tuple[int, ...],
    base: int,
    own: np.ndarray | None = None,
) -> dict[int, float]:
    """``{n: BLEU-n}`` for each n in ``orders``, sharing the clipped counts between them."""
    hyps, refs = np.atleast_2d(hyps), np.atleast_2d(refs)
    if own is not None and not np.array_equal(refs[own], hyps):
        raise ValueError("own[i] must index the reference row equal to hypothesis i")
    if len(hyps) == 0 or len(refs) - (own is not None) < 1:
        raise ValueError("BLEU needs at least one hypothesis and one other reference")
    hyp_lens, ref_lens = line_lengths(hyps), line_lengths(refs)
    log_p = np.zeros((max(orders), len(hyps)))
    for n in range(1, max(orders) + 1):
        hk, hr, hc = _row_counts(hyps, hyp_lens, n, base)
        uk, best, second = _top_two(*_row_counts(refs, ref_lens, n, base)[::2])
        pos = np.minimum(np.searchsorted(uk, hk), max(len(uk) - 1, 0))
        found = uk[pos] == hk if len(uk) else np.zeros(len(hk), dtype=bool)
        max_ref = np.where(found, best[pos] if len(uk) else 0, 0)
        if own is not None:
            # Hypothesis i's count of g in its own reference row is its own count hc: when
            # that row holds the maximum, the others' maximum is the second-largest count.
            max_ref = np.where(found & (hc == max_ref), second[pos] if len(uk) else 0, max_ref)
        numerator = np.bincount(hr, weights=np.minimum(hc, max_ref), minlength=len(hyps))
        if n == 1:
            no_unigram_match = numerator == 0
        p = np.where(numerator == 0, EPSILON, numerator) / np.maximum(1, hyp_lens - n + 1)
        log_p[n - 1] = np.log(p)
    closest = _closest_ref_len(hyp_lens, ref_lens, own is not None)
    bp = np.exp(np.minimum(0.0, 1 - closest / np.maximum(hyp_lens, 1)))
    bp = np.where(hyp_lens > closest, 1.0, bp) * (hyp_lens > 0)
    return {
        n: float(np.mean(np.where(no_unigram_match, 0.0, bp * np.exp(log_p[:n].mean(axis=0)))))
        for n in orders
    }
