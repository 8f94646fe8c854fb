"""Files written whole or not at all, and read back with one-line errors: atomic writes (a
temporary ``.tmp-<name>.<pid>`` beside the target, renamed into place, so a killed process never
leaves a half-written file), JSON, JSON lines, and disk errors as a ``UserError`` naming the path.

Below them, in this package: the run folder's layout and lock (``rundir``) and the checkpoint
files in it (``checkpoint``), which training writes and generation, plots and sharing read.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from textgan.errors import UserError

TMP_PREFIX = ".tmp-"
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
