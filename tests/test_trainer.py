"""One training iteration (``textgan.training.trainer``): what each step touches, the optimizers and
streams it really uses, the generator EMA, the interval meter and the memory check. Tiny models
on random ids: no corpus is read."""

import numpy as np
import pytest
import torch

from textgan import config as C
from textgan.corpus import CorpusConfig
from textgan.errors import UserError
from textgan.generation.sampling import NoiseDraws
from textgan.nn import memory as M
from textgan.nn.networks import Critic, Generator, count_parameters
from textgan.training import diagnostics as DG
from textgan.training import evaluation as run_eval
from textgan.training import meter as ME
from textgan.training import state as ST
from textgan.training import trainer as TR

VOCAB, LENGTH, ROWS = 12, 8, 40


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(kind="gp", model=None, **train):
    model_cfg = C.ModelConfig(**{"vocab_size": VOCAB, "seq_len": LENGTH, "dim": 8, "blocks": 1,
                                 **(model or {})})  # fmt: skip
    train_cfg = C.TrainConfig(**{"batch_size": 8, "critic_iters": 2, "device": "cpu", **train})
    return C.RunConfig(CorpusConfig(), model_cfg, C.LipschitzConfig(kind=kind), train_cfg)


def _ids(rows=ROWS, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, (rows, LENGTH)).astype(np.uint8)


def _trainer(kind="gp", ids=None, **train):
    return TR.Trainer(_config(kind, **train), _ids() if ids is None else ids, torch.device("cpu"))


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- what each step touches --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gp", "clip", "sn"])
def test_each_step_updates_its_own_network_only(kind):
    trainer = _trainer(kind)
    g0, d0 = _params(trainer.generator), _params(trainer.critic)
    trainer.generator_step()
    assert _same(_params(trainer.critic), d0)
    g1 = _params(trainer.generator)
    assert not _same(g1, g0)
    trainer.critic_step()
    assert _same(_params(trainer.generator), g1)
    assert not _same(_params(trainer.critic), d0)


def test_clipping_holds_after_every_critic_step():
    trainer = _trainer("clip")
    c = trainer.config.lipschitz.clip

    def largest():
        return max(float(p.detach().abs().max()) for p in trainer.critic.parameters())

    assert largest() > c  # not clipped at initialization
    for _ in range(3):
        trainer.critic_step()
        assert largest() <= c


# -- optimizers and streams as used ------------------------------------------------------------


def _adam(opt):
    (group,) = opt.param_groups
    return group["lr"], group["betas"]


def test_ttur_rates_reach_the_optimizers():
    trainer = _trainer(lr=2e-4, lr_critic=4e-4, lr_gen=1e-4, beta1=0.0, beta2=0.99)
    assert _adam(trainer.opt_d) == (4e-4, (0.0, 0.99))
    assert _adam(trainer.opt_g) == (1e-4, (0.0, 0.99))
    one = _trainer(lr=3e-4, lr_gen=5e-5)
    assert _adam(one.opt_d)[0] == 3e-4 and _adam(one.opt_g)[0] == 5e-5


def test_real_rows_are_drawn_uniformly_with_replacement():
    ids = _ids(rows=5)  # 16 draws from 5 rows: duplicates certain
    trainer = _trainer(ids=ids, batch_size=16, seed=7)
    data_stream = np.random.SeedSequence(7).spawn(3)[0]
    expect = np.random.default_rng(data_stream)
    for _ in range(3):
        rows = expect.integers(0, len(ids), size=16)
        batch = trainer.real_batch()
        assert batch.shape == (16, VOCAB, LENGTH) and torch.all(batch.sum(1) == 1)
        assert np.array_equal(batch.argmax(1).numpy(), ids[rows])
        assert len(set(rows.tolist())) < len(rows)


def test_diagnostics_streams_keep_their_seeds():
    """One seeding helper for the trainer and the diagnostics, with the values the
    diagnostics drew before (their records stay comparable across versions)."""
    old = np.random.SeedSequence([3, 100, 1]).generate_state(1, np.uint64)[0] >> 1
    assert DG._stream_seed(3, 100, 1) == TR.stream_seed([3, 100, 1]) == int(old)
    assert TR.stream_seed(np.random.SeedSequence([3, 100, 1])) == int(old)


def test_grad_norm_is_measured_on_the_last_critic_step_of_logged_iterations(monkeypatch):
    trainer = _trainer("clip", log_every=3, iters=4)
    asked = []
    loss = trainer.fast.critic_loss

    def spy(real, fake, rng=None, monitor=False, penalty_weight=1.0):
        asked.append(monitor)
        return loss(real, fake, rng=rng, monitor=monitor, penalty_weight=penalty_weight)

    monkeypatch.setattr(trainer.fast, "critic_loss", spy)
    for _ in range(3):
        trainer.step()
    assert trainer.meter.counts["grad_norm"] == 1 and trainer.meter.counts["critic_loss"] == 6
    trainer.meter.reset()
    trainer.step()  # iteration 4 is the last: logged too
    assert asked == [False, False, False, False, False, True, False, True]
    assert trainer.meter.counts["grad_norm"] == 1


def test_meter_averages_each_key_over_the_steps_that_reported_it():
    meter = ME.Meter()
    for v in (1.0, 2.0, 6.0):
        meter.add({"critic_loss": torch.tensor(v)})
    meter.add({"critic_loss": torch.tensor(3.0), "grad_norm": torch.tensor(0.5)})
    meter.add({"gen_loss": torch.tensor(-1.0)})
    assert meter.means() == {"critic_loss": 3.0, "grad_norm": 0.5, "gen_loss": -1.0}
    again = ME.Meter()
    again.load_state_dict(meter.state_dict(), torch.device("cpu"))
    again.add({"grad_norm": torch.tensor(1.5)})
    assert again.means() == {"critic_loss": 3.0, "grad_norm": 1.0, "gen_loss": -1.0}
    meter.reset()
    assert meter.means() == {}


# -- evaluation --------------------------------------------------------------------------------


def _argmax_of(generator, n, seed):
    """The argmax of the noise textgan sample draws for indices 0 .. n-1 of ``seed``."""
    z = NoiseDraws(seed, generator.cfg.noise_dim).rows(0, n)
    with torch.no_grad():
        return generator(z).argmax(1).numpy()


def _fake_evaluator(ids):
    return {"n_samples": len(ids), "js1": float(ids.sum()), "floor_js1": 0.5}


def test_evaluation_scores_the_argmax_of_fixed_noise():
    trainer = _trainer(ema_decay=0.0, eval_samples=24, seed=5)
    trainer.step()
    scores, ids = run_eval.evaluate(trainer, _fake_evaluator, trainer.config)
    want = _argmax_of(trainer.generator, 24, seed=5)
    assert np.array_equal(ids, want)
    assert scores == {"n_samples": 24, "js1": float(want.sum()), "floor_js1": 0.5}
    assert trainer.generator.training  # the mode is restored


def test_evaluation_scores_the_ema_generator_beside_the_raw_one():
    trainer = _trainer(ema_decay=0.9, eval_samples=24, seed=5)
    for _ in range(2):
        trainer.step()
    scores, ids = run_eval.evaluate(trainer, _fake_evaluator, trainer.config)
    raw, ema = _argmax_of(trainer.generator, 24, 5), _argmax_of(trainer.ema, 24, 5)
    assert np.array_equal(ids, ema)  # the samples written are the EMA's
    assert scores == {"n_samples": 24, "js1": float(raw.sum()), "floor_js1": 0.5,
                      "ema_js1": float(ema.sum())}  # fmt: skip


# -- EMA ---------------------------------------------------------------------------------------


def test_ema_update_follows_its_formula():
    assert TR.ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert TR.ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert TR.ema_decay_at(0.5, 100) == 0.5
    trainer = _trainer(ema_decay=0.5)
    assert _same(_params(trainer.ema), _params(trainer.generator))  # starts at the generator
    for t in range(10):  # the ramp (t < 8), then the decay itself
        before = _params(trainer.ema)
        trainer.step()
        d = min(0.5, (1 + t) / (10 + t))
        after, w = _params(trainer.ema), _params(trainer.generator)
        for k, e in before.items():
            torch.testing.assert_close(after[k], d * e + (1 - d) * w[k])
    assert not any(p.requires_grad for p in trainer.ema.parameters())


def test_ema_decay_zero_keeps_no_ema():
    trainer = _trainer(ema_decay=0.0)
    trainer.step()
    assert trainer.ema is None and ST.EMA_KEY not in ST.trainer_state(trainer)


def test_ema_state_reloads_exactly():
    trainer = _trainer(ema_decay=0.9)
    for _ in range(3):
        trainer.step()
    state = ST.trainer_state(trainer)
    fresh = _trainer(ema_decay=0.9)
    fresh.ema.load_state_dict(state[ST.EMA_KEY])
    assert _same(_params(fresh.ema), _params(trainer.ema))
    assert not _same(_params(trainer.ema), _params(trainer.generator))


# -- memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "blocks", "kernel"), [(8, 1, 5), (16, 3, 3), (4, 0, 1)])
def test_parameter_formula_counts_the_real_networks(dim, blocks, kernel):
    m = C.ModelConfig(vocab_size=VOCAB, seq_len=LENGTH, dim=dim, blocks=blocks, kernel=kernel)
    counts = M.parameter_counts(m)
    assert counts == (count_parameters(Generator(m)), count_parameters(Critic(m)))


def test_a_model_beyond_memory_is_refused_before_it_is_built(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the networks were built")

    monkeypatch.setattr(TR, "make_generator", never)
    monkeypatch.setattr(TR, "make_critic", never)
    config = _config(model={"dim": 10**8})
    with pytest.raises(UserError, match=r"lower model\.dim \(now 100,000,000\), model\.blocks"):
        TR.Trainer(config, _ids(), torch.device("cpu"))
    big_batch = _config(batch_size=10**12)
    with pytest.raises(UserError, match=r"lower train\.batch_size \(now 1,000,000,000,000\)"):
        TR.Trainer(big_batch, _ids(), torch.device("cpu"))
    wide_critic = _config(model={"critic_dim": 10**8})  # named where the critic has its own
    with pytest.raises(UserError, match=r"model\.critic_dim \(now 100,000,000\)"):
        TR.Trainer(wide_critic, _ids(), torch.device("cpu"))


# -- streams and state across ranks (textgan.training.distributed)
# -------------------------------------


def _draws(streams):
    data, noise, eps = streams
    return (
        data.integers(0, 1000, 5).tolist(),
        torch.rand(3, generator=noise).tolist(),
        torch.rand(3, generator=eps).tolist(),
    )


def test_one_process_keeps_the_streams_of_the_seed():
    """World 1 draws what single-process runs always drew, so their checkpoints resume."""
    data_seq, noise_seq, eps_seq = np.random.SeedSequence(5).spawn(3)
    before = (
        np.random.default_rng(data_seq),
        torch.Generator().manual_seed(TR.stream_seed(noise_seq)),
        torch.Generator().manual_seed(TR.stream_seed(eps_seq)),
    )
    assert _draws(TR.make_streams(5, torch.device("cpu"))) == _draws(before)
    trainer = _trainer(seed=5)
    assert trainer.local_batch == 8 and trainer.world == 1
    assert _draws((trainer.data_rng, trainer.noise_rng, trainer.eps_rng)) == _draws(
        TR.make_streams(5, torch.device("cpu"))
    )


def test_each_rank_and_a_resumed_world_draw_their_own_streams():
    cpu = torch.device("cpu")
    draws = [_draws(TR.make_streams(5, cpu, rank, 2)) for rank in range(2)]
    draws += [_draws(TR.make_streams(5, cpu)), _draws(TR.make_streams(5, cpu, 0, 2, 40))]
    for i, a in enumerate(draws):
        for b in draws[i + 1 :]:
            assert all(x != y for x, y in zip(a, b, strict=True))
    assert draws[0] == _draws(TR.make_streams(5, cpu, 0, 2))  # a rank's streams are fixed


def test_a_single_process_checkpoint_holds_no_rank_list():
    state = ST.trainer_state(_trainer())
    assert ST.RANKS_KEY not in state and "world_size" not in state
    assert {"rng", "meter", "iteration"} <= state.keys()


def test_the_mean_meter_of_the_ranks_averages_their_sums():
    states = [
        {"sums": {"critic_loss": torch.tensor(2.0)}, "counts": {"critic_loss": 4}},
        {"sums": {"critic_loss": torch.tensor(6.0)}, "counts": {"critic_loss": 4}},
    ]
    meter = ME.Meter()
    meter.load_state_dict(ME.mean_meter_state(states), torch.device("cpu"))
    assert meter.means() == {"critic_loss": 1.0}  # (2 + 6) / 2 / 4


def test_the_global_batch_must_split_over_the_ranks(monkeypatch):
    monkeypatch.setattr(TR.distributed, "world_size", lambda: 3)
    with pytest.raises(UserError, match="--batch-size 8 does not split over 3 processes"):
        _trainer()
    monkeypatch.setattr(TR.distributed, "world_size", lambda: 4)
    assert _trainer().local_batch == 2
