from collections import Counter

import numpy as np
import pytest

from textgan.corpus import CorpusConfig, prepare, pydocs_sentences
from textgan.errors import UserError
from textgan.vocab import PAD, UNK, Vocab, count_symbols, text_to_codes


def prep(tmp_path, corpus_arg, **settings):
    """``prepare`` of ``corpus_arg`` with its cache under ``tmp_path/data``."""
    force = settings.pop("force", False)
    cfg = CorpusConfig(corpus=str(corpus_arg), data_dir=str(tmp_path / "data"), **settings)
    return prepare(cfg, force=force, progress=False)


def texts(prepared, split="train"):
    return prepared.vocab.decode(getattr(prepared, split))


def seen_as(vocab, lines, seq_len=32):
    """What decoding gives for ``lines``: symbols outside the vocabulary become U+FFFD."""
    kept = {chr(s) for s in vocab.symbols}
    return ["".join(c if c in kept else "\ufffd" for c in line[:seq_len]) for line in lines]


def _vocab_of(lines, seq_len=32, kind="chars", max_size=256):
    codes = text_to_codes(lines, seq_len, kind)
    return Vocab.from_counts(count_symbols(codes, kind), kind, max_size)


@pytest.fixture(scope="module")
def gbw_prepared(tmp_path_factory, gbw_dir):
    tmp = tmp_path_factory.mktemp("gbw")
    return prep(tmp, gbw_dir), tmp


def test_gbw_line_counts_split_and_arrays(gbw_prepared, gbw_lines):
    prepared, _ = gbw_prepared
    lines = prepared.meta["lines"]
    assert (lines["read"], lines["kept"], lines["empty_skipped"]) == (12_216, 12_216, 0)
    assert lines["truncated"] == sum(len(line) > 32 for line in gbw_lines)
    # default held-out: min(10,000, 10 %)
    assert (len(prepared.train), len(prepared.heldout)) == (12_216 - 1_221, 1_221)
    assert prepared.train.shape[1] == prepared.seq_len == 32
    assert prepared.train.dtype == np.uint8
    assert isinstance(prepared.train, np.memmap) and isinstance(prepared.heldout, np.memmap)
    assert prepared.meta["arrays"]["train"] == [10_995, 32]


def test_gbw_round_trip_of_first_32_characters(gbw_prepared, gbw_lines):
    prepared, _ = gbw_prepared
    decoded = texts(prepared, "train") + texts(prepared, "heldout")
    assert Counter(decoded) == Counter(seen_as(prepared.vocab, gbw_lines))
    assert Counter(texts(prepared)) <= Counter(line[:32] for line in gbw_lines)
    # padding sits only at the end of a row
    rows = np.asarray(prepared.train)
    pad = rows == PAD
    assert not (pad[:, :-1] & ~pad[:, 1:]).any()


def test_gbw_vocabulary_comes_from_the_training_split(gbw_prepared):
    prepared, _ = gbw_prepared
    train_lines = texts(prepared, "train")
    assert prepared.vocab == _vocab_of(train_lines)
    assert prepared.meta["vocab"]["size"] == len(prepared.vocab)
    assert prepared.meta["vocab"]["unk_share"] == 0.0
    top_name, top_share = prepared.meta["vocab"]["top"][0]
    assert top_name == "' '" and 0.1 < top_share < 0.25


def test_seed_gives_the_same_arrays_and_another_seed_another_order(tmp_path, gbw_dir):
    a = prep(tmp_path / "a", gbw_dir, seed=3)
    b = prep(tmp_path / "b", gbw_dir, seed=3)
    c = prep(tmp_path / "c", gbw_dir, seed=4)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.heldout, b.heldout)
    assert a.fingerprint == b.fingerprint and a.key == b.key
    assert not np.array_equal(a.train[:100], c.train[:100])
    assert a.fingerprint != c.fingerprint and a.key != c.key
    assert Counter(texts(a) + texts(a, "heldout")) == Counter(texts(c) + texts(c, "heldout"))


def test_empty_lines_crlf_and_max_lines(tmp_path):
    source = tmp_path / "small.txt"
    source.write_bytes(b"\xef\xbb\xbfalpha\r\n\r\nbeta\n\n\ngamma\ndelta\nepsilon")  # BOM, CRLF
    full = prep(tmp_path, source, holdout=0)
    counts = full.meta["lines"]
    assert (counts["read"], counts["kept"], counts["empty_skipped"]) == (8, 5, 3)
    assert sorted(texts(full) + texts(full, "heldout")) == sorted(
        ["alpha", "beta", "gamma", "delta", "epsilon"]
    )
    cut = prep(tmp_path, source, max_lines=3, holdout=0)
    assert cut.meta["lines"]["kept"] == 3 and cut.meta["lines"]["reached_max_lines"]
    assert sorted(texts(cut) + texts(cut, "heldout")) == ["alpha", "beta", "gamma"]
    assert cut.meta["lines"]["read"] == 6  # the empty lines before "gamma" included


def test_folder_of_text_files_in_sorted_order(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second\n", encoding="utf-8")
    (folder / "a.txt").write_text("first\n", encoding="utf-8")
    (folder / "sub" / "c.txt").write_text("third\n", encoding="utf-8")
    (folder / "image.bin").write_bytes(b"\x89PNG\0\0\0")
    (folder / ".hidden").write_text("hidden\n", encoding="utf-8")
    prepared = prep(tmp_path, folder, holdout=0, max_lines=2)
    assert sorted(texts(prepared)) == ["first", "second"]
    files = [f["path"] for f in prepared.meta["source"]["files"]]
    assert [p.rsplit("/", 1)[-1] for p in files] == ["a.txt", "b.txt", "c.txt"]


def test_rare_symbols_beyond_one_byte_and_uint16(tmp_path):
    # 400 distinct characters: more than the 254 one-byte provisional slots
    rare = [chr(0x4E00 + i) for i in range(400)]
    lines = ["the common line"] * 50 + ["".join(rare[i : i + 20]) for i in range(0, 400, 20)]
    lines += [rare[i] * (1 + i % 3) + "x" for i in range(400)]
    source = tmp_path / "cjk.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wide = prep(tmp_path, source, max_vocab=1000, holdout=0)
    assert wide.train.dtype == np.uint16 and len(wide.vocab) == 2 + 400 + len(
        set("the common linex")
    )
    assert Counter(texts(wide)) == Counter(line[:32] for line in lines)
    assert wide.vocab == _vocab_of(lines, max_size=1000)

    narrow = prep(tmp_path, source, max_vocab=256, holdout=0)
    assert narrow.train.dtype == np.uint8 and narrow.vocab == _vocab_of(lines)
    assert Counter(texts(narrow)) == Counter(seen_as(narrow.vocab, lines))
    kept = {chr(s) for s in narrow.vocab.symbols}
    unk = sum(c not in kept for line in lines for c in line[:32])
    total = sum(len(line[:32]) for line in lines)
    assert narrow.meta["vocab"]["unk_share"] == pytest.approx(unk / total, abs=1e-6)
    assert int((np.asarray(narrow.train) == UNK).sum()) == unk


def test_bytes_tokens(tmp_path):
    lines = ["naïve café au lait", "☃ snow ☃", "plain ascii"]
    source = tmp_path / "utf8.txt"
    source.write_text("\n".join(lines), encoding="utf-8")
    prepared = prep(tmp_path, source, tokens="bytes", seq_len=8, holdout=0)
    assert prepared.vocab.kind == "bytes"
    expected = [line.encode()[:8].decode("utf-8", "replace") for line in lines]
    assert sorted(texts(prepared)) == sorted(expected)
    assert prepared.meta["lines"]["truncated"] == 3


def test_invalid_utf8_replaced_on_request(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes("good line\ncaf\xe9 cr\xe8me\nok\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.txt: line 2 is not valid UTF-8"):
        prep(tmp_path, source)
    prepared = prep(tmp_path, source, encoding_errors="replace", holdout=0)
    assert prepared.meta["lines"]["invalid_utf8_replaced"] == 2
    assert "caf\ufffd cr\ufffdme" in texts(prepared)


def test_holdout_that_leaves_nothing_is_refused(tmp_path):
    source = tmp_path / "two.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(UserError, match="--holdout 2 leaves no training lines"):
        prep(tmp_path, source, holdout=2)
    assert not (tmp_path / "data").exists()


def test_pydocs(tmp_path):
    sentences = pydocs_sentences()
    assert len(sentences) > 1_000
    assert all(s.strip() == s and "\n" not in s and not s.startswith(">>>") for s in sentences)
    prepared = prep(tmp_path, "pydocs")
    kept = prepared.meta["lines"]["kept"]
    assert kept == len(sentences) and len(prepared.heldout) == kept // 10
    decoded = Counter(texts(prepared) + texts(prepared, "heldout"))
    assert decoded == Counter(seen_as(prepared.vocab, sentences))
    assert prep(tmp_path, "pydocs").reused


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"seq_len": 1}, "corpus.seq_len must be at least 2, got 1"),
        ({"max_vocab": 2}, "corpus.max_vocab must be at least 3, got 2"),
        ({"max_vocab": 65537}, "corpus.max_vocab must be at most 65536, got 65537"),
        ({"max_lines": 0}, "corpus.max_lines must be at least 1, got 0"),
        ({"holdout": -1}, "corpus.holdout must be at least 0, got -1"),
        ({"tokens": "words"}, "corpus.tokens must be one of chars, bytes, got 'words'"),
        ({"encoding_errors": "ignore"}, "corpus.encoding_errors must be one of strict, replace"),
        ({"seed": -1}, "corpus.seed must be at least 0, got -1"),
        ({"seed": 2**64}, f"corpus.seed must be at most {2**63 - 1}, got {2**64}"),
        ({"corpus": " "}, "corpus.corpus is empty"),
        ({"corpus": "nonsense"}, "unknown corpus 'nonsense'"),
        ({"corpus": "./missing.txt"}, "no such file or directory: ./missing.txt"),
        ({"corpus": "hf:"}, "names no dataset"),
    ],
)
def test_bad_settings(tmp_path, settings, message):
    cfg = CorpusConfig(**{"data_dir": str(tmp_path / "data"), **settings})
    with pytest.raises(UserError, match=message):
        prepare(cfg, progress=False)
    assert not (tmp_path / "data").exists()
