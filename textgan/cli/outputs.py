"""``textgan sample``, ``score``, ``plot`` and ``sweep``: what a trained run gives."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import click

from textgan.cli.base import main
from textgan.cli.options import seed_option
from textgan.errors import UserError

if TYPE_CHECKING:
    import torch

    from textgan.config import ModelConfig


def _generation_options(command):
    """--batch-size and --device, shared by the commands that run a generator."""
    command = click.option(
        "--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] | mps."
    )(command)
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=1024,
        show_default=True,
        help="Samples generated at a time.",
    )(command)


@main.command()
@click.option(
    "-n", "n", type=click.IntRange(min=1), default=100, show_default=True, help="Number of samples."
)
@click.option("--run", "run_dir", type=click.Path(), help="Run directory [the latest in runs/].")
@click.option("--checkpoint", type=click.Path(), help="A checkpoint directory (or file in it).")
@click.option("--model", help="An exported model: its folder or a hub id (hf:USER/NAME).")
@click.option("--baseline", help="Sample a baseline instead of a generator: kn5 (with --corpus).")
@click.option("--corpus", help="Corpus the baseline is fit on (name, path or hf:ID).")
@click.option("--data-dir", default="data", show_default=True, help="Folder of corpus caches.")
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    help="Sample each position from softmax(logits / T) [argmax, as the paper].",
)
@click.option(
    "--truncation",
    type=click.FloatRange(min=0, min_open=True),
    help="Redraw noise components beyond ±TAU inside it: less diverse as TAU shrinks [none].",
)
@seed_option("Seed of the noise and of temperature sampling (sample i depends on it and i).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here (atomically) [stdout].")
@_generation_options
@click.option(
    "--raw", is_flag=True, help="The trained weights, not their average (EMA) [the average]."
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def sample(
    n: int,
    run_dir: str | None,
    checkpoint: str | None,
    model: str | None,
    baseline: str | None,
    corpus: str | None,
    data_dir: str,
    temperature: float | None,
    truncation: float | None,
    seed: int,
    out: str | None,
    batch_size: int,
    device: str,
    raw: bool,
    progress: bool,
) -> None:
    """Write N samples of a trained generator, one per line (trailing padding removed); with
    --baseline kn5 --corpus X, of the Kneser-Ney 5-gram model of X's training split (T = 1
    unless --temperature: its argmax would repeat one line)."""
    from textgan.files import rundir
    from textgan.generation import sampling

    if baseline is not None or corpus is not None:
        if run_dir or checkpoint or model:
            raise UserError("give either --baseline or --run/--checkpoint/--model, not both")
        if truncation is not None:
            raise UserError("--truncation acts on a generator's noise; a baseline has none")
        write_lines(
            baseline_lines(baseline, corpus, data_dir, n, temperature, seed, batch_size, progress),
            out,
        )
        return
    if sum(x is not None for x in (run_dir, checkpoint, model)) > 1:
        raise UserError("give one of --run, --checkpoint or --model, not several")
    if model is not None:
        from textgan.sharing.hub import load_model

        generator = load_model(model, device, raw=raw)
        vocab = generator.vocab
    else:
        source = checkpoint or run_dir or rundir.find_latest_run("runs")
        generator, vocab, _ = sampling.load_generator(source, device, raw=raw)
    check_sample_memory(generator.cfg, min(n, batch_size), next(generator.parameters()).device)
    batches = sampling.sample_text(
        generator,
        vocab,
        n,
        temperature=temperature,
        truncation=truncation,
        seed=seed,
        batch_size=batch_size,
    )
    write_lines(batches, out)


def baseline_lines(
    baseline: str | None,
    corpus: str | None,
    data_dir: str,
    n: int,
    temperature: float | None,
    seed: int,
    batch_size: int,
    progress: bool,
) -> Iterator[list[str]]:
    """Batches of lines of ``baseline`` fit on ``corpus`` (both needed)."""
    from textgan.generation.baseline import baseline_sampler
    from textgan.metrics.scoring import Target, target_corpus

    if baseline is None or corpus is None:
        raise UserError("--baseline and --corpus go together: --baseline kn5 --corpus NAME")
    prepared = target_corpus(Target(corpus=corpus, data_dir=data_dir), progress)
    sampler = baseline_sampler(baseline, prepared, progress)
    return sampler.lines(prepared.vocab, n, temperature or 1.0, seed, batch_size)


def write_lines(batches: Iterable[list[str]], out: str | None) -> None:
    """Write batches of lines to ``out`` atomically, or stream them to stdout."""
    from textgan import files

    if out is None:
        try:
            for lines in batches:
                sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
        except BrokenPipeError:  # `textgan sample | head`: the reader has all it wanted
            sys.stderr.close()
        return
    with files.atomic_open(out, "w", encoding="utf-8") as fh:
        for lines in batches:
            fh.write("".join(line + "\n" for line in lines))


@main.command()
@click.argument("samples", required=False)
@click.option("--corpus", help="Score against this prepared corpus (name, path or hf:ID).")
@click.option("--run", "run_dir", help="Score against the corpus of this run directory.")
@click.option("--model", help="Score against the corpus of this exported model (or hf:USER/NAME).")
@click.option("--reference", help="Score against a plain text file, one line per sentence.")
@click.option(
    "-n",
    "--n-samples",
    type=click.IntRange(min=1),
    help="Samples scored (and real lines) [640, or the whole held-out split when smaller].",
)
@click.option("--ngrams", default=4, show_default=True, help="Largest n of JS-n (1..8).")
@click.option(
    "--seq-len",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Sequence length of --reference.",
)
@seed_option("Seed of the real held-out lines.")
@click.option("--data-dir", default="data", show_default=True, help="Folder of corpus caches.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--real", is_flag=True, help="Score N real held-out lines only: the floor.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def score(
    samples: str | None,
    corpus: str | None,
    run_dir: str | None,
    model: str | None,
    reference: str | None,
    n_samples: int | None,
    ngrams: int,
    seq_len: int,
    seed: int,
    data_dir: str,
    as_json: bool,
    real: bool,
    progress: bool,
) -> None:
    """Score SAMPLES (one per line, '-' for stdin): JS-1..n, LM scores, BLEU, Self-BLEU,
    diversity and known words, each beside the same metric of N real held-out lines (the
    floor)."""
    import json

    from textgan.metrics.ngrams import MAX_ORDER
    from textgan.metrics.reference import PAPER_N_SAMPLES
    from textgan.metrics.report import Scorer, encode_samples, format_table, read_lines
    from textgan.metrics.scoring import Target, target_corpus

    if sum(x is not None for x in (corpus, run_dir, model, reference)) != 1:
        raise UserError("say what to score against: one of --corpus, --run, --model or --reference")
    if real == (samples is not None):
        raise UserError("give a SAMPLES file (or '-' for stdin), or --real for the floor alone")
    if not 1 <= ngrams <= MAX_ORDER:
        raise UserError(f"--ngrams must be between 1 and {MAX_ORDER} (got {ngrams})")
    lines = None if real else read_lines(samples, "samples file")
    if reference is not None:
        n = n_samples or PAPER_N_SAMPLES
        n = n if lines is None else min(n, len(lines))
        ref_lines = read_lines(reference, "reference file")
        scorer = Scorer.from_lines(ref_lines, f"reference {reference}", seq_len, n, ngrams, seed)
    elif model is not None:
        from textgan.sharing.hub import model_corpus

        scorer = Scorer.from_prepared(model_corpus(model, data_dir, progress), ngrams, progress)
    else:
        target = Target(corpus=corpus, run=run_dir, data_dir=data_dir)
        prepared = target_corpus(target, progress)
        scorer = Scorer.from_prepared(prepared, ngrams, progress)
    # The paper's N = 640 unless the held-out split is smaller; an explicit -n is never lowered.
    n_samples = n_samples or min(PAPER_N_SAMPLES, len(scorer.heldout))
    encoded = None
    if lines is not None:
        encoded = encode_samples(lines[:n_samples], scorer.vocab, scorer.seq_len)
    report = scorer.report(encoded, n_samples, ngrams, seed)
    click.echo(json.dumps(report) if as_json else format_table(report, real_only=real))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Folder for the PNGs. Default: RUN_DIR/plots for one run, ./plots for several.",
)
def plot(run_dirs: tuple[str, ...], out: str | None) -> None:
    """Draw PNG figures of one or more runs (several runs overlaid, named by constraint).

    W estimate and losses against iterations and wall-clock time, JS-1..4 with their floors,
    and, where the run logged diagnostics, the critic weight histogram, per-layer gradient norms
    and input-gradient norms.
    """
    from textgan.plots import plot_runs

    for path in plot_runs(run_dirs, out):
        click.echo(path)


@main.command()
@click.argument("sources", nargs=-1)
@click.option("--baseline", "baselines", multiple=True, help="Also sweep this baseline (kn5).")
@click.option("--corpus", required=True, help="Score against this corpus (name, path or hf:ID).")
@click.option(
    "--temperatures",
    default="0.5,0.7,0.9,1.0,1.2",
    show_default=True,
    help="Comma-separated temperatures, each > 0 (runs are also sampled by argmax).",
)
@click.option(
    "--truncations",
    default="2,1,0.5,0.25,0.1",
    show_default=True,
    help="Comma-separated noise truncations, each > 0: a run's argmax curve.",
)
@click.option(
    "-n",
    "n",
    type=click.IntRange(min=1),
    help="Samples per set (and real lines) [640, at most half the held-out split].",
)
@seed_option("Seed of all draws.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder [RUN/sweep, or ./sweep].")
@click.option("--data-dir", default="data", show_default=True, help="Folder of corpus caches.")
@_generation_options
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def sweep(
    sources: tuple[str, ...],
    baselines: tuple[str, ...],
    corpus: str,
    temperatures: str,
    truncations: str,
    n: int | None,
    seed: int,
    out: str | None,
    data_dir: str,
    batch_size: int,
    device: str,
    progress: bool,
) -> None:
    """Quality against diversity: sample each SOURCE (a run directory, a checkpoint or kn5) at
    each setting, score every set against one corpus and write sweep.json, sweep.md and
    sweep.png (LM score against reverse LM score, the real lines' point, and a curve per source
    and knob: a run's argmax over --truncations and its --temperatures, kn5's temperatures)."""
    from textgan.metrics.scoring import Target
    from textgan.plots.style import ensure_writable_dir
    from textgan.studies.sweep import (
        default_out,
        open_sources,
        parse_temperatures,
        parse_truncations,
        run_sweep,
        write_sweep,
    )

    temps, truncs = parse_temperatures(temperatures), parse_truncations(truncations)
    names = [*sources, *baselines]
    # Checked before the minutes of fitting, sampling and scoring, not after them.
    folder = ensure_writable_dir(out or default_out(names), "the sweep")
    target = Target(corpus=corpus, data_dir=data_dir)
    opened = open_sources(names, target, device, batch_size, progress)
    result = run_sweep(opened, temps, target, n, seed, progress, truncs)
    for path in write_sweep(result, folder):
        click.echo(path)


def sample_batch_bytes(model: ModelConfig, batch: int) -> int:
    """Rough peak bytes of one sampling batch of a generator of config ``model``: the noise,
    a few (dim, L) activations at once (inference mode frees the rest) and the logits with
    their softmax and transposed copies (temperature sampling), all 4-byte floats."""
    per_sample = model.noise_dim + model.seq_len * 4 * (model.dim + model.vocab_size)
    return 4 * batch * per_sample


def check_sample_memory(model: ModelConfig, batch: int, device: torch.device) -> None:
    """UserError, before anything is allocated, for a batch that cannot fit on ``device``."""
    from textgan.devices import device_memory

    need, have = sample_batch_bytes(model, batch), device_memory(device)
    if have is None or need <= have:
        return
    fits = max(1, have // sample_batch_bytes(model, 1))
    raise UserError(
        f"--batch-size {batch:,} needs about {need / 2**30:,.0f} GiB at once, more than the "
        f"{have / 2**30:,.0f} GiB of {device.type}; use --batch-size {min(1024, fits):,} "
        f"(at most {fits:,} fit)"
    )
