"""The corpus sources, in the order they are asked whether they take a ``corpus`` value.

A new source is one module that defines a ``SourceKind`` and one line here.
"""

from __future__ import annotations

from textgan.corpus import billion_words, hub, path, pydocs
from textgan.corpus.source import Source, SourceKind, SourceSettings
from textgan.errors import UserError

SOURCES: dict[str, SourceKind] = {
    "billion_words": billion_words.KIND,
    "pydocs": pydocs.KIND,
    "hf": hub.KIND,
    "path": path.KIND,  # last: it takes anything that looks like a path
}


def usage(last: str = " | ", between: str = " | ") -> str:
    """The kinds of ``corpus`` value, e.g. ``billion_words | pydocs | ...``."""
    names = [kind.usage for kind in SOURCES.values()]
    return between.join(names[:-1]) + last + names[-1]


def resolve(cfg: SourceSettings) -> Source:
    """The source that takes ``cfg.corpus``, opened; UserError when none does."""
    for kind in SOURCES.values():
        if kind.accepts(cfg.corpus):
            return kind.open(cfg)
    raise UserError(f"unknown corpus {cfg.corpus!r}; use {usage(' or ', ', ')}")
