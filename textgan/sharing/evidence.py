"""What the demo page shows from a training corpus prepared on this machine: the words of each
sample that never occur in the training text, JS-1..4 and the known-word share beside their
real-vs-real floors, the Kneser-Ney 5-gram baseline's samples, and a run's figures.

The numbers are ``textgan score``'s for the same lines (the same encoding of the lines, the
same N real held-out lines drawn by seed 0), restricted to the metrics the page shows. A corpus
is never prepared here: one that is not prepared is a reason shown on the page, not a job. What
is derived from a prepared corpus is built once and cached beside it, the same files ``textgan
score`` and ``textgan sample --baseline kn5`` write: the reference n-grams (``ngrams.npz``) when
the page opens, the 5-gram model (``kn5-baseline.npz``) at the first request for the baseline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textgan.config import build
from textgan.corpus import CorpusConfig, PreparedCorpus, corpus_key, load_prepared
from textgan.errors import UserError, first_line
from textgan.metrics.evaluator import JSEvaluator
from textgan.metrics.report import encode_samples
from textgan.metrics.word_known import KnownWords, space_id, word_hashes
from textgan.vocab import Vocab

if TYPE_CHECKING:
    from textgan.generation.baseline import NgramSampler
    from textgan.sharing.demo import Request

SCORED = ("js", "word_known")
SCORE_SEED = 0  # the real lines of the floors, as textgan score draws them by default
SCORE_ROWS = (*((f"js{n}", f"JS-{n} (bits)") for n in range(1, 5)), ("word_known", "known words"))
_BASELINE = "kn5"


def find_corpus(
    values: dict[str, Any] | None, data_dir: str, vocab: Vocab
) -> tuple[PreparedCorpus | None, str]:
    """The prepared cache of a source's training corpus (its config's corpus section; its
    ``data_dir`` unless it names none), or None and why it cannot be used."""
    if not isinstance(values, dict):
        return None, "the source's config names no training corpus"
    try:
        cfg = build(CorpusConfig, {"data_dir": data_dir, **values}, "the source's corpus")
        folder = Path(cfg.data_dir).expanduser() / corpus_key(cfg)
        if not folder.is_dir():
            return None, (
                f"its training corpus {cfg.corpus!r} is not prepared in {cfg.data_dir}/ "
                "(prepare it with the settings of the source's config.json, or point "
                "--data-dir at its cache)"
            )
        prepared = load_prepared(folder)
    except UserError as err:
        return None, f"its training corpus cannot be read here ({first_line(err)})"
    if prepared.vocab != vocab:
        return None, f"the corpus prepared in {folder} has another vocabulary than the model"
    return prepared, ""


class Evidence:
    """Known words, scores with floors and the 5-gram baseline of one prepared corpus."""

    def __init__(self, prepared: PreparedCorpus) -> None:
        self.prepared, self.vocab, self.seq_len = prepared, prepared.vocab, prepared.seq_len
        self.evaluator = JSEvaluator(
            prepared, n_samples=1, seed=SCORE_SEED, progress=False, metrics=SCORED
        )
        self.known: KnownWords = self.evaluator.resources.get("train_words")
        self.space = space_id(self.vocab)
        self._sampler: NgramSampler | None = None

    def unknown_words(self, lines: list[str]) -> list[list[tuple[int, int]]]:
        """For each line, the character spans of its words that never occur in the training
        text, as ``word_known`` counts words: split at spaces, the last word of a line that
        fills the sequence length (cut there) never marked."""
        spans = [self._words(line) for line in lines]
        words = sorted(
            {line[s:e] for line, found in zip(lines, spans, strict=True) for s, e in found}
        )
        known = self._known(words)
        return [
            [(s, e) for s, e in found if not known[line[s:e]]]
            for line, found in zip(lines, spans, strict=True)
        ]

    def _words(self, line: str) -> list[tuple[int, int]]:
        if self.space is None:  # no space in the vocabulary: a line is one word
            pieces = [(0, len(line))] if line else []
        else:
            pieces, at = [], 0
            for word in line.split(" "):
                if word:
                    pieces.append((at, at + len(word)))
                at += len(word) + 1
        symbols = int(np.count_nonzero(self.vocab.symbol_codes([line], self.seq_len + 1)))
        if pieces and symbols >= self.seq_len and pieces[-1][1] == len(line):
            pieces.pop()  # cut at the sequence length: neither known nor unknown
        return pieces

    def _known(self, words: list[str]) -> dict[str, bool]:
        """Whether each word occurs in the training text, by word_known's own hash."""
        if not words:
            return {}
        # One PAD after every word ends it; rows of equal length end in the same column, so
        # word_hashes returns their hashes in row order.
        ids = self.vocab.codes_to_ids(self.vocab.symbol_codes(words, self.seq_len + 1))
        lengths = np.count_nonzero(ids, axis=1)
        known: dict[str, bool] = {}
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            found = np.isin(word_hashes(ids[rows], self.space), self.known.hashes)
            known.update((words[r], bool(f)) for r, f in zip(rows, found, strict=True))
        return known

    def scores(self, lines: list[str]) -> dict[str, Any]:
        """JS-1..4 and the known-word share of the first N lines beside N real held-out
        lines, N at most the held-out split (as ``textgan score -n N``)."""
        n = min(len(lines), len(self.prepared.heldout))
        ids = encode_samples(lines[:n], self.vocab, self.seq_len).ids
        return self.evaluator(ids)

    def baseline_lines(self, request: Request) -> list[str]:
        """``textgan sample --baseline kn5`` for the request's N, seed and temperature (T = 1
        for argmax: the 5-gram model's argmax repeats one line)."""
        from textgan.generation.baseline import baseline_sampler

        if self._sampler is None:  # read from its cache, or fit and cached, at the first request
            self._sampler = baseline_sampler(_BASELINE, self.prepared)
        temperature = request.temperature or 1.0
        batches = self._sampler.lines(self.vocab, request.n, temperature, request.seed)
        return [line for batch in batches for line in batch]

    def render(self, lines: list[str], request: Request) -> tuple[str, str, str]:
        """(samples, baseline samples, scores) of the page, as HTML."""
        from textgan.sharing.demo import lines_html

        gan = self.scores(lines)
        columns = [("this generator", gan)]
        baseline = ""
        if request.baseline:
            kn5 = self.baseline_lines(request)
            columns.append(("5-gram baseline", self.scores(kn5)))
            untruncated = "" if request.truncation is None else " (no noise to truncate)"
            head = f"<h4>Kneser-Ney 5-gram baseline{untruncated}</h4>"
            baseline = head + lines_html(kn5, self.unknown_words(kn5))
        return lines_html(lines, self.unknown_words(lines)), baseline, self.table(columns)

    def table(self, columns: list[tuple[str, dict[str, Any]]]) -> str:
        """The scores of each column beside the floor of the first column's N."""
        n = columns[0][1]["n_samples"]
        head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns)
        rows = []
        for key, name in SCORE_ROWS:
            cells = "".join(f"<td>{_num(report.get(key))}</td>" for _, report in columns)
            floor = _num(columns[0][1].get(f"floor_{key}"))
            rows.append(f'<tr data-key="{key}"><td>{name}</td>{cells}<td>{floor}</td></tr>')
        caption = (
            f"{n:,} lines scored against corpus {html.escape(self.prepared.key)}; the floor is "
            f"{n:,} real held-out lines (seed {SCORE_SEED}), as textgan score reports them"
        )
        return (
            f"<table><caption>{caption}</caption><tr><th>metric</th>{head}"
            f"<th>floor (real text)</th></tr>{''.join(rows)}</table>"
        )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_figures(run_dir: Path) -> list[Any]:
    """The run's JS-1..4 against iterations with floors (when it has evaluated) and its
    training curves, as matplotlib figures."""
    from textgan.plots import load_run, run_labels
    from textgan.plots.figures import js_figure, training_figure

    runs = [load_run(run_dir)]
    labels = run_labels(runs)
    figures = [js_figure(runs, labels)] if runs[0].evals else []
    return [*figures, training_figure(runs, labels)]
