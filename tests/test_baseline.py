import numpy as np
import pytest

from textgan.baseline import NgramSampler
from textgan.errors import UserError
from textgan.metrics.lm import KneserNeyLM
from textgan.vocab import PAD


def _ids(lines: list[str], seq_len: int = 16) -> tuple[np.ndarray, dict]:
    symbols = sorted({c for line in lines for c in line})
    table = {c: i + 2 for i, c in enumerate(symbols)}  # 0 PAD, 1 UNK
    ids = np.zeros((len(lines), seq_len), dtype=np.uint8)
    for row, line in enumerate(lines):
        ids[row, : len(line)] = [table[c] for c in line[:seq_len]]
    return ids, table


def test_a_corpus_of_one_repeated_line_is_reproduced():
    ids, _ = _ids(["the cat sat."] * 500)
    lm = KneserNeyLM.fit(ids, order=5, base=int(ids.max()) + 1)
    out = NgramSampler(lm, seq_len=16).sample(300, 1.0, np.random.default_rng(0))
    same = (out == ids[0]).all(axis=1).mean()
    assert same > 0.9, same
    # A low temperature sharpens every step towards the line itself.
    cold = NgramSampler(lm, seq_len=16).sample(300, 0.2, np.random.default_rng(0))
    assert (cold == ids[0]).all(axis=1).all()


def test_first_symbols_follow_the_models_start_distribution():
    lines = ["ab"] * 600 + ["ba"] * 300 + ["cc"] * 100
    ids, table = _ids(lines, seq_len=4)
    lm = KneserNeyLM.fit(ids, order=3, base=int(ids.max()) + 1)
    sampler = NgramSampler(lm, seq_len=4)
    expected = sampler.next_distribution(np.zeros(1, dtype=np.uint64), 1.0)[0]
    out = sampler.sample(20_000, 1.0, np.random.default_rng(1))
    seen = np.bincount(out[:, 0], minlength=lm.base) / len(out)
    # 20,000 draws: the standard error of each share is at most 0.0036.
    np.testing.assert_allclose(seen, expected, atol=0.015)
    assert expected[table["a"]] == pytest.approx(0.6, abs=0.05)


def test_lines_end_at_the_end_marker_and_stay_padded():
    ids, _ = _ids(["ab", "abc", "a"] * 100, seq_len=8)
    lm = KneserNeyLM.fit(ids, order=3, base=int(ids.max()) + 1)
    out = NgramSampler(lm, seq_len=8).sample(500, 1.0, np.random.default_rng(2))
    for row in out:
        ends = np.flatnonzero(row == PAD)
        if len(ends):
            assert (row[ends[0] :] == PAD).all()


def test_batches_are_reproducible_and_refuse_bad_temperatures():
    ids, _ = _ids(["hello world", "hello there"] * 50)
    sampler = NgramSampler(KneserNeyLM.fit(ids, order=5, base=int(ids.max()) + 1), seq_len=16)
    a = np.concatenate(list(sampler.batches(50, 0.9, seed=3, batch_size=7)))
    b = np.concatenate(list(sampler.batches(50, 0.9, seed=3, batch_size=7)))
    assert a.shape == (50, 16) and (a == b).all()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(UserError, match="temperature"):
            next(sampler.batches(5, bad))
