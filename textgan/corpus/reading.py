"""Text files to blocks of whole decoded lines: small blocks, so the temporaries stay small.

Invalid UTF-8 either stops the read with its line number or is replaced by U+FFFD and counted
in the ``Decoding`` of that one read (no process-wide counter).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from textgan.errors import UserError

Blocks = Iterator[tuple[str, int]]  # (text of whole lines joined by "\n", progress advance)
BLOCK_BYTES = 65536
_FFFD = "\ufffd".encode()


@dataclass
class Decoding:
    """How one read treats invalid UTF-8 (``strict`` or ``replace``), and how often it
    replaced some."""

    errors: str = "strict"
    replaced: int = 0


def read_files(files: list[Path], decoding: Decoding) -> Blocks:
    for path in files:
        yield from read_file(path, decoding)


def read_file(path: Path, decoding: Decoding) -> Blocks:
    """Blocks of whole lines of one file, decoded; NUL bytes and bad UTF-8 name the line."""
    offset = 0  # of the current block in the file
    # Pieces of the unfinished last line, joined once its end is read: a line far longer than
    # a block then costs linear time, not a copy and a rescan of everything so far per block.
    carry: list[bytes] = []
    with open(path, "rb") as handle:
        if handle.read(3) == codecs.BOM_UTF8:  # as editors on Windows write UTF-8
            offset = 3
        else:
            handle.seek(0)
        while True:
            chunk = handle.read(BLOCK_BYTES)
            if not chunk:
                tail = b"".join(carry)
                if tail:
                    yield _decode(tail, path, offset, decoding), len(tail)
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                carry.append(chunk)
                continue
            body = b"".join([*carry, chunk[:cut]])
            carry = [chunk[cut + 1 :]]
            yield _decode(body, path, offset, decoding), len(body) + 1
            offset += len(body) + 1


def _decode(body: bytes, path: Path, offset: int, decoding: Decoding) -> str:
    nul = body.find(b"\0")
    if nul >= 0:
        raise UserError(
            f"{path} looks like a binary file (NUL byte on line {_line_at(path, offset + nul)}); "
            "give a UTF-8 text file with one sentence per line"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        if decoding.errors != "replace":
            line = _line_at(path, offset + err.start)
            raise UserError(
                f"{path}: line {line} is not valid UTF-8 (byte 0x{body[err.start]:02x}); "
                "convert the file to UTF-8 or pass --encoding-errors replace"
            ) from None
        text = body.decode("utf-8", "replace")
        # U+FFFD already in the file is one whole valid sequence, never part of an invalid one.
        decoding.replaced += text.count("\ufffd") - body.count(_FFFD)
    return lf_only(text)


def lf_only(text: str) -> str:
    """Lines ended by LF alone: CRLF becomes LF, and a CR at the very end (whose LF was a block
    cut or the end of a row) is dropped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    return text


def _line_at(path: Path, offset: int) -> int:
    """1-based number of the line holding byte ``offset`` (counted only for error messages)."""
    newlines = 0
    with open(path, "rb") as handle:
        while offset > 0:
            chunk = handle.read(min(offset, BLOCK_BYTES))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            offset -= len(chunk)
    return newlines + 1
