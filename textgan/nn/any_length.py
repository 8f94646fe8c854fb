"""The ``any-length`` generator and critic: no layer sized by the sequence length, so both
work on rows of any length, and a run can train on short rows first (``train.curriculum``,
as Press et al. 2017 grew their text GANs' rows) and still evaluate at the full length.

Where the paper's generator maps z to each position by its own slice of one
``Linear(noise, L·D)``, this one gives every position a two-layer network of z and of the
position's sinusoidal code (Vaswani et al. 2017): position i means the same in a row of any
length, so a generator trained on the first k symbols of rows has learned their beginnings.
Where the paper's critic flattens all positions into one ``Linear(L·D, 1)``, this one adds the
positions' codes to its input features and averages its features over the positions before a
``Linear(D, 1)``. Rows stay independent of each other, so the per-sample penalties hold.
"""

from __future__ import annotations

import torch
from torch import nn

from textgan.config import ModelConfig
from textgan.nn.networks import Critic, GeneratorBase, ResBlock, init_reference_

POSITION_FEATURES = 16  # sines and cosines of 8 frequencies
# Wavelengths from 2π to 2π·100^(7/8) ≈ 350 positions: neighbours differ in the fast ones, and
# the slow ones still order the positions of long rows.
POSITION_BASE = 100.0


def positions(length: int, like: torch.Tensor) -> torch.Tensor:
    """``(1, POSITION_FEATURES, length)`` sinusoidal codes of positions 0 … length − 1, on
    ``like``'s device and in its dtype."""
    half = POSITION_FEATURES // 2
    freqs = POSITION_BASE ** (-torch.arange(half, device=like.device) / half)
    angles = freqs[:, None] * torch.arange(length, device=like.device)[None, :]
    return torch.cat([angles.sin(), angles.cos()]).unsqueeze(0).to(like.dtype)


class AnyLengthGenerator(GeneratorBase):
    """z and each position's code → Linear(noise, D) + Conv1d(codes, D, 1) → ReLU →
    Conv1d(D, D, 1) → (D, length) → residual blocks → Conv1d(D, V, 1) → softmax over V."""

    length_agnostic = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input = nn.Linear(cfg.noise_dim, cfg.dim)
        self.positions = nn.Conv1d(POSITION_FEATURES, cfg.dim, 1, bias=False)
        self.mix = nn.Conv1d(cfg.dim, cfg.dim, 1)
        self.blocks = nn.Sequential(
            *(ResBlock(cfg.dim, cfg.kernel, cfg.res_scale) for _ in range(cfg.blocks))
        )
        self.output = nn.Conv1d(cfg.dim, cfg.vocab_size, 1)
        init_reference_(self)

    def seed(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        length = self.cfg.seq_len if length is None else length
        h = self.input(z).unsqueeze(2) + self.positions(positions(length, z))
        return self.mix(torch.relu(h))


class AnyLengthCritic(Critic):
    """Conv1d(V, D, 1) + Conv1d(codes, D, 1) → residual blocks → mean over positions →
    Linear(D, 1)."""

    length_agnostic = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.positions = nn.Conv1d(POSITION_FEATURES, cfg.critic_width, 1, bias=False)
        init_reference_(self.positions)

    def output_layer(self, dim: int) -> nn.Module:
        return nn.Linear(dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.input(x) + self.positions(positions(x.shape[-1], x))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.output(h.mean(dim=2)).squeeze(1)
