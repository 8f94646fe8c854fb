"""The sequence-length curriculum (``train.curriculum``): short rows first, grown to the full
length, as Press et al. 2017 ("Language Generation with Recurrent Generative Adversarial
Networks without Pre-training") grew theirs to make text GANs train at length 32.

``LEN:FRACTION,...``, e.g. ``8:0.2,16:0.5``, trains on the first 8 symbols of each row while
the generator iteration is below 0.2 · ``train.iters``, on the first 16 below 0.5 ·
``train.iters``, and on whole rows after: the real rows are cropped and the generator is asked
for as many positions. Evaluation, samples and diagnostics always take whole rows. Lengths
grow and stay below the rows' (``corpus.seq_len``), fractions grow inside (0, 1), and both
networks must be length-agnostic (their class's ``length_agnostic``; ``any-length``).

The current length is part of the run's state, saved with every checkpoint, and never
shrinks: a run whose ``train.iters`` grows when resumed (or is fitted to a time budget) keeps
its rows' length instead of going back to shorter ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textgan.config import ModelConfig
from textgan.errors import UserError
from textgan.nn.registry import CRITICS, GENERATORS

STATE_KEY = "curriculum_length"  # in a checkpoint's state: the length of its last iteration
FORMAT = "LEN:FRACTION,... with lengths and fractions of train.iters growing, e.g. 8:0.2,16:0.5"


def parse(text: str) -> tuple[tuple[int, float], ...]:
    """The ``(length, fraction)`` stages of a curriculum; UserError (one line) if malformed."""
    try:
        stages = tuple((int(n), float(f)) for n, f in (part.split(":") for part in text.split(",")))
    except ValueError:
        stages = ()
    lengths, fractions = [n for n, _ in stages], [f for _, f in stages]
    grow = lengths == sorted(set(lengths)) and fractions == sorted(set(fractions))
    if not stages or lengths[0] < 1 or not 0 < fractions[0] <= fractions[-1] < 1 or not grow:
        raise UserError(f"train.curriculum must be {FORMAT}; got {text!r}")
    return stages


def check(curriculum: str | None, generator: str, critic: str, seq_len: int | None) -> None:
    """UserError (one line) for a curriculum that is malformed, does not stay below ``seq_len``
    (None: not known yet) or goes with a network sized by the sequence length."""
    if curriculum is None:
        return
    stages = parse(curriculum)
    networks = (("generator", generator, GENERATORS), ("critic", critic, CRITICS))
    fixed = [f"model.{role} {name}" for role, name, reg in networks if not _agnostic(reg[name])]
    if fixed:
        free = " and ".join(
            f"model.{role} {' or '.join(k for k, f in reg.items() if _agnostic(f))}"
            for role, reg in (("generator", GENERATORS), ("critic", CRITICS))
        )
        raise UserError(
            f"train.curriculum needs length-agnostic networks, and {' and '.join(fixed)} "
            f"{'is' if len(fixed) == 1 else 'are'} sized by the sequence length; use {free}, "
            "or drop train.curriculum"
        )
    if seq_len is not None and stages[-1][0] >= seq_len:
        raise UserError(
            f"train.curriculum {curriculum!r} must grow to lengths below the rows' {seq_len} "
            "symbols (corpus.seq_len): whole rows follow its last stage"
        )


def _agnostic(network: Any) -> bool:
    return getattr(network, "length_agnostic", False)


class Curriculum:
    """The row length of each iteration of one run; ``length`` is the current one."""

    def __init__(self, curriculum: str | None, model: ModelConfig) -> None:
        check(curriculum, model.generator, model.critic, model.seq_len)
        self.stages = parse(curriculum) if curriculum is not None else ()
        self.seq_len = model.seq_len
        self.length = self.stages[0][0] if self.stages else self.seq_len

    def at(self, iteration: int, iters: int) -> int:
        """The schedule's length at generator iteration ``iteration`` (from 0) of ``iters``."""
        return next((n for n, f in self.stages if iteration < f * iters), self.seq_len)

    def advance(self, iteration: int, iters: int) -> int:
        """The length of iteration ``iteration``: the schedule's, never below the current one."""
        self.length = max(self.length, self.at(iteration, iters))
        return self.length

    @property
    def crop(self) -> int | None:
        """The positions to ask the networks for; None at the full length."""
        return None if self.length == self.seq_len else self.length

    def load(self, state: Mapping[str, Any]) -> None:
        """The length saved in a checkpoint's ``state``; a checkpoint from before the
        curriculum existed trained whole rows."""
        self.length = int(state.get(STATE_KEY, self.seq_len))
