"""The registry of metrics, as stylegan2-ada's ``metrics/metric_main.py``.

A metric is a function ``compute(batch, **needs) -> {key: value}`` registered with
``@register_metric(*keys, needs=(...))``. ``batch`` holds the rows scored (N samples, or the N
real held-out lines of the floor); ``needs`` names what else it uses of the corpus, from
``Resources``: ``train`` (training rows), ``heldout`` (held-out rows), ``vocab``, ``ngrams``
(the ``ReferenceNgrams`` of the training rows), ``lm`` (the ``KneserNeyLM`` of the scorer's
half of the training rows), or a resource derived from those with ``@register_resource``. A
metric receives exactly what it declares, and is computed once for the samples and once for the
real lines: every value comes with its floor.

Adding a metric is one file (the measure, on id arrays) and one registration below; the score
report, its table and the training-time evaluator read this registry. Keys are declared for
the widest settings (``js1..js8``); a call returns those of its settings (``js1..js{max_n}``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from textgan.metrics import diversity
from textgan.metrics.bleu import bleu_orders
from textgan.metrics.diversity import RowIndex
from textgan.metrics.js_words import js_words as js_of_words
from textgan.metrics.lm import KneserNeyLM
from textgan.metrics.ngrams import MAX_ORDER
from textgan.metrics.reference import HeldoutNgrams, ReferenceNgrams, subset_rows
from textgan.metrics.word_known import KnownWords, space_id
from textgan.vocab import Vocab

Value = float | None  # None: not defined for these rows (shown as n/a)
BLEU_ORDERS = (2, 3, 4, 5)
# Why a metric of the held-out lines outside the N real ones is n/a.
NONE_LEFT = (
    "every held-out line is among the N real ones "
    "(use a smaller -n, or prepare the corpus with a larger --holdout)"
)
DISTINCT_ORDERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Batch:
    """Rows to score: N samples, or the N real held-out lines (``is_real``) of the floor."""

    ids: np.ndarray
    real_rows: np.ndarray  # indices of the N real lines in the held-out split
    is_real: bool
    max_n: int = 4  # largest n of JS-n

    @property
    def own(self) -> np.ndarray | None:
        """For real lines, the held-out row of each (to leave out of its own references)."""
        return self.real_rows if self.is_real else None


@dataclass(frozen=True)
class Metric:
    name: str
    keys: tuple[str, ...]
    needs: tuple[str, ...]
    compute: Callable[..., dict[str, Value]]
    note: str = ""  # printed under the table when a value is n/a: why, and what to do


METRICS: dict[str, Metric] = {}
DERIVED: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {}


def register_metric(*keys: str, needs: Iterable[str] = (), note: str = "") -> Callable:
    """Register the decorated ``compute(batch, **needs)`` under its function name; ``keys``:
    every key it may return (default: its name)."""

    def register(compute: Callable[..., dict[str, Value]]) -> Callable[..., dict[str, Value]]:
        metric = Metric(compute.__name__, keys or (compute.__name__,), tuple(needs), compute, note)
        taken = {k for m in METRICS.values() for k in m.keys}
        if metric.name in METRICS or taken & set(metric.keys):
            raise ValueError(f"metric {metric.name} or one of its keys is registered already")
        METRICS[metric.name] = metric
        return compute

    return register


def register_resource(needs: Iterable[str]) -> Callable:
    """Register the decorated ``build(**needs)`` as a resource named after it, built from other
    resources once per ``Resources`` (an index of the training rows, say)."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        DERIVED[build.__name__] = (tuple(needs), build)
        return build

    return register


class Resources:
    """What a corpus offers metrics, by name, each built on first use: the ``given`` builders
    (no arguments) and the registered derived resources."""

    def __init__(self, **given: Callable[[], Any]) -> None:
        self.given = given
        self.built: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self.built:
            if name in self.given:
                self.built[name] = self.given[name]()
            elif name in DERIVED:
                needs, build = DERIVED[name]
                self.built[name] = build(**self.take(needs))
            else:
                raise KeyError(f"no resource {name!r} to score with")
        return self.built[name]

    def take(self, needs: Iterable[str]) -> dict[str, Any]:
        return {name: self.get(name) for name in needs}


def get_metrics(names: Sequence[str]) -> list[Metric]:
    """The registered metrics of these names, in order; ValueError for an unknown one."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; registered: {', '.join(METRICS)}")
    return [METRICS[n] for n in names]


def compute(metrics: Iterable[Metric], batch: Batch, resources: Resources) -> dict[str, Value]:
    """Every value of ``metrics`` for ``batch``, in registry key order."""
    out: dict[str, Value] = {}
    for metric in metrics:
        values = metric.compute(batch, **resources.take(metric.needs))
        if not set(values) <= set(metric.keys):
            raise RuntimeError(f"metric {metric.name} returned undeclared keys {set(values)}")
        out.update(values)
    return out


# -- the metrics, in the order of the score table ----------------------------------------------


@register_metric(*(f"js{n}" for n in range(1, MAX_ORDER + 1)), needs=("ngrams",))
def js(batch: Batch, ngrams: ReferenceNgrams) -> dict[str, Value]:
    """JS-1..max_n (bits) against the training n-grams (textgan.metrics.js)."""
    return {f"js{n}": v for n, v in ngrams.js(batch.ids, batch.max_n).items()}


@register_metric(
    needs=("train_words",),
    note="js_words n/a: no whole word among the lines (or in the training text)",
)
def js_words(batch: Batch, train_words: KnownWords) -> dict[str, Value]:
    """JS (bits) of the word-unigram distributions (textgan.metrics.js_words)."""
    return {"js_words": js_of_words(batch.ids, train_words)}


@register_resource(needs=("heldout", "vocab"))
def heldout_ngrams(heldout: np.ndarray, vocab: Vocab) -> HeldoutNgrams:
    return HeldoutNgrams(heldout, len(vocab))


@register_metric(
    *(f"heldout_js{n}" for n in range(1, MAX_ORDER + 1)),
    needs=("heldout_ngrams",),
    note=f"heldout_js n/a: {NONE_LEFT}",
)
def heldout_js(batch: Batch, heldout_ngrams: HeldoutNgrams) -> dict[str, Value]:
    """JS-1..max_n (bits) against the held-out lines outside the N real ones."""
    values = heldout_ngrams.js(batch.ids, batch.max_n, batch.real_rows)
    orders = range(1, batch.max_n + 1)
    return {f"heldout_js{n}": None if values is None else values[n] for n in orders}


@register_metric("lm_nats", "lm_bits", needs=("lm",))
def lm(batch: Batch, lm: KneserNeyLM) -> dict[str, Value]:
    """NLL per character under the scoring language model (textgan.metrics.lm)."""
    return _nats_and_bits("lm", lm.nll(batch.ids)[0])


@register_metric(
    "reverse_lm_nats",
    "reverse_lm_bits",
    needs=("heldout", "vocab"),
    note=f"reverse LM n/a: {NONE_LEFT}",
)
def reverse_lm(batch: Batch, heldout: np.ndarray, vocab: Vocab) -> dict[str, Value]:
    """NLL of the held-out lines outside the N real ones under an LM fit on the rows."""
    rest = np.delete(np.asarray(heldout), batch.real_rows, axis=0)
    nats = KneserNeyLM.fit(batch.ids, base=len(vocab)).nll(rest)[0] if len(rest) else None
    return _nats_and_bits("reverse_lm", nats)


@register_metric(*(f"bleu{n}" for n in BLEU_ORDERS), needs=("heldout", "vocab"))
def bleu(batch: Batch, heldout: np.ndarray, vocab: Vocab) -> dict[str, Value]:
    """BLEU-n against the held-out lines, a real line never its own reference."""
    if len(heldout) <= batch.is_real:
        return {f"bleu{n}": None for n in BLEU_ORDERS}
    values = bleu_orders(batch.ids, heldout, BLEU_ORDERS, len(vocab), batch.own)
    return {f"bleu{n}": v for n, v in values.items()}


@register_metric(
    *(f"self_bleu{n}" for n in BLEU_ORDERS),
    needs=("vocab",),
    note="Self-BLEU n/a: it needs at least two lines (use a larger -n)",
)
def self_bleu(batch: Batch, vocab: Vocab) -> dict[str, Value]:
    """BLEU-n of each row against the other rows."""
    ids = batch.ids
    if len(ids) < 2:
        return {f"self_bleu{n}": None for n in BLEU_ORDERS}
    values = bleu_orders(ids, ids, BLEU_ORDERS, len(vocab), np.arange(len(ids)))
    return {f"self_bleu{n}": v for n, v in values.items()}


@register_metric(*(f"distinct{n}" for n in DISTINCT_ORDERS), needs=("vocab",))
def distinct(batch: Batch, vocab: Vocab) -> dict[str, Value]:
    """Distinct n-grams / n-grams (textgan.metrics.diversity)."""
    return {f"distinct{n}": diversity.distinct_n(batch.ids, n, len(vocab)) for n in DISTINCT_ORDERS}


@register_metric()
def unique_rate(batch: Batch) -> dict[str, Value]:
    """Distinct rows / rows."""
    return {"unique_rate": diversity.unique_rate(batch.ids)}


@register_resource(needs=("train",))
def train_rows(train: np.ndarray) -> RowIndex:
    return RowIndex(train)


@register_metric(needs=("train_rows",))
def copy_rate(batch: Batch, train_rows: RowIndex) -> dict[str, Value]:
    """Share of rows equal to a training row."""
    return {"copy_rate": diversity.copy_rate(batch.ids, train_rows)}


@register_resource(needs=("train", "vocab"))
def train_words(train: np.ndarray, vocab: Vocab) -> KnownWords:
    return KnownWords(train, space_id(vocab))


@register_metric(
    needs=("train_words",),
    note="word_known n/a: no whole word among the lines",
)
def word_known(batch: Batch, train_words: KnownWords) -> dict[str, Value]:
    """Share of whole words that occur in the training text (textgan.metrics.word_known)."""
    return {"word_known": train_words.share(batch.ids)}


def real_batch(heldout: np.ndarray, n: int, seed: int, max_n: int) -> Batch:
    """The N real held-out lines drawn by ``seed`` (the floor's rows, always the same)."""
    rows = subset_rows(len(heldout), n, seed)
    return Batch(np.asarray(heldout[rows]), rows, True, max_n)


def sample_batch(ids: np.ndarray, real: Batch) -> Batch:
    """Samples scored beside the real lines ``real`` (kept out of the reverse LM's text)."""
    return replace(real, ids=np.atleast_2d(np.asarray(ids)), is_real=False)


def as_floor(values: dict[str, Value]) -> dict[str, Value]:
    """Values of the real lines under their report keys, ``floor_<key>``."""
    return {f"floor_{k}": v for k, v in values.items()}


def _nats_and_bits(name: str, nats: float | None) -> dict[str, Value]:
    bits = None if nats is None else nats / math.log(2)
    return {f"{name}_nats": nats, f"{name}_bits": bits}
