"""What a run logs at every evaluation (the tiny preset on pydocs): the paper's JS, JS against
held-out lines, and the unique and copy rates, of the raw and of the averaged generator."""

import numpy as np
import pytest
import torch
from test_metrics_js import _counter, _dict_js

from textgan import config as C
from textgan.files import read_rows
from textgan.files.rundir import METRICS
from textgan.generation.sampling import load_generator
from textgan.metrics.reference import subset_rows
from textgan.training import loop as T
from textgan.training.evaluation import argmax_ids, evaluate, make_evaluator
from textgan.training.setup import resolve_run_config
from textgan.training.trainer import Trainer

N = 100  # of pydocs' 317 held-out lines: the rest is what JS against held-out lines uses
LOGGED = ("js4", "heldout_js4", "copy_rate", "unique_rate")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_thread):
    data = tmp_path_factory.mktemp("data")
    train = {"iters": 20, "eval_every": 10, "eval_samples": N, "device": "cpu"}
    overrides = {"corpus": {"corpus": "pydocs", "data_dir": str(data)}, "train": train}
    return resolve_run_config(C.layered_config("tiny", overrides=overrides), False)


def _expected(ids, prepared):
    """Copy and unique rates and held-out JS-1..4 of ``ids``, by their definitions."""
    lines = [tuple(row) for row in ids.tolist()]
    train = {tuple(row) for row in np.asarray(prepared.train).tolist()}
    heldout = np.asarray(prepared.heldout)
    rest = np.delete(heldout, subset_rows(len(heldout), N, seed=0), axis=0)
    return {
        "copy_rate": sum(line in train for line in lines) / len(lines),
        "unique_rate": len(set(lines)) / len(lines),
        **{f"heldout_js{k}": _dict_js(_counter(ids, k), _counter(rest, k)) for k in range(1, 5)},
    }


def test_every_evaluation_logs_both_generators_rates_and_heldout_js(tiny, tmp_path):
    config, prepared = tiny
    config = C.with_train(config, run_dir=str(tmp_path / "run"))
    result = T.train(config, prepared, progress=False)
    evals = [row for row in read_rows(result.run_dir / METRICS) if "js1" in row]
    assert [row["iter"] for row in evals] == [10, 20]
    for row in evals:
        for key in LOGGED:
            assert {key, f"ema_{key}", f"floor_{key}"} <= set(row), key
    # The last evaluation scored the weights the run ended with: recompute it from them.
    last = evals[-1]
    for prefix, raw in (("", True), ("ema_", False)):
        generator, _, _ = load_generator(result.run_dir, "cpu", raw=raw)
        ids = argmax_ids(generator, config, torch.device("cpu"))
        for key, value in _expected(ids, prepared).items():
            assert last[prefix + key] == pytest.approx(value, abs=1e-12), prefix + key


def _memorize(generator, line):
    """Weights under which every noise gives ``line``: the input layer ignores the noise, its
    bias holds at each position the output layer's (unit) row of that position's id, and the
    residual blocks add nothing; a unit row's dot product with itself beats every other row's."""
    cfg = generator.cfg
    rows = torch.randn(cfg.vocab_size, cfg.dim, generator=torch.Generator().manual_seed(0))
    rows /= rows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        for param in generator.parameters():
            param.zero_()
        generator.output.weight.copy_(rows[:, :, None])
        generator.input.bias.copy_(rows[torch.as_tensor(line, dtype=torch.long)].T.reshape(-1))


def test_a_generator_that_outputs_a_training_line_has_copy_rate_1(tiny):
    config, prepared = tiny
    trainer = Trainer(config, prepared.train, torch.device("cpu"))
    line = np.array(prepared.train[5])
    _memorize(trainer.generator, line)
    _memorize(trainer.ema, line)
    scores, ids = evaluate(trainer, make_evaluator(config, prepared, False), config)
    assert (ids == line).all() and ids.shape == (N, len(line))
    for prefix in ("", "ema_"):
        assert scores[f"{prefix}copy_rate"] == 1.0 and scores[f"{prefix}unique_rate"] == 1 / N
        for key, value in _expected(ids, prepared).items():
            assert scores[prefix + key] == pytest.approx(value, abs=1e-12)
