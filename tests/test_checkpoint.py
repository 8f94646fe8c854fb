"""Run directories, atomic checkpoints, integrity checks and loading that never runs code."""

import json
import os
import pathlib
import pickle
import time

import numpy as np
import pytest
import torch

from textgan import checkpoint as ck
from textgan import rundir as rd
from textgan.errors import UserError
from textgan.vocab import Vocab


class _Payload:
    """Unpickling this object creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _run(tmp_path, name="run") -> rd.RunDir:
    run = rd.RunDir.create(tmp_path / name)
    rd.write_json(run.config, {"model": {"dim": 4}})
    Vocab((ord("a"), ord("b"))).save(run.vocab)
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


def test_atomic_open_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), rd.atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    rd.atomic_write_text(path, "new")
    assert path.read_text() == "new"


def test_run_dir_create_refuses_existing_and_open_refuses_non_runs(tmp_path):
    run = rd.RunDir.create(tmp_path / "r")
    assert all(p.is_dir() for p in (run.samples, run.checkpoints, run.plots))
    (run.path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already exists"):
        rd.RunDir.create(run.path)
    assert (run.path / "config.json").read_text() == "{}"
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a textgan run directory"):
        rd.RunDir.open(tmp_path / "plain")
    with pytest.raises(UserError, match="does not exist"):
        rd.RunDir.open(tmp_path / "nowhere")
    assert rd.RunDir.open(run.path).path == run.path


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


def test_metrics_rows_append_and_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rd.append_rows(path, [{"iter": k, "x": k * 0.5} for k in (1, 2, 3)])
    rd.append_rows(path, [{"iter": 4, "x": 2.0}])
    with open(path, "a") as fh:
        fh.write('{"iter": 5, "x"')  # a line cut short by a crash
    assert [r["iter"] for r in rd.read_rows(path)] == [1, 2, 3, 4]
    rd.truncate_rows(path, 2)
    assert [json.loads(line)["iter"] for line in path.read_text().splitlines()] == [1, 2]
