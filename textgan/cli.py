"""The ``textgan`` command line.

Each command parses its options and hands off to the module that does the work; heavy imports
(torch, datasets) happen inside the commands so ``textgan --help`` answers at once. A
``UserError`` or a bad option is printed as one line and exits with status 2.
"""

from __future__ import annotations

import sys

import click

from textgan.errors import UserError


class _Group(click.Group):
    """A click group that reports user mistakes on one line, exit status 2, no traceback."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args, prog_name or "textgan", standalone_mode=False, **extra)
        except UserError as err:
            _fail(str(err))
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            _fail(f"{err.format_message()}{hint}")
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("textgan: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"textgan: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textgan")
def main() -> None:
    """Character-level text GANs: prepare a corpus, train, sample, score."""


# Corpus flags shared by `prepare` (with these defaults) and `train` (unset by default: the
# preset and --config decide, and the default is shown in the help).
_CORPUS_FLAGS: list[tuple[str, dict, object, str]] = [
    ("--corpus", {}, "pydocs", "billion_words | pydocs | a text file or folder | hf:ID[:CONFIG]."),
    ("--data-dir", {}, "data", "Folder of corpus caches (and of a local Billion Word copy)."),
    ("--seq-len", {"type": int}, 32, "Symbols kept per line."),
    ("--tokens", {"type": click.Choice(["chars", "bytes"])}, "chars", "Characters or UTF-8 bytes."),
    ("--max-vocab", {"type": int}, 256, "Largest vocabulary, PAD and UNK included."),
    ("--max-lines", {"type": int}, 10_000_000, "Read at most this many lines."),
    ("--holdout", {"type": int}, None, "Lines held out [min(10,000, 10 %); billion_words: own]."),
    ("--text-column", {}, "text", "Column of a hub dataset that holds the text."),
    (
        "--encoding-errors",
        {"type": click.Choice(["strict", "replace"])},
        "strict",
        "Invalid UTF-8: stop with its line number, or replace it by U+FFFD.",
    ),
]  # fmt: skip


def _corpus_options(with_defaults: bool):
    """Add the corpus flags to a command, with their defaults or unset (None)."""

    def decorate(command):
        for flag, extra, default, text in reversed(_CORPUS_FLAGS):
            if with_defaults:
                shown = default is not None
                option = click.option(flag, default=default, show_default=shown, help=text, **extra)
            else:
                hint = f" [{default:,}]" if isinstance(default, int) else f" [{default}]"
                option = click.option(
                    flag, help=text + (hint if default is not None else ""), **extra
                )
            command = option(command)
        return command

    return decorate


@main.command()
@_corpus_options(with_defaults=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the shuffle and the split.")
@click.option("--force", is_flag=True, help="Rebuild even when a matching cache exists.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def prepare(force: bool, progress: bool, **options) -> None:
    """Read a corpus, cut each line to --seq-len symbols, split, and cache the id arrays
    under --data-dir (reused when source and settings match)."""
    from textgan.corpus import CorpusConfig, summary
    from textgan.corpus import prepare as prepare_corpus

    prepared = prepare_corpus(CorpusConfig(**options), force=force, progress=progress)
    click.echo(summary(prepared))


# Flags of `textgan train` by the config section they set; a flag sets the field of its own
# name except where _FIELD_OF renames it.
_TRAIN_SECTIONS = {
    "corpus": (
        "corpus", "data_dir", "seq_len", "tokens", "max_vocab", "max_lines", "holdout",
        "corpus_seed", "text_column", "encoding_errors",
    ),
    "model": ("dim", "blocks", "kernel", "res_scale", "noise_dim", "critic_norm"),
    "lipschitz": ("lipschitz", "lam", "lipschitz_target", "clip"),
    "train": (
        "iters", "batch_size", "critic_iters", "lr", "beta1", "beta2", "seed", "device",
        "log_every", "eval_every", "eval_samples", "ckpt_every", "keep", "max_minutes", "name",
        "run_dir", "diag_every", "precision", "compile",
    ),
}  # fmt: skip
_FIELD_OF = {"lipschitz": "kind", "lipschitz_target": "target", "corpus_seed": "seed"}


def _flag(name: str) -> str:
    return "--" + {"lam": "lambda"}.get(name, name).replace("_", "-")


@main.command()
@click.option("--preset", help="paper (default), small or tiny; other flags override it.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="JSON file of config sections (e.g. a run's config.json); flags override it.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(),
    help="Continue this run from its newest checkpoint (with --iters N: up to N iterations).",
)
@_corpus_options(with_defaults=False)
@click.option("--corpus-seed", type=int, help="Seed of the corpus split and shuffle [0].")
@click.option("--dim", type=int, help="Channels of both networks [paper: 512].")
@click.option("--blocks", type=int, help="Residual blocks of both networks [paper: 5].")
@click.option("--kernel", type=int, help="Convolution width [5].")
@click.option("--res-scale", type=float, help="Residual branch scale [0.3].")
@click.option("--noise-dim", type=int, help="Size of the noise z [128].")
@click.option("--critic-norm", help="Critic normalization: none | layer | batch [none].")
@click.option("--lipschitz", help="gp | gp-one-sided | gp-fd | clip | sn | none [gp].")
@click.option("--lambda", "lam", type=float, help="Penalty weight λ [10].")
@click.option("--lipschitz-target", type=float, help="Target slope K of the penalty [1].")
@click.option("--clip", type=float, help="Clipping bound c for --lipschitz clip [0.01].")
@click.option("--iters", type=int, help="Generator iterations [paper: 200,000].")
@click.option("--batch-size", type=int, help="Sequences per batch [64].")
@click.option("--critic-iters", type=int, help="Critic steps per generator step [paper: 10].")
@click.option("--lr", type=float, help="Adam learning rate, both networks [1e-4].")
@click.option("--beta1", type=float, help="Adam β1 [0.5].")
@click.option("--beta2", type=float, help="Adam β2 [0.9].")
@click.option("--seed", type=int, help="Seed of every random stream [0].")
@click.option("--device", help="auto (CUDA, then MPS, then CPU) | cpu | cuda[:N] | mps [auto].")
@click.option("--log-every", type=int, help="Iterations between metrics.jsonl rows [10].")
@click.option("--eval-every", type=int, help="Iterations between JS evaluations [100].")
@click.option("--eval-samples", type=int, help="Argmax samples per evaluation [640].")
@click.option(
    "--diag-every", type=int, help="Iterations between critic diagnostics (and the last) [100]."
)
@click.option("--ckpt-every", type=int, help="Iterations between checkpoints [1000].")
@click.option("--keep", type=int, help="Checkpoints kept [3].")
@click.option("--max-minutes", type=float, help="Stop (evaluated, saved) after this many minutes.")
@click.option("--name", help="Run name: the run goes to runs/NAME [<corpus>-<date>-<time>].")
@click.option("--run-dir", help="Run directory (instead of runs/NAME).")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "tf32", "bf16"]),
    help="Arithmetic: bf16 autocast with fp32 weights, tf32 (CUDA), fp32; auto = bf16 where the "
    "device computes it natively [auto].",
)
@click.option(
    "--compile/--no-compile",
    default=None,
    help="torch.compile the step, on CUDA with CUDA graphs: 2.6x faster at paper on an H200 "
    "(falls back to eager if it cannot; no gain on CPUs) [no-compile].",
)
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def train(
    preset: str | None,
    config_file: str | None,
    resume_dir: str | None,
    progress: bool,
    **flags: object,
) -> int:
    """Train a WGAN-GP text GAN; checkpoints, metrics and samples go to runs/NAME.

    Precedence: the preset, then --config, then explicit flags. Ctrl-C or SIGTERM stops at the
    next iteration with a checkpoint; --resume continues bit for bit.
    """
    from textgan import train as training
    from textgan.config import layered_config

    sections = {
        section: {_FIELD_OF.get(opt, opt): flags[opt] for opt in opts if flags[opt] is not None}
        for section, opts in _TRAIN_SECTIONS.items()
    }
    if resume_dir is not None:
        fixed = [
            _flag(opt)
            for s, names in _TRAIN_SECTIONS.items()
            if s != "train"
            for opt in names
            if flags[opt] is not None
        ]
        fixed += [f for f, v in (("--preset", preset), ("--config", config_file)) if v]
        training.refuse_resume_changes(fixed)
        result = training.resume(resume_dir, sections["train"], progress=progress)
    else:
        layers = layered_config(preset, config_file, sections)
        config, prepared = training.resolve_run_config(layers, progress=progress)
        result = training.train(config, prepared, progress=progress)
    return result.exit_code


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
    type=int,
    help="Samples scored (and real lines) [640, or the whole held-out split when smaller].",
)
@click.option("--ngrams", default=4, show_default=True, help="Largest n of JS-n (1..6).")
@click.option("--seq-len", default=32, show_default=True, help="Sequence length of --reference.")
@click.option("--seed", default=0, show_default=True, help="Seed of the real held-out lines.")
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
    """Score SAMPLES (one per line, '-' for stdin): JS-1..n, LM scores, BLEU, Self-BLEU and
    diversity, each beside the same metric of N real held-out lines (the floor)."""
    import json

    from textgan.metrics.reference import PAPER_N_SAMPLES
    from textgan.metrics.report import Scorer, encode_samples, format_table, read_lines

    if sum(x is not None for x in (corpus, run_dir, reference)) != 1:
        raise UserError("say what to score against: one of --corpus, --run or --reference")
    if real == (samples is not None):
        raise UserError("give a SAMPLES file (or '-' for stdin), or --real for the floor alone")
    if not 1 <= ngrams <= 6:
        raise UserError(f"--ngrams must be between 1 and 6 (got {ngrams})")
    if n_samples is not None and n_samples < 1:
        raise UserError(f"-n must be positive (got {n_samples})")
    lines = None if real else read_lines(samples, "samples file")
    if reference is not None:
        n = n_samples or PAPER_N_SAMPLES
        n = n if lines is None else min(n, len(lines))
        ref_lines = read_lines(reference, "reference file")
        scorer = Scorer.from_lines(ref_lines, f"reference {reference}", seq_len, n, ngrams, seed)
    else:
        prepared = _scored_corpus(corpus, run_dir, data_dir, progress)
        scorer = Scorer.from_prepared(prepared, ngrams, progress)
    # The paper's N = 640 unless the held-out split is smaller; an explicit -n is never lowered.
    n_samples = n_samples or min(PAPER_N_SAMPLES, len(scorer.heldout))
    encoded = None
    if lines is not None:
        encoded = encode_samples(lines[:n_samples], scorer.vocab, scorer.seq_len)
    report = scorer.report(encoded, n_samples, ngrams, seed)
    click.echo(json.dumps(report) if as_json else format_table(report, real_only=real))


def _scored_corpus(corpus: str | None, run_dir: str | None, data_dir: str, progress: bool):
    """The prepared corpus of --corpus, or of a run's config.json (checked against its vocab)."""
    import json
    from pathlib import Path

    from textgan.corpus import CorpusConfig, prepare
    from textgan.vocab import Vocab

    if corpus is not None:
        return prepare(CorpusConfig(corpus=corpus, data_dir=data_dir), progress=progress)
    run = Path(run_dir)
    if not (run / "config.json").is_file() or not (run / "vocab.json").is_file():
        raise UserError(f"{run} is not a run directory (no config.json and vocab.json there)")
    try:
        section = json.loads((run / "config.json").read_text(encoding="utf-8"))["corpus"]
        prepared = prepare(CorpusConfig(**section), progress=progress)
        same_vocab = Vocab.load(run / "vocab.json") == prepared.vocab
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{run}/config.json or vocab.json is unreadable: {err}") from None
    if not same_vocab:
        raise UserError(
            f"the corpus in {run}/config.json now has another vocabulary than the run's "
            "vocab.json; prepare the corpus the run was trained on"
        )
    return prepared


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


@main.group()
def study() -> None:
    """Reproducible comparisons: several runs, one table, overlaid figures."""


@study.command("lipschitz")
@click.option("--corpus", required=True, help="billion_words | pydocs | a path | hf:ID[:CONFIG].")
@click.option("--preset", default="small", show_default=True, help="paper | small | tiny.")
@click.option(
    "--minutes", type=float, default=3.0, show_default=True, help="Training time per constraint."
)
@click.option(
    "--constraints",
    default="gp,gp-one-sided,gp-fd,clip,sn,none",
    show_default=True,
    help="Comma-separated constraints, one run each.",
)
@click.option("--out", help="Study folder (must be new or empty) [runs/study-lipschitz-<time>].")
@click.option("--iters", type=int, help="Also stop each run at this iteration [the preset's].")
@click.option("--eval-every", type=int, help="Iterations between JS evaluations [the preset's].")
@click.option("--diag-every", type=int, help="Iterations between diagnostics [the preset's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed shared by all runs.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] | mps.")
@click.option("--data-dir", default="data", show_default=True, help="Prepared corpus caches.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bars.")
def study_lipschitz(
    corpus: str,
    preset: str,
    minutes: float,
    constraints: str,
    out: str | None,
    iters: int | None,
    eval_every: int | None,
    diag_every: int | None,
    seed: int,
    device: str,
    data_dir: str,
    progress: bool,
) -> int:
    """Train one run per Lipschitz constraint for the same wall-clock budget and compare them.

    Writes OUT/<constraint>/ (ordinary runs), OUT/study.md and OUT/study.json (final JS-1..4
    with floors, W estimate, seconds per iteration, ‖∇x̂ D‖, share of weights at ±c),
    OUT/plots/ (all runs overlaid) and OUT/summary.png (one comparison figure).
    """
    from textgan.study import StudyConfig, lipschitz_study, markdown_table, parse_constraints

    schedule = {
        k: v for k, v in (("eval_every", eval_every), ("diag_every", diag_every)) if v is not None
    }
    cfg = StudyConfig(
        corpus=corpus,
        preset=preset,
        minutes=minutes,
        constraints=parse_constraints(constraints),
        seed=seed,
        device=device,
        iters=iters,
        overrides={"corpus": {"data_dir": data_dir}, "train": schedule},
    )
    result = lipschitz_study(cfg, out, progress=progress, echo=lambda s: click.echo(s, err=True))
    click.echo(markdown_table(result), nl=False)
    click.echo(f"study written to {result['out']}", err=True)
    return 0 if result["stopped_by"] is None else 128 + result["stopped_by"]
