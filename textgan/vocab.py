"""Characters (or UTF-8 bytes) to integer ids and back, for whole arrays of lines at once.

Ids 0 and 1 are reserved: PAD fills a line up to the sequence length and UNK stands for any
symbol outside the vocabulary. The other ids go to symbols by falling frequency, ties broken by
symbol value, so the same counts always give the same vocabulary.

A symbol is a Unicode code point (kind ``chars``) or a byte value of the UTF-8 encoding (kind
``bytes``, which is what the reference's Python 2 code effectively used). Encoding turns lines
into fixed-width symbol arrays with NumPy (UTF-32 for code points), where symbol 0 marks padding:
input text never holds NUL, which the corpus reader refuses as binary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgan.errors import UserError

PAD = 0
UNK = 1
RESERVED = 2
TOKEN_KINDS = ("chars", "bytes")
FORMAT_VERSION = 1
SYMBOL_SPACE = {"chars": 0x110000, "bytes": 256}  # symbol values of each kind: 0 .. size - 1
# Private-use code points that stand for PAD and UNK while decoding a whole array at once.
_PAD_MARK, _UNK_MARK = 0xE000, 0xE001
# UTF-16 surrogates are code points no text holds (no UTF-8 or UTF-32 encodes them).
SURROGATES = range(0xD800, 0xE000)


class VocabError(UserError, ValueError):
    """A vocabulary file that does not hold a vocabulary (a ``ValueError`` too, for callers
    that catch one)."""


@dataclass(frozen=True)
class Vocab:
    """Ids ``RESERVED..`` map to ``symbols`` in order; see the module docstring."""

    symbols: tuple[int, ...]
    kind: str = "chars"

    def __post_init__(self) -> None:
        if self.kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {self.kind!r}; expected one of {TOKEN_KINDS}")
        if len(set(self.symbols)) != len(self.symbols) or 0 in self.symbols:
            raise ValueError("vocabulary symbols must be distinct and non-zero")
        if (
            self.symbols
            and not 0 < min(self.symbols) <= max(self.symbols) < SYMBOL_SPACE[self.kind]
        ):
            raise ValueError(f"vocabulary symbols must lie in 1..{SYMBOL_SPACE[self.kind] - 1}")
        if self.kind == "chars" and any(s in SURROGATES for s in self.symbols):
            raise ValueError("vocabulary symbols must be characters, not UTF-16 surrogates")

    def __len__(self) -> int:
        return RESERVED + len(self.symbols)

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned dtype that holds every id."""
        return id_dtype(len(self))

    @classmethod
    def from_counts(cls, counts: np.ndarray, kind: str = "chars", max_size: int = 256) -> Vocab:
        """Vocabulary of the ``max_size - RESERVED`` most frequent symbols; ``counts[s]`` is the
        count of symbol ``s`` (symbol 0, padding, is ignored)."""
        counts = np.asarray(counts, dtype=np.int64)
        present = np.flatnonzero(counts)
        return cls.from_symbol_counts(present, counts[present], kind, max_size)

    @classmethod
    def from_symbol_counts(
        cls, symbols: np.ndarray, counts: np.ndarray, kind: str = "chars", max_size: int = 256
    ) -> Vocab:
        """``from_counts`` for sparse counts: ``counts[i]`` is the count of ``symbols[i]``
        (distinct symbols; 0 and zero counts are ignored)."""
        if max_size < RESERVED + 1:
            raise ValueError(f"max_size must be at least {RESERVED + 1}")
        symbols = np.asarray(symbols, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        keep = (symbols != 0) & (counts > 0)
        symbols, counts = symbols[keep], counts[keep]
        # Most frequent first, ties by ascending symbol value.
        order = np.lexsort((symbols, -counts))
        return cls(tuple(int(s) for s in symbols[order][: max_size - RESERVED]), kind)

    # -- symbols -----------------------------------------------------------------------------

    def symbol_codes(self, lines: Sequence[str], seq_len: int) -> np.ndarray:
        """``(N, seq_len)`` uint32 symbol values of the first ``seq_len`` symbols of each line,
        0 where a line is shorter."""
        return text_to_codes(lines, seq_len, self.kind)

    def _lookup(self) -> np.ndarray:
        table = np.full(SYMBOL_SPACE[self.kind], UNK, dtype=self.dtype)
        table[0] = PAD
        table[np.asarray(self.symbols, dtype=np.int64)] = np.arange(
            RESERVED, len(self), dtype=self.dtype
        )
        return table

    def codes_to_ids(self, codes: np.ndarray) -> np.ndarray:
        """Map symbol values (0 = padding) to ids; symbols outside the vocabulary become UNK."""
        return self._lookup()[codes]

    # -- ids ---------------------------------------------------------------------------------

    def encode(self, lines: Sequence[str], seq_len: int) -> np.ndarray:
        """``(N, seq_len)`` ids of ``lines``: truncated, right-padded with PAD."""
        return self.codes_to_ids(self.symbol_codes(lines, seq_len))

    def decode(self, ids: np.ndarray, pad: str = "", unk: str = "\ufffd") -> list[str]:
        """Strings of an ``(N, L)`` id array; PAD shows as ``pad`` (nothing by default)."""
        ids = np.atleast_2d(np.asarray(ids))
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids outside the vocabulary of size {len(self)}")
        if self.kind == "bytes":
            return _decode_bytes(self.symbols, ids, pad, unk)
        return _decode_chars(self.symbols, ids, pad, unk)

    # -- files -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "pad": PAD,
            "unk": UNK,
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_json(cls, data: Any) -> Vocab:
        """The vocabulary of ``to_json``'s output; ``VocabError`` for anything else."""
        if not isinstance(data, dict):
            raise VocabError(f"a vocabulary is a JSON object, not {type(data).__name__}")
        if data.get("format") != FORMAT_VERSION:
            raise VocabError(f"unsupported vocabulary format {data.get('format')!r}")
        symbols, kind = data.get("symbols"), data.get("kind")
        if not isinstance(symbols, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in symbols
        ):
            raise VocabError("the vocabulary's 'symbols' must be a list of integers")
        try:
            return cls(tuple(symbols), kind)
        except ValueError as err:
            raise VocabError(str(err)) from None

    def dumps(self) -> str:
        """The JSON text of ``vocab.json``; callers write it with ``files.atomic_write_text``."""
        return json.dumps(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """The vocabulary saved at ``path``; ``VocabError`` when the file holds none."""
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, VocabError) as err:
            raise VocabError(f"{path} is not a vocabulary file ({err})") from None

    def describe(self, ids: Sequence[int]) -> list[str]:
        """Printable names of ids, for reports: '<pad>', '<unk>', repr-like otherwise."""
        names = []
        for i in ids:
            if i == PAD:
                names.append("<pad>")
            elif i == UNK:
                names.append("<unk>")
            else:
                s = self.symbols[i - RESERVED]
                names.append(repr(chr(s)) if self.kind == "chars" else f"0x{s:02x}")
        return names


def id_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype for the ids of a vocabulary of ``vocab_size``."""
    return np.dtype(np.uint8) if vocab_size <= 256 else np.dtype(np.uint16)


def text_to_codes(lines: Sequence[str], seq_len: int, kind: str = "chars") -> np.ndarray:
    """``(N, seq_len)`` uint32 symbol values (code points or UTF-8 bytes), 0-padded.

    Lines are truncated to ``seq_len`` symbols. Each line must be free of NUL and newlines.
    """
    if seq_len < 1:
        raise ValueError("seq_len must be positive")
    n = len(lines)
    if kind == "chars":
        padded = "".join([line[:seq_len].ljust(seq_len, "\0") for line in lines])
        flat = np.frombuffer(padded.encode("utf-32-le"), dtype="<u4")
    elif kind == "bytes":
        raw = [line.encode("utf-8")[:seq_len].ljust(seq_len, b"\0") for line in lines]
        flat = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.uint32)
    else:
        raise ValueError(f"unknown token kind {kind!r}; expected one of {TOKEN_KINDS}")
    return flat.reshape(n, seq_len)


def count_symbols(codes: np.ndarray, kind: str = "chars") -> np.ndarray:
    """Counts of every symbol value in a code array (index = symbol; 0 = padding)."""
    return np.bincount(codes.ravel(), minlength=SYMBOL_SPACE[kind])


# -- decoding: whole id arrays to strings, by the vocabulary's symbols --------------------------


def _decode_chars(symbols: tuple[int, ...], ids: np.ndarray, pad: str, unk: str) -> list[str]:
    if _PAD_MARK in symbols or _UNK_MARK in symbols:
        return [_decode_row(symbols, row, pad, unk) for row in ids]
    # One UTF-32 decode of the whole array, then fixed-width slices: no per-character loop.
    table = np.array((_PAD_MARK, _UNK_MARK, *symbols), dtype="<u4")
    text = table[ids].tobytes().decode("utf-32-le")
    width = ids.shape[1]
    rows = (text[i : i + width] for i in range(0, len(text), width))
    return [row.replace(chr(_PAD_MARK), pad).replace(chr(_UNK_MARK), unk) for row in rows]


def _decode_row(symbols: tuple[int, ...], row: np.ndarray, pad: str, unk: str) -> str:
    """Per-character decode, for the rare vocabulary that holds a placeholder code point."""
    special = {PAD: pad, UNK: unk}
    return "".join(special[i] if i in special else chr(symbols[i - RESERVED]) for i in row.tolist())


def _decode_bytes(symbols: tuple[int, ...], ids: np.ndarray, pad: str, unk: str) -> list[str]:
    table = np.array((0, 0, *symbols), dtype=np.uint8)
    out = []
    for row in ids:
        # Split on PAD/UNK so a multi-byte character cut by them decodes as U+FFFD only there.
        pieces, start = [], 0
        for j in np.flatnonzero(row < RESERVED):
            pieces.append(table[row[start:j]].tobytes().decode("utf-8", "replace"))
            pieces.append(pad if row[j] == PAD else unk)
            start = j + 1
        pieces.append(table[row[start:]].tobytes().decode("utf-8", "replace"))
        out.append("".join(pieces))
    return out
