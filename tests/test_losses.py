"""The loss registry (``textgan.nn.losses``), the R1 penalty and the pairs of loss and
constraint that are refused (``textgan.nn.lipschitz``)."""

import itertools
import math

import pytest
import torch
from click.testing import CliRunner
from test_lipschitz import LinearCritic, _batch, _fd_grad_norms, _tiny_critic
from torch import nn

from textgan.cli import main
from textgan.config import LipschitzConfig
from textgan.errors import UserError
from textgan.nn import fast
from textgan.nn.lipschitz import (
    CONSTRAINTS,
    after_critic_step,
    apply_constraint,
    check_choices,
    critic_loss,
    generator_loss,
    unpenalized_loss,
)
from textgan.nn.losses import LOSSES

D_REAL, D_FAKE = [0.5, 2.0, -1.0], [-2.0, 0.3, 1.5]


def _mean(values):
    return sum(values) / len(values)


def _softplus(t):
    return math.log1p(math.exp(t))


# Each loss written out: (critic's loss, generator's loss) of the scores above.
WRITTEN_OUT = {
    "wgan": (_mean(D_FAKE) - _mean(D_REAL), -_mean(D_FAKE)),
    "hinge": (
        _mean([max(0.0, 1 - r) for r in D_REAL]) + _mean([max(0.0, 1 + f) for f in D_FAKE]),
        -_mean(D_FAKE),
    ),
    "ns": (
        _mean([_softplus(-r) for r in D_REAL]) + _mean([_softplus(f) for f in D_FAKE]),
        _mean([_softplus(-f) for f in D_FAKE]),
    ),
}


class Scores(nn.Module):
    """A critic that scores row i of any batch with ``values[i]``, times a weight of 1."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float64)
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, x):
        return self.scale * self.values[: x.shape[0]] + 0 * x.sum(dim=(1, 2))


def test_every_loss_is_its_definition():
    assert set(WRITTEN_OUT) == set(LOSSES)
    d_real, d_fake = (torch.tensor(v, dtype=torch.float64) for v in (D_REAL, D_FAKE))
    x = torch.zeros(3, 2, 4, dtype=torch.float64)
    for name, (critic_want, gen_want) in WRITTEN_OUT.items():
        loss, stats = unpenalized_loss(d_real, d_fake, name)
        assert loss.item() == pytest.approx(critic_want, rel=1e-12), name
        # The statistics are the scores' whatever the loss: their means and gap.
        assert stats["wasserstein"].item() == pytest.approx(_mean(D_REAL) - _mean(D_FAKE))
        assert stats["d_fake"].item() == pytest.approx(_mean(D_FAKE))
        got = generator_loss(Scores(D_FAKE), x, name)
        assert got.item() == pytest.approx(gen_want, rel=1e-12), name
    assert WRITTEN_OUT["hinge"][0] == pytest.approx(0.5 / 3 + 2 / 3 + (1.3 + 2.5) / 3)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_runs_loss_reaches_both_steps(name):
    """FastPath, the trainer's entry point, uses the config's loss for the generator, for a
    lazy critic step and for a penalized one."""
    cfg = LipschitzConfig("gp", lam=0.0, loss=name)
    critic = Scores(D_REAL + D_FAKE)
    path = fast.FastPath(nn.Identity(), critic, cfg, torch.device("cpu"), "fp32")
    critic_want, _ = WRITTEN_OUT[name]
    real, fake = torch.zeros(3, 2, 4, dtype=torch.float64), torch.ones(3, 2, 4, dtype=torch.float64)
    lazy, _ = path.critic_loss(real, fake, penalty_weight=0)
    assert lazy.item() == pytest.approx(critic_want, rel=1e-12)
    full, _ = path.critic_loss(real, fake, rng=torch.Generator().manual_seed(0))
    assert full.item() == pytest.approx(critic_want, rel=1e-12)
    want = {"wgan": -_mean(D_REAL), "hinge": -_mean(D_REAL),
            "ns": _mean([_softplus(-r) for r in D_REAL])}  # fmt: skip
    assert path.generator_loss(real).item() == pytest.approx(want[name], rel=1e-12)


def test_r1_of_a_linear_critic_is_half_its_squared_weight_norm():
    """∇D = w at every input: R1 = ½‖w‖² exactly; it measures at the real rows, so it draws
    no ε, and the slope at interpolates is reported only when asked."""
    w = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    critic = LinearCritic(w)
    real, fake = _batch(dtype=torch.float64)
    cfg = LipschitzConfig("r1", lam=3.0, loss="ns")
    rng = torch.Generator().manual_seed(5)
    before = rng.get_state()
    loss, stats = critic_loss(critic, real, fake, cfg, rng)
    assert torch.equal(rng.get_state(), before)
    half = 0.5 * float(w.square().sum())
    assert stats["gp"].item() == pytest.approx(half, rel=1e-12)
    assert stats["penalty"].item() == pytest.approx(3.0 * half, rel=1e-12)
    d_real, d_fake = critic(real), critic(fake)
    ns = torch.nn.functional.softplus(-d_real).mean() + torch.nn.functional.softplus(d_fake).mean()
    assert loss.item() == pytest.approx(ns.item() + 3.0 * half, rel=1e-12)
    assert "grad_norm" not in stats
    _, monitored = critic_loss(critic, real, fake, cfg, rng, monitor=True)
    assert monitored["grad_norm"].item() == pytest.approx(float(w.norm()), rel=1e-12)


def test_r1_penalizes_the_input_gradient_at_the_real_rows():
    """On the paper's critic: the penalty is ½ mean ‖∇x D(x)‖² at the real rows (central
    differences over all V·L coordinates), and its weight gradients are those of the penalty
    written out by double backpropagation."""
    critic = _tiny_critic(torch.float64)
    real, fake = _batch(dtype=torch.float64)
    cfg = LipschitzConfig("r1", lam=10.0, loss="hinge")
    loss, stats = critic_loss(critic, real, fake, cfg, torch.Generator())
    norms, _ = _fd_grad_norms(critic, real)
    assert stats["gp"].item() == pytest.approx(0.5 * float(norms.square().mean()), rel=1e-6)

    leaf = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(leaf).sum(), leaf, create_graph=True)
    d_real, d_fake = critic(real), critic(fake)
    hinge = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
    written = hinge + 10.0 * 0.5 * grad.flatten(1).square().sum(1).mean()
    params = list(critic.parameters())
    for a, b in zip(torch.autograd.grad(loss, params), torch.autograd.grad(written, params),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lazy_r1_weights_its_penalized_steps():
    critic = _tiny_critic(torch.float64)
    real, fake = _batch(dtype=torch.float64)
    cfg = LipschitzConfig("r1", lam=2.0, loss="ns")
    path = fast.FastPath(nn.Identity(), critic, cfg, torch.device("cpu"), "fp32")
    _, every = path.critic_loss(real, fake, torch.Generator())
    _, fourth = path.critic_loss(real, fake, torch.Generator(), penalty_weight=4.0)
    assert fourth["penalty"].item() == pytest.approx(4 * every["penalty"].item(), rel=1e-12)
    check_choices("none", 4, cfg)  # composes with --penalty-every, as the other penalties do


REFUSED = {("wgan", "r1")}


@pytest.mark.parametrize(("loss", "kind"), sorted(itertools.product(LOSSES, CONSTRAINTS)))
def test_every_pair_of_loss_and_constraint_trains_or_is_refused(loss, kind):
    """The one pair that makes no sense is refused: the Wasserstein loss is linear in D and
    R1 constrains D on the real rows only. Every other pair trains a critic and a generator
    step (clip with hinge too: clipping bounds the critic, and inside the margin the hinge is
    the Wasserstein loss plus a constant)."""
    cfg = LipschitzConfig(kind, loss=loss)
    if (loss, kind) in REFUSED:
        message = rf"lipschitz\.loss {loss} cannot be trained with lipschitz\.kind {kind}: "
        with pytest.raises(UserError, match=message + ".*use lipschitz.loss hinge or ns"):
            check_choices("none", 1, cfg)
        with pytest.raises(UserError, match=message):  # also where a Trainer builds the critic
            apply_constraint(_tiny_critic(), cfg)
        return
    check_choices("none", 1, cfg)
    critic = apply_constraint(_tiny_critic(), cfg)
    real, fake = _batch()
    loss_value, stats = critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(0))
    loss_value.backward()
    after_critic_step(critic, cfg)
    assert torch.isfinite(loss_value) and all(torch.isfinite(v) for v in stats.values())
    assert torch.isfinite(generator_loss(critic, fake.requires_grad_(True), loss))


def test_refused_pair_and_unknown_loss_are_one_line_exit_2():
    for args, message in [
        (["--lipschitz", "r1"], "--loss wgan cannot be trained with --lipschitz r1: the wgan loss "
                                "is linear"),
        (["--loss", "lsgan"], "Invalid value for '--loss': 'lsgan' is not one of"),
    ]:  # fmt: skip
        result = CliRunner().invoke(main, ["train", "--corpus", "pydocs", *args])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("textgan: error: "), result.stderr
        assert message in lines[0]
