import math
from collections import Counter

import numpy as np
import pytest

from textgan.metrics.bleu import bleu, bleu_orders
from textgan.vocab import PAD, Vocab, count_symbols, text_to_codes


def _tokens(row):
    row = list(row)
    while row and row[-1] == PAD:
        row.pop()
    return row


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _sentence_bleu(refs, hyp, max_n):
    """NLTK sentence_bleu with uniform weights and SmoothingFunction().method1, written out."""
    log_p = 0.0
    for n in range(1, max_n + 1):
        counts = _ngrams(hyp, n)
        max_ref = Counter()
        for r in refs:
            for g, c in _ngrams(r, n).items():
                max_ref[g] = max(max_ref[g], c)
        numerator = sum(min(c, max_ref[g]) for g, c in counts.items())
        denominator = max(1, sum(counts.values()))
        if n == 1 and numerator == 0:
            return 0.0
        log_p += math.log((numerator or 0.1) / denominator) / max_n
    closest = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
    bp = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return bp * math.exp(log_p)


def _random_rows(rng, rows, width, base):
    ids = rng.integers(1, base, size=(rows, width))
    lengths = rng.integers(0, width + 1, size=rows)
    ids[np.arange(width)[None, :] >= lengths[:, None]] = PAD
    ids[rng.random(ids.shape) < 0.05] = PAD  # padding inside a line stays a token
    return ids


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_n", [2, 3, 5])
def test_bleu_equals_direct_definition(seed, max_n):
    rng = np.random.default_rng(seed)
    hyps, refs = _random_rows(rng, 25, 9, 4), _random_rows(rng, 40, 9, 4)
    refs_t = [_tokens(r) for r in refs]
    want = np.mean([_sentence_bleu(refs_t, _tokens(h), max_n) for h in hyps])
    assert bleu(hyps, refs, max_n, base=4) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_self_bleu_leaves_each_sample_out_of_its_references(seed):
    rng = np.random.default_rng(seed)
    x = _random_rows(rng, 30, 8, 3)
    x[5] = x[6]  # an exact duplicate must still count (the other copy is a reference)
    t = [_tokens(r) for r in x]
    for max_n in (2, 4):
        want = np.mean([_sentence_bleu(t[:i] + t[i + 1 :], t[i], max_n) for i in range(len(t))])
        got = bleu(x, x, max_n, base=3, own=np.arange(len(x)))
        assert got == pytest.approx(want, abs=1e-12)


def test_identical_and_disjoint_extremes():
    x = np.array([[1, 2, 3, 1, 2], [2, 3, 1, 0, 0]])
    assert bleu(x, x, 2, base=5) == pytest.approx(1.0)
    # Without the exclusion every sample would be its own perfect reference.
    assert bleu(x, x, 4, base=5, own=np.arange(2)) < 0.5
    assert bleu(x, np.array([[4, 4, 4, 4, 4]]), 2, base=5) == 0.0


def test_own_must_point_at_the_hypothesis():
    x = np.array([[1, 2], [2, 1]])
    with pytest.raises(ValueError, match="own"):
        bleu(x, x, 2, base=3, own=np.array([1, 0]))
    with pytest.raises(ValueError, match="other reference"):
        bleu(x[:1], x[:1], 2, base=3, own=np.array([0]))


def _nltk_mean(nltk_bleu, hypotheses, references, n):
    """Mean of NLTK's own sentence_bleu, method 1; ``references[i]`` those of hypothesis i."""
    smooth = nltk_bleu.SmoothingFunction().method1
    return np.mean(
        [
            nltk_bleu.sentence_bleu(r, h, weights=(1 / n,) * n, smoothing_function=smooth)
            for h, r in zip(hypotheses, references, strict=True)
        ]
    )


@pytest.mark.parametrize("refs", [3, 200])  # few references: smoothing and brevity penalty count
def test_bleu_and_self_bleu_equal_nltk_on_real_sentences(gbw_lines, refs):
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    lines = [*gbw_lines[:30], "Yes .", "No", *gbw_lines[1000 : 1000 + refs]]
    codes = text_to_codes(lines, 32)
    ids = Vocab.from_counts(count_symbols(codes)).codes_to_ids(codes)
    base = int(ids.max()) + 1
    tokens = [list(line[:32]) for line in lines]  # characters, as the ids stand for
    hyps, refs_t = tokens[:32], tokens[32:]
    got = bleu_orders(ids[:32], ids[32:], (2, 3, 4, 5), base)
    self_got = bleu_orders(ids[:32], ids[:32], (2, 3, 4, 5), base, own=np.arange(32))
    others = [hyps[:i] + hyps[i + 1 :] for i in range(32)]
    for n in (2, 3, 4, 5):
        assert got[n] == pytest.approx(_nltk_mean(nltk_bleu, hyps, [refs_t] * 32, n), abs=1e-9)
        assert self_got[n] == pytest.approx(_nltk_mean(nltk_bleu, hyps, others, n), abs=1e-9)
    assert 0 < got[5] < got[2] < 1  # real values, neither all 0 nor all 1
