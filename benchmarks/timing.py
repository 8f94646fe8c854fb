"""Several calls timed alike in one process, as benchmarks/README.md asks of every speed figure.

Each call runs once untimed first (its first call pays for allocations, kernel choice and lazy
imports: timed, the first of two identical networks looked twice as slow as the second), then
in rounds where every call runs once, the order rotated by one each round so that no call is
always first or last; load from other processes then hits all of them alike, and the minimum
over the rounds is each call's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def round_order(names: list[str], round_index: int) -> list[str]:
    """The order of ``names`` in round ``round_index``: rotated by one place a round."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def interleaved_minimum(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """The minimum seconds of each call over ``rounds`` rotated rounds, after one warm-up each;
    ``clock`` is wall time, or ``time.process_time`` for this process's CPU time (steadier on a
    shared machine for work on one thread)."""
    if not calls or rounds < 1:
        raise ValueError("need at least one call and one round")
    names = list(calls)
    for name in names:
        calls[name]()
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        for name in round_order(names, r):
            start = clock()
            calls[name]()
            best[name] = min(best[name], clock() - start)
    return best
