"""Corpora to cached id arrays: read a source, keep the first ``seq_len`` symbols of each line,
shuffle, split train / held-out, build the vocabulary from the training split, save.

Sources (``CorpusConfig.corpus``), one module each, listed in ``registry.SOURCES``:
``billion_words``, ``pydocs``, ``hf:ID[:CONFIG]`` (``hub``) and a text file or folder
(``path``). Reading is ``reading``; rows of provisional ids ``rows``; the split, vocabulary and
final ids ``ids``; writing a cache folder ``build``; the folder's files and their checks
``store``; keys, reuse and putting a folder in place ``cache``.

Nothing here imports torch, datasets or pyarrow at import time: ``textgan --help`` stays fast.
"""

from textgan.corpus.billion_words import BW_HELDOUT, BW_ROOT, BW_TRAIN, BW_URL, LM1B_BASE_ENV
from textgan.corpus.cache import corpus_key, prepare
from textgan.corpus.config import ENCODING_ERRORS, CorpusConfig
from textgan.corpus.pydocs import pydocs_sentences
from textgan.corpus.registry import SOURCES, resolve
from textgan.corpus.source import Source, SourceKind
from textgan.corpus.store import PreparedCorpus, load_prepared, summary

__all__ = [
    "BW_HELDOUT",
    "BW_ROOT",
    "BW_TRAIN",
    "BW_URL",
    "ENCODING_ERRORS",
    "LM1B_BASE_ENV",
    "SOURCES",
    "CorpusConfig",
    "PreparedCorpus",
    "Source",
    "SourceKind",
    "corpus_key",
    "load_prepared",
    "prepare",
    "pydocs_sentences",
    "resolve",
    "summary",
]
