import json

import numpy as np
import pytest
from click.testing import CliRunner

from textgan.cli import main
from textgan.metrics.reference import real_subset
from textgan.metrics.report import Scorer, encode_samples
from textgan.metrics.word_known import KnownWords, space_id, word_hashes
from textgan.vocab import PAD, Vocab, count_symbols, text_to_codes

TRAIN = ["the cat sat on the mat", "a dog ran", "abc "]


def _vocab(lines):
    return Vocab.from_counts(count_symbols(text_to_codes(lines, 64)))


def test_share_of_known_words_on_a_tiny_corpus():
    vocab = _vocab([*TRAIN, "flew"])
    known = KnownWords(vocab.encode(TRAIN, 16), space_id(vocab))
    # Training words: the cat sat on | a dog ran | abc. "the cat sat on t" fills all 16
    # symbols: its last "t" may be cut, so it is no word (nor is "mat", cut away).
    samples = vocab.encode(["the dog flew", "cat t", "the cat sat on the mat"], 16)
    # the dog flew | cat t | the cat sat on (t cut): 7 of 9 known
    assert known.share(samples) == pytest.approx(7 / 9, abs=1e-15)
    assert known.share(vocab.encode(["mat", "abc"], 16)) == 0.5  # "abc " ended with a space
    assert known.share(np.full((2, 16), PAD)) is None  # no word at all


def test_words_are_runs_between_spaces_and_padding():
    vocab = _vocab(["ab cd"])
    ids = vocab.encode(["ab  cd", "ab", "abcd"], 4)  # "ab  ", "ab", "abcd" (cut: no word)
    hashes = word_hashes(ids, space_id(vocab))
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert len(word_hashes(ids, None)) == 1  # no space in the vocabulary: a line is one word


def _oracle_words(vocab, ids):
    """Whole words of the rows of ``ids``, from their decoded text with str.split."""
    words = []
    for row, text in zip(ids, vocab.decode(ids), strict=True):
        parts = text.split(" ")
        if row[-1] != PAD and not text.endswith(" "):
            parts = parts[:-1]  # the row fills the sequence: its last word may be cut
        words += [w for w in parts if w]
    return words


def test_report_value_and_floor_equal_the_definition(gbw_lines):
    scorer = Scorer.from_lines(gbw_lines[:500], "tiny", 32, n=40, max_n=2, seed=1)
    samples = encode_samples(gbw_lines[600:640], scorer.vocab, 32)
    report = scorer.report(samples, 40, max_n=2, seed=1)
    train = scorer.resources.get("train")
    vocabulary = set(_oracle_words(scorer.vocab, train))
    real = real_subset(scorer.heldout, 40, seed=1)
    for key, ids in (("word_known", samples.ids), ("floor_word_known", real)):
        words = _oracle_words(scorer.vocab, ids)
        assert report[key] == pytest.approx(np.mean([w in vocabulary for w in words]), abs=1e-15)
    assert 0.5 < report["floor_word_known"] < 1.0 and 0.5 < report["word_known"] < 1.0


def test_score_table_shows_it_beside_its_floor(gbw_lines, tmp_path):
    (tmp_path / "ref.txt").write_text("\n".join(gbw_lines[:500]) + "\n", encoding="utf-8")
    samples = "\n".join(["the the the", "zzzq xxqj", *gbw_lines[600:638]])
    args = ["score", "-", "--reference", str(tmp_path / "ref.txt"), "-n", "40", "--no-progress"]
    table = CliRunner().invoke(main, args, input=samples)
    report = json.loads(CliRunner().invoke(main, [*args, "--json"], input=samples).output)
    assert table.exit_code == 0, table.output
    value, floor = f"{report['word_known']:.4f}", f"{report['floor_word_known']:.4f}"
    assert table.output.splitlines()[-1].split() == ["word_known", value, floor]
