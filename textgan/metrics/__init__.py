"""Metrics of generated text against a corpus: n-gram JS with its real-vs-real floor, language
model scores, BLEU and Self-BLEU, diversity, known words. Nothing here imports torch or the
models. The metrics are registered in ``textgan.metrics.registry``."""

from textgan.metrics.evaluator import JSEvaluator
from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts, count_all, window_keys
from textgan.metrics.reference import ReferenceNgrams, real_subset, subset_rows
from textgan.metrics.registry import METRICS, Batch, Metric, Resources, register_metric

__all__ = [
    "METRICS",
    "Batch",
    "JSEvaluator",
    "Metric",
    "NgramCounts",
    "ReferenceNgrams",
    "Resources",
    "count_all",
    "js_divergence",
    "real_subset",
    "register_metric",
    "subset_rows",
    "window_keys",
]
