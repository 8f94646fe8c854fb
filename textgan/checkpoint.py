"""Run directories and checkpoints: atomic saves, exact resume, loading that never runs code.

A run lives in ``runs/<name>/``::

    config.json     the resolved run config (corpus, model, lipschitz, train) + corpus fingerprint
    vocab.json      the vocabulary the ids refer to
    metrics.jsonl   one JSON object per line (training rows and evaluation rows)
    samples/        iter_<k>.txt: the argmax samples of each evaluation
    checkpoints/    iter_<k>/: one directory per checkpoint
    plots/          figures drawn from the logs

A checkpoint directory holds ``generator.safetensors`` and ``critic.safetensors`` (weights),
``state.pt`` (optimizer states, iteration, elapsed time and every RNG state: tensors, numbers,
strings and containers only, read back with ``torch.load(weights_only=True)``), copies of
``config.json`` and ``vocab.json`` so that a checkpoint is usable on its own, and
``manifest.json`` with the size and SHA-256 of each of those files. The directory is written
under a temporary name and renamed into place, so a killed process leaves either the whole
checkpoint or none of it; the manifest catches truncation and corruption afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from textgan.errors import UserError, first_line
from textgan.files import process_alive
from textgan.vocab import Vocab

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
DIAGNOSTICS = "diagnostics.jsonl"
MANIFEST = "manifest.json"
STATE = "state.pt"
WEIGHTS = ("generator", "critic")
FORMAT_VERSION = 1
_CKPT_RE = re.compile(r"^iter_(\d+)$")
_TMP_PREFIX = ".tmp-"


# -- atomic files ------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
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
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{os.getpid()}")
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
        for entry in self.checkpoints.glob(f"{_TMP_PREFIX}*"):
            pid = entry.suffix[1:]
            if not (pid.isdigit() and process_alive(int(pid))):
                shutil.rmtree(entry, ignore_errors=True)

    def checkpoint_dirs(self) -> list[Path]:
        """Checkpoint directories, oldest iteration first."""
        found = []
        for entry in self.checkpoints.iterdir() if self.checkpoints.is_dir() else ():
            match = _CKPT_RE.match(entry.name)
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


def checkpoint_name(iteration: int) -> str:
    """The directory name of the checkpoint of ``iteration`` (matched by ``_CKPT_RE``)."""
    return f"iter_{iteration:07d}"


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


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory, a checkpoint directory or a file inside it."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if (path / MANIFEST).is_file() or _CKPT_RE.match(path.name):
        return path
    return RunDir.open(path).latest_checkpoint()


# -- saving ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_manifest(ckpt: Path, iteration: int) -> None:
    """Record the size and digest of every file in a checkpoint directory (written last)."""
    files = {}
    for entry in sorted(ckpt.iterdir()):
        if entry.name != MANIFEST:
            files[entry.name] = {"bytes": entry.stat().st_size, "sha256": _sha256(entry)}
    (ckpt / MANIFEST).write_text(
        json.dumps({"format": FORMAT_VERSION, "iteration": iteration, "files": files}, indent=2)
    )


def save_checkpoint(
    run: RunDir,
    iteration: int,
    weights: Mapping[str, Mapping[str, Any]],
    state: Mapping[str, Any],
    keep: int | None = None,
) -> Path:
    """Write ``checkpoints/iter_<iteration>/`` atomically and keep only the newest ``keep``.

    ``weights`` maps ``generator``/``critic`` to a state dict of tensors; ``state`` holds what
    ``torch.load(weights_only=True)`` can read back (tensors, numbers, strings, containers).
    """
    import torch
    from safetensors.torch import save_file

    final = run.checkpoints / checkpoint_name(iteration)
    tmp = run.checkpoints / f"{_TMP_PREFIX}{final.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in WEIGHTS:
            tensors = {k: v.detach().cpu().contiguous() for k, v in weights[name].items()}
            save_file(tensors, tmp / f"{name}.safetensors", metadata={"textgan": "1"})
        torch.save(dict(state), tmp / STATE)
        shutil.copyfile(run.config, tmp / CONFIG)
        shutil.copyfile(run.vocab, tmp / VOCAB)
        for entry in tmp.iterdir():
            _fsync_file(entry)
        write_manifest(tmp, iteration)
        _fsync_file(tmp / MANIFEST)
        _fsync_dir(tmp)
        if final.exists():  # the same iteration saved again (stopped right after a resume)
            old = final.with_name(f"{_TMP_PREFIX}old-{final.name}")
            final.replace(old)
            tmp.replace(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(final)
        _fsync_dir(run.checkpoints)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if keep is not None:
        for old in run.checkpoint_dirs()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


# -- loading -----------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A verified checkpoint: weights on the CPU, the state dict, the run config and vocab."""

    path: Path
    iteration: int
    generator: dict
    critic: dict | None
    state: dict | None
    config: dict
    vocab: Vocab


def verify(ckpt: Path) -> dict:
    """Check every file of a checkpoint against its manifest; UserError naming what is wrong."""
    hint = (
        "delete that checkpoint directory to fall back to an earlier one"
        if _CKPT_RE.match(ckpt.name)
        else "restore it from a copy"
    )
    manifest = ckpt / MANIFEST
    if not manifest.is_file():
        raise UserError(f"checkpoint {ckpt} is incomplete (no {MANIFEST}); {hint}")
    data = read_json(manifest, "checkpoint manifest")
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("format") != FORMAT_VERSION:
        raise UserError(f"checkpoint manifest {manifest} is not a textgan manifest; {hint}")
    for name, info in files.items():
        entry = ckpt / name
        if not entry.is_file():
            raise UserError(f"checkpoint {ckpt} is missing {name}; {hint}")
        size = entry.stat().st_size
        if size != info.get("bytes"):
            raise UserError(
                f"checkpoint file {entry} is truncated or altered "
                f"({size} bytes, {info.get('bytes')} expected); {hint}"
            )
        if _sha256(entry) != info.get("sha256"):
            raise UserError(f"checkpoint file {entry} is corrupted (checksum mismatch); {hint}")
    for name in (*(f"{w}.safetensors" for w in WEIGHTS), STATE, CONFIG, VOCAB):
        if name not in files:
            raise UserError(f"checkpoint {ckpt} lacks {name}; {hint}")
    return data


def load_weights(path: Path) -> dict:
    """Tensors of a safetensors file (the format stores no code, only arrays)."""
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise UserError(f"cannot read weights {path}: {err}") from None


def load_state(path: Path) -> dict:
    """The non-weight state, read with ``weights_only=True``: a file crafted to run code when
    unpickled is refused, never executed."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike mean: not a state we wrote
        raise UserError(
            f"refusing to load {path}: it is not a plain textgan training state ({first_line(err)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} is not a textgan training state (format {FORMAT_VERSION})")
    return state


def load_checkpoint(path: str | Path, *, training_state: bool = True) -> Checkpoint:
    """Verify and load a checkpoint directory (or a run directory: its newest checkpoint).

    With ``training_state=False`` only the generator is read (enough for sampling).
    """
    ckpt = resolve_checkpoint(path)
    manifest = verify(ckpt)
    config = read_json(ckpt / CONFIG, "checkpoint config")
    try:
        vocab = Vocab.load(ckpt / VOCAB)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise UserError(f"checkpoint vocabulary {ckpt / VOCAB} is invalid ({err})") from None
    return Checkpoint(
        path=ckpt,
        iteration=int(manifest["iteration"]),
        generator=load_weights(ckpt / "generator.safetensors"),
        critic=load_weights(ckpt / "critic.safetensors") if training_state else None,
        state=load_state(ckpt / STATE) if training_state else None,
        config=config,
        vocab=vocab,
    )
