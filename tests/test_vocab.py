import numpy as np
import pytest

from textgan.errors import UserError
from textgan.files import atomic_write_text
from textgan.vocab import PAD, UNK, Vocab, VocabError, count_symbols, text_to_codes


def _vocab(lines, seq_len=32, kind="chars", max_size=256):
    return Vocab.from_counts(
        count_symbols(text_to_codes(lines, seq_len, kind), kind), kind, max_size
    )


def test_ids_ordered_by_frequency_ties_by_code_point():
    v = _vocab(["bbbaac", "cdd"])
    # b:3, then a, c, d with 2 each in code-point order
    assert v.symbols == tuple(map(ord, "bacd"))
    assert v.encode(["abcdz"], 6).tolist() == [[3, 2, 4, 5, UNK, PAD]]


def test_max_size_caps_and_maps_rest_to_unk():
    v = _vocab(["aaabbc"], max_size=4)
    assert len(v) == 4 and v.symbols == (ord("a"), ord("b"))
    assert v.encode(["abc"], 3).tolist() == [[2, 3, UNK]]


def test_round_trip_of_gbw_prefixes(gbw_lines):
    v = _vocab(gbw_lines)
    assert 100 <= len(v) <= 256 and v.dtype == np.uint8
    ids = v.encode(gbw_lines, 32)
    assert ids.shape == (len(gbw_lines), 32)
    assert v.decode(ids) == [line[:32] for line in gbw_lines]


def test_visible_pad_and_unk():
    v = _vocab(["ab"])
    assert v.decode(v.encode(["abz"], 5), pad="_", unk="?") == ["ab?__"]


def test_uint16_when_vocabulary_exceeds_256():
    text = "".join(chr(0x4E00 + i) for i in range(300))
    v = _vocab([text], seq_len=300, max_size=1000)
    ids = v.encode([text], 300)
    assert ids.dtype == np.uint16 and v.decode(ids) == [text]


def test_bytes_kind_round_trips_utf8():
    lines = ["naïve café", "☃ snow"]
    v = _vocab(lines, kind="bytes")
    assert v.decode(v.encode(lines, 32)) == lines
    # a multi-byte character cut by truncation decodes as one replacement character
    assert v.decode(v.encode(["é"], 1)) == ["\ufffd"]


def test_placeholder_code_points_in_vocabulary_still_decode():
    lines = ["a\ue000b\ue001"]
    v = _vocab(lines)
    assert v.decode(v.encode(lines, 6), pad="_") == ["a\ue000b\ue001__"]


def test_json_round_trip(tmp_path):
    v = _vocab(["hello"], kind="chars")
    atomic_write_text(tmp_path / "vocab.json", v.dumps())
    assert Vocab.load(tmp_path / "vocab.json") == v
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary left


def test_bad_format_refused():
    with pytest.raises(ValueError, match="format"):
        Vocab.from_json({"format": 99, "kind": "chars", "symbols": []})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[]", "a vocabulary is a JSON object, not list"),
        (b'{"symbols": 5}', "unsupported vocabulary format None"),
        (b'{"format": 1, "kind": "chars", "symbols": 5}', "'symbols' must be a list of integers"),
        (b'{"format": 1, "kind": "chars", "symbols": [true]}', "must be a list of integers"),
        (b'{"format": 1, "kind": "chars", "symbols": ["a"]}', "must be a list of integers"),
        (b'{"format": 1, "kind": "words", "symbols": [97]}', "unknown token kind 'words'"),
        (b'{"format": 1, "symbols": [97]}', "unknown token kind None"),
        (b'{"format": 1, "kind": "chars", "symbols": [97, 97]}', "distinct and non-zero"),
        (b'{"format": 1, "kind": "chars", "symbols": [-1]}', "must lie in 1..1114111"),
        (b'{"format": 1, "kind": "bytes", "symbols": [256]}', "must lie in 1..255"),
        (b'{"format": 1, "kind": "chars", "symbols": [97, 55296]}', "not UTF-16 surrogates"),
        (b'{"format": 1, "kind": "chars", "symbols": [57343]}', "not UTF-16 surrogates"),
        (b"{", "Expecting property name"),
        (b"\xff\xfe", "can't decode byte 0xff"),
    ],
)
def test_load_refuses_what_is_not_a_vocabulary(tmp_path, content, problem):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(VocabError) as err:
        Vocab.load(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a vocabulary file (") and problem in message
    assert "\n" not in message
    # callers catch it as either: a ValueError, or a user's error printed on one line
    assert isinstance(err.value, ValueError) and isinstance(err.value, UserError)
