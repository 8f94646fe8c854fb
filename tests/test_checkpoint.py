"""Atomic checkpoints, integrity checks and loading that never runs code."""

import errno
import json
import os
import pathlib
import pickle
import time

import numpy as np
import pytest
import torch

from textgan import files
from textgan.errors import UserError
from textgan.files import atomic_write_text
from textgan.files import checkpoint as ck
from textgan.files import rundir as rd
from textgan.vocab import Vocab


class _Payload:
    """Unpickling this object creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _run(tmp_path, name="run") -> rd.RunDir:
    run = rd.RunDir.create(tmp_path / name)
    files.write_json(run.config, {"model": {"dim": 4}})
    atomic_write_text(run.vocab, Vocab((ord("a"), ord("b"))).dumps())
    return run


def _save(run, iteration, keep=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weights = {
        "generator": {"w": torch.randn(3, 4, generator=gen), "b": torch.zeros(4)},
        "critic": {"w": torch.randn(2, generator=gen)},
    }
    rng = np.random.default_rng(seed)
    rng.integers(0, 10, size=5)
    state = {
        "format": ck.FORMAT_VERSION,
        "iteration": iteration,
        "elapsed": 1.5,
        "rng": {"torch": torch.get_rng_state(), "data": rng.bit_generator.state},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "betas": (0.5, 0.9)},
    }
    return ck.save_checkpoint(run, iteration, weights, state, keep), weights, state, rng


def test_roundtrip_restores_every_tensor_and_rng_state(tmp_path):
    run = _run(tmp_path)
    path, weights, state, rng = _save(run, 7)
    assert path.name == "iter_0000007"
    loaded = ck.load_checkpoint(run.path)
    assert loaded.iteration == 7 and loaded.path == path
    for name in ("generator", "critic"):
        got = getattr(loaded, name)
        assert set(got) == set(weights[name])
        assert all(torch.equal(got[k], weights[name][k]) for k in got)
    assert torch.equal(loaded.state["rng"]["torch"], state["rng"]["torch"])
    assert loaded.state["optimizer"]["betas"] == (0.5, 0.9)
    restored = np.random.default_rng(123)
    restored.bit_generator.state = loaded.state["rng"]["data"]
    assert np.array_equal(restored.integers(0, 1000, 20), rng.integers(0, 1000, 20))
    assert loaded.config == {"model": {"dim": 4}}
    assert loaded.vocab == Vocab((ord("a"), ord("b")))
    sampling_only = ck.load_checkpoint(path, training_state=False)
    assert sampling_only.critic is None and sampling_only.state is None
    assert ck.load_checkpoint(path / "generator.safetensors").iteration == 7


def test_keep_prunes_older_checkpoints_and_leaves_no_temporaries(tmp_path):
    run = _run(tmp_path)
    for k in (1, 2, 3, 4):
        _save(run, k, keep=2)
    assert [p.name for p in run.checkpoint_dirs()] == ["iter_0000003", "iter_0000004"]
    assert not [p for p in run.checkpoints.iterdir() if p.name.startswith(".")]
    _save(run, 4, keep=2, seed=1)  # saving the same iteration again replaces it whole
    assert [p.name for p in run.checkpoint_dirs()] == ["iter_0000003", "iter_0000004"]
    ck.verify(run.latest_checkpoint())


def test_partial_checkpoint_directories_are_ignored_and_cleaned(tmp_path):
    run = _run(tmp_path)
    _save(run, 5)
    partial = run.checkpoints / ".tmp-iter_0000006.999999999"  # a pid no process has
    partial.mkdir()
    (partial / "generator.safetensors").write_bytes(b"half")
    writing = run.checkpoints / f".tmp-iter_0000006.{os.getpid()}"  # a live writer's
    writing.mkdir()
    assert run.latest_checkpoint().name == "iter_0000005"
    rd.RunDir.open(run.path)
    assert not partial.exists()
    assert writing.is_dir()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "truncated"),
        ("flip", "corrupted"),
        ("manifest", "incomplete"),
        ("delete", "missing"),
    ],
)
def test_damaged_checkpoints_are_refused(tmp_path, damage, message):
    run = _run(tmp_path)
    path, *_ = _save(run, 3)
    target = path / "generator.safetensors"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "manifest":
        (path / rd.MANIFEST).unlink()
    else:
        target.unlink()
    with pytest.raises(UserError, match=message):
        ck.load_checkpoint(run.path)


def test_no_checkpoint_is_a_user_error(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(UserError, match="no checkpoint"):
        ck.load_checkpoint(run.path)


def test_crafted_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    # The payload is real: plain unpickling runs it.
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()

    run = _run(tmp_path)
    path, *_ = _save(run, 2)
    torch.save({"format": ck.FORMAT_VERSION, "payload": _Payload(marker)}, path / ck.STATE)
    ck.write_manifest(path, 2)  # a well-formed manifest, so only the unpickler stands guard
    with pytest.raises(UserError, match="refusing to load"):
        ck.load_checkpoint(path)
    assert not marker.exists()

    bare = pickle.dumps(_Payload(marker), protocol=2)  # a bare pickle, no zip archive
    (path / ck.STATE).write_bytes(bare)
    ck.write_manifest(path, 2)
    with pytest.raises(UserError, match="refusing to load"):
        ck.load_checkpoint(path)
    assert not marker.exists()


def test_find_latest_run_uses_the_newest_checkpoint(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(UserError, match="no run with a checkpoint"):
        rd.find_latest_run(root)
    older, newer = _run(root, "a"), _run(root, "b")
    _save(newer, 1)
    _save(older, 1)
    now = time.time()
    os.utime(older.checkpoints / "iter_0000001" / rd.MANIFEST, (now - 100, now - 100))
    assert rd.find_latest_run(root) == newer.path
    _save(older, 2)
    assert rd.find_latest_run(root) == older.path


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = _run(tmp_path)
    _, weights, *_ = _save(run, 1)
    real_replace = os.replace

    def full(src, dst):  # the finished checkpoint cannot be renamed into place
        if ".tmp-iter_" in str(src):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    for iteration in (2, 1):  # a new checkpoint, and the same iteration saved again
        with pytest.raises(
            UserError, match=rf"^cannot save checkpoint .*iter_000000{iteration}: No space left"
        ):
            _save(run, iteration, seed=5)
        assert [p.name for p in run.checkpoints.iterdir()] == ["iter_0000001"]
    monkeypatch.undo()
    loaded = ck.load_checkpoint(run.path)
    assert loaded.iteration == 1
    assert torch.equal(loaded.critic["w"], weights["critic"]["w"])


def _rewrite_manifest(path, change):
    manifest = json.loads((path / rd.MANIFEST).read_text())
    change(manifest)
    (path / rd.MANIFEST).write_text(json.dumps(manifest))


def _entry(name, **fields):
    return lambda m: m["files"][name].update(fields)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.update(files=[]), "no table of files"),
        (lambda m: m.update(format="1"), "format '1', not 1"),
        (lambda m: m.update(format=True), "format True, not 1"),
        (lambda m: m.update(iteration=-3), "iteration -3"),
        (lambda m: m.update(iteration="7"), "iteration '7'"),
        (_entry("generator.safetensors", bytes="x"), "entry of generator.safetensors"),
        (_entry("generator.safetensors", bytes=-5), "entry of generator.safetensors"),
        (_entry("critic.safetensors", sha256=123), "entry of critic.safetensors"),
        (lambda m: m["files"].update({"state.pt": [1, 2]}), "entry of state.pt"),
        (lambda m: m["files"].update({"../config.json": {}}), "file name '../config.json'"),
    ],
)
def test_crafted_manifests_are_refused_in_one_line(tmp_path, change, problem):
    run = _run(tmp_path)
    path, *_ = _save(run, 3)
    _rewrite_manifest(path, change)
    with pytest.raises(UserError, match="is not a textgan manifest") as err:
        ck.load_checkpoint(path)
    assert f"({problem}" in str(err.value) and "\n" not in str(err.value)


def test_absurd_sizes_and_non_object_files_are_refused(tmp_path):
    run = _run(tmp_path)
    path, *_ = _save(run, 3)
    _rewrite_manifest(path, _entry("generator.safetensors", bytes=10**30))
    with pytest.raises(UserError, match=r"truncated or altered \(\d+ bytes, 10{30} expected\)"):
        ck.load_checkpoint(path)
    (path / rd.MANIFEST).write_text("[]")
    with pytest.raises(UserError, match=r"manifest .* must hold an object, not an array"):
        ck.load_checkpoint(path)
    path, *_ = _save(run, 4)
    (path / rd.CONFIG).write_text('["model"]')
    ck.write_manifest(path, 4)  # recomputed: only the shape check stands guard
    with pytest.raises(UserError, match=r"checkpoint config .* must hold an object, not an array"):
        ck.load_checkpoint(path)


def _generator_checkpoint(tmp_path):
    """A checkpoint of a real small generator, its config and vocabulary consistent."""
    from dataclasses import asdict

    from textgan.config import ModelConfig
    from textgan.nn.networks import Generator

    model = ModelConfig(vocab_size=4, seq_len=8, dim=4, blocks=1)
    run = rd.RunDir.create(tmp_path / "run")
    files.write_json(run.config, {"model": asdict(model)})
    atomic_write_text(run.vocab, Vocab((ord("a"), ord("b"))).dumps())
    weights = {"generator": Generator(model).state_dict(), "critic": {}}
    state = {"format": ck.FORMAT_VERSION, "iteration": 5}
    return ck.save_checkpoint(run, 5, weights, state)


def _sample_cli(path):
    from click.testing import CliRunner

    from textgan.cli import main

    return CliRunner().invoke(main, ["sample", "--checkpoint", str(path), "-n", "2"])


def test_a_checkpoint_config_claiming_an_absurd_dim_is_one_line(tmp_path):
    """Battery: config.json says dim 10**8, the manifest recomputed to match: refused before the
    generator is built (it used to fail in the allocator with a traceback)."""
    path = _generator_checkpoint(tmp_path)
    assert _sample_cli(path).exit_code == 0
    config = json.loads((path / rd.CONFIG).read_text())
    config["model"]["dim"] = 10**8
    (path / rd.CONFIG).write_text(json.dumps(config))
    ck.write_manifest(path, 5)
    result = _sample_cli(path)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "weights hold 4,316;" in result.output  # the generator's real size
    assert "describes a generator of 100,000,103,800,000,004 parameters" in result.output


def test_a_checkpoint_vocabulary_of_surrogates_is_one_line(tmp_path):
    """Battery: vocab.json holds a UTF-16 surrogate (manifest consistent): a one-line refusal,
    where decoding samples used to raise UnicodeDecodeError."""
    path = _generator_checkpoint(tmp_path)
    vocab = {"format": 1, "kind": "chars", "pad": 0, "unk": 1, "symbols": [0xD800, 98]}
    (path / rd.VOCAB).write_text(json.dumps(vocab))
    ck.write_manifest(path, 5)
    with pytest.raises(UserError, match="not UTF-16 surrogates"):
        ck.load_checkpoint(path)
    result = _sample_cli(path)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "checkpoint vocabulary" in result.output and "surrogates" in result.output
