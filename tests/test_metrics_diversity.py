import numpy as np
import pytest

from textgan.metrics import diversity
from textgan.metrics.diversity import RowIndex, copy_rate, distinct_n, unique_rate


def test_distinct_n_counts_windows_inside_each_line():
    ids = np.array([[1, 2, 1, 2, 0, 0], [1, 2, 3, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    # unigrams: 1 2 1 2 | 1 2 3 -> 3 distinct of 7; bigrams: 12 21 12 | 12 23 -> 3 of 5
    assert distinct_n(ids, 1, 4) == pytest.approx(3 / 7)
    assert distinct_n(ids, 2, 4) == pytest.approx(3 / 5)
    assert distinct_n(ids, 4, 4) == pytest.approx(1.0)  # 1212 only
    assert distinct_n(ids, 5, 4) == 0.0


def test_unique_rate():
    ids = np.array([[1, 2], [1, 2], [2, 1], [0, 0]])
    assert unique_rate(ids) == 0.75


def test_copy_rate_is_exact_across_chunks_and_hash_collisions(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 50, size=(1000, 8)).astype(np.uint8)
    samples = rng.integers(0, 50, size=(40, 8)).astype(np.uint8)
    samples[:10] = train[[3, 500, 999, 3, 10, 20, 30, 700, 701, 702]]
    monkeypatch.setattr(diversity, "CHUNK_ROWS", 300)
    assert copy_rate(samples, train) == 10 / 40
    mapped = np.lib.format.open_memmap(tmp_path / "t.npy", "w+", np.uint8, train.shape)
    mapped[:] = train
    index = RowIndex(mapped)
    assert index.contains(samples).tolist() == [True] * 10 + [False] * 30
    assert copy_rate(samples.astype(np.int64) + 256, train) == 0.0  # no wrap-around equality
    # Every row hashing alike: the exact row check alone decides.
    monkeypatch.setattr(diversity, "_row_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    assert copy_rate(samples, train) == 10 / 40


def test_copy_rate_refuses_other_lengths():
    with pytest.raises(ValueError, match="length 3"):
        copy_rate(np.zeros((2, 3)), np.zeros((2, 4)))
