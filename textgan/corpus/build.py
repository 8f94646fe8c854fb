"""Building a cache folder: read the source, split, build the vocabulary, write the files.

Memory stays near the size of the output: text is read in small blocks and kept as one byte
per symbol (``rows``); the final vocabulary, which needs the counts of the training split, is
applied at the end, in place (``ids``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textgan.corpus.ids import drop_rows, final_ids, heldout_rows, vocabulary
from textgan.corpus.reading import Decoding
from textgan.corpus.rows import Rows, Symbols, Tally, collect
from textgan.corpus.source import Source
from textgan.corpus.store import CACHE_FORMAT, HELDOUT, META, TRAIN, VOCAB, new_digest, pieces
from textgan.errors import UserError
from textgan.files import atomic_write_text, write_json

if TYPE_CHECKING:
    from textgan.corpus.config import CorpusConfig

RESERVE_BYTES = 4 << 30  # most address space reserved for rows before any is read


@dataclass
class _Read:
    """What reading a source gave: training rows and, for some sources, held-out rows."""

    symbols: Symbols
    rows: Rows
    tally: Tally
    decoding: Decoding
    held_rows: Rows | None = None
    held_tally: Tally | None = None


def build(cfg: CorpusConfig, source: Source, key: str, out: Path, progress: bool) -> None:
    """Read, split, encode and write the cache files into the folder ``out``."""
    started = time.time()
    read = _read(cfg, source, progress)
    rng = np.random.default_rng(cfg.seed)
    held_idx = heldout_rows(cfg, read.rows.n, rng) if read.held_rows is None else None
    vocab, stats = vocabulary(cfg, read.symbols, read.rows, held_idx)
    data = final_ids(vocab, read.symbols, read.rows)
    if read.held_rows is None:
        heldout, train = data[held_idx], drop_rows(data, held_idx)
    else:
        heldout, train = final_ids(vocab, read.symbols, read.held_rows), data
    # Rows as single opaque items: a 1-D shuffle moves whole rows, far faster than on 2-D.
    rng.shuffle(train.view(f"V{train.shape[1] * train.itemsize}").reshape(-1))
    meta = _meta(cfg, source, read, train, heldout)
    meta.update(key=key, seconds=round(time.time() - started, 2))
    meta["vocab"] = {"size": len(vocab), **stats}
    try:
        digest = new_digest(vocab, train.shape, heldout.shape)
        _write_npy(out / TRAIN, train, digest)
        _write_npy(out / HELDOUT, heldout, digest)
        atomic_write_text(out / VOCAB, vocab.dumps())
        write_json(out / META, {**meta, "fingerprint": digest.hexdigest()})
    except OSError as err:
        raise UserError(
            f"cannot write the corpus cache {err.filename or out}: {err.strerror or err}; "
            "free some space or choose a writable --data-dir"
        ) from None


def _read(cfg: CorpusConfig, source: Source, progress: bool) -> _Read:
    symbols = Symbols(cfg.tokens)
    rows = Rows(symbols, cfg.seq_len, _capacity(source, cfg))
    decoding = Decoding(cfg.encoding_errors)
    by_lines = source.progress_unit == "lines"
    with _progress(source, progress) as bar:
        tally = collect(
            source.train(decoding),
            rows,
            cfg.max_lines,
            lambda lines, advance: bar.update(lines if by_lines else advance),
        )
    if rows.n == 0:
        raise UserError(f"{source.describe} holds only empty lines; nothing to train on")
    read = _Read(symbols, rows, tally, decoding)
    if source.heldout is not None:
        limit = cfg.holdout if cfg.holdout is not None else source.heldout_limit
        limit = limit if limit is not None else 1 << 40  # all of it
        read.held_rows = Rows(symbols, cfg.seq_len, min(limit, 1 << 16))
        read.held_tally = collect(source.heldout(decoding), read.held_rows, limit)
    return read


class _NoBar:
    def update(self, n: int) -> None:
        pass


def _progress(source: Source, enabled: bool) -> Any:
    if not enabled:
        return nullcontext(_NoBar())
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


def _capacity(source: Source, cfg: CorpusConfig) -> int:
    """Rows to reserve. Pages of the reservation that are never written cost no memory, so
    this is an upper bound (a non-empty line takes at least two bytes), capped."""
    rows = cfg.max_lines
    if source.progress_unit == "B" and source.progress_total is not None:
        rows = min(rows, source.progress_total // 2 + len(source.files) + 1)
    return min(rows, RESERVE_BYTES // cfg.seq_len)


def _meta(
    cfg: CorpusConfig, source: Source, read: _Read, train: np.ndarray, heldout: np.ndarray
) -> dict:
    signature = file_signature(source.files)
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
            "invalid_utf8_replaced": read.decoding.replaced,
        },
        "arrays": {
            "train": list(train.shape),
            "heldout": list(heldout.shape),
            "dtype": str(train.dtype),
        },
    }


def file_signature(files: list[Path]) -> list[dict]:
    """Size and modification time of each input file, to notice an edited source."""
    return [
        {"path": str(f), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        for f in files
        for st in [f.stat()]
    ]


def _write_npy(path: Path, data: np.ndarray, digest: Any) -> None:
    """Write ``data`` as .npy, feeding its bytes to ``digest`` on the way."""
    with open(path, "wb") as handle:
        header = {
            "descr": np.lib.format.dtype_to_descr(data.dtype),
            "fortran_order": False,
            "shape": data.shape,
        }
        np.lib.format.write_array_header_1_0(handle, header)
        for piece in pieces(data):
            digest.update(piece)
            handle.write(piece.data)
