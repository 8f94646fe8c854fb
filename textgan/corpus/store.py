"""The cache folder's files: what they hold, their digest, and reading them back checked.

``<data_dir>/<key>/`` holds ``vocab.json``, ``train.npy``, ``heldout.npy`` and ``meta.json``.
``meta.json`` records the shapes and a digest of the vocabulary and both arrays; a folder whose
files do not match it (edited, truncated, copied from another cache) is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgan.corpus.rows import row_step
from textgan.errors import UserError
from textgan.vocab import RESERVED, Vocab

CACHE_FORMAT = 1
META, VOCAB, TRAIN, HELDOUT = "meta.json", "vocab.json", "train.npy", "heldout.npy"
_HINT = "run 'textgan prepare' (with --force to rebuild)"
# What summary() and the checks below read from meta.json, by type; anything else is free.
_META_SHAPE: dict[str, Any] = {
    "format": int,
    "key": str,
    "fingerprint": str,
    "source": {"describe": str, "signature": list},
    "lines": {"kept": int, "truncated": int, "empty_skipped": int, "invalid_utf8_replaced": int},
    "vocab": {"size": int, "symbols_seen": int, "unk_share": (int, float), "top": list},
    "arrays": {"train": list, "heldout": list},
}


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


def new_digest(vocab: Vocab, train_shape: tuple, heldout_shape: tuple) -> Any:
    """The digest of a cache, fed the arrays' bytes next (``pieces``)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([vocab.to_json(), train_shape, heldout_shape]).encode())
    return digest


def pieces(data: np.ndarray) -> Iterator[np.ndarray]:
    """``data`` as C-contiguous pieces of whole rows, a few MB each."""
    step = row_step(data[0].nbytes if len(data) else 1)
    for start in range(0, len(data), step):
        yield np.ascontiguousarray(data[start : start + step])


def load_prepared(path: str | Path) -> PreparedCorpus:
    """A prepared corpus from its cache folder, checked against its ``meta.json`` (shapes,
    dtype, id range, digest); ``UserError`` if it is not a complete, intact one."""
    path = Path(path)
    meta = _read_meta(path)
    try:
        vocab = Vocab.load(path / VOCAB)
        train = np.load(path / TRAIN, mmap_mode="r")
        heldout = np.load(path / HELDOUT, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is an incomplete prepared corpus ({err}); {_HINT}") from None
    problem = _array_problem(meta, vocab, train, heldout)
    if problem:
        raise UserError(f"{path} is a damaged prepared corpus: {problem}; {_HINT}")
    return PreparedCorpus(
        key=meta["key"],
        path=path,
        vocab=vocab,
        train=train,
        heldout=heldout,
        meta=meta,
        fingerprint=meta["fingerprint"],
    )


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is not a prepared corpus (no {META}); {_HINT}") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path}/{META} cannot be read ({err}); {_HINT}") from None
    if isinstance(meta, dict) and meta.get("format") not in (None, CACHE_FORMAT):
        raise UserError(f"{path} holds a prepared corpus of another format; {_HINT}")
    problem = _shape_problem(meta, _META_SHAPE, META)
    if problem:
        raise UserError(f"{path}/{META} is not a prepared corpus's ({problem}); {_HINT}")
    return meta


def _shape_problem(value: Any, shape: Any, where: str) -> str | None:
    """Where ``value`` first differs from ``shape`` (a type, types, or a dict of shapes)."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for key, inner in shape.items():
            problem = _shape_problem(value.get(key), inner, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, bool) or not isinstance(value, shape):
        return f"{where} is {json.dumps(value)[:40]}"
    return None


def _array_problem(meta: dict, vocab: Vocab, train: np.ndarray, heldout: np.ndarray) -> str | None:
    """What is wrong with the arrays of a cache, read once: None when they are intact."""
    arrays = meta["arrays"]
    if list(train.shape) != arrays["train"] or list(heldout.shape) != arrays["heldout"]:
        return f"array shapes {train.shape} and {heldout.shape} differ from those in {META}"
    if train.ndim != 2 or heldout.shape[1:] != train.shape[1:]:
        return f"arrays of shapes {train.shape} and {heldout.shape} are not rows of ids"
    if train.dtype != vocab.dtype or heldout.dtype != vocab.dtype:
        return f"arrays of {train.dtype} and {heldout.dtype} for {len(vocab)} ids"
    if meta["vocab"]["size"] != len(vocab):
        return f"{VOCAB} has {len(vocab)} ids, {META} says {meta['vocab']['size']}"
    digest = new_digest(vocab, train.shape, heldout.shape)
    top = RESERVED - 1
    for data in (train, heldout):
        for piece in pieces(data):
            digest.update(piece)
            top = max(top, int(piece.max(initial=0)))
    if top >= len(vocab):
        return f"id {top} is beyond its vocabulary of {len(vocab)}"
    if digest.hexdigest() != meta["fingerprint"]:
        return f"its arrays or {VOCAB} are not those its {META} was written for"
    return None


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
