"""The score report: every registered metric (``textgan.metrics.registry``) of N samples
beside the same metric of N real lines.

The real lines are N held-out sequences drawn by ``seed`` (the floor of the JS table); they are
scored exactly like the samples, so each row of the report reads "samples vs what real text of
the same size gets". Where a metric needs held-out text of its own, the real lines are kept out
of it: BLEU leaves each real line out of its own references, and the reverse LM scores the
held-out lines outside the N.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgan.devices import memory_limit
from textgan.errors import UserError
from textgan.metrics.evaluator import corpus_resources
from textgan.metrics.lm import ORDER, SCORER_PART, KneserNeyLM, training_part
from textgan.metrics.ngrams import MAX_ORDER, check_order, largest_base
from textgan.metrics.reference import ReferenceNgrams, subset_rows
from textgan.metrics.registry import (
    METRICS,
    Resources,
    as_floor,
    compute,
    real_batch,
    sample_batch,
)
from textgan.vocab import UNK, Vocab, count_symbols, text_to_codes

REFERENCE_HOLDOUT = 10_000
# Peak working memory per symbol scored in memory (UTF-32 codes, ids, uint64 n-gram keys and
# the sorts and index arrays of BLEU): an estimate with room to spare, to refuse early.
BYTES_PER_SYMBOL = 64


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
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise UserError(
            f"{what} {name} is a binary file (a NUL byte on line {line}); give UTF-8 text"
        )
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
    check_fits(len(lines), seq_len, "the samples")
    if vocab.kind == "bytes":
        truncated = sum(len(line.encode("utf-8")) > seq_len for line in lines)
    else:
        truncated = sum(len(line) > seq_len for line in lines)
    codes = vocab.symbol_codes(lines, seq_len)
    ids = vocab.codes_to_ids(codes)
    unk = int(np.count_nonzero((ids == UNK) & (codes != 0)))
    return Samples(ids, truncated, unk)


def check_fits(lines: int, seq_len: int, what: str) -> None:
    """Refuse (UserError) to score ``lines`` of ``seq_len`` symbols that would need more
    memory than the machine has, before allocating any of it."""
    need = lines * seq_len * BYTES_PER_SYMBOL
    try:
        have = memory_limit()
    except (ValueError, OSError, AttributeError):  # a platform without these names: unknown
        return
    if need > have:
        raise UserError(
            f"{what}: {lines:,} lines of {seq_len:,} symbols need about {need / 2**30:,.0f} GiB "
            f"to score, more than the {have / 2**30:,.0f} GiB of memory here; "
            "use a smaller --seq-len, or fewer lines (-n)"
        )


class Scorer:
    """Every registered metric of samples against a corpus, each beside its floor."""

    def __init__(self, name: str, resources: Resources) -> None:
        self.name, self.resources = name, resources
        # The floor of each (N, max_n, seed): a sweep scores many sample sets at one N.
        self._floors: dict[tuple[int, int, int], dict[str, Any]] = {}

    @property
    def heldout(self) -> np.ndarray:
        return self.resources.get("heldout")

    @property
    def vocab(self) -> Vocab:
        return self.resources.get("vocab")

    @property
    def seq_len(self) -> int:
        return int(self.heldout.shape[1])

    @classmethod
    def from_prepared(cls, prepared: Any, max_n: int, progress: bool = True) -> Scorer:
        """From a prepared corpus; the n-gram reference and the LM are cached beside it."""
        _check_orders(max_n, len(prepared.vocab))
        return cls(f"corpus {prepared.key}", corpus_resources(prepared, max_n, progress))

    @classmethod
    def from_lines(
        cls, lines: list[str], name: str, seq_len: int, n: int, max_n: int, seed: int = 0
    ) -> Scorer:
        """From plain text lines, in memory: the vocabulary of the whole text, a held-out split
        of max(N, min(10,000, 10 %)) lines drawn by ``seed``, the rest as the reference."""
        check_fits(len(lines), seq_len, name)
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
        resources = Resources(
            train=lambda: train,
            heldout=lambda: heldout,
            vocab=lambda: vocab,
            ngrams=lambda: ReferenceNgrams.build(train, max_n, len(vocab)),
            lm=lambda: KneserNeyLM.fit(training_part(train, SCORER_PART), base=len(vocab)),
        )
        return cls(name, resources)

    def report(
        self, samples: Samples | None, n: int, max_n: int = 4, seed: int = 0
    ) -> dict[str, Any]:
        """One flat dict: ``n_samples``, every registered metric of the samples (unless
        ``samples`` is None) and of N real held-out lines as ``floor_<key>``."""
        if samples is not None:
            n = min(n, len(samples.ids))
        metrics = list(METRICS.values())
        real = real_batch(self.heldout, n, seed, max_n)
        out: dict[str, Any] = {"reference": self.name, "seq_len": self.seq_len, "n_samples": n}
        if samples is not None:
            out["truncated_samples"] = samples.truncated
            out["unk_chars"] = samples.unk
            out.update(compute(metrics, sample_batch(samples.ids[:n], real), self.resources))
        if (n, max_n, seed) not in self._floors:
            self._floors[n, max_n, seed] = as_floor(compute(metrics, real, self.resources))
        out.update(self._floors[n, max_n, seed])
        return out


def _check_orders(max_n: int, base: int) -> None:
    """``--ngrams`` in range, and keys of that order and of the LM's order fit 64 bits."""
    if not 1 <= max_n <= MAX_ORDER:
        raise UserError(f"--ngrams must be between 1 and {MAX_ORDER} (got {max_n})")
    longest = max(max_n, ORDER)
    try:
        check_order(longest, base)
    except ValueError:
        fits = largest_base(longest)
        usable = [n for n in range(ORDER, max_n) if base <= largest_base(n)]
        fewer = f"use --ngrams {usable[-1]} or " if usable else ""
        raise UserError(
            f"the vocabulary has {base} ids: too many for {longest}-gram keys of 64 bits "
            f"(at most {fits} ids fit); {fewer}prepare the corpus with --max-vocab {fits}"
        ) from None


def format_table(report: dict[str, Any], real_only: bool = False) -> str:
    """The report as a text table: metric, value, floor at the same N."""
    n = report["n_samples"]
    head = f"{n:,} real held-out lines" if real_only else f"{n:,} samples"
    lines = [f"{head} scored against {report['reference']} (sequence length {report['seq_len']})"]
    if not real_only:
        lines.append(
            f"{report['truncated_samples']:,} of them truncated to {report['seq_len']} symbols; "
            f"{report['unk_chars']:,} characters outside the vocabulary scored as UNK"
        )
    floor_col = f"floor (N={n:,})"
    cols = ["metric", floor_col] if real_only else ["metric", "value", floor_col]
    rows, notes = [cols], []
    for metric in METRICS.values():
        values = []
        for key in (k for k in metric.keys if f"floor_{k}" in report):
            row = [report[f"floor_{key}"]] if real_only else [report[key], report[f"floor_{key}"]]
            rows.append([key, *(_fmt(v) for v in row)])
            values += row
        if metric.note and None in values:
            notes.append(metric.note)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines + notes)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
