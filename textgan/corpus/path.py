"""A path: a text file, or a folder of text files read in sorted order; one sentence per
line."""

from __future__ import annotations

import re
from pathlib import Path

from textgan.corpus.reading import read_files
from textgan.corpus.source import Source, SourceKind, SourceSettings, slug
from textgan.errors import UserError


def _looks_like_a_path(name: str) -> bool:
    return Path(name).expanduser().exists() or re.search(r"[/\\.~]", name) is not None


def _open(cfg: SourceSettings) -> Source:
    path = Path(cfg.corpus).expanduser()
    if not path.exists():
        raise UserError(
            f"no such file or directory: {cfg.corpus}; give an existing text file or folder"
        )
    path = path.resolve()
    if path.is_dir():
        files = text_files(path)
    elif path.is_file():
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty; give a text file with one sentence per line")
        files = [path]
    else:
        raise UserError(f"{path} is neither a regular file nor a folder")
    return Source(
        slug=slug(path.stem if path.is_file() else path.name),
        identity={"path": str(path)},
        describe=str(path),
        train=lambda decoding: read_files(files, decoding),
        files=files,
        progress_total=sum(f.stat().st_size for f in files),
    )


def text_files(folder: Path) -> list[Path]:
    """Non-hidden regular files under ``folder`` (sorted) whose start holds no NUL byte."""
    found = []
    for f in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in f.relative_to(folder).parts)
        if hidden or not f.is_file():
            continue
        with open(f, "rb") as handle:
            if b"\0" not in handle.read(8192):
                found.append(f)
    if not found or all(f.stat().st_size == 0 for f in found):
        raise UserError(
            f"{folder} holds no text files; put UTF-8 text files (one sentence per line) there"
        )
    return found


KIND = SourceKind(usage="a text file or folder", accepts=_looks_like_a_path, open=_open)
