"""Run directories: their layout, the one-writer lock and finding the newest run.

A run lives in ``runs/<name>/``::

    config.json     the resolved run config (corpus, model, lipschitz, train) + corpus fingerprint
    vocab.json      the vocabulary the ids refer to
    metrics.jsonl   one JSON object per line (training rows and evaluation rows)
    diagnostics.jsonl  critic diagnostics (textgan/training/diagnostics.py)
    samples/        iter_<k>.txt: the argmax samples of each evaluation
    checkpoints/    iter_<k>/: one directory per checkpoint (textgan/files/checkpoint.py)
    plots/          figures drawn from the logs
    .lock           held (flock) by the one process writing the run

Every file the package writes goes through ``textgan.files.atomic_open`` and every JSON file it
reads through ``read_json`` or ``read_rows`` there; this module knows where a run's files are.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from textgan.errors import UserError
from textgan.files import TMP_PREFIX, disk_error, process_alive

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
DIAGNOSTICS = "diagnostics.jsonl"
MANIFEST = "manifest.json"
LOCK = ".lock"
CKPT_RE = re.compile(r"^iter_(\d+)$")
# Links to this process's own open files: their target is whatever the shell set up.


# -- run directory -----------------------------------------------------------------------------


class RunLock:
    """The one-writer lock of a run directory: an ``flock`` on ``RUN/.lock``, which the kernel
    drops when its process dies, so a killed run never leaves its folder locked."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run: Path, *, new: bool = False) -> RunLock:
        """The lock of ``run``; with ``new`` its lock file must not exist yet: creating it is
        how a new run claims its folder (FileExistsError when another process did first)."""
        path = run / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_EXCL if new else 0), 0o644)
        except (FileExistsError, NotADirectoryError):
            raise  # the folder is taken: RunDir.claim says so
        except OSError as err:
            raise disk_error(path, err, "lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"run {run} is being written by another process (pid {holder}); "
                "wait for it to finish or stop it first"
            ) from None
        except OSError as err:  # a file system without locks
            os.close(fd)
            raise disk_error(path, err, "lock") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)  # for the message of the next one
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def taking_turns(path: Path) -> Iterator[None]:
    """Processes that enter with the same ``path`` run the block one at a time (an ``flock``
    on it, waited for without a limit; the kernel drops it when its holder dies). Where the lock
    file cannot be made (a read-only folder), the block runs without it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        with suppress(OSError):  # a file system without locks: no turns to take
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (see the module docstring)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def vocab(self) -> Path:
        return self.path / VOCAB

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        """Make a new run directory (see ``claim``) for a writer that locks it later."""
        run = cls(Path(path))
        run.claim().release()
        return run

    def claim(self) -> RunLock:
        """Make this new run directory and become its one writer; refuse a folder that already
        holds anything.

        The folder is claimed before it is checked: ``mkdir``, or for an empty folder already
        there the creation of its lock file, succeeds in one process only, so two runs started
        with the same name never both write into it.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with suppress(FileExistsError):
                self.path.mkdir()
            lock = RunLock.acquire(self.path, new=True)
        except (FileExistsError, NotADirectoryError):
            raise self._taken() from None
        except OSError as err:
            raise disk_error(self.path, err, "create run directory") from None
        try:
            if any(entry.name != LOCK for entry in self.path.iterdir()):
                raise self._taken()
            for sub in (self.samples, self.checkpoints, self.plots):
                sub.mkdir()
        except BaseException as err:
            (self.path / LOCK).unlink(missing_ok=True)  # ours: the folder is left as it was
            lock.release()
            if isinstance(err, OSError):
                raise disk_error(self.path, err, "create run directory") from None
            raise
        return lock

    def _taken(self) -> UserError:
        return UserError(
            f"run directory {self.path} already exists; continue it with "
            f"'textgan train --resume {self.path}' or choose another --name/--run-dir"
        )

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory, cleared of dead writers' temporaries; UserError when
        ``path`` is not one."""
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"run directory {path} does not exist")
        if not (path / CONFIG).is_file() or not (path / "checkpoints").is_dir():
            raise UserError(
                f"{path} is not a textgan run directory (no {CONFIG} and checkpoints/); "
                "pass the folder 'textgan train' created, e.g. runs/<name>"
            )
        run = cls(path)
        for sub in (run.samples, run.plots):
            # A read-only run can still be sampled; a writer reports the error when it writes.
            with suppress(OSError):
                sub.mkdir(exist_ok=True)
        run._remove_litter()
        return run

    def lock(self) -> RunLock:
        """Become the one process writing this run, until ``release()`` (or the ``with`` block,
        or the process) ends; UserError naming the holder's pid while another one is."""
        return RunLock.acquire(self.path)

    def _remove_litter(self) -> None:
        """Temporary files and checkpoint folders left by a writer killed mid-write; one whose
        writer is alive is kept (``textgan sample --run`` beside a training run opens it too)."""
        for folder in (self.path, self.samples, self.plots, self.checkpoints):
            for entry in folder.glob(f"{TMP_PREFIX}*"):
                pid = entry.suffix[1:]
                if pid.isdigit() and process_alive(int(pid)):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def checkpoint_dirs(self) -> list[Path]:
        """Checkpoint directories, oldest iteration first."""
        found = []
        for entry in self.checkpoints.iterdir() if self.checkpoints.is_dir() else ():
            match = CKPT_RE.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry))
        return [entry for _, entry in sorted(found)]

    def latest_checkpoint(self) -> Path:
        dirs = self.checkpoint_dirs()
        if not dirs:
            raise UserError(
                f"run {self.path} has no checkpoint in {self.checkpoints}; it stopped before its "
                "first one was written: start a new run"
            )
        return dirs[-1]


def find_latest_run(root: str | Path = "runs") -> Path:
    """The run under ``root`` whose newest checkpoint was written last."""
    root = Path(root)
    best: tuple[float, Path] | None = None
    for manifest in root.glob(f"*/checkpoints/iter_*/{MANIFEST}"):
        mtime = manifest.stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, manifest.parents[2])
    if best is None:
        raise UserError(
            f"no run with a checkpoint under {root}/; train one with 'textgan train' "
            "or name one with --run/--checkpoint"
        )
    return best[1]
