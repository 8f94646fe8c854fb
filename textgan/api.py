"""The Python API in a few calls, the same steps as the CLI::

    import textgan

    corpus = textgan.prepare("pydocs")
    result = textgan.fit("pydocs", preset="tiny", train={"iters": 200})
    lines = textgan.sample(result.run_dir, n=10)
    report = textgan.score(lines, run=result.run_dir)

Each section argument (``model``, ``lipschitz``, ``train``, and ``corpus`` as a dict) takes
field values by name, layered over the preset as the CLI's flags are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgan.config import layered_config
from textgan.corpus import CorpusConfig, PreparedCorpus
from textgan.corpus import prepare as prepare_corpus


def prepare(corpus: str = "pydocs", *, progress: bool = False, **settings: Any) -> PreparedCorpus:
    """Prepare (or open from its cache) a corpus: ``prepare("billion_words", seq_len=32)``."""
    return prepare_corpus(CorpusConfig(corpus=corpus, **settings), progress=progress)


def fit(
    corpus: str | Mapping[str, Any] = "pydocs",
    *,
    preset: str = "small",
    config_file: str | Path | None = None,
    model: Mapping[str, Any] | None = None,
    lipschitz: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    progress: bool = False,
):
    """Train a new run to its last iteration; returns ``train.TrainResult``."""
    from textgan.training import loop as training
    from textgan.training import setup

    corpus_values = {"corpus": corpus} if isinstance(corpus, str) else dict(corpus)
    overrides = {
        "corpus": corpus_values,
        "model": dict(model or {}),
        "lipschitz": dict(lipschitz or {}),
        "train": dict(train or {}),
    }
    layers = layered_config(preset, config_file, overrides)
    config, prepared = setup.resolve_run_config(layers, progress=progress)
    return training.train(config, prepared, progress=progress)


def resume(run_dir: str | Path, *, progress: bool = False, **train_overrides: Any):
    """Continue a run from its newest checkpoint (``iters=N`` to extend a finished one)."""
    from textgan.training import loop as training

    return training.resume(run_dir, train_overrides, progress=progress)


def load_generator(source: str | Path, device: str = "auto", *, raw: bool = False):
    """The generator of a run or checkpoint and its vocabulary, ``(generator, vocab)``: the
    weight average (EMA) where the run kept one, the trained weights with ``raw``."""
    from textgan.generation import sampling

    generator, vocab, _ = sampling.load_generator(source, device, raw=raw)
    return generator, vocab


def sample(
    source: str | Path,
    n: int = 100,
    *,
    temperature: float | None = None,
    truncation: float | None = None,
    seed: int = 0,
    raw: bool = False,
) -> list[str]:
    """``n`` samples of a run or checkpoint as strings: argmax unless ``temperature``, from
    plain noise unless ``truncation`` (noise components beyond ±truncation redrawn inside it:
    fewer distinct lines as it shrinks), the weight average unless ``raw``. Sample i depends on
    ``seed`` and i only."""
    from textgan.generation import sampling

    generator, vocab, _ = sampling.load_generator(source, raw=raw)
    batches = sampling.sample_text(
        generator, vocab, n, temperature=temperature, truncation=truncation, seed=seed
    )
    return [line for batch in batches for line in batch]


def score(
    samples: Sequence[str],
    *,
    corpus: str | None = None,
    run: str | Path | None = None,
    n: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every registered metric of ``samples`` beside its real-vs-real floor, as ``textgan score
    --json`` prints it; against ``corpus`` (a name or path) or the corpus of ``run``."""
    from textgan.metrics.scoring import Target, score_lines

    return score_lines(list(samples), Target(corpus=corpus, run=run), n=n, seed=seed)
