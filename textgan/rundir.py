"""Run directories and the files in them: atomic writes, JSON and JSONL, who is alive.

A run lives in ``runs/<name>/``::

    config.json     the resolved run config (corpus, model, lipschitz, train) + corpus fingerprint
    vocab.json      the vocabulary the ids refer to
    metrics.jsonl   one JSON object per line (training rows and evaluation rows)
    diagnostics.jsonl  critic diagnostics (textgan/diagnostics.py)
    samples/        iter_<k>.txt: the argmax samples of each evaluation
    checkpoints/    iter_<k>/: one directory per checkpoint (textgan/checkpoint.py)
    plots/          figures drawn from the logs
    .lock           held (flock) by the one process writing the run

Every file the package writes goes through ``atomic_open`` (a temporary ``.tmp-<name>.<pid>``
beside the target, renamed into place), so a killed process never leaves a half-written file,
and every JSON file it reads goes through ``read_json`` or ``read_rows``. Disk errors become a
one-line ``UserError`` naming the path.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from textgan.errors import UserError

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
DIAGNOSTICS = "diagnostics.jsonl"
MANIFEST = "manifest.json"
LOCK = ".lock"
CKPT_RE = re.compile(r"^iter_(\d+)$")
TMP_PREFIX = ".tmp-"
# Links to this process's own open files: their target is whatever the shell set up.
_FD_LINKS = ("/proc/", "/dev/fd/")


def probe_write(folder: Path) -> None:
    """Create and remove an empty file in ``folder``: OSError where it takes no writes."""
    probe = folder / f"{TMP_PREFIX}probe.{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists: a temporary file or folder named after a live
    writer is still being written and must not be cleaned up."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def disk_error(path: str | Path, err: OSError, action: str = "write") -> UserError:
    """A one-line error for an OSError on ``path`` (disk full, read-only, no permission...)."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOENT and action in ("write", "create"):
        reason = f"folder {Path(path).parent} does not exist"
    return UserError(f"cannot {action} {path}: {reason}")


# -- atomic files ------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _through_fd_link(path: Path) -> bool:
    """Whether ``path`` is or links to one of this process's open files (``/dev/stdout``)."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if current.startswith(_FD_LINKS):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return False


def _write_target(path: Path) -> tuple[Path, os.stat_result | None]:
    """Where writing ``path`` lands: the file a symlink names, and its status (None: new)."""
    try:
        status = os.stat(path)  # follows links: ELOOP and EACCES surface here
    except FileNotFoundError:
        status = None
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise UserError(f"cannot write {path}: it is a folder; name a file")
    return Path(os.path.realpath(path)), status


@contextmanager
def _disk_errors(path: Path, *files: Path) -> Iterator[None]:
    """OSErrors on ``files`` (or on an unnamed file: a write, a flush) become one line naming
    ``path``; the caller's own I/O on other files keeps its error."""
    try:
        yield
    except OSError as err:
        if err.filename not in (None, *map(str, files)):
            raise
        raise disk_error(path, err) from None


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open ``path`` for writing (``mode`` "w" or "wb"); a killed writer never leaves it
    half-written.

    A regular file (or a new one) is written under a temporary name beside it, flushed to disk
    and renamed over it; a symlink's regular target is replaced the same way, the link kept.
    Devices, FIFOs and ``/dev/stdout``-style links are written straight into: renaming a file
    over ``/dev/null`` would replace the system's, and a pipe has no file to replace. OSErrors
    become a one-line ``UserError``; the temporary is removed.
    """
    path = Path(path)
    with _disk_errors(path, path):
        target, status = _write_target(path)
    if (status is not None and not stat.S_ISREG(status.st_mode)) or _through_fd_link(path):
        with _disk_errors(path, path), open(path, mode.replace("w", "a"), **kwargs) as fh:
            yield fh  # appended: what the shell already wrote there stays
        return
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}.{os.getpid()}")
    try:
        with _disk_errors(path, tmp, target):
            with open(tmp, mode, **kwargs) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            if status is not None:  # a replaced file keeps its permissions
                os.chmod(tmp, stat.S_IMODE(status.st_mode))
            os.replace(tmp, target)
    finally:
        # A read-only file system refuses even the unlink of a file never created (EROFS,
        # not ENOENT); that must not replace the one-line error of the write itself.
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str, expect: type = dict) -> Any:
    """The JSON value of a file the package did not just write (a config, a manifest...),
    checked to be an ``expect``; a one-line UserError naming ``what`` and the path otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {path} is missing") from None
    except OSError as err:
        raise disk_error(path, err, "read") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise UserError(f"{what} {path} is unreadable ({reason}); restore or delete it") from None
    if not isinstance(data, expect) or (expect is int and isinstance(data, bool)):
        raise UserError(
            f"{what} {path} must hold {_json_kind(expect)}, not {_json_kind(type(data))}; "
            "restore or delete it"
        )
    return data


def _json_kind(kind: type) -> str:
    """How JSON calls the values of a Python type."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    return names.get(kind, "null" if kind is type(None) else "a number")


# -- JSON lines (metrics, diagnostics) ---------------------------------------------------------


def _json_lines(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(row)) + "\n" for row in rows)


def append_rows(path: Path, rows: Iterable[Mapping[str, Any]], *, durable: bool = False) -> None:
    """Append JSON lines and flush, so another process (a plot, ``tail -f``) sees them at once;
    ``durable`` also waits until they are on disk."""
    text = _json_lines(rows)
    if not text:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
    except OSError as err:
        raise disk_error(path, err) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise disk_error(path, err, "read") from None


def _parse_rows(data: bytes) -> tuple[list[dict], int]:
    """The JSON objects of a log, one per line, and how many non-blank lines were not one (cut
    short by a crash, a stray value). A damaged byte becomes U+FFFD: it costs one row at most."""
    rows, bad = [], 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def scan_rows(path: Path) -> tuple[list[dict], int]:
    """The rows of a JSON-lines log and the number of unreadable lines skipped (none: [], 0)."""
    return _parse_rows(_read_bytes(path)) if path.is_file() else ([], 0)


def read_rows(path: Path) -> list[dict]:
    """The rows of a JSON-lines log; lines that are not JSON objects are skipped."""
    return scan_rows(path)[0]


def _iteration(row: Mapping[str, Any]) -> float | None:
    value = row.get("iter", 0)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def truncate_rows(path: Path, last_iter: int) -> None:
    """Drop rows logged after ``last_iter`` (by a run killed past its last checkpoint), so that a
    resumed run does not log the same iterations twice; unreadable lines go too."""
    if not path.is_file():
        return
    data = _read_bytes(path)
    rows, _ = _parse_rows(data)
    kept = [row for row in rows if (k := _iteration(row)) is not None and k <= last_iter]
    text = _json_lines(kept)
    if text.encode("utf-8") != data:
        atomic_write_text(path, text)


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
