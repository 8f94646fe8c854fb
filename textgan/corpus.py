"""Corpora to cached id arrays: read a source, keep the first ``seq_len`` symbols of each line,
shuffle, split train / held-out, build the vocabulary from the training split, save.

Sources (``CorpusConfig.corpus``):

- ``billion_words``: a local copy of the One Billion Word benchmark under ``data_dir`` or
  ``$TEXTGAN_DATA``, read as the reference did (training files 01..99 in order, the benchmark's
  own held-out file); without one, the hub's parquet conversion of ``lm1b``, streamed.
- a path: a text file, or a folder of text files read in sorted order; one sentence per line.
- ``hf:ID[:CONFIG]``: any hub dataset with a text column, streamed.
- ``pydocs``: the prose of the documentation bundled with Python (``pydoc_data.topics``),
  one sentence per line; no download.

Memory stays near the size of the output: text is read in small blocks, each block is turned
into symbol codes with NumPy at once, and rows are kept as one byte per symbol (provisional ids
given as symbols appear; the rare symbols beyond 254 are kept aside). The final vocabulary,
which needs the counts of the training split, is applied at the end, in place.

The cache ``<data_dir>/<key>/`` holds ``vocab.json``, ``train.npy``, ``heldout.npy`` and
``meta.json``. It is written in a temporary folder renamed into place, so a folder under its
key is always complete.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from textgan.errors import UserError
from textgan.rundir import process_alive
from textgan.vocab import PAD, RESERVED, SYMBOL_SPACE, TOKEN_KINDS, UNK, Vocab, text_to_codes

CACHE_FORMAT = 1
ENCODING_ERRORS = ("strict", "replace")
BW_ROOT = "1-billion-word-language-modeling-benchmark-r13output"
BW_TRAIN = "training-monolingual.tokenized.shuffled/news.en-{:05d}-of-00100"
BW_HELDOUT = "heldout-monolingual.tokenized.shuffled/news.en.heldout-00000-of-00050"
BW_URL = (
    "https://www.statmt.org/lm-benchmark/"
    "1-billion-word-language-modeling-benchmark-r13output.tar.gz"
)
# The hub's parquet conversion of lm1b; the environment variable points elsewhere (a folder
# with the same plain_text/{train,test}/*.parquet layout, or a mirror).
LM1B_BASE = "hf://datasets/billion-word-benchmark/lm1b@refs%2Fconvert%2Fparquet"
LM1B_BASE_ENV = "TEXTGAN_LM1B_BASE"
HUB_HELDOUT_DEFAULT = 10_000
BLOCK_BYTES = 65536  # read size: small blocks keep the temporaries small
HUB_BATCH = 8192
NETWORK_TIMEOUT_S = 3.0
_ESC = 255  # provisional id of a symbol kept aside (no free one-byte slot)


@dataclass(frozen=True)
class CorpusConfig:
    """What to read and how to turn it into arrays; everything but ``data_dir`` is in the key."""

    corpus: str = "pydocs"  # billion_words | pydocs | a path | hf:ID[:CONFIG]
    seq_len: int = 32
    tokens: str = "chars"  # chars | bytes
    max_vocab: int = 256
    max_lines: int = 10_000_000
    holdout: int | None = None  # None: min(10_000, 10 %); billion_words: its held-out file
    seed: int = 0
    text_column: str = "text"
    encoding_errors: str = "strict"
    data_dir: str = "data"

    def validate(self) -> None:
        """Raise ``UserError`` for settings that cannot work."""
        if self.seq_len < 2:
            raise UserError(f"--seq-len must be at least 2 (got {self.seq_len})")
        if not RESERVED + 1 <= self.max_vocab <= 65536:
            raise UserError(
                f"--max-vocab must be between {RESERVED + 1} and 65536 (got {self.max_vocab}); "
                f"it counts the {RESERVED} reserved ids PAD and UNK"
            )
        if self.tokens not in TOKEN_KINDS:
            raise UserError(f"--tokens must be one of {', '.join(TOKEN_KINDS)}")
        if self.max_lines < 1:
            raise UserError(f"--max-lines must be positive (got {self.max_lines})")
        if self.holdout is not None and self.holdout < 0:
            raise UserError(f"--holdout must be 0 or more (got {self.holdout})")
        if self.encoding_errors not in ENCODING_ERRORS:
            raise UserError(f"--encoding-errors must be one of {', '.join(ENCODING_ERRORS)}")
        if not self.corpus.strip():
            raise UserError("--corpus is empty; name billion_words, pydocs, hf:ID or a path")

    def settings(self) -> dict:
        """The settings that shape the arrays, apart from the source itself (``data_dir`` only
        says where they live; the text column matters only to ``hf:`` datasets)."""
        out = asdict(self)
        del out["corpus"], out["data_dir"]
        if not self.corpus.startswith("hf:"):
            del out["text_column"]
        return out


@dataclass(eq=False)
class PreparedCorpus:
    """A prepared corpus: arrays memory-mapped from its cache folder."""

    key: str
    path: Path
    vocab: Vocab
    train: np.ndarray  # (N, seq_len) ids
    heldout: np.ndarray  # (M, seq_len) ids
    meta: dict
    fingerprint: str  # digest of the vocabulary and both arrays
    reused: bool = False  # True when prepare() found it in the cache

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])


# -- sources ----------------------------------------------------------------------------------

Blocks = Iterator[tuple[str, int]]  # (text of whole lines joined by "\n", progress advance)


@dataclass
class _Source:
    """A resolved corpus: how to read it and what identifies it."""

    slug: str
    identity: dict  # hashed into the key
    describe: str  # for messages and meta
    train: Callable[[str], Blocks]  # encoding_errors -> blocks of text
    heldout: Callable[[str], Blocks] | None = None  # a separate held-out text, if any
    files: list[Path] = field(default_factory=list)  # stat()-ed to notice changed inputs
    heldout_limit: int | None = None  # rows of ``heldout`` to keep when --holdout is not set
    progress_unit: str = "B"
    progress_total: int | None = None
    check_available: Callable[[], None] = lambda: None


def _resolve(cfg: CorpusConfig) -> _Source:
    name = cfg.corpus
    if name == "billion_words":
        return _billion_words(cfg)
    if name == "pydocs":
        return _pydocs()
    if name.startswith("hf:"):
        return _hf(cfg)
    path = Path(name).expanduser()
    if path.exists():
        return _path_source(path)
    if re.search(r"[/\\.~]", name):
        raise UserError(f"no such file or directory: {name}; give an existing text file or folder")
    raise UserError(
        f"unknown corpus {name!r}; use billion_words, pydocs, hf:ID[:CONFIG] "
        "or the path of a text file or folder"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48] or "corpus"


def _path_source(path: Path) -> _Source:
    path = path.resolve()
    if path.is_dir():
        files = _text_files(path)
    elif path.is_file():
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty; give a text file with one sentence per line")
        files = [path]
    else:
        raise UserError(f"{path} is neither a regular file nor a folder")
    return _Source(
        slug=_slug(path.stem if path.is_file() else path.name),
        identity={"path": str(path)},
        describe=str(path),
        train=lambda errors: _read_files(files, errors),
        files=files,
        progress_total=sum(f.stat().st_size for f in files),
    )


def _text_files(folder: Path) -> list[Path]:
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


def _bw_roots(cfg: CorpusConfig) -> list[Path]:
    places = [Path(cfg.data_dir).expanduser()]
    if os.environ.get("TEXTGAN_DATA"):
        places.append(Path(os.environ["TEXTGAN_DATA"]).expanduser())
    return [p for place in places for p in (place / BW_ROOT, place)]


def _billion_words(cfg: CorpusConfig) -> _Source:
    roots = _bw_roots(cfg)
    root = next((r for r in roots if (r / BW_TRAIN.format(1)).is_file()), None)
    if root is not None:
        return _billion_words_local(root.resolve(), cfg.max_lines)
    base = os.environ.get(LM1B_BASE_ENV, LM1B_BASE)
    where = ", ".join(sorted({str(r) for r in roots}))

    def check() -> None:
        if base.startswith("hf://"):
            problem = _hub_problem()
            if problem:
                raise UserError(
                    f"billion_words: no local copy (looked in {where}) and the Hugging Face hub "
                    f"is not reachable ({problem}); download {BW_URL} and extract it into "
                    f"{cfg.data_dir}/ (or set TEXTGAN_DATA), or go online"
                )

    def load(split: str) -> Callable[[str], Blocks]:
        files = {split: f"{base.rstrip('/')}/plain_text/{split}/*.parquet"}
        return lambda errors: _hub_blocks(
            {"path": "parquet", "data_files": files}, split, "text", f"lm1b ({base})"
        )

    return _Source(
        slug="billion_words-hub",
        identity={"billion_words": "hub", "base": base},
        describe=f"One Billion Word benchmark, parquet conversion at {base}",
        train=load("train"),
        heldout=load("test"),
        heldout_limit=HUB_HELDOUT_DEFAULT,
        progress_unit="lines",
        progress_total=cfg.max_lines,
        check_available=check,
    )


def _billion_words_local(root: Path, max_lines: int) -> _Source:
    train = [root / BW_TRAIN.format(i) for i in range(1, 100)]
    train = [f for f in train if f.is_file()]
    heldout = root / BW_HELDOUT
    if not heldout.is_file():
        raise UserError(
            f"billion_words: {heldout} is missing; extract the whole benchmark ({BW_URL})"
        )
    return _Source(
        slug="billion_words",
        identity={"billion_words": "local", "root": str(root)},
        describe=f"One Billion Word benchmark at {root}",
        train=lambda errors: _read_files(train, errors),
        heldout=lambda errors: _read_files([heldout], errors),
        files=[*train, heldout],
        progress_unit="lines",
        progress_total=max_lines,
    )


def _hf(cfg: CorpusConfig) -> _Source:
    dataset, _, config = cfg.corpus[3:].partition(":")
    if not dataset:
        raise UserError(f"{cfg.corpus!r} names no dataset; write hf:ID or hf:ID:CONFIG")
    kwargs = {"path": dataset, **({"name": config} if config else {})}

    def check() -> None:
        if not _offline_mode() and not Path(dataset).exists():  # a local folder needs no hub
            problem = _hub_problem()
            if problem:
                raise UserError(
                    f"{cfg.corpus}: the Hugging Face hub is not reachable ({problem}); go online, "
                    "or set HF_DATASETS_OFFLINE=1 to read it from the local datasets cache"
                )

    return _Source(
        slug=_slug("hf-" + cfg.corpus[3:]),
        identity={"hf": dataset, "config": config or None},
        describe=f"hub dataset {dataset}" + (f" ({config})" if config else ""),
        train=lambda errors: _hub_blocks(kwargs, "train", cfg.text_column, cfg.corpus),
        progress_unit="lines",
        progress_total=cfg.max_lines,
        check_available=check,
    )


def _pydocs() -> _Source:
    text = "\n".join(pydocs_sentences())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return _Source(
        slug="pydocs",
        identity={"pydocs": digest},
        describe="prose of Python's bundled documentation (pydoc_data.topics)",
        train=lambda errors: iter([(text, len(text))]),
        progress_total=len(text),
    )


def pydocs_sentences() -> list[str]:
    """Sentences of the prose paragraphs of ``pydoc_data.topics``, in topic order.

    Code samples, grammar rules and headings are left out: a paragraph counts as prose when it
    holds no interpreter prompt or grammar rule, is mostly letters and ends like a sentence.
    """
    from pydoc_data.topics import topics

    sentences = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
            text = " ".join(lines)
            if not text or "::=" in text or any(ln.startswith((">>>", "...")) for ln in lines):
                continue
            wordy = sum(c.isalpha() or c in " \"',.()" for c in text)
            if wordy < 0.85 * len(text) or not re.search(r"[a-z]{3}.*[.:?!]$", text):
                continue
            parts = re.split(r"(?<=[.!?:])\s+(?=[A-Z\"(*])", text)
            sentences.extend(s for s in parts if len(s) >= 12)
    return sentences


# -- reading ----------------------------------------------------------------------------------

_replaced = [0]  # invalid UTF-8 sequences replaced, counted by the error handler below


def _count_and_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    _replaced[0] += 1
    return "\ufffd", err.end


codecs.register_error("textgan-replace", _count_and_replace)


def _read_files(files: list[Path], errors: str) -> Blocks:
    for path in files:
        yield from _read_file(path, errors)


def _read_file(path: Path, errors: str) -> Blocks:
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
                    yield _decode(tail, path, offset, errors), len(tail)
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                carry.append(chunk)
                continue
            body = b"".join([*carry, chunk[:cut]])
            carry = [chunk[cut + 1 :]]
            yield _decode(body, path, offset, errors), len(body) + 1
            offset += len(body) + 1


def _decode(body: bytes, path: Path, offset: int, errors: str) -> str:
    nul = body.find(b"\0")
    if nul >= 0:
        raise UserError(
            f"{path} looks like a binary file (NUL byte on line {_line_at(path, offset + nul)}); "
            "give a UTF-8 text file with one sentence per line"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        if errors != "replace":
            line = _line_at(path, offset + err.start)
            raise UserError(
                f"{path}: line {line} is not valid UTF-8 (byte 0x{body[err.start]:02x}); "
                "convert the file to UTF-8 or pass --encoding-errors replace"
            ) from None
        text = body.decode("utf-8", "textgan-replace")
    return _lf_only(text)


def _lf_only(text: str) -> str:
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


def _offline_mode() -> bool:
    flags = (os.environ.get(v, "").lower() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


def _hub_problem() -> str | None:
    """Why the hub cannot be reached, found out within a few seconds; None when it can."""
    if _offline_mode():
        return "offline mode: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set"
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )
    outcome: list[str | None] = []

    def probe() -> None:  # in a thread: name resolution ignores socket time-outs
        try:
            socket.create_connection((host, port), timeout=NETWORK_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"cannot connect to {host}:{port}: {err.strerror or err}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(NETWORK_TIMEOUT_S + 0.5)
    return outcome[0] if outcome else f"no answer from {host}:{port} in {NETWORK_TIMEOUT_S:g} s"


def _hub_blocks(kwargs: dict, split: str, column: str, label: str) -> Blocks:
    """Blocks of rows of a streamed hub (or parquet) dataset; rows may hold several lines."""
    import datasets

    try:
        data = datasets.load_dataset(**kwargs, split=split, streaming=True)
    except Exception as err:  # the hub reports unknown ids, configs and splits in many ways
        detail = " ".join(str(err).split())[:300]
        raise UserError(
            f"cannot open {label} (split {split}): {type(err).__name__}: {detail}"
        ) from None
    if data.features is not None:  # unknown for some streamed formats: checked per batch then
        _require_column(column, list(data.features), label)
        data = data.select_columns([column])
    for batch in data.iter(batch_size=HUB_BATCH):
        _require_column(column, list(batch), label)
        rows = batch[column]
        if any(r is not None and not isinstance(r, str) for r in rows):
            raise UserError(f"column {column!r} of {label} does not hold text; pass --text-column")
        text = "\n".join(r or "" for r in rows)
        if "\0" in text:
            raise UserError(f"{label} holds NUL characters in column {column!r}; it is not text")
        yield _lf_only(text), len(rows)


def _require_column(column: str, columns: list[str], label: str) -> None:
    if column not in columns:
        have = ", ".join(columns)
        raise UserError(f"{label} has no column {column!r} (it has: {have}); pass --text-column")


# -- collecting rows --------------------------------------------------------------------------


class _Symbols:
    """Provisional one-byte ids 1..254 given to symbols as they appear (0 = padding)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.slot = np.full(SYMBOL_SPACE[kind], _ESC, dtype=np.uint8)
        self.slot[0] = PAD
        self.symbols = [0]  # provisional id -> symbol

    def add(self, codes: np.ndarray) -> bool:
        """Give free slots to unseen symbols of ``codes``, most frequent first; whether any
        symbol got one."""
        free = _ESC - len(self.symbols)
        if free <= 0:
            return False
        values, counts = np.unique(codes, return_counts=True)
        new = self.slot[values] == _ESC
        values, counts = values[new], counts[new]
        order = np.lexsort((values, -counts))[:free]
        for s in values[order].tolist():
            self.slot[s] = len(self.symbols)
            self.symbols.append(s)
        return len(order) > 0


class _Rows:
    """Rows of provisional ids, grown in place; rare symbols kept aside as (row, col, symbol)."""

    def __init__(self, symbols: _Symbols, seq_len: int, capacity: int) -> None:
        self.sym = symbols
        self.seq_len = seq_len
        self.buf = np.empty((max(capacity, 1), seq_len), dtype=np.uint8)
        self.n = 0
        self.counts = np.zeros(256, dtype=np.int64)  # per provisional id
        self.aside: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.truncated = 0
        self.symbols_total = 0

    def add(self, lines: list[str]) -> None:
        codes = text_to_codes(lines, self.seq_len, self.sym.kind)
        prov = self.sym.slot[codes]
        rare = prov == _ESC
        if rare.any():
            if self.sym.add(codes[rare]):
                prov = self.sym.slot[codes]
                rare = prov == _ESC
            if rare.any():
                r, c = np.nonzero(rare)
                self.aside.append((r + self.n, c.astype(np.int32), codes[r, c]))
        self.counts += np.bincount(prov.ravel(), minlength=256)
        if self.sym.kind == "chars":
            lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        else:
            lengths = np.fromiter((len(s.encode()) for s in lines), np.int64, len(lines))
        self.truncated += int((lengths > self.seq_len).sum())
        self.symbols_total += int(lengths.sum())
        self._append(prov)

    def _append(self, prov: np.ndarray) -> None:
        end = self.n + len(prov)
        if end > len(self.buf):
            grown = np.empty((max(end, 2 * len(self.buf)), self.seq_len), dtype=np.uint8)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : end] = prov
        self.n = end

    def rows(self) -> np.ndarray:
        return self.buf[: self.n]

    def aside_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The symbols kept aside as three arrays (rows, columns, symbols)."""
        if not self.aside:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32)
        if len(self.aside) > 1:  # joined once: the vocabulary and the final ids both ask
            self.aside = [tuple(np.concatenate(parts) for parts in zip(*self.aside, strict=True))]
        return self.aside[0]


@dataclass
class _Tally:
    read: int = 0  # lines seen, empty ones included
    empty: int = 0
    reached_max_lines: bool = False


def _collect(
    blocks: Blocks, rows: _Rows, limit: int, on_block: Callable[[int, int], object] | None = None
) -> _Tally:
    """Feed non-empty lines of ``blocks`` into ``rows`` until ``limit`` rows are kept;
    ``on_block(lines, advance)`` follows the progress."""
    tally = _Tally()
    if rows.n >= limit:  # --holdout 0: leave the source unopened rather than misread a block
        return tally
    for text, advance in blocks:
        parts = text.split("\n")
        room = limit - rows.n
        lines = [p for p in parts if p]
        if len(lines) >= room:
            tally.reached_max_lines = True
            parts = parts[: _index_of_nth_nonempty(parts, room) + 1]
            lines = lines[:room]
        tally.read += len(parts)
        tally.empty += len(parts) - len(lines)
        if lines:
            rows.add(lines)
        if on_block is not None:
            on_block(len(parts), advance)
        if rows.n >= limit:
            break
    return tally


def _index_of_nth_nonempty(parts: list[str], n: int) -> int:
    seen = 0
    for i, p in enumerate(parts):
        if p:
            seen += 1
            if seen == n:
                return i
    return len(parts) - 1


# -- building the cache -----------------------------------------------------------------------


def prepare(cfg: CorpusConfig, force: bool = False, progress: bool = True) -> PreparedCorpus:
    """Prepared arrays for ``cfg``: from the cache when it matches, else built and cached."""
    cfg.validate()
    source = _resolve(cfg)
    key = corpus_key(cfg, source)
    data_dir = Path(cfg.data_dir).expanduser()
    target = data_dir / key
    if not force and (target / "meta.json").is_file():
        cached = _reusable(target, source)
        if cached is not None:
            return cached
    source.check_available()
    made_dir = not data_dir.exists()
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
    try:
        _build(cfg, source, key, staging, progress)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_dir:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only when empty
        raise
    return load_prepared(target)


def corpus_key(cfg: CorpusConfig, source: _Source | None = None) -> str:
    """Cache folder name: the source's short name and a digest of source and settings."""
    source = source or _resolve(cfg)
    blob = json.dumps(
        {"format": CACHE_FORMAT, "source": source.identity, "settings": cfg.settings()},
        sort_keys=True,
    )
    return f"{source.slug}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _file_signature(files: list[Path]) -> list[dict]:
    return [
        {"path": str(f), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        for f in files
        for st in [f.stat()]
    ]


def _reusable(target: Path, source: _Source) -> PreparedCorpus | None:
    try:
        cached = load_prepared(target)
    except UserError:
        return None
    try:
        same_files = cached.meta["source"]["signature"] == _file_signature(source.files)
    except (KeyError, OSError):
        same_files = False
    if not same_files:
        return None
    cached.reused = True
    return cached


def _remove_stale_staging(data_dir: Path, key: str) -> None:
    """Drop temporary folders left by killed runs (their process no longer exists)."""
    for old in [*data_dir.glob(f".tmp-{key}-*"), *data_dir.glob(f".old-{key}-*")]:
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _progress(source: _Source, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    scale = source.progress_unit == "B"
    return tqdm(
        total=source.progress_total,
        unit=source.progress_unit,
        unit_scale=scale,
        unit_divisor=1024 if scale else 1000,
        desc=f"reading {source.slug}",
        dynamic_ncols=True,
    )


def _capacity(source: _Source, cfg: CorpusConfig) -> int:
    """Rows to reserve. Pages of the reservation that are never written cost no memory, so
    this is an upper bound (a non-empty line takes at least two bytes), capped at 4 GB."""
    rows = cfg.max_lines
    if source.progress_unit == "B" and source.progress_total is not None:
        rows = min(rows, source.progress_total // 2 + len(source.files) + 1)
    return min(rows, (4 << 30) // cfg.seq_len)


@dataclass
class _Read:
    """What reading a source gave: training rows and, for some sources, held-out rows."""

    symbols: _Symbols
    rows: _Rows
    tally: _Tally
    held_rows: _Rows | None = None
    held_tally: _Tally | None = None


def _read(cfg: CorpusConfig, source: _Source, progress: bool) -> _Read:
    symbols = _Symbols(cfg.tokens)
    rows = _Rows(symbols, cfg.seq_len, _capacity(source, cfg))
    by_lines = source.progress_unit == "lines"
    with _progress(source, progress) as bar:
        tally = _collect(
            source.train(cfg.encoding_errors),
            rows,
            cfg.max_lines,
            lambda lines, advance: bar.update(lines if by_lines else advance),
        )
    if rows.n == 0:
        raise UserError(f"{source.describe} holds only empty lines; nothing to train on")
    read = _Read(symbols, rows, tally)
    if source.heldout is not None:
        limit = cfg.holdout if cfg.holdout is not None else source.heldout_limit
        limit = limit if limit is not None else 1 << 40  # all of it
        read.held_rows = _Rows(symbols, cfg.seq_len, min(limit, 1 << 16))
        read.held_tally = _collect(source.heldout(cfg.encoding_errors), read.held_rows, limit)
    return read


def _build(cfg: CorpusConfig, source: _Source, key: str, out: Path, progress: bool) -> None:
    """Read, split, encode and write the cache files into the folder ``out``."""
    started = time.time()
    _replaced[0] = 0
    read = _read(cfg, source, progress)
    rng = np.random.default_rng(cfg.seed)
    held_idx = _heldout_rows(cfg, read.rows.n, rng) if read.held_rows is None else None
    vocab, stats = _vocabulary(cfg, read.symbols, read.rows, held_idx)
    data = _final_ids(vocab, read.symbols, read.rows)
    if read.held_rows is None:
        heldout, train = data[held_idx], _drop_rows(data, held_idx)
    else:
        heldout, train = _final_ids(vocab, read.symbols, read.held_rows), data
    # Rows as single opaque items: a 1-D shuffle moves whole rows, far faster than on 2-D.
    rng.shuffle(train.view(f"V{train.shape[1] * train.itemsize}").reshape(-1))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([vocab.to_json(), train.shape, heldout.shape]).encode())
    _write_npy(out / "train.npy", train, digest)
    _write_npy(out / "heldout.npy", heldout, digest)
    vocab.save(out / "vocab.json")
    meta = _meta(cfg, source, read, train, heldout)
    meta.update(key=key, fingerprint=digest.hexdigest(), seconds=round(time.time() - started, 2))
    meta["vocab"] = {"size": len(vocab), **stats}
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out / "meta.json")


def _meta(
    cfg: CorpusConfig, source: _Source, read: _Read, train: np.ndarray, heldout: np.ndarray
) -> dict:
    signature = _file_signature(source.files)
    rows = read.rows
    return {
        "format": CACHE_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {
            "corpus": cfg.corpus,
            "describe": source.describe,
            "identity": source.identity,
            "files": [{"path": s["path"], "bytes": s["bytes"]} for s in signature],
            "signature": signature,
        },
        "settings": cfg.settings(),
        "seq_len": cfg.seq_len,
        "tokens": cfg.tokens,
        "lines": {
            "read": read.tally.read,
            "empty_skipped": read.tally.empty,
            "kept": rows.n,
            "truncated": rows.truncated,
            "mean_length": round(rows.symbols_total / rows.n, 2),
            "reached_max_lines": read.tally.reached_max_lines,
            "train": len(train),
            "heldout": len(heldout),
            "heldout_source": "split" if read.held_rows is None else "heldout file",
            "heldout_read": read.held_tally.read if read.held_tally else None,
            "invalid_utf8_replaced": _replaced[0],
        },
        "arrays": {
            "train": list(train.shape),
            "heldout": list(heldout.shape),
            "dtype": str(train.dtype),
        },
    }


def _heldout_rows(cfg: CorpusConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows to hold out, drawn from the seed: ``--holdout`` of them, or min(10,000, 10 %)."""
    held = min(10_000, n // 10) if cfg.holdout is None else cfg.holdout
    if held >= n:
        raise UserError(
            f"--holdout {held} leaves no training lines ({n} lines in all); choose fewer"
        )
    return rng.choice(n, size=held, replace=False)


def _drop_rows(data: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """The rows of ``data`` not in ``drop``, moved up in place (no copy of the whole array)."""
    dst = src = 0
    for row in [*np.sort(drop).tolist(), len(data)]:
        for start in range(src, row, 1 << 16):  # bounded pieces keep overlap buffers small
            stop = min(row, start + (1 << 16))
            data[dst + start - src : dst + stop - src] = data[start:stop]
        dst, src = dst + row - src, row + 1
    return data[:dst]


def _vocabulary(
    cfg: CorpusConfig, symbols: _Symbols, rows: _Rows, held_idx: np.ndarray | None
) -> tuple[Vocab, dict]:
    """Vocabulary from the counts of ``rows`` less the held-out ones, with coverage stats."""
    prov_counts = rows.counts.copy()
    a_rows, _, a_syms = rows.aside_arrays()
    if held_idx is not None and len(held_idx):
        for start in range(0, len(held_idx), 4096):  # bincount widens to int64: small pieces
            block = rows.buf[held_idx[start : start + 4096]]
            prov_counts -= np.bincount(block.ravel(), minlength=256)
        a_syms = a_syms[~np.isin(a_rows, held_idx)]
    rare, rare_counts = np.unique(a_syms, return_counts=True)
    syms = np.concatenate([np.asarray(symbols.symbols[1:], np.int64), rare.astype(np.int64)])
    counts = np.concatenate([prov_counts[1 : len(symbols.symbols)], rare_counts])
    vocab = Vocab.from_symbol_counts(syms, counts, cfg.tokens, cfg.max_vocab)
    total = int(counts.sum())
    in_vocab = int(counts[np.isin(syms, vocab.symbols)].sum())
    top = np.lexsort((syms, -counts))[:10]
    top = top[counts[top] > 0]
    names = vocab.describe(vocab.codes_to_ids(syms[top]).tolist())
    return vocab, {
        "symbols_seen": int(np.count_nonzero(counts)),
        "symbols_kept": len(vocab.symbols),
        "coverage": round(in_vocab / total, 6) if total else 1.0,
        "unk_share": round(1 - in_vocab / total, 6) if total else 0.0,
        "top": [[n, round(int(c) / total, 6)] for n, c in zip(names, counts[top], strict=True)],
    }


def _final_ids(vocab: Vocab, symbols: _Symbols, rows: _Rows) -> np.ndarray:
    """Provisional ids to vocabulary ids: in place when they fit one byte."""
    table = np.zeros(256, dtype=vocab.dtype)
    table[_ESC] = UNK
    known = np.asarray(symbols.symbols[1:], dtype=np.uint32)
    table[1 : len(symbols.symbols)] = vocab.codes_to_ids(known)
    a_rows, a_cols, a_syms = rows.aside_arrays()
    data = rows.rows()
    if vocab.dtype == np.uint8:
        step = 1 << 16
        for start in range(0, rows.n, step):
            data[start : start + step] = table[data[start : start + step]]
    else:
        data = table[data]
    data[a_rows, a_cols] = vocab.codes_to_ids(a_syms)
    return data


def _write_npy(path: Path, data: np.ndarray, digest) -> None:
    """Write ``data`` as .npy, feeding its bytes to ``digest`` on the way."""
    with open(path, "wb") as handle:
        header = {
            "descr": np.lib.format.dtype_to_descr(data.dtype),
            "fortran_order": False,
            "shape": data.shape,
        }
        np.lib.format.write_array_header_1_0(handle, header)
        step = 1 << 16
        for start in range(0, len(data), step):
            block = np.ascontiguousarray(data[start : start + step])
            digest.update(block)
            handle.write(block.data)


# -- reading the cache ------------------------------------------------------------------------


def load_prepared(path: str | Path) -> PreparedCorpus:
    """A prepared corpus from its cache folder; ``UserError`` if it is not a complete one."""
    path = Path(path)
    hint = "run 'textgan prepare' (with --force to rebuild)"
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is not a prepared corpus (no meta.json); {hint}") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path}/meta.json cannot be read ({err}); {hint}") from None
    if meta.get("format") != CACHE_FORMAT:
        raise UserError(f"{path} holds a prepared corpus of another format; {hint}")
    try:
        vocab = Vocab.load(path / "vocab.json")
        train = np.load(path / "train.npy", mmap_mode="r")
        heldout = np.load(path / "heldout.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path} is an incomplete prepared corpus ({err}); {hint}") from None
    arrays = meta["arrays"]
    if (
        list(train.shape) != arrays["train"]
        or list(heldout.shape) != arrays["heldout"]
        or train.dtype != vocab.dtype
        or heldout.dtype != vocab.dtype
    ):
        raise UserError(f"{path} holds arrays that do not match its meta.json; {hint}")
    return PreparedCorpus(
        key=meta["key"],
        path=path,
        vocab=vocab,
        train=train,
        heldout=heldout,
        meta=meta,
        fingerprint=meta["fingerprint"],
    )


def summary(prepared: PreparedCorpus) -> str:
    """A short table of what was prepared, for people."""
    meta, lines, voc = prepared.meta, prepared.meta["lines"], prepared.meta["vocab"]
    top = "  ".join(f"{name} {share:.1%}" for name, share in voc["top"][:8])
    rows = [
        ("source", meta["source"]["describe"]),
        ("lines kept", f"{lines['kept']:,} ({lines['truncated']:,} cut to {prepared.seq_len})"),
        ("empty skipped", f"{lines['empty_skipped']:,}"),
        ("train / held-out", f"{len(prepared.train):,} / {len(prepared.heldout):,}"),
        (
            "vocabulary",
            f"{voc['size']} ids ({voc['symbols_seen']} symbols seen, {RESERVED} reserved)",
        ),
        ("UNK share", f"{voc['unk_share']:.4%}"),
        ("top symbols", top),
        ("cache", f"{prepared.path}" + (" (reused)" if prepared.reused else "")),
    ]
    if lines["invalid_utf8_replaced"]:
        rows.insert(3, ("invalid UTF-8", f"{lines['invalid_utf8_replaced']:,} replaced by U+FFFD"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
