"""``textgan prepare`` and ``textgan train``.

The corpus, model, Lipschitz and train flags are generated from the config fields; ``train``
leaves them unset so that the layers apply: preset < ``--config`` < explicit flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from textgan import config as run_config
from textgan.cli.base import main
from textgan.cli.options import (
    Flag,
    Presets,
    add_options,
    command_flags,
    flag_errors,
    flag_names,
    section_values,
)
from textgan.corpus import CorpusConfig
from textgan.training.loggers import LOGGERS, check_loggers

_PREPARE_FLAGS = command_flags({"corpus": CorpusConfig})


@main.command()
@add_options(_PREPARE_FLAGS, {}, layered=False)
@click.option("--force", is_flag=True, help="Rebuild even when a matching cache exists.")
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
def prepare(force: bool, progress: bool, **params: Any) -> None:
    """Read a corpus, cut each line to --seq-len symbols, split, and cache the id arrays
    under --data-dir (reused when source and settings match)."""
    from textgan.corpus import prepare as prepare_corpus
    from textgan.corpus import summary

    with flag_errors(flag_names(_PREPARE_FLAGS)):
        corpus = CorpusConfig(**section_values(_PREPARE_FLAGS, params)["corpus"])
        prepared = prepare_corpus(corpus, force=force, progress=progress)
    click.echo(summary(prepared))


def train_command(sections: Mapping[str, type], presets: Presets) -> click.Command:
    """The ``train`` command over these config sections (``config.SECTIONS``) and presets."""
    flags = command_flags(sections)
    names = {**flag_names(flags), "train.preset": "--preset"}

    @click.command("train")
    @click.option(
        "--preset",
        type=click.Choice(list(presets)),
        help="Starting values; --config and the other flags override them [paper].",
    )
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
    @add_options(flags, presets, layered=True)
    @click.option(
        "--logger",
        "loggers",
        multiple=True,
        type=click.Choice(list(LOGGERS)),
        help="Also log there (repeatable; metrics.jsonl is always written): tensorboard "
        "writes RUN/tb/ (pip install 'textgan[tensorboard]').",
    )
    @click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
    def train(
        preset: str | None,
        config_file: str | None,
        resume_dir: str | None,
        loggers: tuple[str, ...],
        progress: bool,
        **params: Any,
    ) -> int:
        """Train a WGAN-GP text GAN; checkpoints, metrics and samples go to runs/NAME.

        Precedence: the preset, then --config, then explicit flags. Ctrl-C or SIGTERM stops at
        the next iteration with a checkpoint; --resume continues bit for bit.
        """
        from textgan.training.distributed import PeerRefused

        values = section_values(flags, params)
        check_loggers(loggers)  # before the corpus is read or the run folder made
        with flag_errors(names):
            try:
                if resume_dir is None:
                    return _start(preset, config_file, values, progress, loggers)
                fixed = _fixed_flags(flags, values)
                fixed += [f for f, v in (("--preset", preset), ("--config", config_file)) if v]
                return _resume(resume_dir, fixed, values["train"], progress, loggers)
            except PeerRefused:
                return 2  # rank 0 refused to start and printed the job's one error line

    return train


def _fixed_flags(flags: list[Flag], values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The flags given that ``--resume`` cannot change (all but ``config.RESUMABLE``)."""
    return [
        flag.flag
        for flag in flags
        if flag.field.name in values[flag.section]
        and not (flag.section == "train" and flag.field.name in run_config.RESUMABLE)
    ]


def _start(
    preset: str | None,
    config_file: str | None,
    values: Mapping[str, Mapping[str, Any]],
    progress: bool,
    loggers: tuple[str, ...] = (),
) -> int:
    from textgan.devices import pick_device
    from textgan.training import loop as training
    from textgan.training import setup

    layers = run_config.layered_config(preset, config_file, values)
    config, prepared = setup.resolve_run_config(layers, progress=progress)
    line = cpu_projection(config, pick_device(config.train.device).type)
    if line is not None:
        click.echo(line, err=True)
    return training.train(config, prepared, progress=progress, loggers=loggers).exit_code


def _resume(
    run_dir: str,
    fixed: list[str],
    values: Mapping[str, Any],
    progress: bool,
    loggers: tuple[str, ...] = (),
) -> int:
    from textgan.training import loop as training

    training.refuse_resume_changes(fixed)
    return training.resume(run_dir, values, progress=progress, loggers=loggers).exit_code


train = train_command(run_config.SECTIONS, run_config.PRESETS)
main.add_command(train)


# One paper iteration on the 2-core CPU of benchmarks/RESULTS.md (AMD EPYC Zen 5, bf16,
# PyTorch 2.13, 2026-11-26): 10 critic steps of 0.791 s and one generator step of 0.434 s.
PAPER_CPU_CRITIC_S = 0.791
PAPER_CPU_GENERATOR_S = 0.434
LONG_CPU_RUN_S = 24 * 3600  # a run longer than a day on a CPU deserves a word


def cpu_seconds_per_iteration(config: run_config.RunConfig) -> float:
    """Seconds per iteration on a 2-core CPU: the paper's measured step scaled by the work,
    which grows with batch × length × blocks × dim² (the convolutions dominate): a critic
    step's by the critic's sizes, a generator step's by both networks' (it runs both)."""
    m, t = config.model, config.train
    rows = (t.batch_size / 64) * (m.seq_len / 32)
    gen = (max(m.blocks, 1) / 5) * (m.dim / 512) ** 2
    critic = (max(m.critic_depth, 1) / 5) * (m.critic_width / 512) ** 2
    return rows * (
        t.critic_iters * critic * PAPER_CPU_CRITIC_S + (gen + critic) / 2 * PAPER_CPU_GENERATOR_S
    )


def cpu_projection(config: run_config.RunConfig, device_type: str) -> str | None:
    """One line projecting a long CPU run's time and naming the faster choices; None for
    runs on an accelerator or runs shorter than a day."""
    per_iteration = cpu_seconds_per_iteration(config)
    days = per_iteration * config.train.iters / 86400
    if device_type != "cpu" or days * 86400 < LONG_CPU_RUN_S:
        return None
    return (
        f"textgan train: on a 2-core CPU this model takes about {per_iteration:.1f} s per "
        f"iteration, so {config.train.iters:,} iterations take about {days:.0f} days "
        f"({days / 7:.1f} weeks); --preset cpu --max-minutes 60 is the CPU recipe fitted to "
        "an hour, or train on a GPU. Starting anyway."
    )
