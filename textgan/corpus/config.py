"""The corpus section of a config: what to read and how to turn it into arrays.

Each field is declared once with its default, help and range (``textgan.settings``); the CLI
builds the corpus flags of ``prepare`` and ``train`` from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from textgan.corpus.registry import usage
from textgan.settings import SettingError, check_settings, setting
from textgan.vocab import RESERVED, TOKEN_KINDS

ENCODING_ERRORS = ("strict", "replace")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class CorpusConfig:
    """What to read and how to turn it into arrays; everything but ``data_dir`` is in the key."""

    corpus: str = setting("pydocs", f"{usage()}.")
    seq_len: int = setting(32, "Symbols kept per line.", minimum=2)
    tokens: str = setting("chars", "Characters or UTF-8 bytes.", choices=TOKEN_KINDS)
    max_vocab: int = setting(
        256, "Largest vocabulary, PAD and UNK included.", minimum=RESERVED + 1, maximum=65536
    )
    max_lines: int = setting(10_000_000, "Read at most this many lines.", minimum=1)
    holdout: int | None = setting(
        None,
        "Lines held out; unset: min(10,000, 10 %), or billion_words' own held-out file.",
        minimum=0,
    )
    seed: int = setting(0, "Seed of the corpus shuffle and split.", minimum=0, maximum=MAX_SEED)
    text_column: str = setting("text", "Column of a hub dataset that holds the text.")
    encoding_errors: str = setting(
        "strict",
        "Invalid UTF-8: stop with its line number, or replace it by U+FFFD.",
        choices=ENCODING_ERRORS,
    )
    data_dir: str = setting("data", "Folder of corpus caches (and of a local Billion Word copy).")

    def validate(self) -> None:
        """SettingError for a field outside its range or choices, or an empty ``corpus``."""
        check_settings(self, "corpus")
        if not self.corpus.strip():
            raise SettingError("corpus.corpus", f"is empty; name {usage(' or ', ', ')}")

    def settings(self) -> dict:
        """The settings that shape the arrays, apart from the source itself (``data_dir`` only
        says where they live; the text column matters only to ``hf:`` datasets)."""
        out = asdict(self)
        del out["corpus"], out["data_dir"]
        if not self.corpus.startswith("hf:"):
            del out["text_column"]
        return out
