"""``hf:ID[:CONFIG]``: any Hugging Face hub dataset (or local dataset folder) with a text
column, streamed; ``datasets`` is imported only when one is read."""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from pathlib import Path

from textgan.corpus.reading import Blocks, lf_only
from textgan.corpus.source import Source, SourceKind, SourceSettings, slug
from textgan.errors import UserError

HUB_BATCH = 8192
NETWORK_TIMEOUT_S = 3.0


def offline_mode() -> bool:
    flags = (os.environ.get(v, "").lower() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


def hub_problem() -> str | None:
    """Why the hub cannot be reached, found out within a few seconds; None when it can."""
    if offline_mode():
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


def hub_blocks(kwargs: dict, split: str, column: str, label: str) -> Blocks:
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
        yield lf_only(text), len(rows)


def _require_column(column: str, columns: list[str], label: str) -> None:
    if column not in columns:
        have = ", ".join(columns)
        raise UserError(f"{label} has no column {column!r} (it has: {have}); pass --text-column")


def _open(cfg: SourceSettings) -> Source:
    dataset, _, config = cfg.corpus[3:].partition(":")
    if not dataset:
        raise UserError(f"{cfg.corpus!r} names no dataset; write hf:ID or hf:ID:CONFIG")
    kwargs = {"path": dataset, **({"name": config} if config else {})}

    def check() -> None:
        if not offline_mode() and not Path(dataset).exists():  # a local folder needs no hub
            problem = hub_problem()
            if problem:
                raise UserError(
                    f"{cfg.corpus}: the Hugging Face hub is not reachable ({problem}); go online, "
                    "or set HF_DATASETS_OFFLINE=1 to read it from the local datasets cache"
                )

    return Source(
        slug=slug("hf-" + cfg.corpus[3:]),
        identity={"hf": dataset, "config": config or None},
        describe=f"hub dataset {dataset}" + (f" ({config})" if config else ""),
        train=lambda decoding: hub_blocks(kwargs, "train", cfg.text_column, cfg.corpus),
        progress_unit="lines",
        progress_total=cfg.max_lines,
        check_available=check,
    )


KIND = SourceKind(usage="hf:ID[:CONFIG]", accepts=lambda name: name.startswith("hf:"), open=_open)
