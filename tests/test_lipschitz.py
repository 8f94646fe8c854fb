import pytest
import torch
from torch import nn

from textgan.errors import UserError
from textgan.nn import lipschitz, spectral
from textgan.nn.lipschitz import (
    CONSTRAINTS,
    LipschitzConfig,
    after_critic_step,
    apply_constraint,
    check_critic_norm,
    critic_loss,
    generator_loss,
)
from textgan.nn.networks import Critic, Generator, ModelConfig, one_hot

V, L, B = 5, 4, 6
TINY = ModelConfig(vocab_size=V, seq_len=L, dim=6, blocks=1, kernel=3, noise_dim=4)


class LinearCritic(nn.Module):
    """D(x) = w·x over the whole (V, L) input."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(dim=(1, 2))


def _batch(seed=0, dtype=torch.float32, b=B):
    gen = torch.Generator().manual_seed(seed)
    real = one_hot(torch.randint(0, V, (b, L), generator=gen), V, dtype)
    fake = torch.softmax(torch.randn(b, V, L, generator=gen, dtype=dtype), dim=1)
    return real, fake


def _tiny_critic(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return Critic(TINY).to(dtype)


def _fd_grad_norms(critic, x, h=1e-6):
    """Per-sequence ‖∇x D(x)‖ by central differences over every one of the V·L coordinates."""
    b, n = x.shape[0], x[0].numel()
    eye = torch.eye(n, dtype=x.dtype).view(n, *x.shape[1:])
    plus = (x[:, None] + h * eye).reshape(b * n, *x.shape[1:])
    minus = (x[:, None] - h * eye).reshape(b * n, *x.shape[1:])
    with torch.no_grad():
        grad = (critic(plus) - critic(minus)).view(b, n) / (2 * h)
    return grad.norm(dim=1), grad.view(x.shape)


def test_penalty_equals_finite_difference_gradient_norm_over_the_whole_input():
    critic = _tiny_critic(torch.float64)
    real, fake = _batch(dtype=torch.float64)
    cfg = LipschitzConfig("gp", lam=10.0, target=1.0)
    loss, stats = critic_loss(critic, real, fake, cfg, rng=torch.Generator().manual_seed(7))
    # ε is the first draw of rng, one per sequence.
    eps = torch.rand(B, 1, 1, generator=torch.Generator().manual_seed(7)).double()
    x_hat = eps * real + (1 - eps) * fake
    norms, grad = _fd_grad_norms(critic, x_hat)
    expected_gp = ((norms - 1) ** 2).mean()
    assert stats["grad_norm"].item() == pytest.approx(norms.mean().item(), rel=1e-6)
    assert stats["gp"].item() == pytest.approx(expected_gp.item(), rel=1e-6)
    assert stats["penalty"].item() == pytest.approx(10 * expected_gp.item(), rel=1e-6)
    d_real, d_fake = critic(real).mean(), critic(fake).mean()
    assert loss.item() == pytest.approx((d_fake - d_real + 10 * expected_gp).item(), rel=1e-6)
    # A norm over one axis only (the bug of some ports) gives a clearly different penalty.
    one_axis = ((grad.norm(dim=1) - 1) ** 2).mean()
    assert abs(one_axis.item() - expected_gp.item()) > 0.05 * expected_gp.item()


def test_penalty_gradient_reaches_the_critic_weights_correctly():
    # Double backpropagation: the gradient of the penalty w.r.t. a weight matches finite
    # differences of the penalty itself.
    critic = _tiny_critic(torch.float64)
    real, fake = _batch(dtype=torch.float64)
    cfg = LipschitzConfig("gp")

    def gp():
        return critic_loss(critic, real, fake, cfg, rng=torch.Generator().manual_seed(1))[1]["gp"]

    w = critic.blocks[0].conv1.weight
    loss, _ = critic_loss(critic, real, fake, cfg, rng=torch.Generator().manual_seed(1))
    (d_loss,) = torch.autograd.grad(loss, w)  # W term + 10 · penalty; λ = 0 isolates W
    no_pen, _ = critic_loss(
        critic, real, fake, LipschitzConfig("gp", lam=0.0), rng=torch.Generator().manual_seed(1)
    )
    (w_term,) = torch.autograd.grad(no_pen, w)
    pen_grad = (d_loss - w_term) / 10.0
    h, idx = 1e-6, (1, 2, 0)
    with torch.no_grad():
        w[idx] += h
    up = gp().item()
    with torch.no_grad():
        w[idx] -= 2 * h
    down = gp().item()
    assert pen_grad[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_stats_are_detached_scalars_and_consistent():
    critic = _tiny_critic()
    real, fake = _batch()
    loss, stats = critic_loss(critic, real, fake, LipschitzConfig("gp"), torch.Generator())
    assert {"wasserstein", "gp", "grad_norm", "d_real", "d_fake"} <= stats.keys()
    for v in stats.values():
        assert v.shape == () and not v.requires_grad
    assert stats["wasserstein"].item() == pytest.approx(
        stats["d_real"].item() - stats["d_fake"].item(), abs=1e-6
    )
    assert loss.item() == pytest.approx(
        -stats["wasserstein"].item() + stats["penalty"].item(), abs=1e-5
    )


def test_batched_critic_call_equals_separate_calls():
    critic = _tiny_critic(torch.float64)
    real, fake = _batch(dtype=torch.float64)
    _, stats = critic_loss(critic, real, fake, LipschitzConfig("gp"), torch.Generator())
    assert stats["d_real"].item() == pytest.approx(critic(real).mean().item(), rel=1e-12)
    assert stats["d_fake"].item() == pytest.approx(critic(fake).mean().item(), rel=1e-12)


def test_same_rng_seed_same_loss():
    critic = _tiny_critic()
    real, fake = _batch()
    cfg = LipschitzConfig("gp")
    a, _ = critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(5))
    b, _ = critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(5))
    c, _ = critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(6))
    assert a.item() == b.item() != c.item()


def test_penalty_does_not_train_the_generator():
    torch.manual_seed(0)
    g, critic = Generator(TINY), _tiny_critic()
    real, _ = _batch()
    fake = g(g.sample_noise(B))
    loss, _ = critic_loss(
        critic, real, fake, LipschitzConfig("gp", lam=1.0), torch.Generator().manual_seed(0)
    )
    no_pen, _ = critic_loss(
        critic, real, fake, LipschitzConfig("gp", lam=0.0), torch.Generator().manual_seed(0)
    )
    w = g.output.weight
    with_pen = torch.autograd.grad(loss, w, retain_graph=True)[0]
    torch.testing.assert_close(with_pen, torch.autograd.grad(no_pen, w)[0])


def test_generator_loss_is_minus_mean_critic_score():
    critic = _tiny_critic()
    _, fake = _batch()
    assert generator_loss(critic, fake).item() == pytest.approx(-critic(fake).mean().item())


def test_linear_critic_gradient_penalty_is_norm_of_w_minus_target():
    w = torch.randn(V, L, dtype=torch.float64)
    real, fake = _batch(dtype=torch.float64)
    for target in (0.5, 1.0, 3.0):
        _, stats = critic_loss(
            LinearCritic(w), real, fake, LipschitzConfig("gp", target=target), torch.Generator()
        )
        assert stats["gp"].item() == pytest.approx((w.norm().item() - target) ** 2, rel=1e-9)
        assert stats["grad_norm"].item() == pytest.approx(w.norm().item(), rel=1e-9)


def test_linear_critic_finite_difference_penalty():
    # With every real row equal and every fake row equal, any pairing gives
    # x₁ − x₂ = (ε₁ − ε₂)(r − f), so the slope is |w·(r − f)| / ‖r − f‖ whatever ε is.
    w = torch.randn(V, L, dtype=torch.float64)
    real, fake = _batch(dtype=torch.float64, b=1)
    real, fake = real.expand(B, V, L).clone(), fake.expand(B, V, L).clone()
    diff = real[0] - fake[0]
    slope = ((w * diff).sum().abs() / diff.norm()).item()
    _, stats = critic_loss(
        LinearCritic(w), real, fake, LipschitzConfig("gp-fd", target=1.0), torch.Generator()
    )
    assert stats["fd_slope"].item() == pytest.approx(slope, rel=1e-9)
    assert stats["gp"].item() == pytest.approx((slope - 1.0) ** 2, rel=1e-9)


def test_finite_difference_penalty_needs_no_double_backprop(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("autograd.grad called")

    monkeypatch.setattr(lipschitz.torch.autograd, "grad", refuse)
    critic = _tiny_critic()
    real, fake = _batch()
    loss, stats = critic_loss(
        critic, real, fake, LipschitzConfig("gp-fd"), torch.Generator(), monitor=False
    )
    loss.backward()
    assert stats["gp"].item() > 0
    assert "grad_norm" not in stats  # not measured, not reported as a NaN
    assert critic.output.weight.grad is not None


def test_one_sided_penalty_zero_below_target_and_two_sided_above():
    w = torch.randn(V, L, dtype=torch.float64)
    w = w / w.norm()  # ‖∇D‖ = 1 everywhere
    real, fake = _batch(dtype=torch.float64)

    def gp(kind, target, critic):
        cfg = LipschitzConfig(kind, target=target)
        return critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(2))[1]["gp"]

    assert gp("gp-one-sided", 2.0, LinearCritic(w)).item() == 0.0
    assert gp("gp-one-sided", 0.25, LinearCritic(w)).item() == pytest.approx(0.75**2)
    # On a non-linear critic with per-sample norms on both sides of K, the two-sided penalty
    # is larger; with K below every norm they agree exactly.
    critic = _tiny_critic(torch.float64)
    norms = _fd_grad_norms(critic, fake)[0]
    low, high = norms.min().item() * 0.5, norms.max().item() * 2.0
    assert gp("gp-one-sided", high, critic).item() == 0.0
    assert gp("gp", high, critic).item() > 0
    assert gp("gp-one-sided", low, critic).item() == pytest.approx(gp("gp", low, critic).item())


def test_clipped_critic_step_keeps_every_parameter_within_c():
    critic = _tiny_critic()
    cfg = LipschitzConfig("clip", clip=0.01)
    apply_constraint(critic, cfg)
    opt = torch.optim.SGD(critic.parameters(), lr=10.0)
    real, fake = _batch()
    loss, stats = critic_loss(critic, real, fake, cfg, torch.Generator())
    assert stats["gp"].item() == 0.0
    loss.backward()
    opt.step()
    assert max(p.abs().max().item() for p in critic.parameters()) > 0.01  # the step overshoots
    after_critic_step(critic, cfg)
    params = torch.cat([p.detach().flatten() for p in critic.parameters()])
    assert params.abs().max().item() <= 0.01
    assert (params.abs() == 0.01).float().mean() > 0.5


def test_spectral_norm_layers_have_unit_reshaped_kernel_norm():
    critic = _tiny_critic()
    apply_constraint(critic, LipschitzConfig("sn"))
    real, fake = _batch()
    with torch.no_grad():
        for _ in range(30):  # each training-mode forward runs one power iteration
            critic(torch.cat([real, fake]))
    layers = [m for m in critic.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    assert len(layers) == 4
    for layer in layers:
        assert nn.utils.parametrize.is_parametrized(layer, "weight")
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)


def _dense_operator_norm(layer: nn.Module, seq_len: int) -> float:
    """‖layer‖₂ (bias aside) exactly: the SVD of its matrix, built from the layer's own forward
    pass on every basis input (in eval mode, so a parametrization does not iterate)."""
    n = layer.in_channels * seq_len
    eye = torch.eye(n, dtype=layer.weight.dtype).view(n, layer.in_channels, seq_len)
    with torch.no_grad():
        columns = layer(eye) - layer(torch.zeros_like(eye[:1]))
    return torch.linalg.matrix_norm(columns.flatten(1), ord=2).item()


@pytest.mark.parametrize(
    ("kernel", "padding", "dilation"), [(5, "same", 1), (4, "same", 1), (3, "valid", 1), (3, 2, 2)]
)
def test_operator_norm_of_a_convolution_is_its_matrix_norm(kernel, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 8, kernel, padding=padding, dilation=dilation).double()
    exact = _dense_operator_norm(conv, 9)
    # Power iteration approaches the norm from below.
    assert exact * (1 - 1e-9) < spectral.operator_norm(conv, 9) <= exact * (1 + 1e-12)
    linear = nn.Linear(7, 3)
    exact = torch.linalg.matrix_norm(linear.weight.detach(), ord=2).item()
    assert spectral.operator_norm(linear, 9) == pytest.approx(exact, rel=1e-6)


def _equal_taps_critic(kind: str) -> Critic:
    """A critic whose block convolutions repeat one matrix over all k = 5 taps: the reshaped
    kernel [M … M] has norm √k·‖M‖, the convolution up to k·‖M‖ (on a constant input)."""
    torch.manual_seed(0)
    critic = Critic(ModelConfig(vocab_size=V, seq_len=16, dim=6, blocks=1, kernel=5))
    with torch.no_grad():
        for conv in (critic.blocks[0].conv1, critic.blocks[0].conv2):
            conv.weight.copy_(conv.weight[:, :, :1].expand_as(conv.weight))
    return apply_constraint(critic, LipschitzConfig(kind))


def _trained_forwards(critic: nn.Module, n: int = 50) -> nn.Module:
    """``n`` training-mode forward passes (one power iteration each), then eval mode."""
    x = torch.rand(2, V, critic.cfg.seq_len, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in range(n):
            critic(x)
    return critic.eval()


def test_reshaped_kernel_spectral_norm_does_not_bound_a_convolution():
    critic = _trained_forwards(_equal_taps_critic("sn"))
    for conv in (critic.blocks[0].conv1, critic.blocks[0].conv2):
        assert torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item() == pytest.approx(
            1.0, abs=1e-3
        )
        assert _dense_operator_norm(conv, 16) > 1.2  # √5 ≈ 2.24 away from the borders


@pytest.mark.parametrize("critic", ["equal taps", "reference init"])
def test_conv_spectral_norm_bounds_every_layers_operator_norm(critic):
    net = _equal_taps_critic("sn-conv") if critic == "equal taps" else _tiny_critic()
    if critic == "reference init":
        apply_constraint(net, LipschitzConfig("sn-conv"))
    _trained_forwards(net)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 3
    for conv in convs:
        assert isinstance(conv.parametrizations.weight[0], spectral.ConvSpectralNorm)
        assert 1 - 1e-3 <= _dense_operator_norm(conv, net.cfg.seq_len) <= 1 + 1e-3
    assert torch.linalg.matrix_norm(net.output.weight, ord=2).item() == pytest.approx(1, abs=1e-3)


def test_conv_spectral_norm_state_round_trips_and_eval_mode_does_not_iterate():
    critic = _trained_forwards(apply_constraint(_tiny_critic(), LipschitzConfig("sn-conv")), 3)
    conv = critic.blocks[0].conv1
    sn = conv.parametrizations.weight[0]
    assert sn._u.shape == (1, TINY.dim, TINY.seq_len) and sn._v.shape == sn._u.shape
    before = [b.clone() for b in critic.buffers()]
    weight = conv.weight.detach().clone()
    assert all(torch.equal(a, b) for a, b in zip(before, critic.buffers(), strict=True))
    fresh = apply_constraint(_tiny_critic(seed=1), LipschitzConfig("sn-conv")).eval()
    fresh.load_state_dict(critic.state_dict())  # a checkpoint carries the power-iteration state
    torch.testing.assert_close(fresh.blocks[0].conv1.weight, weight, rtol=0, atol=0)
    v = sn._v.clone()
    critic.train()
    critic(torch.rand(2, V, L))  # training mode: one more power iteration
    assert not torch.equal(sn._v, v)


@pytest.mark.parametrize("kind", ["gp", "gp-one-sided", "gp-fd"])
def test_batch_norm_with_a_penalty_is_refused(kind):
    cfg = LipschitzConfig(kind)
    critic = Critic(ModelConfig(**{**TINY.__dict__, "critic_norm": "batch"}))
    with pytest.raises(UserError, match=r"depend on the rest of the batch.*layer"):
        apply_constraint(critic, cfg)
    with pytest.raises(UserError, match="per-sample penalty"):
        check_critic_norm("batch", cfg)
    check_critic_norm("layer", cfg)


@pytest.mark.parametrize("kind", ["clip", "sn", "sn-conv", "none"])
def test_batch_norm_is_allowed_without_a_penalty(kind):
    cfg = LipschitzConfig(kind)
    torch.manual_seed(0)
    critic = apply_constraint(Critic(ModelConfig(**{**TINY.__dict__, "critic_norm": "batch"})), cfg)
    real, fake = _batch()
    state = {k: v.clone() for k, v in critic.state_dict().items()}
    loss, stats = critic_loss(critic, real, fake, cfg, torch.Generator(), monitor=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(stats["grad_norm"])
    # Real and fake are normalized as separate batches, as in the original WGAN: the loss's
    # first call scores the real batch alone (from the same batch-norm and power-iteration state).
    critic.load_state_dict(state)
    assert stats["d_real"].item() == pytest.approx(critic(real).mean().item(), rel=1e-6)


@pytest.mark.parametrize("kind", sorted(CONSTRAINTS))
def test_every_constraint_trains_a_step(kind):
    cfg = LipschitzConfig(kind, loss="ns" if CONSTRAINTS[kind].on_real else "wgan")
    critic = apply_constraint(_tiny_critic(), cfg)
    real, fake = _batch()
    loss, stats = critic_loss(critic, real, fake, cfg, torch.Generator().manual_seed(0))
    loss.backward()
    after_critic_step(critic, cfg)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(v) for v in stats.values())
    assert (stats["gp"].item() > 0) == (CONSTRAINTS[kind].penalty is not None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "wgan-lp"}, "kind must be one of gp, .*sn-conv"),
        ({"clip": 0.0}, "clip must be a positive number"),
        ({"clip": -1.0}, "clip must be a positive number"),
        ({"lam": -0.1}, "lam must be at least 0"),
        ({"target": 0.0}, "target must be a positive number"),
    ],
)
def test_bad_lipschitz_config_is_a_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        LipschitzConfig(**kwargs)
