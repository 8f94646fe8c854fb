"""The ``windows`` critic: the paper's critic that also scores every window of the row.

Beside the paper's global head (a linear map of all positions' features), a 1×1 convolution
after each residual block scores every position, and each block's scores are averaged over the
row. Block b's features at a position depend on the ``1 + 2·b·(kernel − 1)`` characters around
it (9 and 17 for two blocks of kernel 5), so the averaged heads judge windows at several
scales, as a PatchGAN discriminator (Isola et al. 2017) judges patches, while the global head
keeps judging the whole row. Each head is a function of its own row only, so the per-sample
penalties stay valid.
"""

from __future__ import annotations

import torch
from torch import nn

from textgan.config import ModelConfig
from textgan.nn.networks import Critic, init_reference_


class WindowCritic(Critic):
    """The paper's critic plus, after every residual block (or after the input convolution
    when there is none), a Conv1d(D, 1, 1) scoring each window, averaged over the row."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        scales = max(1, cfg.critic_depth)
        self.windows = nn.ModuleList(nn.Conv1d(cfg.critic_width, 1, 1) for _ in range(scales))
        init_reference_(self.windows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        features = [] if len(self.blocks) else [h]
        for block in self.blocks:
            h = block(h)
            features.append(h)
        local = [head(f).mean(dim=(1, 2)) for head, f in zip(self.windows, features, strict=True)]
        return self.head(h) + torch.stack(local).sum(0)
