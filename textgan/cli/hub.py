"""``textgan export`` and ``textgan push``: share a run's generator the way ML users do, as a
Hugging Face model folder (``textgan.sharing.export``, ``textgan.sharing.hub``)."""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from textgan.cli.base import main
from textgan.errors import UserError, first_line

# Given always (the corpus) or never: where one machine keeps its data and runs is not part of
# what the run trained.
_SHOWN = ("corpus.corpus", "corpus.data_dir", "train.name", "train.run_dir")


def reproduce_command(config: Mapping[str, Any]) -> str:
    """The ``textgan train`` command that trains a run of ``config`` (a run's config.json)
    again: its preset and every flag whose value differs from that preset's; a local corpus
    by its file name (its path is the trainer's)."""
    from textgan.cli.options import command_flags
    from textgan.config import SECTIONS, layered_config
    from textgan.sharing.card import PublishedCorpus

    preset = config["train"]["preset"]
    defaults = layered_config(preset)
    corpus = shlex.quote(PublishedCorpus.of(str(config["corpus"]["corpus"])).name)
    parts = ["textgan train", f"--preset {preset}", f"--corpus {corpus}"]
    for flag in command_flags(SECTIONS):
        value = config.get(flag.section, {}).get(flag.field.name)
        default = defaults[flag.section].get(flag.field.name, flag.field.default)
        if flag.key in _SHOWN or value is None or value == default:
            continue
        if isinstance(value, bool):
            parts.append(flag.flag if value else f"--no-{flag.flag[2:]}")
        else:
            parts.append(f"{flag.flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def _run_command(run_dir: str) -> str:
    from textgan.files import read_json
    from textgan.files.rundir import CONFIG

    return reproduce_command(read_json(Path(run_dir) / CONFIG, "run config"))


@main.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--checkpoint", help="Iteration number or checkpoint folder [the newest].")
@click.option("--out", required=True, type=click.Path(), help="New folder for the model.")
@click.option("--raw", is_flag=True, help="Export the trained weights, not their EMA average.")
@click.option("--name", help="Model name on its card [the --out folder's name].")
@click.option(
    "--space",
    is_flag=True,
    help="Also app.py, requirements.txt and the Space front matter: the folder runs as a "
    "Hugging Face Space showing the demo page (needs the demo extra).",
)
def export(
    run_dir: str, checkpoint: str | None, out: str, raw: bool, name: str | None, space: bool
) -> None:
    """Write a run's generator as a Hugging Face model folder: config.json, model.safetensors,
    vocab.json and a model card (README.md) with the run's numbers."""
    from textgan.sharing.export import export_run
    from textgan.sharing.space import export_space

    command = _run_command(run_dir)
    write = export_space if space else export_run
    path = write(run_dir, out, checkpoint=checkpoint, raw=raw, name=name, command=command)
    click.echo(path)


def hub_ready() -> str:
    """The user's hub token, after checking it exists and the hub answers; UserError saying
    which is missing, before anything is written anywhere."""
    import huggingface_hub

    from textgan.corpus.hub import hub_problem

    token = huggingface_hub.get_token()
    if token is None:
        raise UserError(
            "no Hugging Face token: log in with 'hf auth login' or set HF_TOKEN, then push again"
        )
    problem = hub_problem()
    if problem is not None:
        raise UserError(f"cannot push: the Hugging Face hub is not reachable ({problem})")
    return token


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--repo", required=True, help="Hub repository USER/NAME (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--checkpoint", help="Iteration number or checkpoint folder [the newest].")
@click.option("--raw", is_flag=True, help="Push the trained weights, not their EMA average.")
def push(run_dir: str, repo: str, private: bool, checkpoint: str | None, raw: bool) -> None:
    """Export a run's generator and upload it to the Hugging Face hub as REPO, with the
    user's usual token."""
    from huggingface_hub import HfApi

    from textgan.sharing.export import export_run

    token = hub_ready()
    command = _run_command(run_dir)
    with tempfile.TemporaryDirectory(prefix="textgan-push-") as tmp:
        folder = export_run(
            run_dir, Path(tmp) / "model", checkpoint=checkpoint, raw=raw, name=repo, command=command
        )
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo, private=private, exist_ok=True, token=token)
            api.upload_folder(
                repo_id=repo,
                folder_path=folder,
                commit_message=f"textgan export of {Path(run_dir).name}",
                token=token,
            )
        except Exception as err:  # the hub's HTTP, auth and validation errors differ by version
            raise UserError(f"cannot push to {repo}: {first_line(err)}") from None
    click.echo(getattr(url, "url", None) or f"https://huggingface.co/{repo}")
