"""The score report: every metric of N samples beside the same metric of N real lines.

The real lines are N held-out sequences drawn by ``seed`` (the floor of the JS table); they are
scored exactly like the samples, so each row of the report reads "samples vs what real text of
the same size gets". Where a metric needs held-out text of its own, the real lines are kept out
of it: BLEU leaves each real line out of its own references, and the reverse LM scores the
held-out lines outside the N.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgan.errors import UserError
from textgan.metrics.bleu import bleu_orders
from textgan.metrics.diversity import RowIndex, copy_rate, distinct_n, unique_rate
from textgan.metrics.lm import ORDER, KneserNeyLM
from textgan.metrics.ngrams import MAX_ORDER, check_order
from textgan.metrics.reference import ReferenceNgrams, subset_rows
from textgan.vocab import UNK, Vocab, count_symbols, text_to_codes

BLEU_ORDERS = (2, 3, 4, 5)
DISTINCT_ORDERS = (1, 2, 3, 4)
REFERENCE_HOLDOUT = 10_000


@dataclass
class Samples:
    """Sample lines encoded for a corpus, with what encoding had to change."""

    ids: np.ndarray
    truncated: int  # lines longer than the sequence length
    unk: int  # characters outside the vocabulary, now UNK


def read_lines(source: str, what: str) -> list[str]:
    """Lines of a UTF-8 text file (``-``: standard input); one clear error for a missing,
    binary or empty file."""
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {source} does not exist; give the path of a text file") from None
    except IsADirectoryError:
        raise UserError(f"{what} {source} is a folder; give the path of a text file") from None
    except OSError as err:
        raise UserError(f"cannot read {what} {source}: {err.strerror or err}") from None
    name = "standard input" if source == "-" else source
    if b"\0" in data:
        raise UserError(f"{what} {name} is a binary file (it holds NUL bytes); give UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(f"{what} {name} is not UTF-8 text (line {line}); give UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise UserError(f"{what} {name} is empty; give one line per sample")
    return lines


def encode_samples(lines: list[str], vocab: Vocab, seq_len: int) -> Samples:
    """Truncate/pad to ``seq_len`` symbols, unknown symbols to UNK; count both."""
    if vocab.kind == "bytes":
        truncated = sum(len(line.encode("utf-8")) > seq_len for line in lines)
    else:
        truncated = sum(len(line) > seq_len for line in lines)
    codes = vocab.symbol_codes(lines, seq_len)
    ids = vocab.codes_to_ids(codes)
    unk = int(np.count_nonzero((ids == UNK) & (codes != 0)))
    return Samples(ids, truncated, unk)


class Scorer:
    """What scoring needs of a corpus: its splits, vocabulary, n-gram reference and LM."""

    def __init__(
        self,
        name: str,
        train: np.ndarray,
        heldout: np.ndarray,
        vocab: Vocab,
        ngrams: ReferenceNgrams,
        lm: KneserNeyLM,
    ) -> None:
        self.name, self.train, self.heldout, self.vocab = name, train, heldout, vocab
        self.ngrams, self.lm = ngrams, lm
        self._train_rows: RowIndex | None = None

    @property
    def train_rows(self) -> RowIndex:
        """Index of the training rows for the copy rate, built on first use."""
        if self._train_rows is None:
            self._train_rows = RowIndex(self.train)
        return self._train_rows

    @property
    def seq_len(self) -> int:
        return int(self.heldout.shape[1])

    @classmethod
    def from_prepared(cls, prepared: Any, max_n: int, progress: bool = True) -> Scorer:
        """From a prepared corpus; the n-gram reference and the LM are cached beside it."""
        _check_orders(max_n, len(prepared.vocab))
        ngrams = ReferenceNgrams.for_corpus(prepared, max_n, progress)
        lm = KneserNeyLM.for_corpus(prepared, progress=progress)
        name = f"corpus {prepared.key}"
        return cls(name, prepared.train, prepared.heldout, prepared.vocab, ngrams, lm)

    @classmethod
    def from_lines(
        cls, lines: list[str], name: str, seq_len: int, n: int, max_n: int, seed: int = 0
    ) -> Scorer:
        """From plain text lines, in memory: the vocabulary of the whole text, a held-out split
        of max(N, min(10,000, 10 %)) lines drawn by ``seed``, the rest as the reference."""
        codes = text_to_codes(lines, seq_len)
        vocab = Vocab.from_counts(count_symbols(codes), "chars", 256)
        _check_orders(max_n, len(vocab))
        holdout = max(n, min(REFERENCE_HOLDOUT, len(lines) // 10))
        if holdout >= len(lines):
            raise UserError(
                f"{name} has {len(lines)} lines: too few to hold out {holdout} real lines and "
                f"keep a reference; use -n {max(1, len(lines) // 2)} or a longer file"
            )
        ids = vocab.codes_to_ids(codes)
        held = np.zeros(len(ids), dtype=bool)
        held[subset_rows(len(ids), holdout, seed)] = True
        train, heldout = ids[~held], ids[held]
        ngrams = ReferenceNgrams.build(train, max_n, len(vocab))
        lm = KneserNeyLM.fit(train, base=len(vocab))
        return cls(name, train, heldout, vocab, ngrams, lm)

    def metrics(
        self, ids: np.ndarray, max_n: int, rest: np.ndarray, own: np.ndarray | None = None
    ) -> dict:
        """Every metric of the rows ``ids`` (module docstring). ``rest``: held-out rows the
        reverse LM scores; ``own``: the held-out row of each of ``ids`` when they are real."""
        base = len(self.vocab)
        out: dict[str, float | None] = {}
        for k, js in self.ngrams.js(ids, max_n).items():
            out[f"js{k}"] = js
        out.update(_nats_and_bits("lm", self.lm.nll(ids)[0]))
        reverse = KneserNeyLM.fit(ids, base=base).nll(rest)[0] if len(rest) else None
        out.update(_nats_and_bits("reverse_lm", reverse))
        if len(self.heldout) > (own is not None):
            bleu = bleu_orders(ids, self.heldout, BLEU_ORDERS, base, own)
        else:
            bleu = dict.fromkeys(BLEU_ORDERS)
        out.update({f"bleu{k}": v for k, v in bleu.items()})
        if len(ids) > 1:
            self_bleu = bleu_orders(ids, ids, BLEU_ORDERS, base, np.arange(len(ids)))
        else:
            self_bleu = dict.fromkeys(BLEU_ORDERS)
        out.update({f"self_bleu{k}": v for k, v in self_bleu.items()})
        for k in DISTINCT_ORDERS:
            out[f"distinct{k}"] = distinct_n(ids, k, base)
        out["unique_rate"] = unique_rate(ids)
        out["copy_rate"] = copy_rate(ids, self.train_rows)
        return out

    def report(
        self, samples: Samples | None, n: int, max_n: int = 4, seed: int = 0
    ) -> dict[str, Any]:
        """One flat dict: ``n_samples``, the samples' metrics (unless ``samples`` is None) and
        each metric of N real held-out lines as ``floor_<metric>``."""
        if samples is not None:
            n = min(n, len(samples.ids))
        rows = subset_rows(len(self.heldout), n, seed)
        real = np.asarray(self.heldout[rows])
        rest = np.asarray(np.delete(self.heldout, rows, axis=0))
        out: dict[str, Any] = {"reference": self.name, "seq_len": self.seq_len, "n_samples": n}
        if samples is not None:
            out["truncated_samples"] = samples.truncated
            out["unk_chars"] = samples.unk
            out.update(self.metrics(samples.ids[:n], max_n, rest))
        floor = self.metrics(real, max_n, rest, own=rows)
        out.update({f"floor_{k}": v for k, v in floor.items()})
        return out


def _check_orders(max_n: int, base: int) -> None:
    """``--ngrams`` in range, and keys of that order and of the LM's order fit 64 bits."""
    if not 1 <= max_n <= MAX_ORDER:
        raise UserError(f"--ngrams must be between 1 and {MAX_ORDER} (got {max_n})")
    longest = max(max_n, ORDER)
    try:
        check_order(longest, base)
    except ValueError:
        raise UserError(
            f"the vocabulary has {base} ids: too many for {longest}-gram keys; "
            "prepare the corpus with a smaller --max-vocab"
        ) from None


def _nats_and_bits(name: str, nats: float | None) -> dict[str, float | None]:
    bits = None if nats is None else nats / math.log(2)
    return {f"{name}_nats": nats, f"{name}_bits": bits}


def format_table(report: dict[str, Any], real_only: bool = False) -> str:
    """The report as a text table: metric, value, floor at the same N."""
    n = report["n_samples"]
    metrics = [k.removeprefix("floor_") for k in report if k.startswith("floor_")]
    head = f"{n:,} real held-out lines" if real_only else f"{n:,} samples"
    lines = [f"{head} scored against {report['reference']} (sequence length {report['seq_len']})"]
    if not real_only:
        lines.append(
            f"{report['truncated_samples']:,} of them truncated to {report['seq_len']} symbols; "
            f"{report['unk_chars']:,} characters outside the vocabulary scored as UNK"
        )
    floor_col = f"floor (N={n:,})"
    cols = ["metric", floor_col] if real_only else ["metric", "value", floor_col]
    rows = [cols]
    for m in metrics:
        values = [report[f"floor_{m}"]] if real_only else [report[m], report[f"floor_{m}"]]
        rows.append([m, *(_fmt(v) for v in values)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    if report.get("floor_reverse_lm_nats", 0) is None:
        lines.append(
            "reverse LM n/a: every held-out line is among the N real ones "
            "(use a smaller -n, or prepare the corpus with a larger --holdout)"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
