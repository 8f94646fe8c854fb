"""``textgan sample``, ``textgan score`` and ``textgan plot``: what a trained run gives."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from textgan.cli.base import main
from textgan.errors import UserError

if TYPE_CHECKING:
    import torch

    from textgan.config import ModelConfig


@main.command()
@click.option(
    "-n", "n", type=click.IntRange(min=1), default=100, show_default=True, help="Number of samples."
)
@click.option("--run", "run_dir", type=click.Path(), help="Run directory [the latest in runs/].")
@click.option("--checkpoint", type=click.Path(), help="A checkpoint directory (or file in it).")
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    help="Sample each position from softmax(logits / T) [argmax, as the paper].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the noise (and of temperature sampling).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here (atomically) [stdout].")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Samples generated at a time.",
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] | mps.")
def sample(
    n: int,
    run_dir: str | None,
    checkpoint: str | None,
    temperature: float | None,
    seed: int,
    out: str | None,
    batch_size: int,
    device: str,
) -> None:
    """Write N samples of a trained generator, one per line (trailing padding removed)."""
    from textgan import rundir, sampling

    if run_dir and checkpoint:
        raise UserError("give either --run or --checkpoint, not both")
    source = checkpoint or run_dir or rundir.find_latest_run("runs")
    generator, vocab, _ = sampling.load_generator(source, device)
    check_sample_memory(generator.cfg, min(n, batch_size), next(generator.parameters()).device)
    batches = sampling.sample_text(
        generator, vocab, n, temperature=temperature, seed=seed, batch_size=batch_size
    )
    if out is None:
        try:
            for lines in batches:
                sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
        except BrokenPipeError:  # `textgan sample | head`: the reader has all it wanted
            sys.stderr.close()
        return
    with rundir.atomic_open(out, "w", encoding="utf-8") as fh:
        for lines in batches:
            fh.write("".join(line + "\n" for line in lines))


@main.command()
@click.argument("samples", required=False)
@click.option("--corpus", help="Score against this prepared corpus (name, path or hf:ID).")
@click.option("--run", "run_dir", help="Score against the corpus of this run directory.")
@click.option("--reference", help="Score against a plain text file, one line per sentence.")
@click.option(
    "-n",
    "--n-samples",
    type=click.IntRange(min=1),
    help="Samples scored (and real lines) [640, or the whole held-out split when smaller].",
)
@click.option("--ngrams", default=4, show_default=True, help="Largest n of JS-n (1..6).")
@click.option(
    "--seq-len",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Sequence length of --reference.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**64 - 1),
    default=0,
    show_default=True,
    help="Seed of the real held-out lines (64 bits).",
)
@click.option("--data-dir", default="data", show_default=True, help="Folder of corpus caches.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--real", is_flag=True, help="Score N real held-out lines only: the floor.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def score(
    samples: str | None,
    corpus: str | None,
    run_dir: str | None,
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
    from textgan.scoring import Target, target_corpus

    if sum(x is not None for x in (corpus, run_dir, reference)) != 1:
        raise UserError("say what to score against: one of --corpus, --run or --reference")
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


def sample_batch_bytes(model: ModelConfig, batch: int) -> int:
    """Rough peak bytes of one sampling batch of a generator of config ``model``: the noise,
    a few (dim, L) activations at once (inference mode frees the rest) and the logits with
    their softmax and transposed copies (temperature sampling), all 4-byte floats."""
    per_sample = model.noise_dim + model.seq_len * 4 * (model.dim + model.vocab_size)
    return 4 * batch * per_sample


def check_sample_memory(model: ModelConfig, batch: int, device: torch.device) -> None:
    """UserError, before anything is allocated, for a batch that cannot fit on ``device``."""
    from textgan.memory import device_memory

    need, have = sample_batch_bytes(model, batch), device_memory(device)
    if have is None or need <= have:
        return
    fits = max(1, have // sample_batch_bytes(model, 1))
    raise UserError(
        f"--batch-size {batch:,} needs about {need / 2**30:,.0f} GiB at once, more than the "
        f"{have / 2**30:,.0f} GiB of {device.type}; use --batch-size {min(1024, fits):,} "
        f"(at most {fits:,} fit)"
    )
