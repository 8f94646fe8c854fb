"""Checkpoints: atomic saves, a verified manifest, exact resume, loading that never runs code.

A checkpoint directory ``<run>/checkpoints/iter_<k>/`` holds ``generator.safetensors`` and
``critic.safetensors`` (weights), ``state.pt`` (optimizer states, iteration, elapsed time and
every RNG state: tensors, numbers, strings and containers only, read back with
``torch.load(weights_only=True)``), copies of ``config.json`` and ``vocab.json`` so that a
checkpoint is usable on its own, and ``manifest.json`` with the size and SHA-256 of each of those
files. The directory is written under a temporary name and renamed into place, so a killed
process leaves either the whole checkpoint or none of it; the manifest catches truncation and
corruption afterwards. The run directory around it is ``textgan.files.rundir``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan.errors import UserError, first_line
from textgan.files import TMP_PREFIX, disk_error, fsync_dir, read_json
from textgan.files.rundir import CKPT_RE, CONFIG, MANIFEST, VOCAB, RunDir
from textgan.vocab import Vocab

STATE = "state.pt"
WEIGHTS = ("generator", "critic")
EMA_KEY = "ema_generator"  # the generator's weight average, in the training state
FORMAT_VERSION = 1
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def checkpoint_name(iteration: int) -> str:
    """The directory name of the checkpoint of ``iteration`` (matched by ``CKPT_RE``)."""
    return f"iter_{iteration:07d}"


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory, a checkpoint directory or a file inside it."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if (path / MANIFEST).is_file() or CKPT_RE.match(path.name):
        return path
    return RunDir.open(path).latest_checkpoint()


# -- saving ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    """Write a file inside a checkpoint's temporary folder and wait until it is on disk."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_manifest(ckpt: Path, iteration: int) -> None:
    """Record the size and digest of every file in a checkpoint directory (written last)."""
    files = {}
    for entry in sorted(ckpt.iterdir()):
        if entry.name != MANIFEST:
            files[entry.name] = {"bytes": entry.stat().st_size, "sha256": _sha256(entry)}
    manifest = {"format": FORMAT_VERSION, "iteration": iteration, "files": files}
    _write_durably(ckpt / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))


def _serialize(
    run: RunDir, weights: Mapping[str, Mapping[str, Any]], state: Mapping[str, Any]
) -> dict[str, bytes]:
    """The checkpoint's files as bytes: written by our own I/O, a full disk is an OSError
    (safetensors and torch would each report it as their own exception type)."""
    import torch
    from safetensors.torch import save

    files = {}
    for name in WEIGHTS:
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights[name].items()}
        files[f"{name}.safetensors"] = save(tensors, metadata={"textgan": "1"})
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    files[STATE] = buffer.getvalue()
    for name, source in ((CONFIG, run.config), (VOCAB, run.vocab)):
        try:
            files[name] = source.read_bytes()
        except OSError as err:
            raise disk_error(source, err, "read") from None
    return files


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder to its name; the same iteration saved again (stopped right
    after a resume) replaces the old one, which comes back if the rename fails."""
    if not final.exists():
        tmp.replace(final)
        return
    old = final.with_name(f"{TMP_PREFIX}old-{final.name}.{os.getpid()}")
    final.replace(old)
    try:
        tmp.replace(final)
    except OSError:
        old.replace(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
    A disk error is a UserError; the partial checkpoint is removed and the previous ones stay.
    """
    files = _serialize(run, weights, state)
    final = run.checkpoints / checkpoint_name(iteration)
    tmp = run.checkpoints / f"{TMP_PREFIX}{final.name}.{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, data in files.items():
            _write_durably(tmp / name, data)
        write_manifest(tmp, iteration)
        fsync_dir(tmp)
        _move_into_place(tmp, final)
        fsync_dir(run.checkpoints)
    except OSError as err:
        raise UserError(
            f"cannot save checkpoint {final}: {err.strerror or err}; the previous checkpoints "
            "are intact: free space or fix permissions, then resume"
        ) from None
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


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0  # bool is an int subclass, and not a count


def _manifest_problem(data: dict) -> str | None:
    """What makes a manifest not one ``write_manifest`` wrote, or None: the fields are checked
    before use, so a crafted one is refused in one line, never a traceback."""
    if type(data.get("format")) is not int or data["format"] != FORMAT_VERSION:
        return f"format {data.get('format')!r}, not {FORMAT_VERSION}"
    if not _is_count(data.get("iteration")):
        return f"iteration {data.get('iteration')!r}"
    files = data.get("files")
    if not isinstance(files, dict):
        return "no table of files"
    for name, info in files.items():
        if name in (".", "..", MANIFEST) or Path(name).name != name:
            return f"file name {name!r}"  # nothing outside the folder is read
        if not (
            isinstance(info, dict)
            and _is_count(info.get("bytes"))
            and isinstance(info.get("sha256"), str)
            and SHA256_RE.match(info["sha256"])
        ):
            return f"entry of {name}: {json.dumps(info)[:80]}"
    return None


def verify(ckpt: Path) -> dict:
    """Check every file of a checkpoint against its manifest; UserError naming what is wrong."""
    hint = (
        "delete that checkpoint directory to fall back to an earlier one"
        if CKPT_RE.match(ckpt.name)
        else "restore it from a copy"
    )
    manifest = ckpt / MANIFEST
    if not manifest.is_file():
        raise UserError(f"checkpoint {ckpt} is incomplete (no {MANIFEST}); {hint}")
    data = read_json(manifest, "checkpoint manifest")
    problem = _manifest_problem(data)
    if problem is not None:
        raise UserError(
            f"checkpoint manifest {manifest} is not a textgan manifest ({problem}); {hint}"
        )
    files = data["files"]
    for name in (*(f"{w}.safetensors" for w in WEIGHTS), STATE, CONFIG, VOCAB):
        if name not in files:
            raise UserError(f"checkpoint {ckpt} lacks {name}; {hint}")
    for name, info in files.items():
        entry = ckpt / name
        if not entry.is_file():
            raise UserError(f"checkpoint {ckpt} is missing {name}; {hint}")
        size = entry.stat().st_size
        if size != info["bytes"]:
            raise UserError(
                f"checkpoint file {entry} is truncated or altered "
                f"({size} bytes, {info['bytes']} expected); {hint}"
            )
        if _sha256(entry) != info["sha256"]:
            raise UserError(f"checkpoint file {entry} is corrupted (checksum mismatch); {hint}")
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
        vocab = Vocab.from_json(read_json(ckpt / VOCAB, "checkpoint vocabulary"))
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"checkpoint vocabulary {ckpt / VOCAB} is invalid ({err})") from None
    return Checkpoint(
        path=ckpt,
        iteration=manifest["iteration"],
        generator=load_weights(ckpt / "generator.safetensors"),
        critic=load_weights(ckpt / "critic.safetensors") if training_state else None,
        state=load_state(ckpt / STATE) if training_state else None,
        config=config,
        vocab=vocab,
    )
