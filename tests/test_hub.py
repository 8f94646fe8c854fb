"""Loading exported models from a folder or the hub cache (offline), and every refusal: a
missing folder or id, garbage weights, a foreign config; `push` without a token or network."""

import json
from dataclasses import asdict
from typing import ClassVar

import huggingface_hub
import pytest
import torch
from click.testing import CliRunner
from huggingface_hub import constants
from safetensors.torch import save_file

from textgan.cli import main
from textgan.config import ModelConfig
from textgan.errors import UserError
from textgan.nn.networks import Generator
from textgan.sharing import hub
from textgan.vocab import Vocab

VOCAB = Vocab(tuple(range(ord("a"), ord("z") + 1)))
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_model(folder, seed=0):
    """A model folder as `textgan export` writes it, from a fresh small generator."""
    torch.manual_seed(seed)
    generator = Generator(ModelConfig(vocab_size=len(VOCAB), dim=8, blocks=1))
    folder.mkdir(parents=True)
    config = {"textgan": hub.MODEL_FORMAT, "model": asdict(generator.cfg), "weights": "raw"}
    (folder / hub.CONFIG).write_text(json.dumps(config))
    (folder / hub.VOCAB).write_text(json.dumps(VOCAB.to_json()))
    (folder / hub.CARD).write_text("---\nlibrary_name: textgan\n---\n# test\n")
    save_file(generator.state_dict(), folder / hub.WEIGHTS)
    return generator


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and text in result.output


def test_from_pretrained_loads_a_local_folder(tmp_path):
    original = write_model(tmp_path / "m")
    loaded = hub.from_pretrained(str(tmp_path / "m"))
    assert loaded.vocab == VOCAB and not loaded.training
    z = torch.randn(3, original.cfg.noise_dim)
    assert torch.equal(loaded(z), original.eval()(z))


def test_a_hub_id_loads_from_the_cache_offline(tmp_path, monkeypatch):
    # The layout snapshot_download leaves after one download: refs/main names the snapshot.
    repo = tmp_path / "cache" / "models--someone--tiny-gan"
    original = write_model(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no local folder someone/tiny-gan here
    for source in ("hf:someone/tiny-gan", "someone/tiny-gan"):
        loaded = hub.from_pretrained(source)
        assert loaded.vocab == VOCAB
        assert torch.equal(loaded.output.weight, original.output.weight)
    result = cli("sample", "--model", "hf:someone/tiny-gan", "-n", 5)
    assert result.exit_code == 0 and len(result.output.splitlines()) == 5
    one_line_error(cli("sample", "--model", "hf:someone/other"), "not in the Hugging Face cache")


def test_missing_folder_is_one_line(tmp_path):
    one_line_error(cli("sample", "--model", tmp_path / "nothing"), "model folder")
    (tmp_path / "s.txt").write_text("some sample\n")
    score = cli("score", tmp_path / "s.txt", "--model", tmp_path / "nothing")
    one_line_error(score, f"model folder {tmp_path / 'nothing'} does not exist")


def test_garbage_weights_are_refused_in_one_line(tmp_path):
    write_model(tmp_path / "m")
    (tmp_path / "m" / hub.WEIGHTS).write_bytes(b"\x80\x04garbage, not safetensors" * 10)
    one_line_error(cli("sample", "--model", tmp_path / "m"), "cannot read weights")
    with pytest.raises(UserError, match="cannot read weights"):
        hub.from_pretrained(str(tmp_path / "m"))


def test_weights_of_another_model_are_refused(tmp_path):
    original = write_model(tmp_path / "m")
    save_file({"input.weight": torch.zeros(2, 2)}, tmp_path / "m" / hub.WEIGHTS)
    one_line_error(cli("sample", "--model", tmp_path / "m"), "and its weights hold 4;")
    # As many values as the config's generator, in other shapes.
    weights = {k: v.clone() for k, v in original.state_dict().items()}
    weights["input.weight"] = weights["input.weight"].T.contiguous()
    save_file(weights, tmp_path / "m" / hub.WEIGHTS)
    one_line_error(cli("sample", "--model", tmp_path / "m"), "do not fit its config")


def test_a_config_claiming_a_huge_model_is_refused_before_building_it(tmp_path):
    """A hostile config.json (item 7): dim 10**8 would ask the allocator for 400 PB."""
    write_model(tmp_path / "m")
    config = json.loads((tmp_path / "m" / hub.CONFIG).read_text())
    config["model"]["dim"] = 10**8
    (tmp_path / "m" / hub.CONFIG).write_text(json.dumps(config))
    result = cli("sample", "--model", tmp_path / "m")
    one_line_error(result, "describes a generator of 100,000,415,800,000,028 parameters")
    with pytest.raises(UserError, match="does not belong to these weights"):
        hub.from_pretrained(str(tmp_path / "m"))


def test_raw_weights_are_given_only_by_a_folder_that_holds_them(tmp_path):
    """`sample --model DIR --raw` (item 4): a folder of the weight average refuses --raw, one of
    the trained weights gives them."""
    raw = write_model(tmp_path / "raw")
    write_model(tmp_path / "ema", seed=1)
    config = json.loads((tmp_path / "ema" / hub.CONFIG).read_text())
    (tmp_path / "ema" / hub.CONFIG).write_text(json.dumps({**config, "weights": "ema"}))
    refused = cli("sample", "--model", tmp_path / "ema", "--raw", "-n", 2)
    one_line_error(refused, "holds the weight average (EMA), not the trained weights")
    assert cli("sample", "--model", tmp_path / "ema", "-n", 2).exit_code == 0
    loaded = hub.load_model(tmp_path / "raw", raw=True)
    assert torch.equal(loaded.output.weight, raw.output.weight)
    with_raw = cli("sample", "--model", tmp_path / "raw", "--raw", "-n", 3)
    assert (
        with_raw.exit_code == 0
        and with_raw.output == cli("sample", "--model", tmp_path / "raw", "-n", 3).output
    )


def test_a_folder_that_is_not_a_textgan_model_is_refused(tmp_path):
    write_model(tmp_path / "m")
    (tmp_path / "m" / hub.CONFIG).write_text(json.dumps({"model_type": "gpt2"}))
    one_line_error(cli("sample", "--model", tmp_path / "m"), "not a textgan model of format 1")
    (tmp_path / "m" / hub.VOCAB).unlink()
    one_line_error(cli("sample", "--model", tmp_path / "m"), "no vocab.json")


class Recorder:
    calls: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        Recorder.calls.append(("HfApi", args, kwargs))

    def __getattr__(self, name):
        return lambda *args, **kwargs: Recorder.calls.append((name, args, kwargs))


@pytest.fixture
def recorder(monkeypatch):
    Recorder.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    return Recorder.calls


def test_push_without_a_token_is_one_line_and_uploads_nothing(tmp_path, recorder, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    one_line_error(cli("push", tmp_path, "--repo", "someone/x"), "no Hugging Face token")
    assert recorder == []


def test_push_offline_is_one_line_and_uploads_nothing(tmp_path, recorder, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line_error(cli("push", tmp_path, "--repo", "someone/x"), "offline mode")
    assert recorder == []
