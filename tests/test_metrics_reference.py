from types import SimpleNamespace

import numpy as np
import pytest
from test_metrics_js import _counter, _dict_js

from textgan.errors import UserError
from textgan.metrics import JSEvaluator
from textgan.metrics.evaluator import TRAINING_METRICS
from textgan.metrics.js import js_divergence
from textgan.metrics.ngrams import NgramCounts
from textgan.metrics.reference import ReferenceNgrams, real_subset, subset_rows
from textgan.metrics.report import Scorer, format_table
from textgan.vocab import Vocab, count_symbols, text_to_codes


def _stand_in(lines, path, fingerprint="fp-1"):
    """What JSEvaluator needs of a PreparedCorpus, built from real text."""
    codes = text_to_codes(lines, 32)
    vocab = Vocab.from_counts(count_symbols(codes), "chars", 256)
    ids = vocab.codes_to_ids(codes)
    return SimpleNamespace(
        train=ids[2000:], heldout=ids[:2000], path=path, vocab=vocab, fingerprint=fingerprint
    )


@pytest.fixture(scope="module")
def prepared(gbw_lines, tmp_path_factory):
    return _stand_in(gbw_lines, tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def evaluator(prepared):
    return JSEvaluator(prepared, n_samples=640, progress=False)


def test_reference_is_cached_beside_the_corpus_and_reloaded(prepared, evaluator, monkeypatch):
    cache = prepared.path / "ngrams.npz"
    assert cache.is_file()
    monkeypatch.setattr(ReferenceNgrams, "build", lambda *a, **k: pytest.fail("rebuilt"))
    again = ReferenceNgrams.for_corpus(prepared, 3)
    assert again.max_n == 3 and again.fingerprint == "fp-1"
    for c, want in zip(again.counts, evaluator.reference.counts, strict=False):
        assert np.array_equal(c.keys, want.keys) and np.array_equal(c.counts, want.counts)
        assert np.array_equal(c.counts, NgramCounts.from_ids(prepared.train, c.n, c.base).counts)


def test_cache_is_rebuilt_for_other_data_or_higher_order(prepared, tmp_path):
    ReferenceNgrams.for_corpus(_stand_in_like(prepared, tmp_path, "fp-1"), 2, progress=False)
    other = _stand_in_like(prepared, tmp_path, "fp-2")
    assert ReferenceNgrams.for_corpus(other, 2, progress=False).fingerprint == "fp-2"
    assert ReferenceNgrams.load(tmp_path / "ngrams.npz").fingerprint == "fp-2"
    assert ReferenceNgrams.for_corpus(other, 5, progress=False).max_n == 5
    assert not list(tmp_path.glob(".tmp-*"))


def _stand_in_like(prepared, path, fingerprint):
    return SimpleNamespace(**{**vars(prepared), "path": path, "fingerprint": fingerprint})


@pytest.mark.parametrize("damage", ["not an npz", "empty", "truncated"])
def test_unreadable_cache_is_replaced(prepared, tmp_path, damage):
    cache = tmp_path / "ngrams.npz"
    if damage == "truncated":
        ReferenceNgrams.for_corpus(_stand_in_like(prepared, tmp_path, "fp-0"), 2, False)
        cache.write_bytes(cache.read_bytes()[:100])
    else:
        cache.write_bytes({"not an npz": b"not an npz", "empty": b""}[damage])
    ref = ReferenceNgrams.for_corpus(_stand_in_like(prepared, tmp_path, "fp-1"), 2, False)
    assert ReferenceNgrams.load(tmp_path / "ngrams.npz").max_n == ref.max_n == 2


def test_evaluator_row_carries_n_and_floor_at_that_n(prepared, evaluator):
    samples = prepared.heldout[-640:]
    row = evaluator(samples)
    assert set(row) == {"n_samples"} | {f"js{k}" for k in range(1, 5)} | {
        f"floor_js{k}" for k in range(1, 5)
    }
    assert row["n_samples"] == 640
    real = real_subset(prepared.heldout, 640, seed=0)
    for k in range(1, 5):
        ref_k = NgramCounts.from_ids(prepared.train, k, len(prepared.vocab))
        assert row[f"js{k}"] == js_divergence(NgramCounts.from_ids(samples, k, ref_k.base), ref_k)
        assert row[f"floor_js{k}"] == js_divergence(
            NgramCounts.from_ids(real, k, ref_k.base), ref_k
        )
    # Real text: JS grows with n, and other real lines sit near the floor.
    floors = [row[f"floor_js{k}"] for k in range(1, 5)]
    assert floors == sorted(floors) and 0.0 < floors[0] < 0.05 and 0.2 < floors[3] < 0.8
    assert abs(row["js4"] - row["floor_js4"]) < 0.05
    assert evaluator.floor == {k: row[k] for k in row if k.startswith("floor")}


def test_floor_follows_the_number_of_samples(prepared, evaluator):
    small = evaluator(prepared.heldout[:64])
    assert small["n_samples"] == 64
    # Fewer lines cover fewer 4-grams: the floor at 64 is far above the floor at 640.
    assert small["floor_js4"] > evaluator.floor["floor_js4"] + 0.1


def test_garbage_is_far_from_real_text(prepared, evaluator):
    noise = np.random.default_rng(0).integers(2, len(prepared.vocab), size=(640, 32))
    row = evaluator(noise.astype(np.uint8))
    assert row["js4"] > 0.95 and row["js1"] > 0.3


def test_real_subset_is_fixed_by_seed_and_bounded(prepared):
    a = real_subset(prepared.heldout, 100, seed=3)
    assert np.array_equal(a, real_subset(prepared.heldout, 100, seed=3))
    assert not np.array_equal(a, real_subset(prepared.heldout, 100, seed=4))
    with pytest.raises(UserError, match=r"held-out split \(2000 lines\)"):
        real_subset(prepared.heldout, 2001)


def test_evaluator_refuses_n_beyond_heldout_and_wrong_length(prepared, evaluator):
    with pytest.raises(UserError, match="2000 lines"):
        JSEvaluator(prepared, n_samples=5000, progress=False)
    with pytest.raises(ValueError, match="length 31"):
        evaluator(prepared.heldout[:10, :31])
    with pytest.raises(ValueError, match="vocabulary"):
        evaluator(np.full((3, 32), len(prepared.vocab)))


def test_a_cache_that_cannot_be_written_is_a_warning(prepared, tmp_path, monkeypatch):
    def refuse(self, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ReferenceNgrams, "save", refuse)
    with pytest.warns(UserWarning, match="could not cache"):
        ref = ReferenceNgrams.for_corpus(_stand_in_like(prepared, tmp_path, "x"), 2, False)
    assert ref.max_n == 2 and not (tmp_path / "ngrams.npz").exists()


def test_a_failed_cache_write_leaves_no_temporary_file(prepared, tmp_path, monkeypatch):
    def disk_full(file, **arrays):
        file.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(UserWarning, match="No space left"):
        ref = ReferenceNgrams.for_corpus(_stand_in_like(prepared, tmp_path, "x"), 2, False)
    assert ref.max_n == 2 and not list(tmp_path.iterdir())


# -- what a run evaluates besides the paper's JS -------------------------------------------------


@pytest.fixture(scope="module")
def pydocs(tmp_path_factory):
    from textgan.corpus import CorpusConfig, prepare

    data = tmp_path_factory.mktemp("data")
    return prepare(CorpusConfig(corpus="pydocs", data_dir=str(data)), progress=False)


def _lines(ids):
    return [tuple(row) for row in np.asarray(ids).tolist()]


def test_copied_training_lines_have_copy_rate_1_and_heldout_js_against_unseen_lines(pydocs):
    n = 100
    evaluator = JSEvaluator(pydocs, n_samples=n, progress=False, metrics=TRAINING_METRICS)
    train, heldout = np.asarray(pydocs.train), np.asarray(pydocs.heldout)
    samples = train[::7][:n]  # a generator that outputs training lines verbatim
    row = evaluator(samples)
    real_rows = subset_rows(len(heldout), n, seed=0)
    real, rest = heldout[real_rows], np.delete(heldout, real_rows, axis=0)
    seen = set(_lines(train))
    assert row["copy_rate"] == 1.0 and row["unique_rate"] == len(set(_lines(samples))) / n
    # Short code lines recur: some real held-out lines equal a training line, not all.
    assert row["floor_copy_rate"] == sum(line in seen for line in _lines(real)) / n
    assert 0 < row["floor_copy_rate"] < 1
    assert row["floor_unique_rate"] == len(set(_lines(real))) / n
    # Samples and the floor's real lines against the same held-out lines: all but the real ones.
    for k in range(1, 5):
        want = _dict_js(_counter(samples, k), _counter(rest, k))
        assert row[f"heldout_js{k}"] == pytest.approx(want, abs=1e-12)
        floor = _dict_js(_counter(real, k), _counter(rest, k))
        assert row[f"floor_heldout_js{k}"] == pytest.approx(floor, abs=1e-12)


def test_heldout_js_is_na_when_every_heldout_line_is_a_real_one(pydocs):
    n = len(pydocs.heldout)
    row = JSEvaluator(pydocs, n_samples=n, progress=False, metrics=("heldout_js",))(
        np.asarray(pydocs.train)[:n]
    )
    assert {k: v for k, v in row.items() if k != "n_samples"} == {
        f"{p}heldout_js{k}": None for p in ("", "floor_") for k in range(1, 5)
    }
    report = Scorer.from_prepared(pydocs, 4, progress=False).report(None, n)
    assert report["floor_heldout_js4"] is None
    assert "heldout_js n/a: every held-out line is among the N real ones" in format_table(
        report, real_only=True
    )
