import math
from collections import Counter, defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from textgan.errors import UserError
from textgan.metrics.cache import save_npz
from textgan.metrics.lm import KneserNeyLM, line_lengths, training_part
from textgan.vocab import PAD, Vocab, count_symbols, text_to_codes


def _events(ids, order):
    """(context, target) of every predicted position: start padding, end marker if room."""
    out = []
    for row in ids.tolist():
        while row and row[-1] == PAD:
            row.pop()
        seq = [PAD] * (order - 1) + row + ([PAD] if len(row) < ids.shape[1] else [])
        out += [tuple(seq[t - order + 1 : t + 1]) for t in range(order - 1, len(seq))]
    return out


class DictKN:
    """Interpolated Kneser–Ney written from the definition, with dictionaries."""

    def __init__(self, ids, order, base):
        self.order, self.base = order, base
        self.a = {order: Counter(_events(ids, order))}
        for k in range(order - 1, 0, -1):
            self.a[k] = Counter(g[1:] for g in self.a[k + 1])
        self.d, self.sums, self.types = {}, {}, {}
        for k, a in self.a.items():
            n1 = sum(v == 1 for v in a.values())
            n2 = sum(v == 2 for v in a.values())
            self.d[k] = n1 / (n1 + 2 * n2) if n1 else 0.5
            self.sums[k], self.types[k] = defaultdict(int), defaultdict(int)
            for g, v in a.items():
                self.sums[k][g[:-1]] += v
                self.types[k][g[:-1]] += 1

    def p(self, gram):
        k = len(gram)
        lower = 1 / self.base if k == 1 else self.p(gram[1:])
        h = gram[:-1]
        if self.sums[k][h] == 0:
            return lower
        d = self.d[k]
        s = self.sums[k][h]
        return (max(self.a[k][gram] - d, 0) + d * self.types[k][h] * lower) / s


def _key(gram, base):
    return sum(g * base ** (len(gram) - 1 - i) for i, g in enumerate(gram))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.geometric(0.35, size=(60, 10)), 5)  # ids 1..5, 5 doubles as "rare"
    ids[rng.random(ids.shape) < 0.1] = 6
    ids[np.arange(60) % 4 == 0, 6:] = PAD  # some short lines
    ids[5] = PAD  # an empty line
    return ids, 8


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_match_dictionary_definition(small, order):
    ids, base = small
    lm, ref = KneserNeyLM.fit(ids, order, base), DictKN(ids, order, base)
    rng = np.random.default_rng(order)
    grams = [tuple(rng.integers(0, base, order)) for _ in range(150)] + _events(ids, order)[:150]
    got = lm.probability(np.array([_key(g, base) for g in grams], dtype=np.uint64))
    want = [ref.p(g) for g in grams]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_every_context_gives_a_distribution(small):
    ids, base = small
    lm = KneserNeyLM.fit(ids, 5, base)
    contexts = [(0, 0, 0, 0), (0, 0, 0, 1), (1, 1, 2, 1), (7, 7, 7, 7), tuple(ids[3, :4])]
    for h in contexts:
        keys = np.array([_key((*h, w), base) for w in range(base)], dtype=np.uint64)
        p = lm.probability(keys)
        assert np.all(p > 0) and p.sum() == pytest.approx(1, abs=1e-12)


def test_nll_is_mean_over_characters_and_end_markers(small):
    ids, base = small
    lm, ref = KneserNeyLM.fit(ids, 5, base), DictKN(ids, 5, base)
    test = ids[:7]
    nats, n = lm.nll(test)
    events = _events(test, 5)
    assert n == len(events) == int(line_lengths(test).sum()) + int(np.sum(line_lengths(test) < 10))
    assert nats == pytest.approx(-np.mean([math.log(ref.p(g)) for g in events]), abs=1e-12)


def test_line_lengths_ignore_trailing_padding_only():
    ids = np.array([[3, 0, 4, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    assert line_lengths(ids).tolist() == [3, 0, 5]


def test_fluency_on_real_text_and_cache(gbw_lines, tmp_path, monkeypatch):
    codes = text_to_codes(gbw_lines, 32)
    vocab = Vocab.from_counts(count_symbols(codes))
    ids = vocab.codes_to_ids(codes)
    prepared = SimpleNamespace(train=ids[1000:], path=tmp_path, vocab=vocab, fingerprint="f")
    lm = KneserNeyLM.for_corpus(prepared)
    real, _ = lm.nll(ids[:1000])
    shuffled = np.random.default_rng(0).permuted(ids[:1000], axis=1)
    # Held-out English at about 2 bits a character; shuffled characters far worse.
    assert 1.0 < real / math.log(2) < 3.0
    assert lm.nll(shuffled)[0] > real + 1.0
    chunked = KneserNeyLM.fit(ids[1000:], base=len(vocab))
    monkeypatch.setattr("textgan.metrics.lm.CHUNK_ROWS", 2000)
    monkeypatch.setattr("textgan.metrics.ngrams.MERGE_EVERY", 2)
    assert KneserNeyLM.fit(ids[1000:], base=len(vocab)).nll(ids[:50]) == chunked.nll(ids[:50])
    monkeypatch.setattr(KneserNeyLM, "fit", lambda *a, **k: pytest.fail("refit"))
    assert KneserNeyLM.for_corpus(prepared).nll(ids[:1000])[0] == real


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 cut short", b"not an npz"])
def test_unreadable_cache_is_refit_and_replaced(tmp_path, data):
    ids = np.array([[2, 3, 4, 0], [3, 4, 2, 2]], dtype=np.uint8)
    prepared = SimpleNamespace(train=ids, path=tmp_path, vocab=range(5), fingerprint="f")
    (tmp_path / "kn3.npz").write_bytes(data)
    lm = KneserNeyLM.for_corpus(prepared, order=3)
    cached, fingerprint = KneserNeyLM.load(tmp_path / "kn3.npz")
    assert fingerprint == "f" and np.array_equal(cached.top_counts, lm.top_counts)


def test_the_scorer_and_the_baseline_each_fit_and_cache_their_own_half(tmp_path):
    ids = np.array([[2, 3, 4, 0], [3, 4, 2, 2], [4, 4, 3, 0], [2, 2, 2, 3], [3, 0, 0, 0]])
    prepared = SimpleNamespace(train=ids, path=tmp_path, vocab=range(5), fingerprint="f")
    assert training_part(ids, "scorer").tolist() == ids[[1, 3]].tolist()
    assert training_part(ids, "baseline").tolist() == ids[[0, 2, 4]].tolist()
    scorer = KneserNeyLM.for_corpus(prepared, order=3)
    baseline = KneserNeyLM.for_corpus(prepared, order=3, part="baseline")
    assert scorer.top_counts.sum() == 4 + 4  # two full lines: no end marker
    assert baseline.top_counts.sum() == (3 + 1) + (3 + 1) + (1 + 1)  # characters + end
    for name, lm in (("kn3.npz", scorer), ("kn3-baseline.npz", baseline)):
        cached, _ = KneserNeyLM.load(tmp_path / name)
        np.testing.assert_array_equal(cached.top_keys, lm.top_keys)


def test_a_cache_fit_on_the_whole_split_is_refit_on_the_scorers_half(tmp_path):
    """A format-1 kn5.npz holds the model of every training line, the baseline's included."""
    ids = np.array([[2, 3, 4, 0], [3, 4, 2, 2], [4, 4, 3, 0], [2, 2, 2, 3]], dtype=np.uint8)
    prepared = SimpleNamespace(train=ids, path=tmp_path, vocab=range(5), fingerprint="f")
    old = KneserNeyLM.fit(ids, order=3, base=5)
    meta = {"format": 1, "order": 3, "base": 5, "fingerprint": "f"}
    save_npz(tmp_path / "kn3.npz", meta, {"keys": old.top_keys, "counts": old.top_counts})
    lm = KneserNeyLM.for_corpus(prepared, order=3)
    half = KneserNeyLM.fit(ids[1::2], order=3, base=5)
    assert lm.top_counts.sum() == half.top_counts.sum() < old.top_counts.sum()
    np.testing.assert_array_equal(lm.top_keys, half.top_keys)
    assert KneserNeyLM.load(tmp_path / "kn3.npz")[0].top_counts.sum() == half.top_counts.sum()


def test_a_training_split_of_one_line_cannot_be_halved(tmp_path):
    ids = np.array([[2, 3, 4, 0]], dtype=np.uint8)
    prepared = SimpleNamespace(train=ids, path=tmp_path, vocab=range(5), fingerprint="f")
    with pytest.raises(UserError, match="the training split has 1 line: too few to fit"):
        KneserNeyLM.for_corpus(prepared, order=3)
