"""The networks a run can choose by name: ``model.generator`` picks an entry of ``GENERATORS``,
``model.critic`` one of ``CRITICS`` (``textgan.nn.losses.LOSSES`` and
``textgan.nn.lipschitz.CONSTRAINTS`` are the other two registries).

A new network is one module of ``textgan/nn/`` and one line here, and its name in
``config.GENERATOR_KINDS`` or ``config.CRITIC_KINDS`` (the CLI offers those without importing
torch; the assertions below name the list to update). Each entry is called with the run's
``ModelConfig`` and returns a module that keeps it as ``cfg``; it may read any of its fields
(the critic's own sizes are ``cfg.critic_width`` and ``cfg.critic_depth``), and must build on
the ``meta`` device (``parameter_counts``: no value is read while building).

What the rest of textgan asks of them:

* a generator: ``sample_noise(n, device, generator)`` → ``(n, cfg.noise_dim)`` noise;
  ``logits(z, position_major=False)`` → ``(B, V, L)`` scores (``position_major`` asks for the
  layout of ``textgan.nn.networks.to_position_major``, which cuDNN runs faster; a generator
  may ignore it, the values are the same); ``forward(z)`` → their softmax over V; and
  ``output.bias``, V values added to every position's scores (``train.unigram_init`` sets it).
  ``networks.GeneratorBase`` provides all of it but the layers and ``seed``.
* a critic: ``forward(x)`` → one score per sequence, ``(B,)``, of one-hot or probability
  sequences ``(B, V, L)``, each row's score depending on that row alone (the penalties are per
  sample). Its ``Conv1d`` and ``Linear`` layers are what ``sn``, ``sn-conv`` and ``clip``
  constrain and the diagnostics measure.
* either, to train under ``train.curriculum``: a class attribute ``length_agnostic = True``,
  and no layer sized by ``cfg.seq_len``: the critic scores rows of any length, the generator's
  ``logits`` and ``forward`` take ``length=k`` and make k positions (only such a generator
  is ever asked for a length).

The fast exact critic step (``textgan.nn.fast``) covers the ``paper`` critic only; every other
critic trains by the general step (double backpropagation), with the same results.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from textgan.config import CRITIC_KINDS, GENERATOR_KINDS, ModelConfig
from textgan.nn.any_length import AnyLengthCritic, AnyLengthGenerator
from textgan.nn.attention import AttnCritic, AttnGenerator
from textgan.nn.networks import Critic, Generator, count_parameters
from textgan.nn.windows import WindowCritic

GENERATORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "paper": Generator,
    "attn": AttnGenerator,
    "any-length": AnyLengthGenerator,
}
CRITICS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "paper": Critic,
    "windows": WindowCritic,
    "attn": AttnCritic,
    "any-length": AnyLengthCritic,
}
assert tuple(GENERATORS) == GENERATOR_KINDS, "config.GENERATOR_KINDS out of date"
assert tuple(CRITICS) == CRITIC_KINDS, "config.CRITIC_KINDS out of date"


def make_generator(cfg: ModelConfig) -> nn.Module:
    """The generator ``cfg.generator`` names, freshly initialized from torch's global RNG."""
    return GENERATORS[cfg.generator](cfg)


def make_critic(cfg: ModelConfig) -> nn.Module:
    """The critic ``cfg.critic`` names, freshly initialized from torch's global RNG."""
    return CRITICS[cfg.critic](cfg)


def parameter_counts(cfg: ModelConfig) -> tuple[int, int]:
    """Trainable parameters of the generator and of the critic of ``cfg``, counted on networks
    built on the ``meta`` device: no memory is taken and no random number drawn, whatever
    sizes ``cfg`` claims."""
    with torch.device("meta"):
        return count_parameters(make_generator(cfg)), count_parameters(make_critic(cfg))
