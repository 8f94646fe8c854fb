"""The ``attn`` generator and critic: the paper's networks with one self-attention block after
the middle residual block.

The block is SAGAN's (Zhang et al. 2019, "Self-Attention Generative Adversarial Networks"):
1×1 convolutions give each position a query and a key of D/8 channels and a value of D; each
position takes the softmax-weighted sum of all positions' values (weights ``softmax_j(q_i·k_j)``)
and adds it, scaled by a learned gate γ, to its features. Convolutions of kernel 5 relate
characters a receptive field apart at most (17 for two blocks); attention relates any two
positions of the row in one step. γ starts at 0, so each network starts as the paper's: built
after the same seed, it has the paper network's weights and outputs. Attention mixes
positions within a row only, so each row's critic score still depends on that row alone.
"""

from __future__ import annotations

import torch
from torch import nn

from textgan.config import ModelConfig
from textgan.nn.networks import Critic, Generator, init_reference_


class SelfAttention(nn.Module):
    """``h + γ · attention(h)`` over the positions of ``(B, D, L)`` features; γ starts at 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = max(1, dim // 8)
        self.query = nn.Conv1d(dim, inner, 1)
        self.key = nn.Conv1d(dim, inner, 1)
        self.value = nn.Conv1d(dim, dim, 1)
        self.gamma = nn.Parameter(torch.zeros(()))
        init_reference_(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # weights[b, i, j]: how much position i takes from position j (rows sum to 1).
        weights = torch.softmax(self.query(h).transpose(1, 2) @ self.key(h), dim=-1)
        return h + self.gamma * (self.value(h) @ weights.transpose(1, 2))


def attended(blocks: nn.Sequential, attention: SelfAttention, h: torch.Tensor) -> torch.Tensor:
    """The residual blocks with ``attention`` after the middle one (the first half of an even
    number; before any block when there is none)."""
    middle = (len(blocks) + 1) // 2
    for block in blocks[:middle]:
        h = block(h)
    h = attention(h)
    for block in blocks[middle:]:
        h = block(h)
    return h


class AttnGenerator(Generator):
    """The paper's generator with a self-attention block after its middle residual block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.attention = SelfAttention(cfg.dim)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        return attended(self.blocks, self.attention, h)


class AttnCritic(Critic):
    """The paper's critic with a self-attention block after its middle residual block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.attention = SelfAttention(cfg.critic_width)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        return attended(self.blocks, self.attention, h)
