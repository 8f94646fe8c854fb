"""The sequence-length curriculum (``textgan/training/curriculum.py``, ``train.curriculum``): its
format and refusals, the length at each iteration, the cropped batches, evaluation at the full
length, and its length saved with each checkpoint. (``tests/test_registry.py`` trains and
resumes a run with one bit for bit.)"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_train import _stop_at

from textgan import config as C
from textgan import files
from textgan.cli import main
from textgan.corpus import CorpusConfig, prepare
from textgan.errors import UserError
from textgan.files import checkpoint as ck
from textgan.files import rundir as rd
from textgan.studies.tune_space import check_space, parse_space, refusal
from textgan.training import curriculum as CU
from textgan.training import loop as T
from textgan.training import trainer as TR
from textgan.training.evaluation import argmax_ids
from textgan.training.setup import resolve_run_config
from textgan.training.state import trainer_state

pytestmark = pytest.mark.usefixtures("one_thread")

ANY = {"generator": "any-length", "critic": "any-length"}
FORMAT = "train.curriculum must be LEN:FRACTION,... with lengths and fractions of train.iters"


def _model(**kw):
    return C.ModelConfig(vocab_size=11, seq_len=32, dim=16, blocks=1, **{**ANY, **kw})


# -- the format and the refusals ---------------------------------------------------------------


def test_a_curriculum_is_stages_of_lengths_and_fractions():
    assert CU.parse("8:0.2,16:0.5") == ((8, 0.2), (16, 0.5))
    assert CU.parse("16:0.75") == ((16, 0.75),)


@pytest.mark.parametrize(
    "text",
    ["", "8", "8:0.2,", "a:0.2", "8:0.2:3", "8:0", "8:1", "0:0.5", "8:0.5,4:0.7", "8:0.5,16:0.2",
     "8:0.2,8:0.5", "8:0.2,16:0.2", "8:-0.1"],
)  # fmt: skip
def test_a_malformed_curriculum_is_one_line(text):
    with pytest.raises(UserError) as err:
        CU.parse(text)
    assert str(err.value) == (
        f"{FORMAT} growing, e.g. 8:0.2,16:0.5; got {text!r}"
    )  # fmt: skip


def test_a_curriculum_needs_length_agnostic_networks_and_lengths_below_the_rows():
    CU.check("8:0.2,16:0.5", "any-length", "any-length", 32)
    CU.check(None, "paper", "paper", 32)  # no curriculum: any network
    with pytest.raises(UserError) as err:
        CU.check("8:0.5", "paper", "any-length", 32)
    assert str(err.value) == (
        "train.curriculum needs length-agnostic networks, and model.generator paper is sized by "
        "the sequence length; use model.generator any-length and model.critic any-length, or "
        "drop train.curriculum"
    )
    with pytest.raises(UserError, match=r"and model\.generator attn and model\.critic windows are"):
        CU.check("8:0.5", "attn", "windows", 32)
    with pytest.raises(UserError, match=r"'8:0.2,32:0.5' must grow to lengths below the rows' 32"):
        CU.check("8:0.2,32:0.5", "any-length", "any-length", 32)


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "--curriculum needs length-agnostic networks, and --generator paper and --critic paper "
          "are sized by the sequence length; use --generator any-length and --critic any-length, "
          "or drop --curriculum"),
     (["--generator", "any-length", "--critic", "any-length", "--seq-len", "8"],
      "--curriculum '8:0.5' must grow to lengths below the rows' 8 symbols (--seq-len): whole "
      "rows follow its last stage")],
)  # fmt: skip
def test_the_cli_refuses_a_curriculum_in_one_line_with_exit_2(tmp_path, args, message):
    # Where a run is not refused, it stays one iteration inside tmp_path.
    where = ["--data-dir", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--iters", "1"]
    cmd = ["train", "--corpus", "pydocs", "--curriculum", "8:0.5", *where, *args]
    result = CliRunner().invoke(main, cmd)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"textgan: error: {message}"]


def test_the_cli_refuses_a_malformed_curriculum_in_one_line_with_exit_2(tmp_path):
    args = ["train", "--corpus", "pydocs", "--data-dir", str(tmp_path), "--curriculum", "8"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "textgan: error: --curriculum must be LEN:FRACTION,... with lengths and fractions of "
        "--iters growing, e.g. 8:0.2,16:0.5; got '8'"
    ]


def test_a_tune_space_can_search_the_curriculum_and_refuses_it_with_fixed_networks():
    def base(**model):
        overrides = {"corpus": {"corpus": "pydocs"}, "model": model,
                     "train": {"curriculum": "8:0.3"}}  # fmt: skip
        return C.layered_config("tiny", overrides=overrides)

    space = {"train.curriculum": {"choices": ["8:0.2,16:0.5", "16:0.5"]}}
    check_space(parse_space(space, "s"), base(**ANY), "s")
    with pytest.raises(UserError, match=r"^s: train.curriculum = '8:0.2,16:0.5': train.curriculum"
                                        " needs length-agnostic networks"):  # fmt: skip
        check_space(parse_space(space, "s"), base(), "s")
    # A trial that samples a fixed-length network beside a curriculum is pruned, not run.
    assert refusal(base(generator="paper", critic="any-length")).startswith(
        "train.curriculum needs length-agnostic networks, and model.generator paper is"
    )
    assert refusal(base(**ANY)) is None


# -- the length of each iteration --------------------------------------------------------------


def test_the_length_grows_at_the_fractions_of_iters_and_never_shrinks():
    cur = CU.Curriculum("8:0.2,16:0.5", _model())
    assert (cur.length, cur.crop) == (8, 8)
    lengths = {k: cur.at(k, 100) for k in (0, 19, 20, 49, 50, 99, 150)}
    assert lengths == {0: 8, 19: 8, 20: 16, 49: 16, 50: 32, 99: 32, 150: 32}
    assert [cur.advance(k, 10) for k in range(10)] == [8, 8, 16, 16, 16, 32, 32, 32, 32, 32]
    assert cur.crop is None
    # More iterations (a resume with a larger --iters, a fitted schedule): no going back.
    assert cur.advance(10, 1000) == 32 and cur.at(10, 1000) == 8
    none = CU.Curriculum(None, _model(generator="paper", critic="paper"))
    assert (none.length, none.crop, none.at(0, 10)) == (32, None, 32)
    cur.load({})  # a checkpoint from before the curriculum trained whole rows
    assert cur.length == 32
    cur.load({CU.STATE_KEY: 16})
    assert cur.length == 16


def _trainer(curriculum="4:0.5", iters=4, **model):
    model = C.ModelConfig(vocab_size=12, seq_len=16, dim=16, blocks=1, **{**ANY, **model})
    train = C.TrainConfig(batch_size=6, critic_iters=2, iters=iters, curriculum=curriculum,
                          device="cpu", precision="fp32")  # fmt: skip
    config = C.RunConfig(CorpusConfig(), model, C.LipschitzConfig(), train)
    ids = np.random.default_rng(0).integers(2, 12, (50, 16)).astype(np.uint8)
    return TR.Trainer(config, ids, torch.device("cpu")), ids


def test_the_trainer_crops_real_rows_asks_for_as_many_positions_and_evaluates_whole_rows():
    trainer, ids = _trainer()
    state = trainer.data_rng.bit_generator.state
    real = trainer.real_batch()
    assert real.shape == (6, 12, 4)
    # The same rows as without the curriculum, cut to their first 4 symbols.
    trainer.data_rng.bit_generator.state = state
    full = TR.real_batch(ids, trainer.data_rng, 6, 12, torch.device("cpu"))
    assert torch.equal(real, full[:, :, :4]) and full.shape == (6, 12, 16)
    assert trainer.fake_batch().shape == (6, 12, 4)
    seen = []
    for _ in range(4):
        trainer.step()
        seen.append(trainer.curriculum.length)
    assert seen == [4, 4, 16, 16]
    assert trainer_state(trainer)[CU.STATE_KEY] == 16
    config = trainer.config
    samples = argmax_ids(trainer.generator, C.with_train(config, eval_samples=5), trainer.device)
    assert samples.shape == (5, 16)


def test_a_trainer_refuses_a_curriculum_its_networks_cannot_train():
    with pytest.raises(UserError, match=r"model\.critic paper is sized by the sequence length"):
        _trainer(critic="paper")


# -- resume ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pydocs(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    prepared = prepare(CorpusConfig(corpus="pydocs", data_dir=str(data_dir)), progress=False)
    return {"corpus": "pydocs", "data_dir": str(data_dir)}, prepared


def test_the_length_is_saved_and_a_longer_resumed_run_keeps_it(pydocs, tmp_path):
    """Stopped at 4 of 6 iterations with rows of 8 until 0.5·6: the checkpoint holds the whole
    length of iteration 3, and a resume to 12 iterations, whose schedule says 8 until iteration
    6, goes on with whole rows."""
    sections, prepared = pydocs
    layers = {
        "corpus": sections,
        "model": {"dim": 16, "blocks": 1, **ANY},
        "train": {"batch_size": 8, "critic_iters": 1, "device": "cpu", "precision": "fp32",
                  "iters": 6, "log_every": 2, "eval_every": 100, "ckpt_every": 100,
                  "eval_samples": 16, "curriculum": "8:0.5", "run_dir": str(tmp_path / "r")},
    }  # fmt: skip
    config = resolve_run_config(C.layered_config("tiny", overrides=layers), False)[0]
    lengths = []

    def record(trainer, k):
        lengths.append(trainer.curriculum.length)

    stopped = T.train(config, prepared, progress=False, hooks=[record, _stop_at(4)])
    assert stopped.iteration == 4 and lengths == [8, 8, 8, 32]
    assert ck.load_checkpoint(stopped.checkpoint).state[CU.STATE_KEY] == 32
    saved = json.loads((stopped.run_dir / "config.json").read_text())["train"]["curriculum"]
    assert saved == "8:0.5"
    resumed = T.resume(stopped.run_dir, {"iters": 12}, progress=False, hooks=[record])
    assert resumed.iteration == 12 and lengths[4:] == [32] * 8
    # The rows' mean length over each logged interval of 2 iterations.
    rows = [r for r in files.read_rows(resumed.run_dir / rd.METRICS) if "critic_loss" in r]
    assert [r["seq_len"] for r in rows] == [8, 20, 32, 32, 32, 32]
