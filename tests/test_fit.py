"""A schedule fitted to the wall-clock budget (``train.fit_iters``, ``textgan.training.fit``):
the arithmetic of the fit, fitted runs on a simulated clock (so that what they assert is not
this machine's speed), exact resume, refusals, and the learning-rate scale in the metrics rows.

The simulated clock advances only by the work it is told about: ``STEP_S`` per iteration,
``EVAL_S`` per evaluation (its samples' file), ``DIAG_S`` per diagnostics record and ``CKPT_S``
per checkpoint's figures; the real work runs, it only costs no simulated time.
"""

import json
import signal
import subprocess
import sys
import types

import pytest
import torch

from textgan import config as C
from textgan import files
from textgan.config import TrainConfig
from textgan.errors import UserError
from textgan.files import rundir as rd
from textgan.training import fit as F
from textgan.training import loop as T
from textgan.training import output as RO
from textgan.training import trainer as TR
from textgan.training.setup import resolve_run_config

pytestmark = pytest.mark.usefixtures("one_thread")

STEP_S, EVAL_S, DIAG_S, CKPT_S = 1.0, 2.0, 1.0, 3.0
# Evaluations, diagnostics and checkpoints on iteration schedules; the micro model of pydocs.
SCHEDULE = {"log_every": 5, "eval_every": 10, "diag_every": 20, "ckpt_every": 50}
MICRO = {"dim": 8, "blocks": 1}


@pytest.fixture
def clock(monkeypatch):
    """The simulated clock of the fit and the loop (module docstring)."""
    now = [0.0]

    def costing(method, seconds):
        def run(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            now[0] += seconds
            return result

        return run

    fake = types.SimpleNamespace(perf_counter=lambda: now[0])
    monkeypatch.setattr(F, "time", fake)
    monkeypatch.setattr(T, "time", fake)
    monkeypatch.setattr(TR.Trainer, "step", costing(TR.Trainer.step, STEP_S))
    for name, seconds in (("samples", EVAL_S), ("diagnostics", DIAG_S), ("plots", CKPT_S)):
        monkeypatch.setattr(RO.RunOutput, name, costing(getattr(RO.RunOutput, name), seconds))
    return now


def _config(tmp_path, name="run", preset="tiny", **train):
    overrides = {
        "corpus": {"corpus": "pydocs", "data_dir": str(tmp_path / "data")},
        "model": MICRO,
        "train": {
            "batch_size": 8,
            "critic_iters": 1,
            "eval_samples": 16,
            "device": "cpu",
            "lr_decay": "linear",
            "run_dir": str(tmp_path / name),
            **SCHEDULE,
            **train,
        },
    }
    return resolve_run_config(C.layered_config(preset, overrides=overrides), False)


def _training_rows(run_dir):
    return [r for r in files.read_rows(run_dir / rd.METRICS) if "critic_loss" in r]


# -- the arithmetic ----------------------------------------------------------------------------


def test_the_fit_counts_steps_evaluations_diagnostics_and_checkpoints():
    costs = {"step": 1.0, "eval": 2.0, "diag": 1.0, "ckpt": 3.0}
    t = TrainConfig(**SCHEDULE)
    # 69 iterations: 7 evaluations (10, …, 60 and the last), 4 diagnostics, 2 checkpoints.
    assert F.periodic_counts(t, 69, 108.0) == {"eval": 7, "diag": 4, "ckpt": 2}
    assert F.planned_seconds(t, 69, costs, 14.0, 108.0) == 14 + 69 + 14 + 4 + 6 == 107
    assert F.planned_seconds(t, 70, costs, 14.0, 108.0) == 110  # its 8th evaluation: too late
    assert F.fitted_iters(t, costs, 14.0, 108.0) == 69
    # On wall-clock grids the counts follow the end, not the iterations: every 30 s and 60 s.
    grid = TrainConfig(eval_minutes=0.5, diag_minutes=1.0, ckpt_minutes=1.0)
    assert F.periodic_counts(grid, 10**6, 108.0) == {"eval": 4, "diag": 2, "ckpt": 2}
    assert F.fitted_iters(grid, costs, 14.0, 108.0) == 108 - 14 - 4 * 2 - 2 * 1 - 2 * 3
    assert F.fitted_iters(t, costs, 14.0, 19.0) == 0  # not even one iteration and its last work


# -- fitted runs on the simulated clock ----------------------------------------------------------


def test_a_fitted_run_ends_inside_its_budget_with_its_decay_done(tmp_path, clock):
    """Budget 120 s, 90 % of it planned: a trial of 3 + 5 iterations, one evaluation,
    diagnostics and checkpoint (14 s), then 69 iterations with their periodic work end at
    107 s, as the arithmetic above says; the rates fall to 1/69 of the base at the end."""
    config, prepared = _config(tmp_path, fit_iters=True, max_minutes=2.0)
    result = T.train(config, prepared, progress=False)
    run = result.run_dir
    saved = json.loads((run / rd.CONFIG).read_text())["train"]
    fit = json.loads((run / F.FIT).read_text())
    assert saved["iters"] == fit["iters"] == result.iteration == 69 and not saved["fit_iters"]
    assert saved["max_minutes"] == 2.0
    # What one of each costs was measured, not assumed.
    assert fit["seconds"] == {"step": 1.0, "warmup": 0.0, "eval": 2.0, "diag": 1.0, "ckpt": 3.0}
    assert fit["timed"] == 5 and fit["trial_s"] == 14.0 and fit["planned_s"] == 107.0
    assert fit["counts"] == {"eval": 7, "diag": 4, "ckpt": 2}
    assert result.elapsed == 107.0 <= 60 * 2.0 and result.stopped_by is None
    rows = _training_rows(run)
    assert [r["lr_scale"] for r in rows] == [1 - (r["iter"] - 1) / 69 for r in rows[:-1]] + [1 / 69]
    assert rows[-1]["iter"] == 69 and rows[-1]["lr_scale"] <= 0.02
    assert rows[0]["time"] == 14.0 + 5  # the run's clock started with the fit
    assert not list(tmp_path.glob(".tmp-fit-*"))  # the trial's folder is gone


def test_an_interrupted_fitted_run_resumes_bit_for_bit_and_its_config_reruns_it(tmp_path, clock):
    """Stopped at 30 and resumed, a fitted run ends with bit for bit the weights, optimizer
    states, random streams and rows of a run of its recorded config.json: the trial touched
    none of the run's random streams, and a resume keeps the fitted iterations."""

    def stop_at_30(trainer, k):
        if k == 30:
            signal.raise_signal(signal.SIGTERM)

    config, prepared = _config(tmp_path, "fitted", fit_iters=True, max_minutes=2.0)
    stopped = T.train(config, prepared, progress=False, hooks=[stop_at_30])
    assert stopped.iteration == 30 and stopped.stopped_by == signal.SIGTERM
    resumed = T.resume(stopped.run_dir, progress=False)
    assert resumed.iteration == 69

    recorded = C.RunConfig.load(stopped.run_dir / rd.CONFIG)
    again = T.train(C.with_train(recorded, run_dir=str(tmp_path / "again")), progress=False)
    assert again.iteration == 69 and not (again.run_dir / F.FIT).exists()
    from test_train import _tensors  # every tensor and value of a checkpoint, flattened

    want, got = _tensors(again.checkpoint), _tensors(resumed.checkpoint)
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert torch.equal(value, got[key]) if torch.is_tensor(value) else value == got[key], key

    def rows(run):
        return [
            {k: v for k, v in r.items() if k != "time"} for r in files.read_rows(run / rd.METRICS)
        ]

    assert rows(resumed.run_dir) == rows(again.run_dir)


def test_a_budget_the_trial_and_last_work_outgrow_is_one_line(tmp_path, clock):
    """18 s, 16.2 s of them planned: the 14 s trial leaves no room for an iteration with the
    run's last evaluation, diagnostics and checkpoint (21 s); nothing is written."""
    config, prepared = _config(tmp_path, fit_iters=True, max_minutes=0.3)
    with pytest.raises(UserError) as err:
        T.train(config, prepared, progress=False)
    assert str(err.value) == (
        "train.max_minutes 0.3 is too short to fit train.iters: after its 14.0 s trial, one "
        "iteration with the last evaluation and checkpoint would end at 21.0 s, past 90% of the "
        "budget; give a longer train.max_minutes, or train.iters without train.fit_iters"
    )
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".tmp-fit-*"))


# -- on the real clock, from the command line ------------------------------------------------------


def _cli(*args, cwd):
    code = "from textgan.cli import main; main()"
    command = [sys.executable, "-c", code, "train", *map(str, args), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_a_budget_shorter_than_the_warm_up_is_one_line(tmp_path):
    args = ["--preset", "tiny", "--corpus", "pydocs", "--device", "cpu", "--name", "x"]
    res = _cli(*args, "--fit-iters", "--max-minutes", "1e-6", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(
        "textgan: error: --max-minutes 1e-06 is too short to fit --iters: the fit's trial had "
        "taken "
    )
    assert res.stderr.count("\n") == 1 and not (tmp_path / "runs" / "x").exists()


def test_the_cpu_preset_fits_its_decay_to_the_budget_given(tmp_path, clock):
    """`--preset cpu --max-minutes M` is the whole recipe: the preset asks for the fit."""
    assert (
        C.PRESETS["cpu"]["train"]["fit_iters"] and C.PRESETS["cpu"]["train"]["lr_decay"] == "linear"
    )
    config, prepared = _config(tmp_path, preset="cpu", max_minutes=2.0, critic_iters=1)
    assert config.train.lr == 1.5e-3 and config.train.fit_iters  # the shape of a short budget
    result = T.train(config, prepared, progress=False)
    saved = json.loads((result.run_dir / rd.CONFIG).read_text())
    assert saved["train"]["iters"] == result.iteration < C.PRESETS["cpu"]["train"]["iters"]
    assert (
        result.elapsed <= 0.9 * 60 * 2.0 and _training_rows(result.run_dir)[-1]["lr_scale"] <= 0.02
    )


def test_without_a_budget_there_is_nothing_to_fit(tmp_path, capsys):
    """A preset may ask for a fit whenever a budget is given: without one, --iters stands."""
    config, prepared = _config(tmp_path, iters=10, fit_iters=True)
    result = T.train(config, prepared, progress=False)
    assert result.iteration == 10 and not (result.run_dir / F.FIT).exists()
    assert C.RunConfig.load(result.run_dir / rd.CONFIG).train.fit_iters
    assert "no --max-minutes to fit --iters to; training 10 iterations" in capsys.readouterr().err


def test_a_constant_rate_run_logs_its_scale_as_one(tmp_path):
    config, prepared = _config(tmp_path, iters=10, lr_decay="constant")
    result = T.train(config, prepared, progress=False)
    assert [r["lr_scale"] for r in _training_rows(result.run_dir)] == [1.0, 1.0]
