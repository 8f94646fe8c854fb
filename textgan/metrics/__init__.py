"""Metrics of generated text against a corpus: n-gram JS with its real-vs-real floor, language
model scores, BLEU and Self-BLEU, diversity. Nothing here imports torch or the models."""

from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts, count_all, window_keys
from textgan.metrics.reference import JSEvaluator, ReferenceNgrams, real_subset, subset_rows

__all__ = [
    "JSEvaluator",
    "NgramCounts",
    "ReferenceNgrams",
    "count_all",
    "js_divergence",
    "real_subset",
    "subset_rows",
    "window_keys",
]
