"""The interface of a corpus source: what ``prepare`` needs to read one and to name its cache.

A source module (``pydocs``, ``billion_words``, ``path``, ``hub``) defines a ``SourceKind``
that says which ``corpus`` values it takes and opens them as a ``Source``; ``registry`` lists
the kinds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textgan.corpus.reading import Blocks, Decoding

if TYPE_CHECKING:
    from textgan.corpus.config import CorpusConfig


@dataclass
class Source:
    """A resolved corpus: how to read it and what identifies it."""

    slug: str  # start of the cache folder's name
    identity: dict  # hashed into the cache key
    describe: str  # for messages and meta.json
    train: Callable[[Decoding], Blocks]
    heldout: Callable[[Decoding], Blocks] | None = None  # a separate held-out text, if any
    files: list[Path] = field(default_factory=list)  # stat()-ed to notice changed inputs
    heldout_limit: int | None = None  # rows of ``heldout`` to keep when ``holdout`` is unset
    progress_unit: str = "B"  # "B": progress_total counts bytes; "lines": lines
    progress_total: int | None = None
    check_available: Callable[[], None] = lambda: None  # UserError when it cannot be read now


@dataclass(frozen=True)
class SourceKind:
    """A kind of corpus: which ``corpus`` values it takes and how it opens them."""

    usage: str  # how to name it, for help and messages
    accepts: Callable[[str], bool]
    open: Callable[[CorpusConfig], Source]


def slug(text: str) -> str:
    """A short file-name-safe form of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48] or "corpus"
