"""Run directories and the files in them: atomic writes, JSON and JSONL, who is alive.

A run lives in ``runs/<name>/``::

    config.json     the resolved run config (corpus, model, lipschitz, train) + corpus fingerprint
    vocab.json      the vocabulary the ids refer to
    metrics.jsonl   one JSON object per line (training rows and evaluation rows)
    diagnostics.jsonl  critic diagnostics (textgan/diagnostics.py)
    samples/        iter_<k>.txt: the argmax samples of each evaluation
    checkpoints/    iter_<k>/: one directory per checkpoint (textgan/checkpoint.py)
    plots/          figures drawn from the logs

Every file the package writes goes through ``atomic_open`` (a temporary name beside the target,
renamed into place), so a killed process never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from textgan.errors import UserError

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
DIAGNOSTICS = "diagnostics.jsonl"
MANIFEST = "manifest.json"
CKPT_RE = re.compile(r"^iter_(\d+)$")
TMP_PREFIX = ".tmp-"


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


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success flush it to disk and rename it over
    ``path``, on an exception remove it (``path`` is never left half-written)."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{what} {path} is unreadable ({err}); restore or delete it") from None


# -- metrics log -------------------------------------------------------------------------------


def _json_lines(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(row)) + "\n" for row in rows)


def append_rows(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append JSON lines and flush, so another process (a plot, ``tail -f``) sees them at once."""
    text = _json_lines(rows)
    if text:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()


def _parse_rows(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_rows(path: Path) -> list[dict]:
    """Rows of a metrics log; a last line cut short by a crash is skipped."""
    return _parse_rows(path.read_text(encoding="utf-8")) if path.is_file() else []


def truncate_rows(path: Path, last_iter: int) -> None:
    """Drop rows logged after ``last_iter`` (by a run killed past its last checkpoint), so that a
    resumed run does not log the same iterations twice."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    rows = _parse_rows(text)
    kept = [row for row in rows if row.get("iter", 0) <= last_iter]
    if len(kept) != len(rows) or not text.endswith("\n"):
        atomic_write_text(path, _json_lines(kept))


# -- run directory -----------------------------------------------------------------------------


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
        """Make a new run directory; refuse one that already holds anything."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UserError(
                f"run directory {path} already exists; continue it with "
                f"'textgan train --resume {path}' or choose another --name/--run-dir"
            )
        run = cls(path)
        for sub in (run.samples, run.checkpoints, run.plots):
            sub.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory; UserError when ``path`` is not one."""
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
            sub.mkdir(exist_ok=True)
        run._remove_partial_checkpoints()
        return run

    def _remove_partial_checkpoints(self) -> None:
        """Temporary directories of checkpoints interrupted mid-write are garbage; one whose
        writer is alive is not (``textgan sample --run`` beside a training run opens it too)."""
        for entry in self.checkpoints.glob(f"{TMP_PREFIX}*"):
            pid = entry.suffix[1:]
            if not (pid.isdigit() and process_alive(int(pid))):
                shutil.rmtree(entry, ignore_errors=True)

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
