import numpy as np
import pytest

import textgan
from textgan.errors import UserError
from textgan.generation.baseline import NgramSampler, baseline_sampler
from textgan.metrics.evaluator import corpus_resources
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
    u = np.random.default_rng(0).random((300, 16))
    out = NgramSampler(lm, seq_len=16).sample(u, 1.0)
    same = (out == ids[0]).all(axis=1).mean()
    assert same > 0.9, same
    # A low temperature sharpens every step towards the line itself.
    cold = NgramSampler(lm, seq_len=16).sample(u, 0.2)
    assert (cold == ids[0]).all(axis=1).all()


def test_first_symbols_follow_the_models_start_distribution():
    lines = ["ab"] * 600 + ["ba"] * 300 + ["cc"] * 100
    ids, table = _ids(lines, seq_len=4)
    lm = KneserNeyLM.fit(ids, order=3, base=int(ids.max()) + 1)
    sampler = NgramSampler(lm, seq_len=4)
    expected = sampler.next_distribution(np.zeros(1, dtype=np.uint64), 1.0)[0]
    out = sampler.sample(np.random.default_rng(1).random((20_000, 4)), 1.0)
    seen = np.bincount(out[:, 0], minlength=lm.base) / len(out)
    # 20,000 draws: the standard error of each share is at most 0.0036.
    np.testing.assert_allclose(seen, expected, atol=0.015)
    assert expected[table["a"]] == pytest.approx(0.6, abs=0.05)


def test_lines_end_at_the_end_marker_and_stay_padded():
    ids, _ = _ids(["ab", "abc", "a"] * 100, seq_len=8)
    lm = KneserNeyLM.fit(ids, order=3, base=int(ids.max()) + 1)
    out = NgramSampler(lm, seq_len=8).sample(np.random.default_rng(2).random((500, 8)), 1.0)
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


def test_a_sample_depends_on_the_seed_and_its_index_not_the_batch_size():
    ids, _ = _ids(["hello world", "hello there", "help me", "yellow"] * 50)
    sampler = NgramSampler(KneserNeyLM.fit(ids, order=5, base=int(ids.max()) + 1), seq_len=16)

    def drawn(n, batch_size, seed=3):
        return np.concatenate(list(sampler.batches(n, 1.0, seed=seed, batch_size=batch_size)))

    whole = drawn(600, 1024)
    assert len({row.tobytes() for row in whole}) > 20  # T = 1: varied lines, not one
    for batch_size in (7, 256, 300):  # inside a draw block, its size, across two blocks
        np.testing.assert_array_equal(drawn(600, batch_size), whole)
    np.testing.assert_array_equal(drawn(100, 1024), whole[:100])  # n does not move them
    assert (drawn(600, 1024, seed=4) != whole).any(axis=1).mean() > 0.5


def test_the_baseline_and_the_scoring_lm_are_fit_on_disjoint_halves(tmp_path):
    """The kn5 baseline is never scored by the model it samples from (nor one fit on its
    lines): it is fit on the even rows of the training split, the scoring LM on the odd."""
    prepared = textgan.prepare("pydocs", data_dir=str(tmp_path))
    train = prepared.train
    baseline = baseline_sampler("kn5", prepared).lm
    scorer = corpus_resources(prepared, 4, progress=False).get("lm")
    for lm, rows in ((baseline, train[0::2]), (scorer, train[1::2])):
        fit = KneserNeyLM.fit(rows, base=len(prepared.vocab))
        np.testing.assert_array_equal(lm.top_keys, fit.top_keys)
        np.testing.assert_array_equal(lm.top_counts, fit.top_counts)
    assert (
        baseline.top_counts.sum() + scorer.top_counts.sum()
        == KneserNeyLM.fit(train, base=len(prepared.vocab)).top_counts.sum()
    )  # together, every n-gram of the split once
    assert {p.name for p in prepared.path.glob("kn5*.npz")} == {"kn5.npz", "kn5-baseline.npz"}
