"""js_words: the Jensen–Shannon divergence (bits) between the word-unigram distribution of the
samples and that of the training text.

JS-n of characters stops at a few characters; this is the same measure one level up, over
whole words (as ``word_known`` finds them: runs between spaces and padding, a word cut by the
sequence length left out on both sides). It is 0 when the samples use words exactly as often
as the training text does, and 1 when they share no word with it. Words are compared by their
64-bit hashes (``textgan.metrics.word_known``).
"""

from __future__ import annotations

import numpy as np

from textgan.metrics.js import js_divergence
from textgan.metrics.word_known import KnownWords, word_counts


def js_words(ids: np.ndarray, train_words: KnownWords) -> float | None:
    """JS (bits) of the words of the rows of ``ids`` against the training words; None when
    either side has no word."""
    samples = word_counts(np.atleast_2d(np.asarray(ids)), train_words.space)
    if samples.total == 0 or train_words.counts.total == 0:
        return None
    return js_divergence(samples, train_words.counts)
