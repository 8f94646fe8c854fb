"""``textgan study compare``, ``textgan study lipschitz`` and ``textgan tune``: many ordinary
runs compared at equal wall-clock time, and an Optuna search over their settings."""

from __future__ import annotations

import json
from typing import Any

import click

from textgan import config as run_config
from textgan.cli.base import main
from textgan.cli.options import seed_option
from textgan.errors import UserError
from textgan.studies.recipes import LIPSCHITZ_PRESET

# Not only a cap: a linear decay follows --iters, wherever the budget stops the run.
ITERS_HELP = (
    "Set every run's train.iters: it stops there if its budget lasts, and a --lr-decay linear "
    "{0}'s rate falls to 0 there [{1}]."
)


def _echo(line: str) -> None:
    click.echo(line, err=True)


@main.group()
def study() -> None:
    """Reproducible comparisons: several runs, one table, overlaid figures."""


def _reference_option(default: str | None, shown: str = "") -> Any:
    from textgan.studies.report import REFERENCES

    return click.option(
        "--reference",
        type=click.Choice(REFERENCES),
        default=default,
        show_default=default is not None,
        help="What JS-4, the quality, is measured against: train (the training lines, the "
        "paper's protocol) or heldout (held-out lines, where a copied training line scores no "
        "better than real text)" + shown + ".",
    )


def _shared_options(command: click.Command) -> click.Command:
    """Options every time-to-quality command has, in the order ``--help`` shows them."""
    options = [
        click.option("--corpus", required=True, help="billion_words | pydocs | a path | hf:ID."),
        click.option("--minutes", type=float, default=5.0, show_default=True,
                     help="Wall-clock training budget of every run."),
        click.option("--eval-minutes", type=float,
                     help="Wall-clock minutes between evaluations [a tenth of --minutes]."),
        click.option("--threads", type=int,
                     help="CPU threads per run [usable cores / runs at a time]."),
        click.option("--device", default="auto", show_default=True,
                     help="auto | cpu | cuda[:N] | mps: where every run trains."),
        click.option("--eval-samples", type=int, default=640, show_default=True,
                     help="Argmax samples per evaluation (and real lines for the floor)."),
        _reference_option("train"),
        click.option("--data-dir", default="data", show_default=True,
                     help="Prepared corpus caches."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@study.command("compare")
@click.option(
    "--recipe",
    "recipes",
    multiple=True,
    required=True,
    help="NAME=SPEC, repeatable; SPEC is a preset, a --config JSON file, or either followed by "
    ":KEY=VALUE,… (e.g. fast=small:train.critic_iters=2,model.dim=64).",
)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds per recipe.")
@click.option(
    "--targets",
    default="0.8,0.7,0.6",
    show_default=True,
    help="EMA JS-4 values to report the minutes to.",
)
@click.option("--parallel", type=int, default=1, show_default=True, help="Runs at a time.")
@click.option(
    "--iters",
    type=int,
    help=ITERS_HELP.format(
        "recipe", "a linear recipe's fitted to --minutes as --fit-iters does, another's its own"
    ),
)
@click.option("--out", help="Study folder (must be new or empty) [runs/study-compare-<time>].")
@_shared_options
@click.option("--progress/--no-progress", default=True, help="Show progress while preparing.")
def study_compare(
    recipes: tuple[str, ...], seeds: str, targets: str, parallel: int, **options: Any
) -> int:
    """Time to quality: train each recipe with each seed for the same wall-clock budget,
    evaluated at the same wall-clock moments, and compare the minutes to each JS-4 target.

    Writes OUT/<recipe>-s<seed>/ (ordinary runs), OUT/study.md and OUT/study.json (minutes to
    each target per run and recipe, final numbers with floors, iterations/s, the machine) and
    OUT/time_to_quality.png (EMA JS-4 against wall-clock minutes).
    """
    from textgan.studies.compare import CompareConfig, compare_study
    from textgan.studies.recipes import parse_named_recipe, parse_numbers
    from textgan.studies.report import compare_markdown

    out, progress = options.pop("out"), options.pop("progress")
    cfg = CompareConfig(
        recipes=tuple(parse_named_recipe(text) for text in recipes),
        seeds=parse_numbers(seeds, int, "--seeds"),
        targets=parse_numbers(targets, float, "--targets"),
        parallel=parallel,
        **options,
    )
    result = compare_study(cfg, out, progress=progress, echo=_echo)
    click.echo(compare_markdown(result), nl=False)
    _echo(f"study written to {result['out']}")
    return 0 if result["stopped_by"] is None else 128 + result["stopped_by"]


@study.command("report")
@click.argument("studies", nargs=-1, required=True)
@click.option("--out", help="Folder of the common report [the study itself, when one is given].")
@click.option("--targets", help="EMA JS-4 values to report the minutes to [the first study's].")
@click.option("--recipes", help="Comma-separated recipe names to keep, in this order [all].")
@click.option(
    "--anchors",
    help="Comma-separated published curves to draw beside the runs (ttur-2017: the paper model "
    "on a 2017 GPU, read off TTUR's plot); 'none' draws none [the first study's].",
)
@_reference_option(None, " [the first study's]")
def study_report(
    studies: tuple[str, ...],
    out: str | None,
    targets: str | None,
    recipes: str | None,
    anchors: str | None,
    reference: str | None,
) -> int:
    """Rebuild the table and figure of compare studies from their runs as they are now: after
    a run was resumed for more minutes, with other targets, or several studies in one table.

    Studies must share the corpus, the evaluation grid and samples, the device, the CPU and the
    threads per run; a recipe name must mean one recipe in all of them.
    """
    from textgan.studies.rebuild import rebuild_report
    from textgan.studies.recipes import parse_numbers
    from textgan.studies.report import compare_markdown

    wanted = parse_numbers(targets, float, "--targets") if targets is not None else None
    names = parse_numbers(recipes, str, "--recipes") if recipes is not None else None
    drawn = parse_numbers(anchors, str, "--anchors") if anchors is not None else None
    if anchors == "none":
        drawn = []
    result = rebuild_report(studies, out, wanted, names, reference, drawn)
    click.echo(compare_markdown(result), nl=False)
    _echo(f"report written to {result['out']}")
    return 0


@study.command("lipschitz")
@click.option("--corpus", required=True, help="billion_words | pydocs | a path | hf:ID[:CONFIG].")
@click.option(
    "--preset",
    type=click.Choice(list(run_config.PRESETS)),
    default=LIPSCHITZ_PRESET,
    show_default=True,
    help="Preset of every run, trained with the penalty on every critic step and a constant "
    "learning rate whatever the preset says.",
)
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
@click.option("--iters", type=int, help=ITERS_HELP.format("preset", "the preset's"))
@click.option("--eval-every", type=int, help="Iterations between JS evaluations [the preset's].")
@click.option("--diag-every", type=int, help="Iterations between diagnostics [the preset's].")
@seed_option("Seed shared by all runs.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto | cpu | cuda[:N] | mps, or a list (cuda:0,cuda:1 or cpu,cpu): the runs train "
    "side by side, one per device.",
)
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
    """Train one run per Lipschitz constraint for the same wall-clock budget and compare them:
    the runs differ in the constraint alone.

    Writes OUT/<constraint>/ (ordinary runs), OUT/study.md and OUT/study.json (final JS-1..4
    with floors, W estimate, seconds per iteration, ‖∇x̂ D‖, share of weights at ±c),
    OUT/plots/ (all runs overlaid) and OUT/summary.png (one comparison figure).
    """
    from textgan.studies.constraints import StudyConfig, lipschitz_study, parse_constraints
    from textgan.studies.report import lipschitz_markdown

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
    result = lipschitz_study(cfg, out, progress=progress, echo=_echo)
    click.echo(lipschitz_markdown(result), nl=False)
    _echo(f"study written to {result['out']}")
    return 0 if result["stopped_by"] is None else 128 + result["stopped_by"]


@main.command("tune")
@click.option(
    "--recipe",
    default="small",
    show_default=True,
    help="What every trial starts from: a preset, a --config JSON file, or either followed by "
    ":KEY=VALUE,….",
)
@click.option("--space", help="JSON file of the settings to search [the default space].")
@click.option(
    "--trials", type=int, default=20, show_default=True, help="Finished trials of the study."
)
@click.option("--jobs", type=int, default=1, show_default=True, help="Trials at a time.")
@click.option(
    "--pruner",
    type=click.Choice(["median", "halving", "none"]),
    default="median",
    show_default=True,
    help="Stops hopeless trials early: median rule or successive halving.",
)
@click.option(
    "--storage",
    help="Where the study lives: sqlite:///F.db, postgresql://…, mysql://… or journal:F.log; "
    "tune processes on one storage share the study [sqlite:///OUT/optuna.db].",
)
@click.option("--study-name", default="tune", show_default=True, help="The study's name.")
@seed_option("Seed of the sampler and of every trial's run.")
@click.option(
    "--heartbeat",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between a running trial's heartbeats; one silent 3× as long is failed.",
)
@click.option("--out", help="Study folder; a rerun continues the study [runs/STUDY_NAME].")
@_shared_options
def tune(**options: Any) -> int:
    """Search run settings with Optuna: the objective is EMA JS-4 after --minutes of training
    (against --reference).

    Each trial is an ordinary run OUT/trial-<n>/; its evaluations are reported at their index
    on the wall-clock grid (k: after k × --eval-minutes) so that the pruner stops hopeless
    ones. Rerun the same command to continue the study; start it on several machines with one
    --storage to share it. Prints the best recipe as a --config file (also written to
    OUT/best.json).
    """
    try:
        import optuna
    except ImportError:
        raise UserError("textgan tune needs Optuna: pip install 'textgan[tune]'") from None

    from textgan.studies.report import quality_name
    from textgan.studies.tune import TuneConfig, run_tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tune prints its own lines
    out = options.pop("out")
    cfg = TuneConfig(**options)
    result = run_tune(cfg, out, echo=_echo)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result["counts"].items()))
    _echo(f"tune: study {result['study']} in {result['out']}: {counts}")
    best = result.get("best")
    if best is not None:
        click.echo(json.dumps(best["recipe"], indent=2))
        _echo(
            f"tune: best is trial {best['trial']} ({quality_name(True, cfg.reference)} "
            f"{best['value']:.3f}, run "
            f"{best['run_dir']}); train it with: textgan train --config {best['config']}"
        )
    return 0 if result["stopped_by"] is None else 128 + result["stopped_by"]
