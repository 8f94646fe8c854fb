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
from typing import Protocol

from textgan.corpus.reading import Blocks, Decoding


class SourceSettings(Protocol):
    """What a source reads of the corpus settings (``CorpusConfig`` has them): sources sit
    below the config, whose help lists them, so they name no config class."""

    @property
    def corpus(self) -> str: ...

    @property
    def data_dir(self) -> str: ...

    @property
    def max_lines(self) -> int: ...

    @property
    def text_column(self) -> str: ...


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
    open: Callable[[SourceSettings], Source]


def slug(text: str) -> str:
    """A short file-name-safe form of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48] or "corpus"
