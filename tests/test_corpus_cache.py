import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_corpus import prep

from textgan import corpus
from textgan.corpus import CorpusConfig, load_prepared
from textgan.corpus import build as corpus_build
from textgan.corpus import rows as corpus_rows
from textgan.errors import UserError


@pytest.fixture
def pydocs_cache(tmp_path):
    """A pydocs cache, its fingerprint and a copy of its training ids."""
    prepared = prep(tmp_path, "pydocs")
    return prepared.path, prepared.fingerprint, np.array(prepared.train)


def _assert_rebuilt(tmp_path, cache, fingerprint, train):
    """prepare() builds the cache again (not 'reused') and gets the original arrays."""
    again = prep(tmp_path, "pydocs")
    assert not again.reused and again.path == cache and again.fingerprint == fingerprint
    assert np.array_equal(again.train, train)
    assert prep(tmp_path, "pydocs").reused


def _one_line_refusal(cache, match):
    with pytest.raises(UserError, match=match) as err:
        load_prepared(cache)
    assert "\n" not in str(err.value)


def test_cache_is_reused_and_force_rebuilds(tmp_path, gbw_files):
    source = tmp_path / "news.txt"
    shutil.copy(gbw_files[0], source)
    first = prep(tmp_path, source)
    assert not first.reused
    stamp = (first.path / "train.npy").stat().st_mtime_ns
    again = prep(tmp_path, source)
    assert again.reused and again.path == first.path and again.fingerprint == first.fingerprint
    assert (again.path / "train.npy").stat().st_mtime_ns == stamp
    forced = prep(tmp_path, source, force=True)
    assert not forced.reused and forced.fingerprint == first.fingerprint
    assert (forced.path / "train.npy").stat().st_mtime_ns != stamp
    other = prep(tmp_path, source, seq_len=16)
    assert other.path != first.path and other.train.shape[1] == 16
    # an edited source is noticed
    with open(source, "a", encoding="utf-8") as f:
        f.write("one more line\n")
    edited = prep(tmp_path, source)
    assert not edited.reused and edited.path == first.path
    assert edited.meta["lines"]["kept"] == first.meta["lines"]["kept"] + 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted([first.key, other.key])


def test_load_prepared_refuses_what_is_not_a_cache(tmp_path, gbw_files):
    with pytest.raises(UserError, match="not a prepared corpus"):
        load_prepared(tmp_path)
    prepared = prep(tmp_path, gbw_files[0])
    broken = tmp_path / "broken"
    shutil.copytree(prepared.path, broken)
    (broken / "heldout.npy").unlink()
    with pytest.raises(UserError, match="incomplete prepared corpus"):
        load_prepared(broken)
    loaded = load_prepared(prepared.path)
    assert loaded.fingerprint == prepared.fingerprint and loaded.vocab == prepared.vocab
    meta = json.loads((prepared.path / "meta.json").read_text())
    assert meta["source"]["files"][0]["bytes"] == 839_374


def test_leftovers_of_killed_runs_are_removed(tmp_path, gbw_files, monkeypatch):
    source = tmp_path / "news.txt"
    shutil.copy(gbw_files[0], source)
    monkeypatch.chdir(tmp_path)
    key = corpus.corpus_key(CorpusConfig(corpus="news.txt"))
    assert key == corpus.corpus_key(CorpusConfig(corpus=str(source)))  # same file, same key
    dead = tmp_path / "data" / f".tmp-{key}-999999999"
    dead.mkdir(parents=True)
    (dead / "train.npy").write_bytes(b"half")
    prepared = prep(tmp_path, "news.txt")
    assert prepared.key == key
    assert [p.name for p in (tmp_path / "data").iterdir()] == [key]


def test_ids_beyond_the_vocabulary_are_not_trusted(tmp_path, pydocs_cache):
    cache, fingerprint, train = pydocs_cache
    size = len(load_prepared(cache).vocab)
    assert size < 256
    np.save(cache / "train.npy", np.full(train.shape, size, dtype=np.uint8))
    _one_line_refusal(cache, f"damaged prepared corpus: id {size} is beyond its vocabulary")
    _assert_rebuilt(tmp_path, cache, fingerprint, train)


@pytest.mark.parametrize("name", ["train.npy", "heldout.npy", "meta.json"])
def test_files_of_another_cache_are_not_trusted(tmp_path, pydocs_cache, name):
    cache, fingerprint, train = pydocs_cache
    other = prep(tmp_path / "other", "pydocs", seed=1)  # same shapes, other rows
    shutil.copy(other.path / name, cache / name)
    _one_line_refusal(cache, "is a damaged prepared corpus")
    _assert_rebuilt(tmp_path, cache, fingerprint, train)


def test_a_whole_cache_copied_under_another_key_is_not_reused(tmp_path, pydocs_cache):
    cache, fingerprint, train = pydocs_cache
    other = prep(tmp_path / "other", "pydocs", seed=1)
    shutil.rmtree(cache)
    shutil.copytree(other.path, cache)
    assert load_prepared(cache).key == other.key  # intact, but not the cache of seed 0
    _assert_rebuilt(tmp_path, cache, fingerprint, train)


@pytest.mark.parametrize("name", ["meta.json", "vocab.json"])
@pytest.mark.parametrize("text", ["[]", '{"symbols": 5}', '{"format": 1}', "{", "null"])
def test_json_of_the_wrong_shape_is_rebuilt(tmp_path, pydocs_cache, name, text):
    cache, fingerprint, train = pydocs_cache
    (cache / name).write_text(text, encoding="utf-8")
    _one_line_refusal(cache, rf"{name}|{cache}")
    _assert_rebuilt(tmp_path, cache, fingerprint, train)


def test_meta_json_missing_what_the_summary_shows_is_rebuilt(tmp_path, pydocs_cache):
    cache, fingerprint, train = pydocs_cache
    meta = json.loads((cache / "meta.json").read_text(encoding="utf-8"))
    meta["lines"]["kept"] = "many"
    (cache / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    _one_line_refusal(cache, r'meta.json.lines.kept is "many"')
    _assert_rebuilt(tmp_path, cache, fingerprint, train)


def test_a_cache_put_in_place_meanwhile_is_used(tmp_path, monkeypatch):
    """Two prepares of one corpus: the other process renames its folder into place between
    this one's last look and its own rename."""
    winner = prep(tmp_path / "other", "pydocs")
    target = tmp_path / "data" / winner.key
    real_rename = Path.rename

    def rename(self, dest):
        if self.name.startswith(".tmp-") and Path(dest) == target and not target.exists():
            shutil.copytree(winner.path, target)
        return real_rename(self, dest)

    monkeypatch.setattr(Path, "rename", rename)
    prepared = prep(tmp_path, "pydocs")
    assert prepared.reused and prepared.path == target
    assert prepared.fingerprint == winner.fingerprint
    assert [p.name for p in (tmp_path / "data").iterdir()] == [winner.key]


def test_forced_rebuild_replaces_the_cache_in_place(tmp_path, pydocs_cache):
    cache, fingerprint, _ = pydocs_cache
    stamp = (cache / "train.npy").stat().st_ino
    forced = prep(tmp_path, "pydocs", force=True)
    assert not forced.reused and forced.fingerprint == fingerprint
    assert (cache / "train.npy").stat().st_ino != stamp
    assert [p.name for p in (tmp_path / "data").iterdir()] == [cache.name]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "No space left on device"),
        (errno.EACCES, "Permission denied"),
        (errno.EROFS, "Read-only file system"),
    ],
)
@pytest.mark.parametrize("step", ["_write_npy", "write_json"])
def test_disk_errors_are_one_line_and_leave_nothing(tmp_path, monkeypatch, step, code, reason):
    real = getattr(corpus_build, step)

    def failing(path, *args):
        real(path, *args)  # the file is half there when the disk gives out
        raise OSError(code, reason, str(path))

    monkeypatch.setattr(corpus_build, step, failing)
    with pytest.raises(UserError) as err:
        prep(tmp_path, "pydocs")
    message = str(err.value)
    assert "\n" not in message and message.startswith("cannot write the corpus cache")
    assert reason in message and f"{tmp_path / 'data'}/.tmp-pydocs-" in message
    assert not (tmp_path / "data").exists()


def test_a_failed_rename_into_place_is_one_line(tmp_path, monkeypatch):
    def refused(self, dest):
        raise OSError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "rename", refused)
    with pytest.raises(UserError, match=r"cannot put the corpus cache in place at .*: Permission"):
        prep(tmp_path, "pydocs")
    assert not (tmp_path / "data").exists()


def test_rows_that_cannot_fit_in_memory_are_refused_before_reading_on(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_rows, "memory_limit", lambda: 8 << 20)
    prep(tmp_path, "pydocs", seq_len=1000)  # 3 MB of rows
    with pytest.raises(UserError) as err:
        prep(tmp_path, "pydocs", seq_len=8000)  # 25 MB
    message = str(err.value)
    assert "lines of corpus.seq_len 8,000 symbols would take 0.01 GiB" in message
    assert message.endswith("lower corpus.seq_len or corpus.max_lines")
    assert [p.name for p in (tmp_path / "data").iterdir()] == [
        corpus.corpus_key(CorpusConfig(seq_len=1000))
    ]
