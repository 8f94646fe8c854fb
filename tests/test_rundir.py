"""Atomic writes that respect what a path names, disk errors as one line, JSON that is checked,
one writer per run directory, and no temporaries left behind."""

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from textgan import files
from textgan.errors import UserError
from textgan.files import rundir as rd

DEAD_PID = 999_999_999  # no process has it


def _char_device(path: Path, minor: int) -> Path:
    """A copy of /dev/null (minor 3) or /dev/full (minor 7) in a test folder, so no test can
    ever replace the system's own."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot make a device node here ({err.strerror})")
    return path


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- atomic writes -----------------------------------------------------------------------------


def test_atomic_open_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert _entries(tmp_path) == ["out.txt"]
    path.chmod(0o640)
    files.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # a replaced file keeps its permissions


def test_symlink_to_a_regular_file_replaces_the_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "samples.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    files.atomic_write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert _entries(tmp_path / "real") == ["samples.txt"] and _entries(tmp_path) == [
        "link.txt",
        "real",
    ]


def test_a_device_node_is_written_into_not_replaced(tmp_path):
    null = _char_device(tmp_path / "null", 3)
    files.atomic_write_text(null, "samples\n")
    assert stat.S_ISCHR(null.lstat().st_mode)
    assert _entries(tmp_path) == ["null"]


def test_a_fifo_is_written_into(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    files.atomic_write_text(fifo, "a\nb\n")
    reader.join(timeout=30)
    assert got == [b"a\nb\n"] and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_link_to_an_open_descriptor_is_appended_to(tmp_path):
    """``--out /dev/stdout``: /dev/stdout → /proc/self/fd/1 → the shell's file or pipe."""
    log = tmp_path / "log.txt"
    log.write_text("head\n")
    read_end, write_end = os.pipe()
    with open(log, "a") as shell_file:
        for fd, name in ((shell_file.fileno(), "to_file"), (write_end, "to_pipe")):
            (tmp_path / name).symlink_to(f"/proc/self/fd/{fd}")
            files.atomic_write_text(tmp_path / name, "tail\n")
            assert (tmp_path / name).is_symlink()
    os.close(write_end)
    assert log.read_text() == "head\ntail\n"  # what the shell wrote there stays
    assert os.read(read_end, 100) == b"tail\n"
    os.close(read_end)


def test_unwritable_paths_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"cannot write .*missing/x\.txt: folder .*missing does"):
        files.atomic_write_text(tmp_path / "missing" / "x.txt", "x")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UserError, match=r"cannot write .*a: Too many levels of symbolic links"):
        files.atomic_write_text(tmp_path / "a", "x")
    assert (tmp_path / "a").is_symlink()
    with pytest.raises(UserError, match="it is a folder"):
        files.atomic_write_text(tmp_path, "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_a_one_line_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match=r"cannot write .*x.txt: Permission denied"):
            files.atomic_write_text(locked / "x.txt", "x")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("step", ["write", "rename"])
def test_a_full_disk_is_a_one_line_error_and_leaves_the_old_file(tmp_path, monkeypatch, step):
    path = tmp_path / "config.json"
    path.write_text("old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync" if step == "write" else "replace", full)
    with pytest.raises(UserError, match=r"^cannot write .*config\.json: No space left on device$"):
        files.write_json(path, {"a": 1})
    assert path.read_text() == "old" and _entries(tmp_path) == ["config.json"]


def test_full_device_and_log_are_one_line_errors(tmp_path):
    full = _char_device(tmp_path / "full", 7)
    with pytest.raises(UserError, match=r"cannot write .*full: No space left on device"):
        files.atomic_write_text(full, "x" * 10_000)
    with pytest.raises(UserError, match=r"cannot write .*full: No space left on device"):
        files.append_rows(full, [{"iter": 1}])
    assert stat.S_ISCHR(full.lstat().st_mode)


# -- JSON and JSON lines -----------------------------------------------------------------------


def test_read_json_checks_the_top_level_shape(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match=r"^run config .* must hold an object, not an array; "):
        files.read_json(path, "run config")
    assert files.read_json(path, "list", expect=list) == [1, 2]
    path.write_bytes(b'{"corpus": "\xff"}')
    with pytest.raises(UserError, match=r"run config .* is unreadable"):
        files.read_json(path, "run config")
    path.write_text("[" * 100_000)
    with pytest.raises(UserError, match="is unreadable"):
        files.read_json(path, "run config")
    with pytest.raises(UserError, match=r"run config .*nothing.json is missing"):
        files.read_json(tmp_path / "nothing.json", "run config")


def test_metrics_rows_append_and_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    files.append_rows(path, [{"iter": k, "x": k * 0.5} for k in (1, 2, 3)])
    files.append_rows(path, [{"iter": 4, "x": 2.0}], durable=True)
    with open(path, "a") as fh:
        fh.write('{"iter": 5, "x"')  # a line cut short by a crash
    assert [r["iter"] for r in files.read_rows(path)] == [1, 2, 3, 4]
    files.truncate_rows(path, 2)
    assert path.read_text() == '{"iter": 1, "x": 0.5}\n{"iter": 2, "x": 1.0}\n'


DAMAGED = (
    b'{"iter": 1}\n'
    b"[1, 2]\n"  # valid JSON, not a row
    b'{"iter": 2, "s": "\xff"}\n'  # a bad byte inside a string: the row survives
    b'\xff{"iter": 3}\n'  # a bad byte outside one: that row is lost, only that one
    b"\n"
    b'{"iter": "x"}\n'
    b"null\n"
    b'{"iter": 4}\n'
)


def test_rows_that_are_not_objects_or_hold_a_bad_byte_cost_one_row_each(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(DAMAGED)
    rows, skipped = files.scan_rows(path)
    assert rows == [{"iter": 1}, {"iter": 2, "s": "\ufffd"}, {"iter": "x"}, {"iter": 4}]
    assert skipped == 3
    assert files.read_rows(path) == rows
    assert files.scan_rows(tmp_path / "none.jsonl") == ([], 0)


def test_truncate_drops_unreadable_rows_so_a_resume_can_go_on(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(DAMAGED)
    files.truncate_rows(path, 3)
    assert path.read_text(encoding="utf-8") == '{"iter": 1}\n{"iter": 2, "s": "\\ufffd"}\n'
    before = path.stat().st_mtime_ns
    files.truncate_rows(path, 3)  # nothing left to drop: the file is not rewritten
    assert path.stat().st_mtime_ns == before


# -- run directories ---------------------------------------------------------------------------


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


def test_run_dir_create_on_a_read_only_disk_is_one_line(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(
        UserError, match=r"^cannot create run directory .*r: Read-only file system$"
    ):
        rd.RunDir.create(tmp_path / "r")


@pytest.mark.parametrize("there", [False, True], ids=["new-folder", "empty-folder-there"])
def test_two_runs_started_together_never_share_a_folder(tmp_path, monkeypatch, there):
    """The first start pauses at its first mkdir (the old code had checked the folder by then);
    the second starts and ends meanwhile. Exactly one of them gets the folder."""
    path = tmp_path / "runs" / "same"
    if there:
        path.mkdir(parents=True)
    second = threading.current_thread()  # this one; the first start runs in a thread
    paused, go_on = threading.Event(), threading.Event()
    mkdir = Path.mkdir

    def pausing_mkdir(self, *args, **kwargs):
        if threading.current_thread() is not second and not paused.is_set():
            paused.set()
            go_on.wait(10)
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", pausing_mkdir)
    outcomes: list[str] = []

    def start() -> None:
        try:
            rd.RunDir.create(path)
            outcomes.append("created")
        except UserError as err:
            outcomes.append(str(err))

    thread = threading.Thread(target=start)
    thread.start()
    assert paused.wait(10)
    start()  # the second start runs while the first is paused
    (path / rd.CONFIG).write_text("{}")  # and begins writing its run
    go_on.set()
    thread.join(10)
    assert len(outcomes) == 2 and outcomes.count("created") == 1, outcomes
    (refusal,) = [outcome for outcome in outcomes if outcome != "created"]
    assert refusal.startswith(f"run directory {path} already exists; continue it with")
    assert _entries(path) == [rd.LOCK, "checkpoints", "config.json", "plots", "samples"]


def test_claim_holds_the_folder_and_a_refusal_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "run"
    with rd.RunDir(path).claim() as lock:
        assert lock.path == path / rd.LOCK
        assert int(lock.path.read_text()) == os.getpid()
        with pytest.raises(UserError, match=rf"\(pid {os.getpid()}\)"):
            rd.RunDir(path).lock()  # the one writer from the claim on
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        rd.RunDir(foreign).claim()
    assert _entries(foreign) == ["notes.txt"]  # no lock file left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        rd.RunDir(tmp_path / "file").claim()


HOLD = """
import sys, time
from pathlib import Path
from textgan.files.rundir import RunDir
lock = RunDir(Path(sys.argv[1])).lock()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_until_the_holder_dies(tmp_path):
    run = rd.RunDir.create(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(
            UserError, match=rf"run .*run is being written by .* \(pid {holder.pid}\)"
        ):
            run.lock()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A killed holder holds nothing; a second lock in this process is a second writer.
    with run.lock() as lock, pytest.raises(UserError, match=rf"\(pid {os.getpid()}\)"):
        rd.RunDir(run.path).lock()
    assert lock.path == run.path / rd.LOCK
    run.lock().release()  # released by the with block, and again by release()


KILLED_WRITER = """
import sys, time
from textgan.files import atomic_open
with atomic_open(sys.argv[1]) as fh:
    fh.write("half")
    fh.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def test_open_removes_the_temporaries_of_killed_writers_and_keeps_live_ones(tmp_path):
    run = rd.RunDir.create(tmp_path / "run")
    (run.config).write_text("{}")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(run.plots / "training.png")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(signal.SIGKILL)  # kill -9 mid-write
    writer.wait()
    assert _entries(run.plots) == [f".tmp-training.png.{writer.pid}"]
    dead = [
        run.path / f".tmp-metrics.jsonl.{DEAD_PID}",
        run.samples / f".tmp-iter_5.txt.{DEAD_PID}",
        run.checkpoints / f".tmp-iter_0000006.{DEAD_PID}",
    ]
    for path in dead[:2]:
        path.write_text("half")
    dead[2].mkdir()
    (dead[2] / "generator.safetensors").write_bytes(b"half")
    live = run.samples / f".tmp-iter_6.txt.{os.getpid()}"
    live.write_text("being written")
    rd.RunDir.open(run.path)
    assert _entries(run.plots) == [] and _entries(run.checkpoints) == []
    assert _entries(run.samples) == [live.name]
    assert _entries(run.path) == [rd.LOCK, "checkpoints", "config.json", "plots", "samples"]
