"""The cache: its key, reusing a matching folder, and building one into place.

A folder is built under a temporary name and renamed to its key, so a folder under its key is
always complete. Several processes may prepare the same corpus at once (job arrays on a shared
data folder): the one that renames last finds the other's folder there and uses it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from textgan.corpus.build import build, file_signature
from textgan.corpus.config import CorpusConfig
from textgan.corpus.registry import resolve
from textgan.corpus.source import Source
from textgan.corpus.store import CACHE_FORMAT, PreparedCorpus, load_prepared
from textgan.errors import UserError
from textgan.rundir import process_alive

_TAKEN = (errno.ENOTEMPTY, errno.EEXIST)  # rename onto a folder that holds files


def prepare(cfg: CorpusConfig, force: bool = False, progress: bool = True) -> PreparedCorpus:
    """Prepared arrays for ``cfg``: from the cache when it matches, else built and cached."""
    cfg.validate()
    source = resolve(cfg)
    key = corpus_key(cfg, source)
    data_dir = Path(cfg.data_dir).expanduser()
    target = data_dir / key
    if not force:
        cached = _reusable(target, source)
        if cached is not None:
            return cached
    source.check_available()
    made_dir = not data_dir.exists()
    staging = _staging(data_dir, key)
    try:
        build(cfg, source, key, staging, progress)
        found = _move_into_place(staging, target, None if force else source)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
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


def _staging(data_dir: Path, key: str) -> Path:
    """A fresh temporary folder for building the cache of ``key``."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(data_dir, key)
        staging = data_dir / f".tmp-{key}-{os.getpid()}"
        staging.mkdir()
    except OSError as err:
        raise UserError(
            f"cannot write to --data-dir {data_dir}: {err.strerror or err}; "
            "choose a writable folder with --data-dir"
        ) from None
    return staging


def _remove_stale_staging(data_dir: Path, key: str) -> None:
    """Drop temporary folders left by killed runs (their process no longer exists)."""
    for old in [*data_dir.glob(f".tmp-{key}-*"), *data_dir.glob(f".old-{key}-*")]:
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


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
