"""The CLI's options generated from the config fields, flags in messages, entry points."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from textgan import config as C
from textgan.cli import main, options
from textgan.cli import training as cli_training
from textgan.errors import UserError
from textgan.settings import SettingError, setting
from textgan.training import setup

ROOT = Path(__file__).resolve().parents[1]

# The flags of `textgan train` before they were generated: README commands use them.
FLAGS_BEFORE = {
    "--corpus", "--data-dir", "--seq-len", "--tokens", "--max-vocab", "--max-lines", "--holdout",
    "--corpus-seed", "--text-column", "--encoding-errors", "--dim", "--blocks", "--kernel",
    "--res-scale", "--noise-dim", "--critic-norm", "--lipschitz", "--lambda",
    "--lipschitz-target", "--clip", "--iters", "--batch-size", "--critic-iters", "--lr",
    "--beta1", "--beta2", "--seed", "--device", "--log-every", "--eval-every", "--eval-samples",
    "--diag-every", "--ckpt-every", "--keep", "--max-minutes", "--name", "--run-dir",
    "--precision", "--compile", "--preset", "--config", "--resume", "--progress",
}  # fmt: skip


def _opts(command: click.Command) -> dict[str, click.Option]:
    return {opt: p for p in command.params for opt in p.opts}


def _help(command: click.Command, flag: str) -> str:
    ctx = click.Context(command)
    return _opts(command)[flag].get_help_record(ctx)[1]


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgan: error: "), result.stderr
    return lines[0]


def test_every_cli_field_of_every_section_is_a_train_flag():
    flags = options.command_flags(C.SECTIONS)
    by_key = {f.key: f.flag for f in flags}
    for section, kind in C.SECTIONS.items():
        for name, field in kind.__dataclass_fields__.items():
            wanted = "help" in field.metadata and field.metadata["cli"]
            assert (f"{section}.{name}" in by_key) == wanted, (section, name)
    assert len(set(by_key.values())) == len(by_key)  # no flag twice
    assert set(_opts(cli_training.train)) >= FLAGS_BEFORE
    assert by_key["corpus.seed"] == "--corpus-seed" and by_key["train.seed"] == "--seed"
    assert by_key["lipschitz.kind"] == "--lipschitz" and by_key["lipschitz.lam"] == "--lambda"


def test_prepare_keeps_the_corpus_seed_as_seed_with_its_defaults():
    prepare = _opts(cli_training.prepare)
    assert prepare["--seed"].default == 0 and prepare["--seq-len"].default == 32
    assert prepare["--max-lines"].default == 10_000_000 and prepare["--holdout"].default is None
    assert "--corpus-seed" not in prepare
    seed_help = C.CorpusConfig.__dataclass_fields__["seed"].metadata["help"]
    assert _help(cli_training.prepare, "--seed") == f"{seed_help}  [default: 0]"


def test_train_flags_are_unset_and_show_each_presets_default():
    train = _opts(cli_training.train)
    assert all(train[f].default is None for f in ("--dim", "--iters", "--compile", "--seed"))
    assert _help(cli_training.train, "--dim") == (
        "Channels of the generator (and of the critic, unless set). "
        "[paper: 512; small: 64; cpu: 128; small-v1: 128; tiny: 32]"
    )
    assert _help(cli_training.train, "--critic-dim") == "Channels of the critic [dim]."
    iters = "[paper: 200,000; small: 18,000; cpu: 17,000; small-v1: 15,000; tiny: 400]"
    assert iters in _help(cli_training.train, "--iters")
    assert _help(cli_training.train, "--kernel") == "Convolution width. [5]"
    assert _help(cli_training.train, "--compile").endswith("[no-compile]")
    assert "[" not in _help(cli_training.train, "--max-minutes")
    assert train["--compile"].secondary_opts == ["--no-compile"]
    assert train["--dim"].type is click.INT and train["--lr"].type is click.FLOAT
    assert list(train["--lipschitz"].type.choices) == list(C.LIPSCHITZ_KINDS)
    assert list(train["--preset"].type.choices) == list(C.PRESETS)


@dataclass(frozen=True)
class _WarmupTrain(C.TrainConfig):
    warmup_iters: int = setting(0, "Iterations of learning-rate warm-up.", minimum=0)


def test_a_new_field_gets_its_flag_help_and_config_key(monkeypatch, tmp_path):
    sections = {**C.SECTIONS, "train": _WarmupTrain}
    monkeypatch.setattr(C, "SECTIONS", sections)
    command = cli_training.train_command(sections, C.PRESETS)
    assert _help(command, "--warmup-iters") == "Iterations of learning-rate warm-up. [0]"
    seen = {}

    def resolve(layers, progress):
        seen.update(layers)
        raise SystemExit(0)

    monkeypatch.setattr(setup, "resolve_run_config", resolve)
    result = CliRunner().invoke(command, ["--warmup-iters", "7", "--dim", "16", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert seen["train"]["warmup_iters"] == 7 and seen["train"]["lr"] == 0.01
    assert seen["model"] == {"dim": 16, "blocks": 5}  # the paper preset, then the flag
    train = C.build(_WarmupTrain, seen["train"], "options")
    assert C.RunConfig(C.CorpusConfig(), C.ModelConfig(vocab_size=9), C.LipschitzConfig(),
                       train).to_dict()["train"]["warmup_iters"] == 7  # fmt: skip


def test_a_flag_shared_by_two_sections_is_prefixed_in_the_earlier_one():
    @dataclass(frozen=True)
    class Data:
        seed: int = setting(0, "Data seed.")
        path: str = setting("x", "Where.")
        hidden: int = setting(1, "Not a flag.", cli=False)

    @dataclass(frozen=True)
    class Run:
        seed: int = setting(0, "Run seed.")

    flags = options.command_flags({"data": Data, "run": Run})
    assert [(f.key, f.flag) for f in flags] == [
        ("data.seed", "--data-seed"),
        ("data.path", "--path"),
        ("run.seed", "--seed"),
    ]


@pytest.mark.parametrize(
    ("field", "problem", "message"),
    [
        ("train.critic_iters", "must be at least 1, got 0", "--critic-iters must be at least 1"),
        ("corpus.seed", "must be at least 0, got -1", "--corpus-seed must be at least 0, got -1"),
        ("lipschitz.lam", "must be at least 0.0, got -1.0", "--lambda must be at least 0.0"),
        ("train.name", "must be a plain name, got '../run_dir'; give paths as run_dir",
         "--name must be a plain name, got '../run_dir'; give paths as --run-dir"),
        ("model.vocab_size", "must be at least 2, got 1", "model.vocab_size must be at least 2"),
    ],
)  # fmt: skip
def test_setting_errors_name_flags(field, problem, message):
    names = options.flag_names(options.command_flags(C.SECTIONS))
    assert options.in_flags(SettingError(field, problem), names).startswith(message)


def test_other_user_errors_name_flags_for_qualified_fields_only():
    names = options.flag_names(options.command_flags(C.SECTIONS))
    err = UserError("lower train.batch_size (now 9), corpus.seq_len; see config.json")
    assert options.in_flags(err, names) == "lower --batch-size (now 9), --seq-len; see config.json"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "huge"], "Invalid value for '--preset': 'huge' is not one of"),
        (["--lipschitz", "magic"], "Invalid value for '--lipschitz': 'magic' is not one of"),
        (["--critic-norm", "group"], "Invalid value for '--critic-norm'"),
        (["--precision", "fp8"], "Invalid value for '--precision'"),
        (["--tokens", "words"], "Invalid value for '--tokens'"),
        (["--encoding-errors", "ignore"], "Invalid value for '--encoding-errors'"),
        (["--dim", "wide"], "Invalid value for '--dim': 'wide' is not a valid integer"),
    ],
)
def test_bad_choices_are_one_line_exit_2(args, message):
    assert message in _error(CliRunner().invoke(main, ["train", *args]))


@pytest.mark.parametrize("name", ["../../x", "/abs/run", "a/b", ""])
def test_a_name_that_is_a_path_is_refused_naming_run_dir(name):
    line = _error(CliRunner().invoke(main, ["train", "--name", name]))
    assert f"--name must be a plain name, got {name!r}" in line and "--run-dir" in line


@pytest.mark.parametrize("entry", [["-m", "textgan"], ["cli.py"]])
def test_module_and_checkout_entry_points(entry):
    def run(*args):
        return subprocess.run([sys.executable, "-X", "importtime", *entry, *args], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip

    top = run("--help")
    assert top.returncode == 0 and top.stdout.startswith("Usage: textgan [OPTIONS] COMMAND")
    for command in ("prepare", "train", "sample", "score", "plot", "study"):
        assert f"  {command} " in top.stdout
    imported = {line.split("|")[-1].strip() for line in top.stderr.splitlines()}
    assert "textgan.config" in imported
    assert not imported & {"torch", "datasets", "pyarrow"}
    train = run("train", "--help")
    assert train.stdout.startswith("Usage: textgan train [OPTIONS]")
    assert "--critic-iters INTEGER" in train.stdout
    bad = run("train", "--lipschitz", "magic")
    errors = [line for line in bad.stderr.splitlines() if not line.startswith("import time:")]
    assert bad.returncode == 2 and len(errors) == 1
    assert errors[0].startswith("textgan: error: Invalid value for '--lipschitz'")
