"""`textgan train --logger tensorboard`: event files read back with TensorBoard's own reader
hold every scalar, JS beside its floor and the samples, and a resumed run continues the curves
without a duplicated step."""

import pytest
import torch
from click.testing import CliRunner

from textgan.cli import main
from textgan.config import layered_config
from textgan.files import read_rows
from textgan.training import loggers, setup
from textgan.training import loop as training

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAIN = {"iters": 20, "log_every": 5, "eval_every": 10, "ckpt_every": 10, "eval_samples": 32}


class Killed(Exception):
    """Stands for a run killed after iteration 15, past its checkpoint at 10."""


def kill_at_15(trainer, k):
    if k == 15:
        raise Killed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run killed at 15 (rows up to 15 logged, checkpoint at 10), then resumed to 20."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tb")
    layers = layered_config(
        "tiny",
        overrides={
            "corpus": {"corpus": "pydocs", "data_dir": str(root / "data")},
            "model": {"dim": 16},
            "train": {**TRAIN, "batch_size": 16, "critic_iters": 2, "device": "cpu",
                      "run_dir": str(root / "run")},
        },
    )  # fmt: skip
    config, prepared = setup.resolve_run_config(layers, progress=False)
    with pytest.raises(Killed):
        training.train(
            config, prepared, progress=False, hooks=[kill_at_15], loggers=["tensorboard"]
        )
    killed_steps = steps(root / "run", "train/critic_loss")
    training.resume(root / "run", progress=False, loggers=["tensorboard"])
    yield root / "run", killed_steps
    torch.set_num_threads(before)


def steps(run_dir, tag):
    acc = EventAccumulator(str(run_dir / loggers.TB_DIR))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def reader(run_dir):
    acc = EventAccumulator(str(run_dir / loggers.TB_DIR), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def test_the_killed_run_had_logged_past_its_checkpoint(run):
    _, killed_steps = run
    assert killed_steps == [5, 10, 15]


def test_every_scalar_of_metrics_jsonl_is_a_curve_without_duplicated_steps(run):
    run_dir, _ = run
    acc = reader(run_dir)
    rows = read_rows(run_dir / "metrics.jsonl")
    expected = {}
    for row in rows:
        for tag, value in loggers.scalars(row).items():
            expected.setdefault(tag, []).append((row["iter"], value))
    assert set(acc.Tags()["scalars"]) == set(expected)
    assert {"train/critic_loss", "train/time", "js/js4", "js/floor_js4", "js/ema_js1"} <= set(
        expected
    )
    for tag, points in expected.items():
        logged = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in logged] == [s for s, _ in points], tag  # no step twice
        values = [v for _, v in points]
        assert [v for _, v in logged] == pytest.approx(values, rel=1e-6), tag  # float32 there
    assert [e.step for e in acc.Scalars("train/critic_loss")] == [5, 10, 15, 20]
    assert [e.step for e in acc.Scalars("js/floor_js4")] == [10, 20]


def test_samples_are_logged_as_text_at_each_evaluation(run):
    run_dir, _ = run
    acc = reader(run_dir)
    events = acc.Tensors("samples/text_summary")
    assert [e.step for e in events] == [10, 20]
    text = events[-1].tensor_proto.string_val[0].decode("utf-8")
    lines = (run_dir / "samples" / "iter_20.txt").read_text().splitlines()
    assert text == "".join(f"    {line}\n" for line in lines)


def test_a_missing_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    result = CliRunner().invoke(
        main, ["train", "--preset", "tiny", "--logger", "tensorboard", "--run-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "textgan: error: --logger tensorboard needs the tensorboard package: "
        "pip install 'textgan[tensorboard]'"
    )
    assert not any(tmp_path.iterdir())
