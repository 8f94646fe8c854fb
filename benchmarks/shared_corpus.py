"""Where the benchmarks find the genuine One Billion Word held-out shards (never copied here)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GBW = Path(
    os.environ.get("TEXTGAN_GBW_HELDOUT", ROOT.parent / "shared" / "corpora" / "gbw-heldout")
)
SHARDS = ("news.en.heldout-00010-of-00050", "news.en.heldout-00011-of-00050")
