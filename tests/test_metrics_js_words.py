"""js_words (JS of word-unigram distributions) and JS-n beyond n = 5, on hand-made corpora
whose answers are known."""

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from textgan.cli import main
from textgan.errors import UserError
from textgan.metrics.js_words import js_words
from textgan.metrics.reference import ReferenceNgrams, real_subset
from textgan.metrics.report import Scorer, encode_samples, format_table
from textgan.metrics.word_known import KnownWords, space_id
from textgan.vocab import PAD, Vocab, count_symbols, text_to_codes

# JS (bits) of p = (1, 0) against q = (½, ½): ½·log2(4/3) + ¼·log2(2/3) + ¼·log2(2).
JS_ONE_OF_TWO = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]


def _vocab(lines):
    return Vocab.from_counts(count_symbols(text_to_codes(lines, 64)))


def _dict_js(a: Counter, b: Counter) -> float:
    """JS in bits by the definition, over the union of the supports."""
    ta, tb = sum(a.values()), sum(b.values())
    total = 0.0
    for g in set(a) | set(b):
        p, q = a[g] / ta, b[g] / tb
        m = (p + q) / 2
        total += (p * math.log2(p / m) if p else 0.0) + (q * math.log2(q / m) if q else 0.0)
    return total / 2


def test_word_unigram_js_by_hand():
    vocab = _vocab(["aa bb cc"])
    known = KnownWords(vocab.encode(["aa bb", "bb aa"], 16), space_id(vocab))  # aa: ½, bb: ½
    assert js_words(vocab.encode(["bb aa", "aa", "bb"], 16), known) == 0.0
    assert js_words(vocab.encode(["aa aa"], 16), known) == pytest.approx(JS_ONE_OF_TWO, abs=1e-12)
    # A row that fills all 16 symbols: its last word may be cut, so only "aa" counts.
    assert js_words(vocab.encode(["aa " + "b" * 13], 16), known) == pytest.approx(JS_ONE_OF_TWO)
    assert js_words(vocab.encode(["cc cc"], 16), known) == 1.0  # no word in common
    assert js_words(np.full((2, 16), PAD), known) is None


def test_js_8_by_hand():
    vocab = _vocab(["abcdefghx"])
    ref = ReferenceNgrams.build(vocab.encode(["abcdefgh"], 8), 8, len(vocab))
    js = ref.js(vocab.encode(["abcdefgh", "abcdefgx"], 8))
    assert js[8] == pytest.approx(JS_ONE_OF_TWO, abs=1e-12)  # one 8-gram of two is the real one
    assert js[1] == pytest.approx(_dict_js(Counter("abcdefghabcdefgx"), Counter("abcdefgh")))


def _lines(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(2, 7))) for _ in range(n)]


def _oracle_words(vocab, ids):
    """Whole words from the decoded text (a row that fills the sequence loses its last)."""
    words = []
    for row, text in zip(ids, vocab.decode(ids), strict=True):
        parts = text.split(" ")
        if row[-1] != PAD and not text.endswith(" "):
            parts = parts[:-1]
        words += [w for w in parts if w]
    return Counter(words)


def _windows(ids, n):
    return Counter(tuple(r[i : i + n]) for r in ids.tolist() for i in range(len(r) - n + 1))


def test_report_has_js_words_and_js_8_beside_their_floors():
    scorer = Scorer.from_lines(_lines(600, 0), "tiny", 32, n=40, max_n=8, seed=2)
    samples = encode_samples(
        ["the cat sat", "a dog ran far away", "cat cat cat"] * 5, scorer.vocab, 32
    )
    report = scorer.report(samples, 15, max_n=8, seed=2)
    train = scorer.resources.get("train")
    real = real_subset(scorer.heldout, 15, seed=2)
    for prefix, ids in (("", samples.ids), ("floor_", real)):
        want = _dict_js(_oracle_words(scorer.vocab, ids), _oracle_words(scorer.vocab, train))
        assert report[f"{prefix}js_words"] == pytest.approx(want, abs=1e-12)
        for n in (6, 7, 8):
            want = _dict_js(_windows(ids, n), _windows(train, n))
            assert report[f"{prefix}js{n}"] == pytest.approx(want, abs=1e-12)
    # Real lines of the same word list use words as the training text does; the samples less so.
    assert report["floor_js_words"] < report["js_words"]
    table = format_table(report).splitlines()
    row = next(line.split() for line in table if line.startswith("js_words "))
    assert row == ["js_words", f"{report['js_words']:.4f}", f"{report['floor_js_words']:.4f}"]
    assert any(line.startswith("js8 ") for line in table)


def test_score_cli_shows_js_8_and_js_words(tmp_path):
    ref = tmp_path / "ref.txt"
    ref.write_text("\n".join(_lines(600, 1)) + "\n", encoding="utf-8")
    samples = "\n".join(_lines(30, 3)) + "\n"
    args = ["score", "-", "--reference", str(ref), "-n", "30", "--ngrams", "8", "--no-progress"]
    res = CliRunner().invoke(main, args, input=samples)
    assert res.exit_code == 0, res.output
    keys = [line.split()[0] for line in res.output.splitlines()[3:]]
    assert keys[:9] == [*(f"js{n}" for n in range(1, 9)), "js_words"]


def test_a_vocabulary_too_large_for_8_gram_keys_is_one_clear_line():
    prepared = SimpleNamespace(vocab=[None] * 300, key="big")
    with pytest.raises(UserError) as err:
        Scorer.from_prepared(prepared, 8, progress=False)
    assert str(err.value) == (
        "the vocabulary has 300 ids: too many for 8-gram keys of 64 bits (at most 256 ids fit); "
        "use --ngrams 7 or prepare the corpus with --max-vocab 256"
    )
