import socket
from collections import Counter
from dataclasses import fields

import pytest
from test_corpus import prep, seen_as, texts

from textgan import corpus
from textgan.corpus import BW_HELDOUT, BW_ROOT, BW_TRAIN, SOURCES, CorpusConfig, Source, SourceKind
from textgan.corpus.registry import usage
from textgan.errors import UserError


def test_a_registered_source_is_read_and_named_in_the_help(tmp_path, monkeypatch):
    text = "\n".join(f"line {i} of the inline source" for i in range(30))
    kind = SourceKind(
        usage="inline:TEXT",
        accepts=lambda name: name.startswith("inline:"),
        open=lambda cfg: Source(
            slug="inline", identity={"inline": 1}, describe="inline text",
            train=lambda decoding: iter([(text, len(text))]),
        ),
    )  # fmt: skip
    monkeypatch.setitem(SOURCES, "inline", kind)
    prepared = prep(tmp_path, "inline:", holdout=0)
    assert (
        prepared.key.startswith("inline-") and prepared.meta["source"]["describe"] == "inline text"
    )
    assert sorted(texts(prepared)) == sorted(line[:32] for line in text.split("\n"))
    assert usage().endswith("a text file or folder | inline:TEXT")
    with pytest.raises(UserError, match=r"use billion_words, pydocs, .* or inline:TEXT"):
        prep(tmp_path, "nonsense")


def test_corpus_help_lists_every_source():
    (field,) = [f for f in fields(CorpusConfig) if f.name == "corpus"]
    assert field.metadata["help"] == (
        "billion_words | pydocs | hf:ID[:CONFIG] | a text file or folder."
    )


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
    prepared = prep(tmp_path, "billion_words", max_lines=8_000)
    lines = prepared.meta["lines"]
    assert prepared.key.startswith("billion_words-")
    assert (lines["kept"], lines["heldout_source"]) == (8_000, "heldout file")
    assert lines["reached_max_lines"]
    # training files in order, up to --max-lines; all of the benchmark's held-out file, in order
    assert Counter(texts(prepared)) == Counter(line[:32] for line in train_lines[:8_000])
    assert texts(prepared, "heldout") == seen_as(prepared.vocab, held_lines)
    names = [f["path"].rsplit("/", 1)[-1] for f in prepared.meta["source"]["files"]]
    assert names == [
        "news.en-00001-of-00100",
        "news.en-00002-of-00100",
        "news.en.heldout-00000-of-00050",
    ]
    capped = prep(tmp_path, "billion_words", max_lines=8_000, holdout=100)
    assert texts(capped, "heldout") == seen_as(capped.vocab, held_lines[:100])
    none = prep(tmp_path, "billion_words", max_lines=8_000, holdout=0)
    assert len(none.heldout) == 0 and none.meta["lines"]["heldout_read"] == 0


def test_billion_words_found_through_textgan_data(tmp_path, monkeypatch, gbw_files):
    _benchmark_layout(tmp_path / "elsewhere", gbw_files)
    monkeypatch.setenv("TEXTGAN_DATA", str(tmp_path / "elsewhere"))
    prepared = prep(tmp_path, "billion_words", max_lines=100)
    assert len(prepared.train) == 100 and len(prepared.heldout) == 500


def test_billion_words_without_copy_or_network_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTGAN_DATA", raising=False)
    monkeypatch.delenv(corpus.LM1B_BASE_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        prep(tmp_path, "billion_words")
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
        prep(tmp_path, "billion_words")
    assert not (tmp_path / "data").exists()


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
    prepared = prep(tmp_path, "billion_words", max_lines=2500, holdout=300)
    lines = prepared.meta["lines"]
    assert prepared.key.startswith("billion_words-hub-")
    assert (lines["kept"], lines["empty_skipped"], lines["read"]) == (2500, 2, 2502)
    assert Counter(texts(prepared)) == Counter(line[:32] for line in train[:2500])
    assert texts(prepared, "heldout") == seen_as(prepared.vocab, gbw_lines[-400:-100])
    # a second call is answered from the cache, without touching the hub
    monkeypatch.setenv(corpus.LM1B_BASE_ENV, str(tmp_path / "hub"))
    assert prep(tmp_path, "billion_words", max_lines=2500, holdout=300).reused


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
    prepared = prep(tmp_path, name, text_column="sentence", holdout=0)
    assert prepared.key.startswith("hf-")
    expected = [part for row in rows for part in row.split("\n")]
    assert Counter(texts(prepared)) == Counter(expected)
    with pytest.raises(UserError, match=r"no column 'text' \(it has: id, sentence\)"):
        prep(tmp_path, name)


def test_hf_dataset_crlf_rows_end_alike_wherever_a_batch_ends(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "ds").mkdir()
    rows = [f"row {i}\r" for i in range(10)]
    pq.write_table(pa.table({"text": rows}), tmp_path / "ds" / "train.parquet")
    prepared = prep(tmp_path, f"hf:{tmp_path / 'ds'}", holdout=0)
    assert sorted(texts(prepared)) == sorted(row[:-1] for row in rows)


def test_hf_dataset_that_cannot_be_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot open hf:no-such-user/no-such-dataset"):
        prep(tmp_path, "hf:no-such-user/no-such-dataset")
    assert not (tmp_path / "data").exists()
