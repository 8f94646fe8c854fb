"""The losses of the two networks, a registry: ``lipschitz.loss`` names one entry of ``LOSSES``.

A loss maps the critic's per-sample scores to the critic's loss (before any penalty, which
``textgan.nn.lipschitz`` adds) and to the generator's. Scores arrive in float32 or wider
(``lipschitz.wide``), so a loss needs no care for half precision. A new loss is one entry here
(or one module and one line here) and its name in ``config.LOSS_KINDS``, which the CLI offers
without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from textgan.config import LOSS_KINDS

Tensor = torch.Tensor


@dataclass(frozen=True)
class Loss:
    """How the scores become losses.

    ``critic(d_real, d_fake)`` and ``generator(d_fake)`` take per-sample scores and return
    scalars. ``linear``: the critic's loss falls without bound as D(fake) falls, so only a
    constraint of the critic on its whole input keeps it finite (``lipschitz.check_loss``).
    """

    description: str
    critic: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    linear: bool = False


def _wgan_critic(d_real: Tensor, d_fake: Tensor) -> Tensor:
    return d_fake.mean() - d_real.mean()


def _raise_fake(d_fake: Tensor) -> Tensor:
    return -d_fake.mean()


def _hinge_critic(d_real: Tensor, d_fake: Tensor) -> Tensor:
    return torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()


def _ns_critic(d_real: Tensor, d_fake: Tensor) -> Tensor:
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def _ns_generator(d_fake: Tensor) -> Tensor:
    return F.softplus(-d_fake).mean()


LOSSES: dict[str, Loss] = {
    "wgan": Loss(
        "Wasserstein (the paper's): critic mean D(fake) − mean D(real), generator −mean D(G(z))",
        _wgan_critic,
        _raise_fake,
        linear=True,
    ),
    "hinge": Loss(
        "hinge (Lim & Ye 2017; Miyato et al. 2018): critic mean relu(1 − D(real)) + "
        "mean relu(1 + D(fake)), generator −mean D(G(z))",
        _hinge_critic,
        _raise_fake,
    ),
    "ns": Loss(
        "non-saturating logistic (Goodfellow et al. 2014): critic mean softplus(−D(real)) + "
        "mean softplus(D(fake)), generator mean softplus(−D(G(z)))",
        _ns_critic,
        _ns_generator,
    ),
}
# The CLI offers config.LOSS_KINDS without importing torch: the two lists must agree.
assert tuple(LOSSES) == LOSS_KINDS, "config.LOSS_KINDS out of date: add the new loss's name"
