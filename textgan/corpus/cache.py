"""The cache: its key, reusing a matching folder, and building one into place.

A folder is built under a temporary name and renamed to its key, so a folder under its key is
always complete. Several processes may prepare the same corpus at once (job arrays on a shared
data folder): the one that renames last finds the other's folder there and uses it.

A writer holds an ``flock`` on ``.tmp-<key>-<pid>.lock`` beside its temporary folders from
before it makes them until they are gone; the kernel drops the lock when the writer dies, even
by ``kill -9``. Every ``prepare`` removes the folders whose lock it can take: a dead writer's,
never a live one's, on this machine or another sharing the folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from textgan.corpus.build import build, file_signature
from textgan.corpus.config import CorpusConfig
from textgan.corpus.registry import resolve
from textgan.corpus.source import Source
from textgan.corpus.store import CACHE_FORMAT, PreparedCorpus, load_prepared
from textgan.errors import UserError
from textgan.files import process_alive

_TAKEN = (errno.ENOTEMPTY, errno.EEXIST)  # rename onto a folder that holds files
# A writer's temporary folders (.tmp- while built, .old- a replaced cache) and its lock.
_LEFTOVER = re.compile(r"^\.(?:tmp|old)-(.+-\d+)(\.lock)?$")
_LOCK = ".tmp-{}.lock"


def prepare(cfg: CorpusConfig, force: bool = False, progress: bool = True) -> PreparedCorpus:
    """Prepared arrays for ``cfg``: from the cache when it matches, else built and cached."""
    cfg.validate()
    source = resolve(cfg)
    key = corpus_key(cfg, source)
    data_dir = Path(cfg.data_dir).expanduser()
    target = data_dir / key
    remove_leftovers(data_dir)  # also when the cache is reused: a dead writer's go now
    if not force:
        cached = _reusable(target, source)
        if cached is not None:
            return cached
    source.check_available()
    made_dir = not data_dir.exists()
    try:
        with _writing(data_dir, key) as staging:
            build(cfg, source, key, staging, progress)
            found = _move_into_place(staging, target, None if force else source)
    except BaseException:
        if made_dir:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only when empty
        raise
    return found or load_prepared(target)


def corpus_key(cfg: CorpusConfig, source: Source | None = None) -> str:
    """Cache folder name: the source's short name and a digest of source and settings."""
    source = source or resolve(cfg)
    blob = json.dumps(
        {"format": CACHE_FORMAT, "source": source.identity, "settings": cfg.settings()},
        sort_keys=True,
    )
    return f"{source.slug}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _reusable(target: Path, source: Source) -> PreparedCorpus | None:
    """The intact cache at ``target`` if it was built from the current source files."""
    if not target.is_dir():
        return None
    try:
        cached = load_prepared(target)
    except UserError:
        return None
    try:
        same_files = cached.meta["source"]["signature"] == file_signature(source.files)
    except OSError:
        same_files = False
    if not same_files or cached.key != target.name:  # a meta.json copied from elsewhere
        return None
    cached.reused = True
    return cached


@contextlib.contextmanager
def _writing(data_dir: Path, key: str) -> Iterator[Path]:
    """A fresh temporary folder for building the cache of ``key``, under this writer's lock;
    the folder (unless renamed into place) and the lock go when the block ends."""
    writer = f"{key}-{os.getpid()}"
    lock, staging = data_dir / _LOCK.format(writer), data_dir / f".tmp-{writer}"
    fd = -1
    try:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = _hold_lock(lock)
            shutil.rmtree(staging, ignore_errors=True)  # a dead writer's of the same pid
            staging.mkdir()
        except OSError as err:
            raise UserError(
                f"cannot write to --data-dir {data_dir}: {err.strerror or err}; "
                "choose a writable folder with --data-dir"
            ) from None
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if fd >= 0:
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(fd)


def _hold_lock(path: Path) -> int:
    """An open descriptor holding ``path``'s lock (on a file system without locks, just open):
    retried when a cleaner removed the file between its opening and the lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EBADF):
                os.close(fd)
                raise
            return fd  # no locks here: cleaners cannot take it either, so they keep it
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


def remove_leftovers(data_dir: Path) -> None:
    """Remove the temporary folders (and lock) of every dead writer in ``data_dir``: those
    whose lock can be taken, and, made by versions without locks, those of a pid not alive."""
    try:
        names = [entry.name for entry in data_dir.iterdir()]
    except OSError:  # no folder yet, or one that cannot be listed: nothing to clean
        return
    writers = {m.group(1) for name in names if (m := _LEFTOVER.match(name))}
    for writer in writers:
        _remove_if_dead(data_dir, writer)


def _remove_if_dead(data_dir: Path, writer: str) -> None:
    lock = data_dir / _LOCK.format(writer)
    folders = [data_dir / f".tmp-{writer}", data_dir / f".old-{writer}"]
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # no lock: made before writers took one, or finished meanwhile
        if not process_alive(int(writer.rsplit("-", 1)[1])):
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        return
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live writer, or a file system without locks: keep
        os.close(fd)
        return
    try:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            lock.unlink()
    finally:
        os.close(fd)


def _move_into_place(
    staging: Path, target: Path, source: Source | None, attempts: int = 3
) -> PreparedCorpus | None:
    """Rename ``staging`` to ``target``. A folder already there is used instead when it is an
    intact cache of ``source`` (another process built it meanwhile; None: rebuild anyway),
    and moved aside otherwise. Returns the folder used instead, None when ours went in."""
    for _ in range(attempts):
        try:
            staging.rename(target)
            return None
        except OSError as err:
            if err.errno not in _TAKEN:
                _cannot_move(target, err)
        found = _reusable(target, source) if source is not None else None
        if found is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return found
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        try:
            target.rename(old)
        except FileNotFoundError:  # its other writer is moving it aside too
            continue
        except OSError as err:
            _cannot_move(target, err)
        shutil.rmtree(old, ignore_errors=True)
    raise UserError(
        f"{target} kept being replaced by other processes while this one wrote it; run again"
    )


def _cannot_move(target: Path, err: OSError) -> None:
    raise UserError(
        f"cannot put the corpus cache in place at {target}: {err.strerror or err}; "
        "choose a writable --data-dir"
    ) from None
