"""The training levers of the time-to-quality recipes: lazy penalty (``penalty_every``), the
unigram output bias (``unigram_init``) and wall-clock grids for evaluations, diagnostics and
checkpoints (``eval_minutes``, ``diag_minutes``, ``ckpt_minutes``)."""

import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from textgan import config as C
from textgan import files
from textgan.cli import main
from textgan.corpus import CorpusConfig
from textgan.errors import UserError
from textgan.files import rundir as rd
from textgan.nn import fast
from textgan.training import evaluation as run_eval
from textgan.training import loop as T
from textgan.training import trainer as TR
from textgan.training.setup import resolve_run_config

VOCAB, LENGTH = 12, 8

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(kind="gp", **train):
    model = C.ModelConfig(vocab_size=VOCAB, seq_len=LENGTH, dim=8, blocks=1)
    train_cfg = C.TrainConfig(
        **{"batch_size": 8, "critic_iters": 2, "device": "cpu", "precision": "fp32", **train}
    )
    return C.RunConfig(CorpusConfig(), model, C.LipschitzConfig(kind=kind), train_cfg)


def _ids(rows=40, seed=0, high=VOCAB):
    return np.random.default_rng(seed).integers(0, high, (rows, LENGTH)).astype(np.uint8)


def test_penalty_weight_schedule():
    assert [TR.penalty_weight(1, i) for i in range(3)] == [1.0, 1.0, 1.0]
    assert [TR.penalty_weight(4, i) for i in range(6)] == [4.0, 0.0, 0.0, 0.0, 4.0, 0.0]


@pytest.mark.parametrize("kind", ["gp", "gp-fd"])
def test_lazy_step_is_the_loss_without_penalty_and_the_penalized_step_weighs_k(kind):
    torch.manual_seed(0)
    trainer = TR.Trainer(_config(kind), _ids(), torch.device("cpu"))
    real, fake = trainer.real_batch(), trainer.fake_batch().detach()
    path = trainer.fast
    lazy, stats = path.critic_loss(real, fake, rng=None, penalty_weight=0)
    scores = trainer.critic(torch.cat([real, fake]))
    assert torch.allclose(lazy, scores[8:].mean() - scores[:8].mean())
    assert "gp" not in stats and stats["penalty"].item() == 0.0  # no term in the loss
    state = torch.Generator().manual_seed(3).get_state()
    heavy, heavy_stats = path.critic_loss(
        real, fake, rng=torch.Generator().set_state(state), penalty_weight=3
    )
    cfg = replace(trainer.config.lipschitz, lam=3 * trainer.config.lipschitz.lam)
    expected, _ = fast.critic_loss(
        trainer.critic, real, fake, cfg, rng=torch.Generator().set_state(state)
    )
    assert torch.allclose(heavy, expected)
    assert heavy_stats["penalty"] > 0


def test_lazy_run_penalizes_every_kth_critic_step(monkeypatch):
    trainer = TR.Trainer(_config(penalty_every=3, critic_iters=2), _ids(), torch.device("cpu"))
    weights = []
    step = trainer.critic_step
    monkeypatch.setattr(trainer, "critic_step", lambda m, w: weights.append(w) or step(m, w))
    for _ in range(3):
        trainer.step()
    assert weights == [3.0, 0.0, 0.0, 3.0, 0.0, 0.0]
    assert {"gp", "grad_norm"} <= set(trainer.meter.means())


@pytest.mark.parametrize("kind", ["gp", "gp-fd"])
def test_lazy_rows_log_the_loss_identity_and_grad_norm(tmp_path, kind):
    """Every row: critic_loss = −W + penalty, the penalty averaged over all the row's critic
    steps as the loss is; λ·gp where the row holds a multiple of k steps. grad_norm is logged
    for gp-fd too when k equals the critic steps (the last step is then never penalized)."""
    _train_tiny(tmp_path, kind=kind, iters=6, critic_iters=4, penalty_every=4, log_every=1)
    rows = [r for r in files.read_rows(tmp_path / "run" / rd.METRICS) if "critic_loss" in r]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert r["critic_loss"] == pytest.approx(-r["wasserstein"] + r["penalty"], abs=1e-5)
        assert r["penalty"] == pytest.approx(10.0 * r["gp"], rel=1e-5) and r["gp"] > 0
        assert r["grad_norm"] > 0


def test_a_row_without_a_penalized_step_logs_penalty_0(tmp_path):
    # k = 4 over rows of 2 critic steps: rows alternate between one penalized step and none.
    _train_tiny(tmp_path, kind="gp-fd", iters=4, critic_iters=2, penalty_every=4, log_every=1)
    rows = [r for r in files.read_rows(tmp_path / "run" / rd.METRICS) if "critic_loss" in r]
    for r in rows:
        assert r["critic_loss"] == pytest.approx(-r["wasserstein"] + r["penalty"], abs=1e-5)
    penalized, lazy = rows[0::2], rows[1::2]
    for r in penalized:  # λ·k on one of the row's two steps: on average λ·k/2·gp
        assert r["penalty"] == pytest.approx(10.0 * 4 / 2 * r["gp"], rel=1e-5)
        assert r["grad_norm"] > 0
    for r in lazy:
        assert r["penalty"] == 0.0 and "gp" not in r and "grad_norm" not in r


@pytest.mark.parametrize(
    ("every", "critic_iters", "log_every", "iters", "measured"),
    [
        (1, 2, 3, 4, [5, 7]),  # the last step of each logged iteration
        (4, 4, 2, 5, [4, 12, 16]),  # penalized steps 0, 4, 8, 12, 16: the last before each row
        (4, 2, 1, 3, [0, 4]),  # row 2 (steps 2, 3) has no penalized step
    ],
)
def test_grad_norm_is_measured_on_the_last_penalized_step_before_each_row(
    monkeypatch, every, critic_iters, log_every, iters, measured
):
    config = _config("gp-fd", penalty_every=every, critic_iters=critic_iters,
                     log_every=log_every, iters=iters)  # fmt: skip
    trainer = TR.Trainer(config, _ids(), torch.device("cpu"))
    asked = []
    step = trainer.critic_step
    monkeypatch.setattr(trainer, "critic_step", lambda m, w: asked.append(m) or step(m, w))
    for _ in range(iters):
        trainer.step()
    assert [i for i, monitored in enumerate(asked) if monitored] == measured


def test_lr_scale_schedules():
    assert [TR.lr_scale("constant", k, 4) for k in (0, 3, 9)] == [1.0, 1.0, 1.0]
    assert [TR.lr_scale("linear", k, 4) for k in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.25, 0.25]


def test_linear_decay_steps_both_optimizers_at_the_scaled_rates(monkeypatch):
    config = _config(lr_decay="linear", iters=4, lr_critic=2e-3, lr_gen=1e-3)
    trainer = TR.Trainer(config, _ids(), torch.device("cpu"))
    seen = []
    step = trainer.generator_step

    def record():
        seen.append((trainer.opt_d.param_groups[0]["lr"], trainer.opt_g.param_groups[0]["lr"]))
        return step()

    monkeypatch.setattr(trainer, "generator_step", record)
    for _ in range(4):
        trainer.step()
    # One list per optimizer: pytest.approx compares flat sequences only (pytest >= 9.2).
    fractions = [1.0, 0.75, 0.5, 0.25]
    assert [d for d, _ in seen] == pytest.approx([2e-3 * f for f in fractions])
    assert [g for _, g in seen] == pytest.approx([1e-3 * f for f in fractions])
    # The same run with a constant rate trains at the base rates and ends elsewhere.
    flat = TR.Trainer(replace(config, train=replace(config.train, lr_decay="constant")),
                      _ids(), torch.device("cpu"))  # fmt: skip
    for _ in range(4):
        flat.step()
    assert flat.opt_g.param_groups[0]["lr"] == 1e-3
    assert not torch.equal(flat.generator.output.weight, trainer.generator.output.weight)


def test_lr_decay_is_checked():
    with pytest.raises(UserError, match=r"train\.lr_decay must be one of constant, linear"):
        C.TrainConfig(lr_decay="cosine").validate()


def test_lazy_penalty_needs_a_penalty():
    with pytest.raises(UserError, match="--penalty-every 2 needs a gradient penalty"):
        resolve_run_config(
            C.layered_config(
                "tiny",
                overrides={
                    "corpus": {"corpus": "pydocs"},
                    "lipschitz": {"kind": "clip"},
                    "train": {"penalty_every": 2},
                },
            ),
            progress=False,
        )


def test_unigram_init_sets_the_output_bias_to_log_frequencies():
    ids = _ids(rows=400, high=4)  # symbols 0..3 only
    trainer = TR.Trainer(_config(unigram_init=True), ids, torch.device("cpu"))
    bias = trainer.generator.output.bias.detach()
    counts = np.bincount(ids.ravel(), minlength=VOCAB)
    expected = np.log((counts + 1) / (counts.sum() + VOCAB))
    assert np.allclose(bias.numpy(), expected, atol=1e-6)
    assert torch.equal(trainer.ema.output.bias, bias)  # the average starts from it too
    plain = TR.Trainer(_config(), ids, torch.device("cpu"))
    assert torch.count_nonzero(plain.generator.output.bias) == 0


def test_eval_schedule_on_a_wall_clock_grid():
    every_100 = run_eval.Schedule(C.TrainConfig(eval_every=100), 0.0)
    assert [k for k in range(1, 301) if every_100(k, 0.0)] == [100, 200, 300]
    timed = run_eval.Schedule(C.TrainConfig(eval_every=1, eval_minutes=0.5), 0.0)
    due = [t for t in (10.0, 29.9, 30.0, 31.0, 95.0, 100.0, 121.0) if timed(1, t)]
    assert due == [30.0, 95.0, 121.0]  # one evaluation per passed multiple of 30 s
    resumed = run_eval.Schedule(C.TrainConfig(eval_minutes=0.5), 70.0)
    assert not resumed(1, 80.0) and resumed(1, 90.0)
    for what in ("diag", "ckpt"):  # the same grid, each on its own field
        t = C.TrainConfig(**{f"{what}_every": 1, f"{what}_minutes": 0.5})
        grid = run_eval.Schedule(t, 0.0, what)
        assert [s for s in (10.0, 30.0, 31.0, 95.0) if grid(1, s)] == [30.0, 95.0]
        evals = run_eval.Schedule(t, 0.0, "eval")  # still every 100 iterations
        assert [k for k in (1, 100) if evals(k, 30.0)] == [100]


def test_the_grids_are_train_flags():
    from click.testing import CliRunner

    from textgan.cli import main

    text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    for flag in ("--eval-minutes", "--diag-minutes", "--ckpt-minutes"):
        assert f"{flag} FLOAT Wall-clock minutes between" in text


def _train_tiny(tmp_path, kind="gp", **train):
    """A tiny run on pydocs in tmp_path/run, evaluated on 16 samples."""
    overrides = {
        "corpus": {"corpus": "pydocs", "data_dir": str(tmp_path / "data")},
        "lipschitz": {"kind": kind},
        "model": {"dim": 8},
        "train": {
            "eval_every": 1000,
            "eval_samples": 16,
            "run_dir": str(tmp_path / "run"),
            "ckpt_every": 1000,
            **train,
        },
    }
    config, prepared = resolve_run_config(C.layered_config("tiny", overrides=overrides), False)
    T.train(config, prepared, progress=False)


def test_a_run_evaluates_at_wall_clock_intervals(tmp_path):
    _train_tiny(tmp_path, iters=40, eval_minutes=0.001)
    evals = [r for r in files.read_rows(tmp_path / "run" / rd.METRICS) if "js4" in r]
    assert len(evals) >= 3 and evals[-1]["iter"] == 40
    times = [r["time"] for r in evals[:-1]]
    grid = [math.floor(t / 0.06) for t in times]
    assert grid == sorted(set(grid))  # at most one evaluation per 0.06 s interval


def test_diagnostics_and_checkpoints_follow_the_clock_whatever_an_iteration_costs(
    tmp_path, monkeypatch
):
    """On minutes grids a run makes one diagnostics record and one checkpoint per grid interval
    it passes, and a last one, however fast it iterates, although --diag-every 1 and
    --ckpt-every 1 would give one per iteration. The run's clock is one that a hook advances by
    an iteration's cost (0.5 s for a fast recipe, 4 s for a slow one), so that the counts do not
    depend on this machine's speed."""
    import types

    clock = [0.0]
    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    found = {}
    for cost in (0.5, 4.0):
        clock[0] = 0.0
        run = tmp_path / f"cost-{cost}"
        train = {
            "iters": 10**6,
            "batch_size": 8,
            "critic_iters": 1,
            "max_minutes": 1.0,
            "eval_every": 10**6,
            "eval_samples": 16,
            "diag_every": 1,
            "diag_minutes": 0.25,
            "ckpt_every": 1,
            "ckpt_minutes": 0.5,
            "keep": 10**6,
            "run_dir": str(run),
        }
        overrides = {
            "corpus": {"corpus": "pydocs", "data_dir": str(tmp_path / "data")},
            "model": {"dim": 8},
            "train": train,
        }
        layers = C.layered_config("tiny", overrides=overrides)
        config, prepared = resolve_run_config(layers, False)

        def iterate(trainer, k, cost=cost):
            clock[0] += cost

        result = T.train(config, prepared, progress=False, hooks=[iterate])
        diags = [d["iter"] for d in files.read_rows(run / rd.DIAGNOSTICS)]
        ckpts = sorted(int(p.name.removeprefix("iter_")) for p in (run / "checkpoints").iterdir())
        found[cost] = (result.iteration, diags, ckpts)
    # Iteration k is reached at (k - 1) · cost seconds; grids of 15 s and 30 s, 60 s budget.
    assert found[0.5] == (121, [31, 61, 91, 121], [61, 121])
    assert found[4.0] == (16, [5, 9, 13, 16], [9, 16])


def test_a_linearly_decayed_run_refuses_a_new_end_when_resumed(tmp_path):
    """A finished linear run says so, with or without --iters, before its files are touched
    (it once asked for --iters N > 6 and then refused it); an unfinished one keeps its end."""
    _train_tiny(tmp_path, iters=6, lr_decay="linear", ckpt_every=3)
    run = tmp_path / "run"
    metrics = (run / rd.METRICS).read_bytes()
    finished = (
        f"run {run} is finished: its learning rate decayed linearly to 0 at iteration 6, and a "
        "linear decay cannot be extended; train a new run with a larger --iters (textgan train "
        f"--config {run / 'config.json'} --iters N)"
    )
    for overrides in ({}, {"iters": 6}, {"iters": 12}):
        with pytest.raises(UserError) as err:
            T.resume(run, overrides, progress=False)
        assert str(err.value) == finished
    assert (run / rd.METRICS).read_bytes() == metrics
    # The suggested command trains a new run of the same recipe.
    longer = tmp_path / "longer"
    flags = ["--config", run / "config.json", "--iters", 8, "--run-dir", longer, "--no-progress"]
    result = CliRunner().invoke(main, ["train", *map(str, flags)])
    assert result.exit_code == 0, result.output
    again, old = C.RunConfig.load(longer / "config.json"), C.RunConfig.load(run / "config.json")
    assert again.train.iters == 8 and again.train.lr_decay == "linear"
    assert (again.model, again.lipschitz) == (old.model, old.lipschitz)
    # Stopped before its end (its last checkpoint removed), it resumes to its own end only.
    shutil.rmtree(run / "checkpoints" / "iter_0000006")
    with pytest.raises(UserError, match="decays linearly to 0 at iteration 6"):
        T.resume(run, {"iters": 12}, progress=False)
    assert T.resume(run, {}, progress=False).iteration == 6
