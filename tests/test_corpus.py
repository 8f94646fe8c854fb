import json
import shutil
import socket
from collections import Counter

import numpy as np
import pytest

from textgan import corpus
from textgan.corpus import (
    BW_HELDOUT,
    BW_ROOT,
    BW_TRAIN,
    CorpusConfig,
    load_prepared,
    prepare,
    pydocs_sentences,
)
from textgan.errors import UserError
from textgan.vocab import PAD, UNK, Vocab, count_symbols, text_to_codes


def _prep(tmp_path, corpus_arg, **settings):
    force = settings.pop("force", False)
    cfg = CorpusConfig(corpus=str(corpus_arg), data_dir=str(tmp_path / "data"), **settings)
    return prepare(cfg, force=force, progress=False)


def _texts(prepared, split="train"):
    return prepared.vocab.decode(getattr(prepared, split))


def _seen_as(vocab, lines, seq_len=32):
    """What decoding gives for ``lines``: symbols outside the vocabulary become U+FFFD."""
    kept = {chr(s) for s in vocab.symbols}
    return ["".join(c if c in kept else "\ufffd" for c in line[:seq_len]) for line in lines]


def _vocab_of(lines, seq_len=32, kind="chars", max_size=256):
    codes = text_to_codes(lines, seq_len, kind)
    return Vocab.from_counts(count_symbols(codes, kind), kind, max_size)


@pytest.fixture(scope="module")
def gbw_prepared(tmp_path_factory, gbw_dir):
    tmp = tmp_path_factory.mktemp("gbw")
    return _prep(tmp, gbw_dir), tmp


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
    decoded = _texts(prepared, "train") + _texts(prepared, "heldout")
    assert Counter(decoded) == Counter(_seen_as(prepared.vocab, gbw_lines))
    assert Counter(_texts(prepared)) <= Counter(line[:32] for line in gbw_lines)
    # padding sits only at the end of a row
    rows = np.asarray(prepared.train)
    pad = rows == PAD
    assert not (pad[:, :-1] & ~pad[:, 1:]).any()


def test_gbw_vocabulary_comes_from_the_training_split(gbw_prepared):
    prepared, _ = gbw_prepared
    train_lines = _texts(prepared, "train")
    assert prepared.vocab == _vocab_of(train_lines)
    assert prepared.meta["vocab"]["size"] == len(prepared.vocab)
    assert prepared.meta["vocab"]["unk_share"] == 0.0
    top_name, top_share = prepared.meta["vocab"]["top"][0]
    assert top_name == "' '" and 0.1 < top_share < 0.25


def test_seed_gives_the_same_arrays_and_another_seed_another_order(tmp_path, gbw_dir):
    a = _prep(tmp_path / "a", gbw_dir, seed=3)
    b = _prep(tmp_path / "b", gbw_dir, seed=3)
    c = _prep(tmp_path / "c", gbw_dir, seed=4)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.heldout, b.heldout)
    assert a.fingerprint == b.fingerprint and a.key == b.key
    assert not np.array_equal(a.train[:100], c.train[:100])
    assert a.fingerprint != c.fingerprint and a.key != c.key
    assert Counter(_texts(a) + _texts(a, "heldout")) == Counter(_texts(c) + _texts(c, "heldout"))


def test_cache_is_reused_and_force_rebuilds(tmp_path, gbw_files):
    source = tmp_path / "news.txt"
    shutil.copy(gbw_files[0], source)
    first = _prep(tmp_path, source)
    assert not first.reused
    stamp = (first.path / "train.npy").stat().st_mtime_ns
    again = _prep(tmp_path, source)
    assert again.reused and again.path == first.path and again.fingerprint == first.fingerprint
    assert (again.path / "train.npy").stat().st_mtime_ns == stamp
    forced = _prep(tmp_path, source, force=True)
    assert not forced.reused and forced.fingerprint == first.fingerprint
    assert (forced.path / "train.npy").stat().st_mtime_ns != stamp
    other = _prep(tmp_path, source, seq_len=16)
    assert other.path != first.path and other.train.shape[1] == 16
    # an edited source is noticed
    with open(source, "a", encoding="utf-8") as f:
        f.write("one more line\n")
    edited = _prep(tmp_path, source)
    assert not edited.reused and edited.path == first.path
    assert edited.meta["lines"]["kept"] == first.meta["lines"]["kept"] + 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted([first.key, other.key])


def test_empty_lines_crlf_and_max_lines(tmp_path):
    source = tmp_path / "small.txt"
    source.write_bytes(b"\xef\xbb\xbfalpha\r\n\r\nbeta\n\n\ngamma\ndelta\nepsilon")  # BOM, CRLF
    full = _prep(tmp_path, source, holdout=0)
    counts = full.meta["lines"]
    assert (counts["read"], counts["kept"], counts["empty_skipped"]) == (8, 5, 3)
    assert sorted(_texts(full) + _texts(full, "heldout")) == sorted(
        ["alpha", "beta", "gamma", "delta", "epsilon"]
    )
    cut = _prep(tmp_path, source, max_lines=3, holdout=0)
    assert cut.meta["lines"]["kept"] == 3 and cut.meta["lines"]["reached_max_lines"]
    assert sorted(_texts(cut) + _texts(cut, "heldout")) == ["alpha", "beta", "gamma"]
    assert cut.meta["lines"]["read"] == 6  # the empty lines before "gamma" included


def test_folder_of_text_files_in_sorted_order(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second\n", encoding="utf-8")
    (folder / "a.txt").write_text("first\n", encoding="utf-8")
    (folder / "sub" / "c.txt").write_text("third\n", encoding="utf-8")
    (folder / "image.bin").write_bytes(b"\x89PNG\0\0\0")
    (folder / ".hidden").write_text("hidden\n", encoding="utf-8")
    prepared = _prep(tmp_path, folder, holdout=0, max_lines=2)
    assert sorted(_texts(prepared)) == ["first", "second"]
    files = [f["path"] for f in prepared.meta["source"]["files"]]
    assert [p.rsplit("/", 1)[-1] for p in files] == ["a.txt", "b.txt", "c.txt"]


def test_rare_symbols_beyond_one_byte_and_uint16(tmp_path):
    # 400 distinct characters: more than the 254 one-byte provisional slots
    rare = [chr(0x4E00 + i) for i in range(400)]
    lines = ["the common line"] * 50 + ["".join(rare[i : i + 20]) for i in range(0, 400, 20)]
    lines += [rare[i] * (1 + i % 3) + "x" for i in range(400)]
    source = tmp_path / "cjk.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wide = _prep(tmp_path, source, max_vocab=1000, holdout=0)
    assert wide.train.dtype == np.uint16 and len(wide.vocab) == 2 + 400 + len(
        set("the common linex")
    )
    assert Counter(_texts(wide)) == Counter(line[:32] for line in lines)
    assert wide.vocab == _vocab_of(lines, max_size=1000)

    narrow = _prep(tmp_path, source, max_vocab=256, holdout=0)
    assert narrow.train.dtype == np.uint8 and narrow.vocab == _vocab_of(lines)
    assert Counter(_texts(narrow)) == Counter(_seen_as(narrow.vocab, lines))
    kept = {chr(s) for s in narrow.vocab.symbols}
    unk = sum(c not in kept for line in lines for c in line[:32])
    total = sum(len(line[:32]) for line in lines)
    assert narrow.meta["vocab"]["unk_share"] == pytest.approx(unk / total, abs=1e-6)
    assert int((np.asarray(narrow.train) == UNK).sum()) == unk


def test_bytes_tokens(tmp_path):
    lines = ["naïve café au lait", "☃ snow ☃", "plain ascii"]
    source = tmp_path / "utf8.txt"
    source.write_text("\n".join(lines), encoding="utf-8")
    prepared = _prep(tmp_path, source, tokens="bytes", seq_len=8, holdout=0)
    assert prepared.vocab.kind == "bytes"
    expected = [line.encode()[:8].decode("utf-8", "replace") for line in lines]
    assert sorted(_texts(prepared)) == sorted(expected)
    assert prepared.meta["lines"]["truncated"] == 3


def test_invalid_utf8_replaced_on_request(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes("good line\ncaf\xe9 cr\xe8me\nok\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.txt: line 2 is not valid UTF-8"):
        _prep(tmp_path, source)
    prepared = _prep(tmp_path, source, encoding_errors="replace", holdout=0)
    assert prepared.meta["lines"]["invalid_utf8_replaced"] == 2
    assert "caf\ufffd cr\ufffdme" in _texts(prepared)


def test_holdout_that_leaves_nothing_is_refused(tmp_path):
    source = tmp_path / "two.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(UserError, match="--holdout 2 leaves no training lines"):
        _prep(tmp_path, source, holdout=2)
    assert not (tmp_path / "data").exists()


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, gbw_files):
    calls = []

    def failing(path, data, digest):
        calls.append(path.name)
        raise OSError("disk full")

    monkeypatch.setattr(corpus, "_write_npy", failing)
    (tmp_path / "data").mkdir()
    with pytest.raises(OSError, match="disk full"):
        _prep(tmp_path, gbw_files[0])
    assert calls == ["train.npy"] and list((tmp_path / "data").iterdir()) == []


def test_load_prepared_refuses_what_is_not_a_cache(tmp_path, gbw_prepared):
    with pytest.raises(UserError, match="not a prepared corpus"):
        load_prepared(tmp_path)
    prepared, _ = gbw_prepared
    broken = tmp_path / "broken"
    shutil.copytree(prepared.path, broken)
    (broken / "heldout.npy").unlink()
    with pytest.raises(UserError, match="incomplete prepared corpus"):
        load_prepared(broken)
    loaded = load_prepared(prepared.path)
    assert loaded.fingerprint == prepared.fingerprint and loaded.vocab == prepared.vocab
    meta = json.loads((prepared.path / "meta.json").read_text())
    assert meta["source"]["files"][0]["bytes"] == 839_374


def _benchmark_layout(root, gbw_files, heldout_lines=500):
    base = root / BW_ROOT
    first, second = (f.read_text(encoding="utf-8").splitlines() for f in gbw_files)
    for number, lines in ((1, first), (2, second[:3000])):
        path = base / BW_TRAIN.format(number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    held = base / BW_HELDOUT
    held.parent.mkdir(parents=True)
    held.write_text("\n".join(second[-heldout_lines:]) + "\n", encoding="utf-8")
    return first + second[:3000], second[-heldout_lines:]


def test_billion_words_local_layout(tmp_path, gbw_files):
    train_lines, held_lines = _benchmark_layout(tmp_path / "data", gbw_files)
    prepared = _prep(tmp_path, "billion_words", max_lines=8_000)
    lines = prepared.meta["lines"]
    assert prepared.key.startswith("billion_words-")
    assert (lines["kept"], lines["heldout_source"]) == (8_000, "heldout file")
    assert lines["reached_max_lines"]
    # training files in order, up to --max-lines; all of the benchmark's held-out file, in order
    assert Counter(_texts(prepared)) == Counter(line[:32] for line in train_lines[:8_000])
    assert _texts(prepared, "heldout") == _seen_as(prepared.vocab, held_lines)
    names = [f["path"].rsplit("/", 1)[-1] for f in prepared.meta["source"]["files"]]
    assert names == [
        "news.en-00001-of-00100",
        "news.en-00002-of-00100",
        "news.en.heldout-00000-of-00050",
    ]
    capped = _prep(tmp_path, "billion_words", max_lines=8_000, holdout=100)
    assert _texts(capped, "heldout") == _seen_as(capped.vocab, held_lines[:100])
    none = _prep(tmp_path, "billion_words", max_lines=8_000, holdout=0)
    assert len(none.heldout) == 0 and none.meta["lines"]["heldout_read"] == 0


def test_billion_words_found_through_textgan_data(tmp_path, monkeypatch, gbw_files):
    _benchmark_layout(tmp_path / "elsewhere", gbw_files)
    monkeypatch.setenv("TEXTGAN_DATA", str(tmp_path / "elsewhere"))
    prepared = _prep(tmp_path, "billion_words", max_lines=100)
    assert len(prepared.train) == 100 and len(prepared.heldout) == 500


def test_billion_words_without_copy_or_network_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTGAN_DATA", raising=False)
    monkeypatch.delenv(corpus.LM1B_BASE_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        _prep(tmp_path, "billion_words")
    message = str(err.value)
    assert "no local copy" in message and str(tmp_path / "data" / BW_ROOT) in message
    assert "offline mode" in message and corpus.BW_URL in message
    assert not (tmp_path / "data").exists()


def test_billion_words_with_the_hub_unreachable_fails_at_once(tmp_path, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TEXTGAN_DATA", corpus.LM1B_BASE_ENV):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(
        UserError, match=rf"hub is not reachable \(cannot connect to 127.0.0.1:{port}"
    ):
        _prep(tmp_path, "billion_words")
    assert not (tmp_path / "data").exists()


def test_leftovers_of_killed_runs_are_removed(tmp_path, gbw_files, monkeypatch):
    source = tmp_path / "news.txt"
    shutil.copy(gbw_files[0], source)
    monkeypatch.chdir(tmp_path)
    key = corpus.corpus_key(CorpusConfig(corpus="news.txt"))
    assert key == corpus.corpus_key(CorpusConfig(corpus=str(source)))  # same file, same key
    dead = tmp_path / "data" / f".tmp-{key}-999999999"
    dead.mkdir(parents=True)
    (dead / "train.npy").write_bytes(b"half")
    prepared = _prep(tmp_path, "news.txt")
    assert prepared.key == key
    assert [p.name for p in (tmp_path / "data").iterdir()] == [key]


def _write_parquet_layout(base, gbw_lines):
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = gbw_lines[:3000]
    rows = [*train[:1000], "", None, *train[1000:]]
    (base / "plain_text" / "train").mkdir(parents=True)
    (base / "plain_text" / "test").mkdir(parents=True)
    pq.write_table(pa.table({"text": rows[:1500]}), base / "plain_text/train/0000.parquet")
    pq.write_table(pa.table({"text": rows[1500:]}), base / "plain_text/train/0001.parquet")
    pq.write_table(pa.table({"text": gbw_lines[-400:]}), base / "plain_text/test/0000.parquet")
    return train


def test_billion_words_hub_parquet_offline(tmp_path, monkeypatch, gbw_lines):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("TEXTGAN_DATA", raising=False)
    train = _write_parquet_layout(tmp_path / "hub", gbw_lines)
    monkeypatch.setenv(corpus.LM1B_BASE_ENV, str(tmp_path / "hub"))
    prepared = _prep(tmp_path, "billion_words", max_lines=2500, holdout=300)
    lines = prepared.meta["lines"]
    assert prepared.key.startswith("billion_words-hub-")
    assert (lines["kept"], lines["empty_skipped"], lines["read"]) == (2500, 2, 2502)
    assert Counter(_texts(prepared)) == Counter(line[:32] for line in train[:2500])
    assert _texts(prepared, "heldout") == _seen_as(prepared.vocab, gbw_lines[-400:-100])
    # a second call is answered from the cache, without touching the hub
    monkeypatch.setenv(corpus.LM1B_BASE_ENV, str(tmp_path / "hub"))
    assert _prep(tmp_path, "billion_words", max_lines=2500, holdout=300).reused


def test_hf_dataset_with_text_column(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "ds").mkdir()
    rows = [f"sentence number {i}\nsecond line {i}" for i in range(40)]
    pq.write_table(
        pa.table({"id": list(range(40)), "sentence": rows}), tmp_path / "ds" / "train.parquet"
    )
    name = f"hf:{tmp_path / 'ds'}"
    prepared = _prep(tmp_path, name, text_column="sentence", holdout=0)
    assert prepared.key.startswith("hf-")
    expected = [part for row in rows for part in row.split("\n")]
    assert Counter(_texts(prepared)) == Counter(expected)
    with pytest.raises(UserError, match=r"no column 'text' \(it has: id, sentence\)"):
        _prep(tmp_path, name)


def test_hf_dataset_crlf_rows_end_alike_wherever_a_batch_ends(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "ds").mkdir()
    rows = [f"row {i}\r" for i in range(10)]
    pq.write_table(pa.table({"text": rows}), tmp_path / "ds" / "train.parquet")
    prepared = _prep(tmp_path, f"hf:{tmp_path / 'ds'}", holdout=0)
    assert sorted(_texts(prepared)) == sorted(row[:-1] for row in rows)


def test_hf_dataset_that_cannot_be_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot open hf:no-such-user/no-such-dataset"):
        _prep(tmp_path, "hf:no-such-user/no-such-dataset")
    assert not (tmp_path / "data").exists()


def test_pydocs(tmp_path):
    sentences = pydocs_sentences()
    assert len(sentences) > 1_000
    assert all(s.strip() == s and "\n" not in s and not s.startswith(">>>") for s in sentences)
    prepared = _prep(tmp_path, "pydocs")
    kept = prepared.meta["lines"]["kept"]
    assert kept == len(sentences) and len(prepared.heldout) == kept // 10
    decoded = Counter(_texts(prepared) + _texts(prepared, "heldout"))
    assert decoded == Counter(_seen_as(prepared.vocab, sentences))
    assert _prep(tmp_path, "pydocs").reused


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"seq_len": 1}, "--seq-len must be at least 2"),
        ({"max_vocab": 2}, "--max-vocab must be between 3 and 65536"),
        ({"max_lines": 0}, "--max-lines must be positive"),
        ({"holdout": -1}, "--holdout must be 0 or more"),
        ({"tokens": "words"}, "--tokens must be one of chars, bytes"),
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
