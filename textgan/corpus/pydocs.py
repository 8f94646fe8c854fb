"""``pydocs``: the prose of the documentation bundled with Python, one sentence per line; no
download, so every test and first try has real text at hand."""

from __future__ import annotations

import hashlib
import re

from textgan.corpus.source import Source, SourceKind, SourceSettings


def pydocs_sentences() -> list[str]:
    """Sentences of the prose paragraphs of ``pydoc_data.topics``, in topic order.

    Code samples, grammar rules and headings are left out: a paragraph counts as prose when it
    holds no interpreter prompt or grammar rule, is mostly letters and ends like a sentence.
    """
    from pydoc_data.topics import topics

    sentences = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
            text = " ".join(lines)
            if not text or "::=" in text or any(ln.startswith((">>>", "...")) for ln in lines):
                continue
            wordy = sum(c.isalpha() or c in " \"',.()" for c in text)
            if wordy < 0.85 * len(text) or not re.search(r"[a-z]{3}.*[.:?!]$", text):
                continue
            parts = re.split(r"(?<=[.!?:])\s+(?=[A-Z\"(*])", text)
            sentences.extend(s for s in parts if len(s) >= 12)
    return sentences


def _open(cfg: SourceSettings) -> Source:
    text = "\n".join(pydocs_sentences())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return Source(
        slug="pydocs",
        identity={"pydocs": digest},
        describe="prose of Python's bundled documentation (pydoc_data.topics)",
        train=lambda decoding: iter([(text, len(text))]),
        progress_total=len(text),
    )


KIND = SourceKind(usage="pydocs", accepts=lambda name: name == "pydocs", open=_open)
