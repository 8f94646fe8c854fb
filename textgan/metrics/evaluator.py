"""The training-time evaluator: registered metrics of generated ids beside their floor.

The floor of each metric is its value for N real held-out sequences at the same N, computed
once per N. By default the evaluator computes the JS-1..4 of the reference evaluation of
Gulrajani et al. (2017); any registered metric can be asked for. A run evaluates
``TRAINING_METRICS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgan.metrics.lm import KneserNeyLM
from textgan.metrics.reference import PAPER_N_SAMPLES, ReferenceNgrams
from textgan.metrics.registry import (
    Batch,
    Resources,
    Value,
    as_floor,
    compute,
    get_metrics,
    real_batch,
    sample_batch,
)

PAPER_METRICS = ("js",)
# Beside the paper's JS: JS against held-out lines and whether samples are varied and new, so
# that a run which copies its training lines shows it (a copy's n-grams are all in the
# training reference; against held-out lines it scores like real text, no better).
TRAINING_METRICS = ("js", "heldout_js", "unique_rate", "copy_rate")


def corpus_resources(prepared: Any, max_n: int, progress: bool) -> Resources:
    """What a prepared corpus offers metrics; its n-gram reference and LM come from (or go to)
    the caches beside it, built only when a metric needs them."""
    return Resources(
        train=lambda: prepared.train,
        heldout=lambda: prepared.heldout,
        vocab=lambda: prepared.vocab,
        ngrams=lambda: ReferenceNgrams.for_corpus(prepared, max_n, progress),
        lm=lambda: KneserNeyLM.for_corpus(prepared, progress=progress),
    )


class JSEvaluator:
    """Registered ``metrics`` (JS-1..max_n by default) of samples against a prepared corpus.

    ``evaluator(sample_ids)`` returns ``{"n_samples": N, "js1": .., "floor_js1": .., ..}`` where
    ``floor_<key>`` is the value of N real held-out sequences (computed once per N).
    """

    def __init__(
        self,
        prepared: Any,
        n_samples: int = PAPER_N_SAMPLES,
        max_n: int = 4,
        seed: int = 0,
        progress: bool = True,
        metrics: Sequence[str] = PAPER_METRICS,
    ) -> None:
        self.metrics = get_metrics(metrics)
        self.resources = corpus_resources(prepared, max_n, progress)
        self.heldout = prepared.heldout
        self.n_samples = n_samples
        self.max_n = max_n
        self.seed = seed
        self._real: dict[int, tuple[Batch, dict[str, Value]]] = {}
        self.floor_at(n_samples)  # checks N against the held-out split now, not mid-training

    @property
    def reference(self) -> ReferenceNgrams:
        """The n-gram counts of the training split."""
        return self.resources.get("ngrams")

    @property
    def floor(self) -> dict[str, Value]:
        """``floor_<key>`` at ``n_samples``."""
        return self.floor_at(self.n_samples)

    def floor_at(self, n: int) -> dict[str, Value]:
        """The metrics of ``n`` real held-out sequences, as ``floor_<key>``."""
        return self._real_at(n)[1]

    def _real_at(self, n: int) -> tuple[Batch, dict[str, Value]]:
        if n not in self._real:
            real = real_batch(self.heldout, n, self.seed, self.max_n)
            self._real[n] = real, as_floor(compute(self.metrics, real, self.resources))
        return self._real[n]

    def __call__(self, sample_ids: np.ndarray) -> dict[str, Value | int]:
        sample_ids = np.atleast_2d(np.asarray(sample_ids))
        if sample_ids.shape[1] != self.heldout.shape[1]:
            raise ValueError(
                f"samples have length {sample_ids.shape[1]}, the corpus {self.heldout.shape[1]}"
            )
        real, floor = self._real_at(len(sample_ids))
        row: dict[str, Value | int] = {"n_samples": len(sample_ids)}
        row.update(compute(self.metrics, sample_batch(sample_ids, real), self.resources))
        row.update(floor)
        return row
