"""The model card (``README.md``) of an exported model: Hugging Face front matter (library,
tags, license, datasets, model-index) and the run's real numbers, samples and command."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TAGS = ["text-generation", "gan", "wgan-gp", "character-level"]
LICENSE = "mit"
TASK = "text-generation"
# Hub dataset ids of the built-in corpora that come from the hub.
HUB_DATASETS = {"billion_words": "billion-word-benchmark/lm1b"}
# USER/NAME or NAME as the hub spells dataset ids (anything else after hf: is a local path).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class PublishedCorpus:
    """How an exported model names its training corpus: a hub dataset by its id, a built-in
    corpus by its name, a file of the trainer's machine by its file name alone."""

    name: str
    dataset: str | None  # the hub dataset id, None when the corpus is not on the hub
    local: bool  # a file or folder only its trainer has

    @classmethod
    def of(cls, corpus: str) -> PublishedCorpus:
        """The published form of a run's ``corpus.corpus`` value."""
        from textgan.corpus import SOURCES

        kind = next((name for name, k in SOURCES.items() if k.accepts(corpus)), "path")
        if kind == "hf":
            dataset = corpus[3:].split(":")[0]
            if _HUB_ID.match(dataset) and not Path(dataset).exists():
                return cls(corpus, dataset, local=False)
            return cls(_file_name(dataset), None, local=True)  # a local dataset folder
        if kind == "path":
            return cls(_file_name(corpus), None, local=True)
        return cls(corpus, HUB_DATASETS.get(corpus), local=False)


def _file_name(path: str) -> str:
    return Path(path.rstrip("/\\")).name or "corpus"


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states, read from the run or computed at export time."""

    name: str
    corpus: PublishedCorpus
    preset: str
    iteration: int
    iters: int
    elapsed_s: float
    device: str
    weights: str  # "ema" or "raw"
    parameters: int
    js_at_export: bool  # JS evaluated at export: the run logged none at this iteration
    js: Mapping[str, float]  # js1..4 and floor_js1..4 and n_samples
    scores: Mapping[
        str, Any
    ]  # textgan.metrics.scoring.score_lines' report of the exported generator
    samples: Sequence[str]
    command: str


def _eval_results(facts: CardFacts) -> list:
    from huggingface_hub import EvalResult

    corpus = facts.corpus
    named = [(f"js{n}", f"JS-{n} (bits)") for n in range(1, 5) if f"js{n}" in facts.js]
    values = [(key, name, facts.js[key]) for key, name in named]
    for key, name in (("lm_bits", "LM (bits/char)"), ("reverse_lm_bits", "reverse LM (bits)")):
        values.append((key, name, facts.scores.get(key)))
    values.append(("self_bleu4", "Self-BLEU-4", facts.scores.get("self_bleu4")))
    return [
        EvalResult(
            task_type=TASK,
            dataset_type=corpus.dataset or corpus.name,
            dataset_name=corpus.name,
            metric_type=key,
            metric_name=name,
            metric_value=value,
        )
        for key, name, value in values
        if value is not None
    ]


def front_matter(facts: CardFacts) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(
        library_name="textgan",
        license=LICENSE,
        tags=TAGS,
        datasets=[facts.corpus.dataset] if facts.corpus.dataset else None,
        pipeline_tag=TASK,
        model_name=facts.name,
        eval_results=_eval_results(facts),
    )
    return f"---\n{data.to_yaml()}\n---\n"


def fence(lines: Sequence[str]) -> str:
    """A code fence longer than any run of backticks in ``lines`` (samples are arbitrary)."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _table(facts: CardFacts) -> list[str]:
    rows = ["| metric | this model | real text (floor) |", "|---|---|---|"]
    for n in range(1, 5):
        js = facts.js.get(f"js{n}")
        rows.append(f"| JS-{n} (bits) | {_num(js)} | {_num(facts.js.get(f'floor_js{n}'))} |")
    s = facts.scores
    for key, name in (
        ("lm_bits", "LM (bits/char)"),
        ("reverse_lm_bits", "reverse LM (bits/char)"),
        ("self_bleu4", "Self-BLEU-4"),
    ):
        rows.append(f"| {name} | {_num(s.get(key))} | {_num(s.get(f'floor_{key}'))} |")
    return rows


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{seconds / 60:.1f} min"


def render_card(facts: CardFacts) -> str:
    """The whole ``README.md``."""
    weights = "EMA average of the generator" if facts.weights == "ema" else "trained generator"
    n = facts.js["n_samples"]
    js_from = (
        f"{n} argmax samples of these weights on the run's evaluation noise, computed at export "
        f"(the run logged no evaluation at iteration {facts.iteration:,})"
        if facts.js_at_export
        else f"the run's evaluation at iteration {facts.iteration:,}, N = {n}"
    )
    n_scored = facts.scores.get("n_samples")
    lines = [
        f"# {facts.name}",
        "",
        f"A character-level WGAN-GP text generator (Gulrajani et al. 2017) trained with "
        f"textgan on `{facts.corpus.name}`: preset "
        f"`{facts.preset}`, {facts.iteration:,} of {facts.iters:,} iterations, "
        f"{_duration(facts.elapsed_s)} on {facts.device}; {facts.parameters:,} parameters, "
        f"weights: {weights}.",
        "",
        "## Evaluation",
        "",
        f"JS-n from {js_from}; LM, reverse LM and Self-BLEU of {n_scored} argmax samples "
        "(seed 0) of these weights, computed at export; each beside real held-out text of the "
        "same size.",
        "",
        *_table(facts),
        "",
        "## Samples",
        "",
        fence(facts.samples),
        *facts.samples,
        fence(facts.samples),
        "",
        "## Use",
        "",
        "```python",
        "import textgan",
        "",
        f'generator = textgan.from_pretrained("{facts.name}")',
        "```",
        "",
        "```bash",
        f"textgan sample --model {facts.name} -n 10",
        f"textgan sample --model {facts.name} -n 640 --out samples.txt && "
        f"textgan score samples.txt --model {facts.name}",
        "```",
        "",
        "## Reproduce the run",
        "",
        "```bash",
        facts.command or "(the command was not recorded)",
        "```",
        "",
    ]
    return front_matter(facts) + "\n".join(lines)
