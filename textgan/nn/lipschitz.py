"""The Lipschitz constraints of the critic, and the critic's and generator's losses they enter.

Every constraint is one ``Constraint`` entry in ``CONSTRAINTS``: an optional per-sample penalty
on the critic's slope, an optional setup step (spectral norm) and an optional step after each
critic update (clipping). Adding a constraint means adding one entry (and its name to
``config.LIPSCHITZ_KINDS``).

The critic loss is the loss of ``cfg.loss`` (``textgan.nn.losses``; the paper's
``mean D(fake) − mean D(real)``) ``+ λ · mean(penalty)``. The slope a penalty sees is measured
at interpolates ``x̂ = ε·real + (1 − ε)·fake`` with ``ε ~ U[0, 1]`` drawn once per sequence
(``r1``: at the real rows themselves), and a sequence's gradient norm is taken over its whole
``V × L`` input (not over one axis, the bug of some ports). ``critic_loss`` here is the plain
backend (double backpropagation); ``textgan.nn.fast`` has the closed-form one, and both build
the loss and its statistics with ``loss_and_stats``.

Statistics returned with the loss (detached scalar tensors):

* ``wasserstein``: ``mean D(real) − mean D(fake)``, the critic's estimate of W (with another
  loss than ``wgan``, just the gap between the two scores);
* ``d_real``, ``d_fake``: the two means;
* ``gp``: the mean per-sample penalty **before** multiplying by λ (so runs with different λ
  compare), 0 for constraints without a penalty; ``penalty`` is ``λ · gp``, the term in the loss
  (0 on a lazy step, which has no ``gp``: averaged over a run's critic steps like the loss,
  ``critic loss = −wasserstein + penalty`` holds for the averages too);
* ``grad_norm``: the mean ``‖∇x̂ D(x̂)‖₂`` over the interpolates — the same quantity for every
  constraint so runs compare. The gradient penalties compute it anyway; the other constraints
  measure it only when asked (``monitor=True``: one extra forward and input backward), and
  otherwise the key is absent;
* ``fd_slope`` (``gp-fd``): the mean finite-difference slope it penalizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from textgan.config import LIPSCHITZ_KINDS, LipschitzConfig
from textgan.errors import UserError
from textgan.nn.losses import LOSSES
from textgan.nn.spectral import ConvSpectralNorm

Tensor = torch.Tensor


def _nothing(critic: nn.Module, cfg: LipschitzConfig) -> None:
    """No setup / nothing after the step."""


def _clip_weights(critic: nn.Module, cfg: LipschitzConfig) -> None:
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-cfg.clip, cfg.clip)


def _weighted_layers(critic: nn.Module) -> list[nn.Module]:
    return [m for m in critic.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]


def _spectral_norm(critic: nn.Module, cfg: LipschitzConfig) -> None:
    # Miyato et al.: divide each weight by the top singular value of its (out, in·k) reshaped
    # kernel. For a linear layer or a 1×1 convolution that is the operator norm; for a wider
    # convolution it is neither the operator norm nor a bound on it (k equal taps give up to √k).
    for layer in _weighted_layers(critic):
        nn.utils.parametrizations.spectral_norm(layer)


def _conv_spectral_norm(critic: nn.Module, cfg: LipschitzConfig) -> None:
    # A convolution's operator norm depends on the sequence length it runs on.
    seq_len = critic.cfg.seq_len
    for layer in _weighted_layers(critic):
        if isinstance(layer, nn.Conv1d):
            parametrize.register_parametrization(layer, "weight", ConvSpectralNorm(layer, seq_len))
        else:  # a linear layer's operator norm is its matrix's spectral norm
            nn.utils.parametrizations.spectral_norm(layer)


def _two_sided(slope: Tensor, target: float) -> Tensor:
    return (slope - target).square()


def _one_sided(slope: Tensor, target: float) -> Tensor:
    return torch.relu(slope - target).square()


def _zero_centred(slope: Tensor, target: float) -> Tensor:
    return 0.5 * slope.square()  # R1's γ/2·‖∇D‖², γ = λ; no target: it pulls towards 0


@dataclass(frozen=True)
class Constraint:
    """How one Lipschitz constraint enters training.

    ``penalty`` maps per-sample slopes to per-sample penalties (None: no penalty). ``slope`` says
    which slope it sees: ``"gradient"`` (‖∇x̂ D‖, needs double backpropagation) or
    ``"difference"`` (|D(x₁) − D(x₂)| / ‖x₁ − x₂‖ between two interpolates, first order only);
    ``on_real``: the gradient at the real rows instead of at interpolates.
    """

    description: str
    penalty: Callable[[Tensor, float], Tensor] | None = None
    slope: str = "gradient"
    on_real: bool = False
    setup: Callable[[nn.Module, LipschitzConfig], None] = _nothing
    after_step: Callable[[nn.Module, LipschitzConfig], None] = _nothing


CONSTRAINTS: dict[str, Constraint] = {
    "gp": Constraint("two-sided gradient penalty λ·(‖∇D(x̂)‖ − K)²", penalty=_two_sided),
    "gp-one-sided": Constraint("one-sided gradient penalty λ·max(0, ‖∇D(x̂)‖ − K)²", _one_sided),
    "gp-fd": Constraint(
        "finite-difference penalty λ·(|D(x₁) − D(x₂)| / ‖x₁ − x₂‖ − K)²",
        penalty=_two_sided,
        slope="difference",
    ),
    "r1": Constraint(
        "zero-centred gradient penalty on the real rows λ·½‖∇D(x)‖² (R1, Mescheder et al. 2018)",
        penalty=_zero_centred,
        on_real=True,
    ),
    "clip": Constraint(
        "weight clipping to [−c, c] after each critic step", after_step=_clip_weights
    ),
    "sn": Constraint(
        "spectral normalization of each layer's reshaped (out, in·k) kernel (Miyato et al.; "
        "does not bound a convolution's operator norm)",
        setup=_spectral_norm,
    ),
    "sn-conv": Constraint(
        "each layer divided by its operator norm (convolutions: on length-L sequences)",
        setup=_conv_spectral_norm,
    ),
    "none": Constraint("no constraint (diverges; for comparison only)"),
}
# The CLI offers config.LIPSCHITZ_KINDS without importing torch: the two lists must agree.
assert tuple(CONSTRAINTS) == LIPSCHITZ_KINDS, "config.LIPSCHITZ_KINDS out of date"


def _has_batch_norm(critic: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


def check_critic_norm(critic_norm: str, cfg: LipschitzConfig) -> None:
    """Refuse batch norm in a critic trained with a per-sample penalty (UserError)."""
    if critic_norm == "batch" and CONSTRAINTS[cfg.kind].penalty is not None:
        unpenalized = ", ".join(k for k, c in CONSTRAINTS.items() if c.penalty is None)
        raise UserError(
            f"batch norm cannot be combined with the {cfg.kind} penalty: batch norm makes each "
            "sample's critic value depend on the rest of the batch, which breaks the per-sample "
            "penalty; use --critic-norm layer instead (or a constraint without a penalty: "
            f"{unpenalized})"
        )


def check_loss(cfg: LipschitzConfig) -> None:
    """Refuse a loss the constraint cannot keep finite (UserError): a linear loss (``wgan``)
    with a constraint on the real rows only (``r1``), where the critic could lower D(fake)
    without bound away from the data."""
    if LOSSES[cfg.loss].linear and CONSTRAINTS[cfg.kind].on_real:
        bounded = " or ".join(k for k, loss in LOSSES.items() if not loss.linear)
        raise UserError(
            f"lipschitz.loss {cfg.loss} cannot be trained with lipschitz.kind {cfg.kind}: the "
            f"{cfg.loss} loss is linear in the critic's score and {cfg.kind} constrains the "
            "critic on the real rows only, so its score of the fakes could fall without bound; "
            f"use lipschitz.loss {bounded} with {cfg.kind}, or another lipschitz.kind"
        )


def check_choices(critic_norm: str, penalty_every: int, cfg: LipschitzConfig) -> None:
    """Every refusal of a loss, constraint, critic normalization and lazy penalty that do not
    go together (UserError), before anything is built."""
    check_loss(cfg)
    check_critic_norm(critic_norm, cfg)
    check_penalty_every(penalty_every, cfg)


def apply_constraint(critic: nn.Module, cfg: LipschitzConfig) -> nn.Module:
    """Prepare ``critic`` for ``cfg`` once, before training (e.g. spectral norm); returns it."""
    check_loss(cfg)
    check_critic_norm("batch" if _has_batch_norm(critic) else "none", cfg)
    CONSTRAINTS[cfg.kind].setup(critic, cfg)
    return critic


def after_critic_step(critic: nn.Module, cfg: LipschitzConfig) -> None:
    """Call after every critic optimizer step (e.g. weight clipping)."""
    CONSTRAINTS[cfg.kind].after_step(critic, cfg)


# -- losses ------------------------------------------------------------------------------------


def interpolate(real: Tensor, fake: Tensor, rng: torch.Generator | None, shuffle: bool) -> Tensor:
    """``ε·real + (1 − ε)·fake``, ε per sequence; ``shuffle`` pairs them at random."""
    b = real.shape[0]
    where = rng.device if rng is not None else real.device
    if shuffle:
        real = real[torch.randperm(b, generator=rng, device=where).to(real.device)]
        fake = fake[torch.randperm(b, generator=rng, device=where).to(real.device)]
    eps = torch.rand(b, 1, 1, generator=rng, device=where).to(real.device, fake.dtype)
    return (fake + eps * (real - fake)).detach()


def _scores(critic: nn.Module, parts: list[Tensor]) -> list[Tensor]:
    """Critic scores of each part. One batched call when samples are independent; batch norm
    would mix real and fake statistics in one batch, so it gets one call per part."""
    if _has_batch_norm(critic):
        return [critic(p) for p in parts]
    return list(critic(torch.cat(parts)).split([p.shape[0] for p in parts]))


def wide(x: Tensor) -> Tensor:
    """Half-precision values (autocast) in float32 for reductions; fp32 and fp64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def per_sample_norm(x: Tensor) -> Tensor:
    """Euclidean norm of each sequence's whole (V, L) block."""
    return wide(x).flatten(1).norm(dim=1)


def loss_and_stats(
    cfg: LipschitzConfig,
    d_real: Tensor,
    d_fake: Tensor,
    slopes: Tensor | None = None,
    grad_norms: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic loss and its statistics (module docstring) from per-sample scores, the
    per-sample slopes the penalty sees (None without a penalty) and the per-sample ‖∇x̂ D‖
    (None when not measured). Both backends end here, so they report the same statistics."""
    con = CONSTRAINTS[cfg.kind]
    gp = wide(d_real).new_zeros(())
    stats: dict[str, Tensor] = {}
    if con.penalty is not None:
        gp = con.penalty(wide(slopes), cfg.target).mean()
        if con.slope == "difference":
            stats["fd_slope"] = slopes.mean().detach()
    loss, base = unpenalized_loss(d_real, d_fake, cfg.loss)
    stats.update(base, gp=gp.detach(), penalty=(cfg.lam * gp).detach())
    if grad_norms is not None:
        stats["grad_norm"] = grad_norms.mean().detach()
    return loss + cfg.lam * gp, stats


def unpenalized_loss(
    d_real: Tensor, d_fake: Tensor, loss: str = "wgan"
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic's ``loss`` (``textgan.nn.losses``) of per-sample scores and its statistics:
    the whole loss of a lazy critic step, which skips the penalty (``train.penalty_every``), so
    its ``penalty`` is 0."""
    d_real, d_fake = wide(d_real), wide(d_fake)
    real_mean, fake_mean = d_real.mean(), d_fake.mean()
    stats = {
        "wasserstein": (real_mean - fake_mean).detach(),
        "d_real": real_mean.detach(),
        "d_fake": fake_mean.detach(),
        "penalty": real_mean.new_zeros(()),
    }
    return LOSSES[loss].critic(d_real, d_fake), stats


def check_penalty_every(every: int, cfg: LipschitzConfig) -> None:
    """Refuse a lazy penalty for a constraint that has no penalty (UserError)."""
    if every > 1 and CONSTRAINTS[cfg.kind].penalty is None:
        penalized = ", ".join(k for k, c in CONSTRAINTS.items() if c.penalty is not None)
        raise UserError(
            f"--penalty-every {every} needs a gradient penalty, and --lipschitz {cfg.kind} has "
            f"none; drop --penalty-every or use one of {penalized}"
        )


def critic_loss(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    cfg: LipschitzConfig,
    rng: torch.Generator | None = None,
    monitor: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic's loss on one-hot ``real`` and generated ``fake`` (both ``(B, V, L)``), by
    double backpropagation: the plain backend, for any critic and constraint.

    Returns ``(loss, stats)``; see the module docstring for the stats (``monitor`` measures
    ``grad_norm`` where the loss does not need it). ``rng`` draws ε (and the pairings of
    ``gp-fd``) so training is reproducible. The penalty never trains the generator:
    interpolates are detached from ``fake``.
    """
    con = CONSTRAINTS[cfg.kind]
    on_real = con.penalty is not None and con.on_real
    need_grad = con.penalty is not None and con.slope == "gradient" and not on_real
    measure = need_grad or monitor  # ‖∇x̂ D‖ is needed (penalty) or reported (monitor)
    fd = con.penalty is not None and con.slope == "difference"
    if on_real:
        real = real.detach().requires_grad_(True)
    parts = [real, fake]
    if measure or fd:
        # Only a measured gradient needs x̂ as a leaf; gp-fd without monitoring stays first order.
        parts.append(interpolate(real, fake, rng, shuffle=False).requires_grad_(measure))
    if fd:
        parts.append(interpolate(real, fake, rng, shuffle=True))
    # Interpolates get their own call: a gradient through one batched call would differentiate
    # (and, for the penalty, double-backpropagate) the real and fake rows too, twice the work.
    # For the same reason r1's real rows get theirs.
    groups = [parts[:1], parts[1:2]] if on_real else [parts[:2]]
    if parts[2:]:
        groups.append(parts[2:])
    scores = [score for group in groups for score in _scores(critic, group)]

    norms = None
    if measure:
        (grad,) = torch.autograd.grad(
            scores[2].sum(), parts[2], create_graph=need_grad, retain_graph=True
        )
        norms = per_sample_norm(grad)
    slopes = norms
    if on_real:
        (grad,) = torch.autograd.grad(scores[0].sum(), real, create_graph=True, retain_graph=True)
        slopes = per_sample_norm(grad)
    if fd:
        # Two interpolates can coincide (same pair, near-equal ε); bound the division.
        gap = per_sample_norm(parts[2].detach() - parts[3]).clamp_min(1e-6)
        slopes = (wide(scores[2]) - wide(scores[3])).abs() / gap
    return loss_and_stats(cfg, scores[0], scores[1], slopes, norms)


def generator_loss(critic: nn.Module, fake: Tensor, loss: str = "wgan") -> Tensor:
    """The generator's ``loss`` (``textgan.nn.losses``; the paper's ``−mean D(G(z))``): the
    generator raises the critic's score of its samples."""
    return LOSSES[loss].generator(wide(critic(fake)))
