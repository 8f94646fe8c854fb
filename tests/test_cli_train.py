"""`textgan train` and `textgan sample` end to end, and every bad input they must refuse."""

import json
import pathlib
import shutil
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from textgan import config as C
from textgan import files
from textgan.cli import main
from textgan.cli import outputs as cli_outputs
from textgan.cli import training as cli_training
from textgan.corpus import CorpusConfig, prepare
from textgan.files import checkpoint as ck
from textgan.files import rundir as rd
from textgan.training import loop as training

MICRO = ["--preset", "tiny", "--dim", "16", "--batch-size", "16", "--critic-iters", "2",
         "--eval-samples", "32", "--log-every", "1", "--no-progress",
         "--device", "cpu"]  # fmt: skip


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small steps on two shared cores: no spinning OpenMP threads
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_args(gbw_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    prepare(CorpusConfig(corpus=str(gbw_dir), data_dir=str(data_dir)), progress=False)
    return ["--corpus", str(gbw_dir), "--data-dir", str(data_dir)]


@pytest.fixture(scope="module")
def trained(data_args, tmp_path_factory):
    """A 4-iteration run at ``<tmp>/runs/cli`` (checkpoints at 2 and 4)."""
    root = tmp_path_factory.mktemp("work")
    run = root / "runs" / "cli"
    result = _invoke(["train", *data_args, *MICRO, "--iters", "4", "--ckpt-every", "2",
                      "--run-dir", str(run)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _fails(args, message):
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()  # progress bars may come first
    errors = [line for line in lines if line.startswith("textgan: error: ")]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr
    assert message in errors[0], errors[0]


def _copy(run, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(run, dest)
    return dest


# -- train ---------------------------------------------------------------------------------------


def test_train_writes_a_run_with_the_resolved_config(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["train"]["preset"] == "tiny"
    assert (config["model"]["dim"], config["model"]["blocks"]) == (16, 1)
    assert (config["train"]["batch_size"], config["train"]["critic_iters"]) == (16, 2)
    assert config["train"]["iters"] == 4 and config["fingerprint"]
    assert [p.name for p in rd.RunDir(trained).checkpoint_dirs()] == [
        "iter_0000002",
        "iter_0000004",
    ]
    rows = files.read_rows(trained / "metrics.jsonl")
    assert [r["iter"] for r in rows if "critic_loss" in r] == [1, 2, 3, 4]
    assert (trained / "samples" / "iter_4.txt").is_file()


def test_train_prints_start_and_end_summaries(data_args, tmp_path):
    result = _invoke(
        ["train", *data_args, *MICRO, "--iters", "1", "--run-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 0
    assert "textgan train: device cpu, preset tiny" in result.stderr
    assert "parameters, corpus" in result.stderr and "lambda" not in result.stderr
    assert "  train: preset=tiny iters=1" in result.stderr
    assert "finished at iteration 1 of 1" in result.stderr and str(tmp_path / "r") in result.stderr


def test_config_file_sits_between_preset_and_flags(data_args, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"train": {"lr": 0.005, "iters": 3}, "lipschitz": {"lam": 2.5}}))
    run = tmp_path / "r"
    result = _invoke(["train", *data_args, *MICRO, "--config", str(cfg), "--iters", "1",
                      "--run-dir", str(run)])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["lr"] == 0.005 and config["train"]["iters"] == 1
    assert config["lipschitz"]["lam"] == 2.5 and config["model"]["dim"] == 16


def _paper_config(**train):
    model = C.ModelConfig(vocab_size=256)
    return C.RunConfig(C.CorpusConfig(), model, C.LipschitzConfig(), C.TrainConfig(**train))


def test_cpu_projection_of_the_paper_run_names_the_cpu_preset():
    line = cli_training.cpu_projection(_paper_config(), "cpu")
    # 10 × 0.791 s + 0.434 s = 8.344 s per iteration; 200,000 of them are 19.3 days.
    assert line == (
        "textgan train: on a 2-core CPU this model takes about 8.3 s per iteration, so "
        "200,000 iterations take about 19 days (2.8 weeks); --preset cpu --max-minutes 60 is "
        "the CPU recipe fitted to an hour, or train on a GPU. Starting anyway."
    )
    assert cli_training.cpu_projection(_paper_config(), "cuda") is None
    assert cli_training.cpu_projection(_paper_config(iters=10_000), "cpu") is None  # a day
    small = replace(_paper_config(), model=C.ModelConfig(vocab_size=256, dim=128, blocks=2))
    assert cli_training.cpu_seconds_per_iteration(small) == pytest.approx(8.344 / 16 * 0.4)
    # A critic twice as wide: its steps do 4x the work, the generator step (both) 2.5x.
    wide = C.ModelConfig(vocab_size=256, dim=128, blocks=2, critic_dim=256)
    want = 0.4 / 16 * (10 * 0.791 * 4 + 0.434 * 2.5)
    assert cli_training.cpu_seconds_per_iteration(replace(small, model=wide)) == pytest.approx(want)


def test_train_prints_the_projection_once_and_starts_anyway(data_args, monkeypatch, tmp_path):
    started = []

    def fake_train(config, prepared, progress, loggers=()):
        started.append(config)
        return SimpleNamespace(exit_code=0)

    monkeypatch.setattr(training, "train", fake_train)
    result = _invoke(["train", *data_args, "--preset", "paper", "--device", "cpu",
                      "--no-progress", "--run-dir", str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "per iteration" in line]
    assert len(lines) == 1 and "200,000 iterations take about" in lines[0]
    assert "--preset cpu --max-minutes 60" in lines[0]
    assert [c.model.dim for c in started] == [512]


def test_resume_extends_a_finished_run(trained, tmp_path):
    run = _copy(trained, tmp_path)
    _fails(["train", "--resume", str(run)], "already at iteration 4")
    result = _invoke(["train", "--resume", str(run), "--iters", "6", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert rd.RunDir(run).latest_checkpoint().name == "iter_0000006"
    rows = [r["iter"] for r in files.read_rows(run / "metrics.jsonl") if "critic_loss" in r]
    assert rows == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--critic-iters", "0"], "--critic-iters must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "-0.001"], "--lr must be a positive number"),
        (["--iters", "0"], "--iters must be at least 1"),
        (["--preset", "huge"], "Invalid value for '--preset': 'huge' is not one of"),
        (["--lipschitz", "magic"], "Invalid value for '--lipschitz': 'magic' is not one of"),
        (["--beta1", "1"], "--beta1 must lie in [0, 1), got 1.0"),
        (["--dim", str(10**8)], "--dim (now 100,000,000)"),  # textgan.nn.memory, named as flags
        (["--batch-size", str(10**9)], "lower --batch-size (now 1,000,000,000)"),
        (
            ["--name", "../../x"],
            "--name must be a plain name, got '../../x'; give paths as --run-dir",
        ),
    ],
)
def test_bad_train_options_fail_before_writing_anything(data_args, tmp_path, flags, message):
    run = tmp_path / "r"
    _fails(["train", *data_args, *MICRO, *flags, "--run-dir", str(run)], message)
    assert not run.exists()


def test_resume_refusals_leave_the_run_untouched(trained, tmp_path):
    run = _copy(trained, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    (tmp_path / "plain").mkdir()
    _fails(["train", "--resume", str(tmp_path / "plain")], "not a textgan run directory")
    _fails(["train", "--resume", str(tmp_path / "nowhere")], "does not exist")
    _fails(["train", "--resume", str(run), "--iters", "9", "--dim", "64"], "--dim cannot change")
    _fails(["train", "--resume", str(run), "--iters", "9", "--preset", "small"], "--preset cannot")
    _fails(["train", "--resume", str(run), "--corpus-seed", "3", "--batch-size", "8"],
           "--corpus-seed, --batch-size cannot change when resuming")  # fmt: skip
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [("missing", "has no checkpoint"), ("truncate", "truncated"), ("corrupt", "corrupted")],
)
def test_resume_refuses_a_broken_checkpoint(trained, tmp_path, damage, message):
    run = _copy(trained, tmp_path)
    latest = rd.RunDir(run).latest_checkpoint()
    weights = latest / "critic.safetensors"
    if damage == "missing":
        for ckpt in rd.RunDir(run).checkpoint_dirs():
            shutil.rmtree(ckpt)
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0x01
        weights.write_bytes(bytes(data))
    config = (run / "config.json").read_bytes()
    _fails(["train", "--resume", str(run), "--iters", "8"], message)
    assert (run / "config.json").read_bytes() == config


@pytest.mark.parametrize(
    ("edit", "message"),
    [({"corpus": "pydocs"}, "does not fit the model"), ({"seq_len": 16}, "sequence length 16")],
)
def test_resume_refuses_a_corpus_that_does_not_fit_the_checkpoint(trained, tmp_path, edit, message):
    run = _copy(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["corpus"].update(edit)
    text = json.dumps(config)
    (run / "config.json").write_text(text)
    _fails(["train", "--resume", str(run), "--iters", "8"], message)
    assert (run / "config.json").read_text() == text


def test_resume_refuses_a_crafted_pickle_without_running_it(trained, tmp_path):
    run = _copy(trained, tmp_path)
    marker = tmp_path / "executed"
    latest = rd.RunDir(run).latest_checkpoint()
    torch.save({"format": 1, "x": _Payload(marker)}, latest / "state.pt")
    ck.write_manifest(latest, 4)
    _fails(["train", "--resume", str(run), "--iters", "8"], "refusing to load")
    assert not marker.exists()


# -- sample --------------------------------------------------------------------------------------


def _vocab_chars(run):
    return {chr(s) for s in ck.Vocab.load(run / "vocab.json").symbols} | {"\ufffd"}


def test_sample_writes_exactly_n_lines_of_vocabulary_text(trained):
    result = _invoke(["sample", "-n", "25", "--run", str(trained), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert lines[-1] == "" and len(lines) == 26
    assert set("".join(lines)) <= _vocab_chars(trained)
    assert all(len(line) <= 32 for line in lines)
    again = _invoke(["sample", "-n", "25", "--run", str(trained), "--device", "cpu"])
    assert again.stdout == result.stdout  # same seed, same samples


def test_sample_streams_many_in_batches_to_a_file(trained, tmp_path):
    out = tmp_path / "s.txt"
    result = _invoke(["sample", "-n", "1000", "--batch-size", "64", "--temperature", "0.8",
                      "--seed", "3", "--checkpoint", str(rd.RunDir(trained).latest_checkpoint()),
                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0 and result.stdout == ""
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 1001 and lines[-1] == ""
    assert set("".join(lines)) <= _vocab_chars(trained)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_sample_defaults_to_the_latest_run(trained, monkeypatch):
    monkeypatch.chdir(trained.parents[1])
    result = _invoke(["sample", "-n", "3"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "-n"),
        (["-n", "-4"], "-n"),
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "-1"], "--temperature"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_sample_refuses_bad_numbers(trained, args, message):
    _fails(["sample", "--run", str(trained), *args], message)


def test_sample_refuses_a_batch_larger_than_memory_before_allocating(trained, monkeypatch):
    monkeypatch.setattr("textgan.nn.memory.device_memory", lambda device: 2**30)  # 1 GiB here
    cfg = C.ModelConfig(vocab_size=60, dim=16, blocks=1)
    # A sample of 32 positions: 128 noise floats and 4 × (16 + 60) floats per position.
    assert cli_outputs.sample_batch_bytes(cfg, 10) == 4 * 10 * (128 + 32 * 4 * 76)
    _fails(["sample", "--run", str(trained), "-n", str(10**12), "--batch-size", str(10**12)],
           "--batch-size 1,000,000,000,000 needs about")  # fmt: skip
    _fails(["sample", "--run", str(trained), "-n", str(10**6), "--batch-size", str(10**6)],
           "use --batch-size 1,024")  # fmt: skip
    # -n bounds the batch: a huge --batch-size for a few samples is fine.
    result = _invoke(["sample", "--run", str(trained), "-n", "3", "--batch-size", str(10**12)])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3


def test_score_against_a_runs_corpus(trained, tmp_path):
    result = _invoke(["score", "--real", "--run", str(trained), "-n", "50", "--json",
                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_samples"] == 50 and report["seq_len"] == 32
    run = _copy(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["corpus"]["max_vocab"] = "many"
    (run / "config.json").write_text(json.dumps(config))
    _fails(["score", "--real", "--run", str(run)], "corpus.max_vocab must be a int, got 'many'")


def test_sample_refuses_missing_runs(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fails(["sample", "-n", "3"], "no run with a checkpoint under runs/")
    _fails(["sample", "--run", str(tmp_path)], "not a textgan run directory")
    _fails(["sample", "--checkpoint", str(tmp_path / "none")], "does not exist")
    both = ["sample", "--run", str(trained), "--checkpoint", str(trained)]
    _fails(both, "give one of --run, --checkpoint or --model")
    out = tmp_path / "keep.txt"
    out.write_text("precious")
    _fails(["sample", "--run", str(tmp_path), "--out", str(out)], "not a textgan run")
    assert out.read_text() == "precious"
