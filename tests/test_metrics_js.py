import math
from collections import Counter

import numpy as np
import pytest

from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts


def _dict_js(a: Counter, b: Counter) -> float:
    """JS in bits by the definition: normalized counts, m = (p + q) / 2, union of supports."""
    ta, tb = sum(a.values()), sum(b.values())
    kl_p = kl_q = 0.0
    for g in set(a) | set(b):
        p, q = a[g] / ta, b[g] / tb
        m = (p + q) / 2
        if p:
            kl_p += p * math.log(p / m)
        if q:
            kl_q += q * math.log(q / m)
    return 0.5 * (kl_p + kl_q) / math.log(2)


def _counter(ids, n):
    return Counter(tuple(r[i : i + n]) for r in ids.tolist() for i in range(len(r) - n + 1))


@pytest.mark.parametrize("seed", range(8))
def test_matches_dictionary_definition_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    base = int(rng.integers(2, 12))
    n = int(rng.integers(1, 5))
    a = rng.integers(0, base, size=(int(rng.integers(1, 60)), 12))
    # Skewed second sample, so supports overlap partly.
    b = np.minimum(rng.geometric(0.4, size=(int(rng.integers(1, 300)), 12)) - 1, base - 1)
    got = js_divergence(NgramCounts.from_ids(a, n, base), NgramCounts.from_ids(b, n, base))
    want = _dict_js(_counter(a, n), _counter(b, n))
    assert 0 < want < 1
    assert got == pytest.approx(want, abs=1e-12)
    assert js_divergence(NgramCounts.from_ids(b, n, base), NgramCounts.from_ids(a, n, base)) == (
        pytest.approx(want, abs=1e-12)
    )


def test_identical_distributions_give_zero_and_disjoint_give_one():
    a = np.array([[1, 2, 1, 2]])
    same = NgramCounts.from_ids(np.repeat(a, 3, axis=0), 2, 4)
    assert js_divergence(NgramCounts.from_ids(a, 2, 4), same) == pytest.approx(0, abs=1e-15)
    other = NgramCounts.from_ids(np.array([[3, 3, 3]]), 2, 4)
    assert js_divergence(same, other) == 1.0


def test_empty_distribution_is_refused():
    empty = NgramCounts.from_ids(np.zeros((1, 1)), 2, 4)
    with pytest.raises(ValueError, match="empty"):
        js_divergence(empty, NgramCounts.from_ids(np.ones((1, 4), int), 2, 4))
