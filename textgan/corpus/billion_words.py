"""``billion_words``: a local copy of the One Billion Word benchmark under ``data_dir`` or
``$TEXTGAN_DATA``, read as the reference did (training files 01..99 in order, the benchmark's
own held-out file); without one, the hub's parquet conversion of ``lm1b``, streamed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from textgan.corpus.hub import hub_blocks, hub_problem
from textgan.corpus.reading import Blocks, Decoding, read_files
from textgan.corpus.source import Source, SourceKind, SourceSettings
from textgan.errors import UserError

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


def _roots(cfg: SourceSettings) -> list[Path]:
    places = [Path(cfg.data_dir).expanduser()]
    if os.environ.get("TEXTGAN_DATA"):
        places.append(Path(os.environ["TEXTGAN_DATA"]).expanduser())
    return [p for place in places for p in (place / BW_ROOT, place)]


def _open(cfg: SourceSettings) -> Source:
    roots = _roots(cfg)
    root = next((r for r in roots if (r / BW_TRAIN.format(1)).is_file()), None)
    if root is not None:
        return _local(root.resolve(), cfg.max_lines)
    base = os.environ.get(LM1B_BASE_ENV, LM1B_BASE)
    where = ", ".join(sorted({str(r) for r in roots}))

    def check() -> None:
        if base.startswith("hf://"):
            problem = hub_problem()
            if problem:
                raise UserError(
                    f"billion_words: no local copy (looked in {where}) and the Hugging Face hub "
                    f"is not reachable ({problem}); download {BW_URL} and extract it into "
                    f"{cfg.data_dir}/ (or set TEXTGAN_DATA), or go online"
                )

    def load(split: str) -> Callable[[Decoding], Blocks]:
        files = {split: f"{base.rstrip('/')}/plain_text/{split}/*.parquet"}
        return lambda decoding: hub_blocks(
            {"path": "parquet", "data_files": files}, split, "text", f"lm1b ({base})"
        )

    return Source(
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


def _local(root: Path, max_lines: int) -> Source:
    train = [root / BW_TRAIN.format(i) for i in range(1, 100)]
    train = [f for f in train if f.is_file()]
    heldout = root / BW_HELDOUT
    if not heldout.is_file():
        raise UserError(
            f"billion_words: {heldout} is missing; extract the whole benchmark ({BW_URL})"
        )
    return Source(
        slug="billion_words",
        identity={"billion_words": "local", "root": str(root)},
        describe=f"One Billion Word benchmark at {root}",
        train=lambda decoding: read_files(train, decoding),
        heldout=lambda decoding: read_files([heldout], decoding),
        files=[*train, heldout],
        progress_unit="lines",
        progress_total=max_lines,
    )


KIND = SourceKind(usage="billion_words", accepts=lambda name: name == "billion_words", open=_open)
