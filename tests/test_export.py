"""`textgan export` and `push` on a tiny trained run: the model folder, its card's numbers,
and sampling it back exactly as the run samples."""

import json
import os
import shutil
from typing import ClassVar

import pytest
import torch
from click.testing import CliRunner
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import textgan
from textgan.cli import main
from textgan.corpus import pydocs_sentences
from textgan.files import append_rows, read_rows
from textgan.files.checkpoint import EMA_KEY, load_checkpoint
from textgan.sharing import export as E
from textgan.sharing import hub
from textgan.sharing.card import PublishedCorpus

TRAIN = {"iters": 20, "eval_every": 10, "ckpt_every": 10, "eval_samples": 64, "device": "cpu"}
SMALL = {"dim": 16}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small steps on shared cores: no spinning OpenMP threads
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    textgan.fit(
        {"corpus": "pydocs", "data_dir": data_dir},
        preset="tiny",
        model=SMALL,
        train={**TRAIN, "batch_size": 16, "critic_iters": 2, "run_dir": str(run_dir)},
    )
    yield run_dir
    torch.set_num_threads(before)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """The run exported twice: the EMA average (default) and the raw weights."""
    out = tmp_path_factory.mktemp("models")
    for kind, extra in (("ema", []), ("raw", ["--raw"])):
        result = cli("export", run, "--out", out / kind, *extra)
        assert result.exit_code == 0, result.output
    return {"ema": out / "ema", "raw": out / "raw"}


def test_folder_holds_the_hugging_face_layout(exported):
    assert sorted(os.listdir(exported["ema"])) == sorted(hub.FILES)
    config = json.loads((exported["ema"] / hub.CONFIG).read_text())
    assert config["textgan"] == hub.MODEL_FORMAT and config["weights"] == "ema"
    assert config["model"]["dim"] == 16 and config["vocab"]["size"] == 100
    assert config["corpus"]["corpus"] == "pydocs" and "data_dir" not in config["corpus"]
    assert not [p for p in exported["ema"].parent.iterdir() if p.name.startswith(".tmp-")]


def test_sample_model_gives_the_run_strings_with_the_same_weights(run, exported):
    args = ("-n", 50, "--seed", 3, "--device", "cpu")
    from_run = cli("sample", "--run", run, *args)  # the weight average, as the EMA export
    from_run_raw = cli("sample", "--run", run, "--raw", *args)
    from_model = cli("sample", "--model", exported["ema"], "-n", 50, "--seed", 3)
    from_model_raw = cli("sample", "--model", exported["raw"], "-n", 50, "--seed", 3)
    for result in (from_run, from_run_raw, from_model, from_model_raw):
        assert result.exit_code == 0, result.output
    assert from_model.output == from_run.output and len(from_run.output.splitlines()) == 50
    assert from_model_raw.output == from_run_raw.output
    assert from_model.output != from_model_raw.output  # other weights, other text


def test_weights_are_the_checkpoints_ema_or_raw(run, exported):
    ckpt = load_checkpoint(run)
    for kind, expected in (("ema", ckpt.state[EMA_KEY]), ("raw", ckpt.generator)):
        weights = load_file(exported[kind] / hub.WEIGHTS)
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[k], expected[k]) for k in weights)
    assert not torch.equal(ckpt.state[EMA_KEY]["input.weight"], ckpt.generator["input.weight"])


def test_from_pretrained_returns_the_generator_with_its_vocab(run, exported):
    generator = textgan.from_pretrained(str(exported["raw"]))
    reference, vocab = textgan.load_generator(run, device="cpu", raw=True)
    assert isinstance(generator, textgan.Generator) and not generator.training
    assert generator.vocab == vocab and generator.cfg == reference.cfg
    z = generator.sample_noise(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(generator(z), reference(z))


def test_card_numbers_are_the_runs_and_reproducible(run, exported, data_dir, tmp_path):
    card = ModelCard.load(exported["ema"] / hub.CARD)
    assert card.data.library_name == "textgan" and card.data.license == "mit"
    assert card.data.tags == ["text-generation", "gan", "wgan-gp", "character-level"]
    assert card.data.datasets is None  # pydocs is built in, not a hub dataset
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    last = [r for r in read_rows(run / "metrics.jsonl") if "js4" in r][-1]
    assert last["iter"] == 20 and last["n_samples"] == 64
    assert [values[f"js{n}"] for n in range(1, 5)] == [last[f"ema_js{n}"] for n in range(1, 5)]
    for n in range(1, 5):
        assert f"| JS-{n} (bits) | {last[f'ema_js{n}']:.4f} | {last[f'floor_js{n}']:.4f} |" in (
            card.text
        )
    assert "20 of 20 iterations" in card.text and "on cpu" in card.text
    assert "evaluation at iteration 20, N = 64" in card.text
    command = (
        "textgan train --preset tiny --corpus pydocs --dim 16 --iters 20 --batch-size 16 "
        "--critic-iters 2 --device cpu --eval-every 10 --eval-samples 64 --ckpt-every 10\n"
    )
    assert command in card.text
    # Self-BLEU and LM as `sample --model` + `score --model` compute them.
    samples = tmp_path / "samples.txt"
    assert cli("sample", "--model", exported["ema"], "-n", 640, "--out", samples).exit_code == 0
    scored = cli("score", samples, "--model", exported["ema"], "--data-dir", data_dir, "--json")
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)
    assert values["self_bleu4"] == report["self_bleu4"] and values["lm_bits"] == report["lm_bits"]
    shown = card.text.split("## Samples\n\n```\n")[1].split("\n```\n")[0]
    assert shown.split("\n") == samples.read_text().splitlines()[:10]


def test_export_refuses_a_full_out_and_a_missing_iteration(run, exported, tmp_path):
    full = cli("export", run, "--out", exported["ema"])
    assert full.exit_code == 2 and "already exists and is not empty" in full.output
    assert len(full.output.strip().splitlines()) == 1
    missing = cli("export", run, "--checkpoint", 5, "--out", tmp_path / "m")
    assert missing.exit_code == 2 and "no checkpoint at iteration 5 (it has: 10, 20)" in (
        missing.output
    )
    assert not (tmp_path / "m").exists()


def test_export_of_an_earlier_checkpoint_takes_its_evaluation(run, tmp_path):
    out = E.export_run(run, tmp_path / "k10", checkpoint="10", raw=True)
    results = ModelCard.load(out / hub.CARD).data.eval_results
    values = {r.metric_type: r.metric_value for r in results}
    row = next(r for r in read_rows(run / "metrics.jsonl") if "js4" in r and r["iter"] == 10)
    assert values["js4"] == row["js4"]
    assert json.loads((out / hub.CONFIG).read_text())["iteration"] == 10


def test_export_refuses_a_checkpoint_of_another_run(run, tmp_path):
    """Item 5: the card's numbers, corpus and command are RUN's; C must be RUN's checkpoint."""
    other = shutil.copytree(run, tmp_path / "other")
    foreign = other / "checkpoints" / "iter_0000020"
    result = cli("export", run, "--checkpoint", foreign, "--out", tmp_path / "m")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"checkpoint {foreign} is not one of run {run}'s" in result.output
    assert not (tmp_path / "m").exists()
    own = run / "checkpoints" / "iter_0000010" / "manifest.json"  # a file inside it will do
    out = E.export_run(run, tmp_path / "own", checkpoint=str(own))
    assert json.loads((out / hub.CONFIG).read_text())["iteration"] == 10


def test_a_checkpoint_the_run_did_not_evaluate_is_evaluated_at_export(run, tmp_path):
    """Item 5: a checkpoint saved where no evaluation was logged (a signal at 1,050) gets JS
    evaluated at export as the run would have, never an earlier evaluation's numbers."""
    copy = shutil.copytree(run, tmp_path / "run")
    rows = read_rows(copy / "metrics.jsonl")
    dropped = next(r for r in rows if r["iter"] == 20 and "js4" in r)
    (copy / "metrics.jsonl").unlink()
    append_rows(copy / "metrics.jsonl", [r for r in rows if r is not dropped])
    out = E.export_run(copy, tmp_path / "m")
    model_card = ModelCard.load(out / hub.CARD)
    values = {r.metric_type: r.metric_value for r in model_card.data.eval_results}
    # The run's own evaluation at 20, removed from its log, is what export computes again.
    assert [values[f"js{n}"] for n in range(1, 5)] == [dropped[f"ema_js{n}"] for n in range(1, 5)]
    for n in range(1, 5):
        assert f"| {dropped[f'floor_js{n}']:.4f} |" in model_card.text
    assert "computed at export (the run logged no evaluation at iteration 20)" in model_card.text


@pytest.mark.parametrize(
    ("corpus", "published"),
    [
        ("hf:someone/news:en", ("hf:someone/news:en", "someone/news", False)),
        ("billion_words", ("billion_words", "billion-word-benchmark/lm1b", False)),
        ("pydocs", ("pydocs", None, False)),
        ("hf:/data/my set", ("my set", None, True)),
        ("/home/me/my corpus.txt", ("my corpus.txt", None, True)),
        ("texts/", ("texts", None, True)),
    ],
)
def test_a_corpus_is_published_by_hub_id_name_or_file_name(corpus, published):
    found = PublishedCorpus.of(corpus)
    assert (found.name, found.dataset, found.local) == published


def test_a_local_corpus_is_named_by_its_file_name_only(data_dir, tmp_path):
    """Item 6: a run on /abs/path/my corpus.txt publishes 'my corpus.txt', never the path, and
    names no hub dataset; scoring against the model's corpus says why it cannot."""
    text = tmp_path / "private place" / "my corpus.txt"
    text.parent.mkdir()
    text.write_text("\n".join(pydocs_sentences()[:1500]) + "\n")
    run_dir = tmp_path / "run"
    train = {**TRAIN, "iters": 2, "eval_every": 2, "ckpt_every": 2, "eval_samples": 32}
    textgan.fit(
        {"corpus": str(text), "data_dir": data_dir},
        preset="tiny",
        model=SMALL,
        train={**train, "batch_size": 8, "critic_iters": 1, "run_dir": str(run_dir)},
    )
    result = cli("export", run_dir, "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m" / hub.CONFIG).read_text())
    assert config["corpus"]["corpus"] == "my corpus.txt" and config[hub.CORPUS_LOCAL] is True
    model_card = ModelCard.load(tmp_path / "m" / hub.CARD)
    assert model_card.data.datasets is None
    assert "--corpus 'my corpus.txt'" in model_card.text
    assert {r.dataset_name for r in model_card.data.eval_results} == {"my corpus.txt"}
    for written in (tmp_path / "m" / hub.CONFIG, tmp_path / "m" / hub.CARD):
        assert "private place" not in written.read_text()
    samples = tmp_path / "s.txt"
    samples.write_text("some sample\n")
    scored = cli("score", samples, "--model", tmp_path / "m", "--data-dir", data_dir)
    assert scored.exit_code == 2 and len(scored.output.strip().splitlines()) == 1
    assert "trained on a local corpus (my corpus.txt)" in scored.output


class Recorder:
    """HfApi that records its calls (and what the uploaded folder held) instead of sending."""

    calls: ClassVar[list] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        Recorder.calls.append(("create_repo", repo_id, kwargs.get("private")))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        Recorder.calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path))))


def test_push_exports_and_uploads_with_the_users_token(run, monkeypatch):
    import huggingface_hub

    from textgan.corpus import hub as corpus_hub

    Recorder.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(corpus_hub, "hub_problem", lambda: None)  # as if online
    result = cli("push", run, "--repo", "someone/tiny-gan", "--private")
    assert result.exit_code == 0, result.output
    assert Recorder.calls == [
        ("create_repo", "someone/tiny-gan", True),
        ("upload_folder", "someone/tiny-gan", sorted(hub.FILES)),
    ]
