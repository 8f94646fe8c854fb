"""What a killed ``prepare`` leaves in the data folder goes at the next ``prepare``; what a live
one is writing stays, whichever corpus either prepares."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_corpus import prep

import textgan

ENV = {**os.environ, "PYTHONPATH": str(Path(textgan.__file__).parents[1])}

# ``textgan prepare --force`` that sends itself SIG once the vocabulary file is renamed into
# its temporary folder, between the renames of its build.
_WRITER = """
import os, signal, sys
from textgan.cli import main

real = os.replace

def replace(source, target):
    real(source, target)
    if os.path.basename(target) == "vocab.json":
        os.kill(os.getpid(), signal.{sig})

os.replace = replace
sys.argv = ["textgan", "prepare", "--corpus", "pydocs", "--data-dir", sys.argv[1], "--force",
            "--no-progress"]
main()
"""


def _writer(data: Path, sig: str) -> subprocess.Popen:
    script = _WRITER.format(sig=sig)
    command = [sys.executable, "-c", script, str(data)]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _names(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir())


def test_a_writer_killed_between_its_renames_leaves_nothing_after_the_next_prepare(tmp_path):
    """Battery: ``kill -9`` of ``prepare`` mid-build; the next one reuses the cache and used to
    leave the dead writer's ``.tmp-pydocs-…`` folder behind."""
    key = prep(tmp_path, "pydocs").key
    writer = _writer(tmp_path / "data", "SIGKILL")
    assert writer.wait(timeout=120) == -signal.SIGKILL
    assert f".tmp-{key}-{writer.pid}" in _names(tmp_path / "data")
    assert prep(tmp_path, "pydocs").reused
    assert _names(tmp_path / "data") == [key]


def test_a_dead_writer_of_another_corpus_is_cleaned_too(tmp_path):
    prep(tmp_path, "pydocs")
    other = tmp_path / "data" / ".tmp-news-0123456789-999999999"  # no lock: an older textgan
    other.mkdir()
    (other / "train.npy").write_bytes(b"half")
    key = prep(tmp_path, "pydocs").key
    assert _names(tmp_path / "data") == [key]


def _wait_stopped(pid: int) -> None:
    for _ in range(1200):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.1)
    pytest.fail("the writer never stopped")


def test_a_live_writers_folder_and_lock_are_kept_and_it_finishes(tmp_path):
    key = prep(tmp_path, "pydocs").key
    writer = _writer(tmp_path / "data", "SIGSTOP")
    try:
        _wait_stopped(writer.pid)
        live = sorted([key, f".tmp-{key}-{writer.pid}", f".tmp-{key}-{writer.pid}.lock"])
        assert _names(tmp_path / "data") == live
        assert prep(tmp_path, "pydocs").reused  # another prepare beside it
        assert _names(tmp_path / "data") == live
    finally:
        writer.send_signal(signal.SIGCONT)
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err.decode()[-2000:]
    assert _names(tmp_path / "data") == [key]
