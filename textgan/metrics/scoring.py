"""Scoring lines of text against a corpus: what ``textgan score``, ``textgan.score`` and the
temperature sweep share. The metrics themselves are ``textgan.metrics``; this module finds the
corpus to score against (a prepared corpus, a run's corpus or a plain reference file) and the N.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan.config import RunConfig
from textgan.corpus import CorpusConfig, PreparedCorpus, prepare
from textgan.errors import UserError
from textgan.files.rundir import CONFIG, VOCAB
from textgan.metrics.reference import PAPER_N_SAMPLES
from textgan.metrics.report import Scorer, encode_samples, read_lines
from textgan.vocab import Vocab


@dataclass(frozen=True)
class Target:
    """What to score against: exactly one of a corpus, a run's corpus or a reference file."""

    corpus: str | None = None
    run: str | Path | None = None
    reference: str | None = None
    data_dir: str = "data"
    seq_len: int = 32  # of a reference file

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.corpus, self.run, self.reference)) != 1:
            raise UserError("say what to score against: one of --corpus, --run or --reference")


def run_corpus(run_dir: str | Path, progress: bool = False) -> PreparedCorpus:
    """The prepared corpus of a run's ``config.json``, checked against the run's vocabulary."""
    run = Path(run_dir)
    if not (run / CONFIG).is_file() or not (run / VOCAB).is_file():
        raise UserError(f"{run} is not a run directory (no {CONFIG} and {VOCAB} there)")
    prepared = prepare(RunConfig.load(run / CONFIG).corpus, progress=progress)
    try:
        same_vocab = Vocab.load(run / VOCAB) == prepared.vocab
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{run}/{VOCAB} is unreadable: {err}") from None
    if not same_vocab:
        raise UserError(
            f"the corpus in {run}/{CONFIG} now has another vocabulary than the run's {VOCAB}; "
            "prepare the corpus the run was trained on"
        )
    return prepared


def target_corpus(target: Target, progress: bool = False) -> PreparedCorpus:
    """The prepared corpus of ``--corpus`` or of ``--run`` (not of a reference file)."""
    if target.corpus is not None:
        config = CorpusConfig(corpus=target.corpus, data_dir=target.data_dir)
        return prepare(config, progress=progress)
    return run_corpus(target.run, progress)


def make_scorer(
    target: Target, n: int | None, max_n: int, seed: int, n_lines: int | None, progress: bool
) -> Scorer:
    """The scorer of ``target``; a reference file holds out max(N, …) lines by ``seed``."""
    if target.reference is None:
        return Scorer.from_prepared(target_corpus(target, progress), max_n, progress)
    wanted = n or PAPER_N_SAMPLES
    wanted = wanted if n_lines is None else min(wanted, n_lines)
    lines = read_lines(target.reference, "reference file")
    name = f"reference {target.reference}"
    return Scorer.from_lines(lines, name, target.seq_len, wanted, max_n, seed)


def score_lines(
    lines: list[str] | None,
    target: Target,
    *,
    n: int | None = None,
    max_n: int = 4,
    seed: int = 0,
    progress: bool = False,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Every registered metric of the first N ``lines`` beside its floor (``lines`` None: the
    floors alone). N is ``n``, else the paper's 640 capped at the held-out split; an explicit
    ``n`` is never lowered. Pass ``scorer`` to score several sets against one reference."""
    n_lines = None if lines is None else len(lines)
    scorer = scorer or make_scorer(target, n, max_n, seed, n_lines, progress)
    n = n or min(PAPER_N_SAMPLES, len(scorer.heldout))
    encoded = None if lines is None else encode_samples(lines[:n], scorer.vocab, scorer.seq_len)
    return scorer.report(encoded, n, max_n, seed)
