from collections import Counter

import numpy as np
import pytest

from textgan.metrics import ngrams
from textgan.metrics.ngrams import NgramCounts, count_all, window_keys
from textgan.vocab import Vocab, count_symbols, text_to_codes


def _direct_counts(ids, n):
    """Every window of n ids of every row, as tuples in a Counter."""
    return Counter(tuple(row[i : i + n]) for row in ids.tolist() for i in range(len(row) - n + 1))


def _as_counter(c: NgramCounts):
    return Counter(dict(zip(map(tuple, c.ngrams().tolist()), c.counts.tolist(), strict=True)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_from_ids_counts_every_window(n):
    ids = np.random.default_rng(n).integers(0, 5, size=(40, 9)).astype(np.uint8)
    c = NgramCounts.from_ids(ids, n, base=5)
    assert _as_counter(c) == _direct_counts(ids, n)
    assert c.total == 40 * (9 - n + 1)
    assert np.all(np.diff(c.keys.astype(np.float64)) > 0)


def test_8_grams_over_256_ids_use_the_whole_64_bit_range():
    top = window_keys(np.full((1, 9), 255, np.uint8), 8, 256)
    assert top.tolist() == [[2**64 - 1, 2**64 - 1]]
    assert [ngrams.largest_base(n) for n in (4, 5, 6, 7, 8)] == [65536, 7131, 1625, 565, 256]


def test_keys_are_base_v_positional_and_lookup_finds_counts():
    ids = np.array([[1, 2, 3, 0], [1, 2, 3, 3]], dtype=np.uint8)
    assert window_keys(ids, 3, 10).tolist() == [[123, 230], [123, 233]]
    c = NgramCounts.from_ids(ids, 3, 10)
    assert c.lookup(np.array([[123, 999], [233, 0]])).tolist() == [[2, 0], [1, 0]]


def test_orders_that_do_not_fit_64_bits_are_refused():
    with pytest.raises(ValueError, match="64-bit"):
        window_keys(np.zeros((1, 8), np.uint16), 5, 65536)
    with pytest.raises(ValueError, match=r"1\.\.8"):
        window_keys(np.zeros((1, 9), np.uint8), 9, 3)
    with pytest.raises(ValueError, match="64-bit"):
        window_keys(np.zeros((1, 8), np.uint16), 8, 257)
    assert window_keys(np.zeros((2, 3), np.uint8), 4, 3).shape == (2, 0)


@pytest.fixture(scope="module")
def gbw_ids(gbw_lines):
    codes = text_to_codes(gbw_lines, 32)
    vocab = Vocab.from_counts(count_symbols(codes), "chars", 256)
    return vocab.codes_to_ids(codes), len(vocab)


def test_chunked_count_all_equals_direct_counts_on_real_text(gbw_ids):
    ids, base = gbw_ids
    ticks = []
    got = count_all(ids, 5, base, chunk_rows=5000, progress=lambda k, total: ticks.append(total))
    assert ticks == [5 * 3] * 15
    for n, c in enumerate(got, start=1):
        want = NgramCounts.from_ids(ids, n, base)
        assert c.n == n and np.array_equal(c.keys, want.keys)
        assert np.array_equal(c.counts, want.counts)


@pytest.mark.parametrize("max_n", [1, 2, 3, 4])
def test_one_pass_count_up_to_4_equals_direct_counts(gbw_ids, max_n, monkeypatch):
    ids, base = gbw_ids
    monkeypatch.setattr(ngrams, "MERGE_EVERY", 2)
    ticks = []
    got = count_all(ids, max_n, base, chunk_rows=4000, progress=lambda k, t: ticks.append(t))
    assert len(got) == max_n and ticks == [4] * 4
    for n, c in enumerate(got, start=1):
        want = NgramCounts.from_ids(ids, n, base)
        assert c.n == n and np.array_equal(c.keys, want.keys)
        assert np.array_equal(c.counts, want.counts)


def test_short_rows_and_small_vocabularies_take_the_general_path():
    rng = np.random.default_rng(1)
    for shape, base in (((50, 3), 4), ((40, 7), 300)):
        ids = rng.integers(0, base, size=shape)
        for c in count_all(ids, 4, base, chunk_rows=16):
            want = NgramCounts.from_ids(ids, c.n, base)
            assert np.array_equal(c.keys, want.keys) and np.array_equal(c.counts, want.counts)


def test_sort_fallback_when_index_range_is_too_large(gbw_ids, monkeypatch):
    ids, base = gbw_ids
    ids = ids[:3000]
    monkeypatch.setattr(ngrams, "DENSE_LIMIT", base * 3)  # dense for n = 1 only
    got = count_all(ids, 5, base, chunk_rows=700)
    for c in got:
        want = NgramCounts.from_ids(ids, c.n, base)
        assert np.array_equal(c.keys, want.keys) and np.array_equal(c.counts, want.counts)


def test_orders_longer_than_the_rows_are_empty():
    got = count_all(np.ones((3, 2), np.uint8), 3, 4)
    assert [c.total for c in got] == [6, 3, 0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_keys_are_uint64_whatever_the_id_dtype(dtype):
    ids = np.random.default_rng(2).integers(0, 20, size=(60, 10)).astype(dtype)
    for c in count_all(ids, 4, 20, chunk_rows=16):
        want = NgramCounts.from_ids(ids, c.n, 20)
        assert c.keys.dtype == np.uint64
        assert np.array_equal(c.keys, want.keys) and np.array_equal(c.counts, want.counts)
