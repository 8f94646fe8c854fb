"""What fitting the kn5 baseline and the scoring LM on separate halves of the training split
changes and costs (docs/metrics.md).

Sampled from p and scored by p, the baseline gets p's own entropy; every other source pays its
cross-entropy against p. This prints the LM score (bits/char) of baseline samples at T = 1 and
of N real held-out lines (the floor) under four schemes: baseline and scorer fit on the whole
split (the old self-scoring), on the same or on the other half, plus what a scorer's own lines
get under it (a source that copied training lines would get that much), and the JS-4 and
known words of the baseline fit on all of the split and on its half.

    python benchmarks/lm_halves.py --corpus ../shared/corpora/gbw-heldout --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np

import textgan
from textgan.generation.baseline import NgramSampler
from textgan.metrics.lm import BASELINE_PART, SCORER_PART, KneserNeyLM, training_part
from textgan.metrics.reference import PAPER_N_SAMPLES, subset_rows
from textgan.metrics.scoring import Target, make_scorer, score_lines

BITS = 1 / math.log(2)


def _bits(lm: KneserNeyLM, ids: np.ndarray) -> float:
    return lm.nll(ids)[0] * BITS


def _baseline_bits(
    fit: KneserNeyLM, scorer: KneserNeyLM, seq_len: int, n: int, seeds: list[int]
) -> tuple[float, float]:
    """Mean and sd over seeds of the scorer's bits/char of n samples of ``fit`` at T = 1."""
    sampler = NgramSampler(fit, seq_len)
    values = [_bits(scorer, np.concatenate(list(sampler.batches(n, 1.0, seed=s)))) for s in seeds]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _other_measures(lms: dict, args, prepared, n: int, seeds: list[int]) -> None:
    """JS-4 and known words of the baseline's samples at T = 1, fit on all and on half A."""
    target = Target(corpus=args.corpus, data_dir=args.data_dir)
    scorer = make_scorer(target, n, 4, 0, None, False)
    print("\n| baseline fit on | JS-4 | known words |\n|---|---:|---:|")
    for fit in ("all", "half A"):
        sampler = NgramSampler(lms[fit], prepared.seq_len)
        reports = [
            score_lines(
                [line for b in sampler.lines(prepared.vocab, n, 1.0, s) for line in b],
                target,
                n=n,
                scorer=scorer,
            )
            for s in seeds
        ]
        cells = [statistics.mean(r[k] for r in reports) for k in ("js4", "word_known")]
        print(f"| {fit} | {cells[0]:.3f} | {cells[1]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="pydocs")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("-n", type=int, default=PAPER_N_SAMPLES)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepared = textgan.prepare(args.corpus, data_dir=args.data_dir)
    base, seq_len = len(prepared.vocab), prepared.seq_len
    train = prepared.train
    half_a, half_b = training_part(train, BASELINE_PART), training_part(train, SCORER_PART)
    lms = {
        "all": KneserNeyLM.fit(train, base=base),
        "half A": KneserNeyLM.fit(half_a, base=base),
        "half B": KneserNeyLM.fit(half_b, base=base),
    }
    n = min(args.n, len(prepared.heldout))
    real = prepared.heldout[subset_rows(len(prepared.heldout), n, 0)]
    print(f"{args.corpus}: {len(train):,} training lines, {n} samples per set, seeds {seeds}")
    print("| baseline fit on | scorer fit on | kn5 T = 1 (bits/char) | real lines (floor) |")
    print("|---|---|---:|---:|")
    for fit, scorer in (
        ("all", "all"),
        ("half A", "half A"),
        ("all", "half B"),
        ("half A", "half B"),
    ):
        mean, sd = _baseline_bits(lms[fit], lms[scorer], seq_len, n, seeds)
        floor = _bits(lms[scorer], real)
        print(f"| {fit} | {scorer} | {mean:.3f} ± {sd:.3f} | {floor:.3f} |")
    own = half_b[subset_rows(len(half_b), n, 0)]
    other = half_a[subset_rows(len(half_a), n, 0)]
    _other_measures(lms, args, prepared, n, seeds)
    print(
        f"\nScorer fit on half B: {n} of its own lines {_bits(lms['half B'], own):.3f} bits/char,"
        f" {n} lines of half A {_bits(lms['half B'], other):.3f}, "
        f"{n} held-out lines {_bits(lms['half B'], real):.3f}."
    )


if __name__ == "__main__":
    main()
