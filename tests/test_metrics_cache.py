import io
import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from textgan import files
from textgan.metrics.lm import KneserNeyLM
from textgan.metrics.reference import ReferenceNgrams
from textgan.vocab import Vocab, count_symbols, text_to_codes


@pytest.fixture(scope="module")
def ids(gbw_lines):
    codes = text_to_codes(gbw_lines[:3000], 32)
    vocab = Vocab.from_counts(count_symbols(codes))
    return vocab.codes_to_ids(codes), vocab


@pytest.fixture
def prepared(ids, tmp_path):
    train, vocab = ids
    return SimpleNamespace(train=train, path=tmp_path, vocab=vocab, fingerprint="fp")


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _write(path, meta, arrays):
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


# Each damage keeps a valid zip of .npy arrays (and the right fingerprint and vocabulary size).
DAMAGES = {
    "2-d keys": lambda a, k, c: {k: a[k][None], c: a[c][None]},
    "lengths differ": lambda a, k, c: {c: a[c][:-1]},
    "keys out of order": lambda a, k, c: {k: a[k][::-1].copy(), c: a[c][::-1].copy()},
    "negative counts": lambda a, k, c: {c: -a[c]},
    "float keys": lambda a, k, c: {k: a[k].astype(np.float64)},
    "keys beyond the vocabulary": lambda a, k, c: {k: a[k] + np.uint64(2**60)},
    "no arrays": lambda a, k, c: dict.fromkeys(a),
}


def _damage(path, name, keys, counts):
    meta, arrays = _arrays(path)
    arrays.update(DAMAGES[name](arrays, keys, counts))
    _write(path, meta, {k: v for k, v in arrays.items() if v is not None})


@pytest.mark.parametrize("name", DAMAGES)
def test_a_crafted_ngram_cache_is_rebuilt(prepared, name):
    fresh = ReferenceNgrams.for_corpus(prepared, 3, progress=False)
    _damage(prepared.path / "ngrams.npz", name, "keys_2", "counts_2")
    got = ReferenceNgrams.for_corpus(prepared, 3, progress=False)
    again = ReferenceNgrams.load(prepared.path / "ngrams.npz")
    for ref in (got, again):
        for c, want in zip(ref.counts, fresh.counts, strict=True):
            assert np.array_equal(c.keys, want.keys) and np.array_equal(c.counts, want.counts)


@pytest.mark.parametrize("name", DAMAGES)
def test_a_crafted_language_model_cache_is_refit(prepared, name):
    fresh = KneserNeyLM.for_corpus(prepared, order=3)
    _damage(prepared.path / "kn3.npz", name, "keys", "counts")
    got = KneserNeyLM.for_corpus(prepared, order=3)
    again, fingerprint = KneserNeyLM.load(prepared.path / "kn3.npz")
    assert fingerprint == "fp"
    for lm in (got, again):
        assert np.array_equal(lm.top_keys, fresh.top_keys)
        assert lm.nll(prepared.train[:50]) == fresh.nll(prepared.train[:50])


@pytest.mark.parametrize(
    "meta",
    [["a", "list"], {"format": 1, "base": 1e3, "order": 3, "fingerprint": "fp"}],
    ids=["not an object", "float base"],
)
def test_a_cache_with_malformed_meta_is_refit(prepared, meta):
    fresh = KneserNeyLM.for_corpus(prepared, order=3)
    _, arrays = _arrays(prepared.path / "kn3.npz")
    _write(prepared.path / "kn3.npz", meta, arrays)
    assert np.array_equal(KneserNeyLM.for_corpus(prepared, order=3).top_keys, fresh.top_keys)


def _npy_header(shape, descr="<u8"):
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def test_an_array_declaring_terabytes_is_refused_not_allocated(prepared):
    fresh = ReferenceNgrams.for_corpus(prepared, 2, progress=False)
    path = prepared.path / "ngrams.npz"
    meta, _ = _arrays(path)
    with zipfile.ZipFile(path, "w") as archive:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps(meta)))
        archive.writestr("meta.npy", buf.getvalue())
        archive.writestr("keys_1.npy", _npy_header((2**40,)) + b"\0" * 64)  # 8 TiB declared
        archive.writestr("counts_1.npy", _npy_header((2**40,), "<i8") + b"\0" * 64)
    got = ReferenceNgrams.for_corpus(prepared, 2, progress=False)
    assert np.array_equal(got.counts[1].counts, fresh.counts[1].counts)


class _Trap:
    """Unpickling this writes a file: the proof that a cache was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_a_cache_never_unpickles(prepared, tmp_path):
    fresh = KneserNeyLM.for_corpus(prepared, order=3)
    meta, arrays = _arrays(prepared.path / "kn3.npz")
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(tmp_path / "unpickled")
    _write(prepared.path / "kn3.npz", meta, {**arrays, "keys": trap})
    assert np.array_equal(KneserNeyLM.for_corpus(prepared, order=3).top_keys, fresh.top_keys)
    assert not (tmp_path / "unpickled").exists()


def test_caches_are_written_through_atomic_open(prepared, monkeypatch):
    opened = []
    real_atomic_open = files.atomic_open

    def spy(path, *args, **kwargs):
        opened.append(path)
        return real_atomic_open(path, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_open", spy)
    ReferenceNgrams.for_corpus(prepared, 2, progress=False)
    KneserNeyLM.for_corpus(prepared, order=3)
    assert [str(p) for p in opened] == [str(prepared.path / n) for n in ("ngrams.npz", "kn3.npz")]
    assert sorted(p.name for p in prepared.path.iterdir()) == ["kn3.npz", "ngrams.npz"]
