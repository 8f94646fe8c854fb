"""The yardstick: the paper's WGAN-GP training step as a careful PyTorch user would write it.

Self-contained on purpose (it imports nothing from ``textgan``), so that it stays a fixed
baseline while textgan's own step gets faster. It follows the reference (Gulrajani et al. 2017,
``gan_language.py``) the way the popular ports do: fp32, eager, three separate critic calls
(real, fake, interpolates), the penalty's input gradient through
``torch.autograd.grad(create_graph=True)``, Adam(1e-4, (0.5, 0.9)), the critic frozen
(``requires_grad_(False)``) during the generator step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NaiveConfig:
    """Sizes of the step; the defaults are the paper's."""

    vocab_size: int = 256
    seq_len: int = 32
    dim: int = 512
    blocks: int = 5
    kernel: int = 5
    noise_dim: int = 128
    batch_size: int = 64
    critic_iters: int = 10
    lam: float = 10.0
    lr: float = 1e-4


class ResBlock(nn.Module):
    """``x + 0.3 * conv(relu(conv(relu(x))))``; the skip carries ``x``."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * self.conv2(F.relu(self.conv1(F.relu(x))))


class Generator(nn.Module):
    def __init__(self, cfg: NaiveConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc = nn.Linear(cfg.noise_dim, cfg.seq_len * cfg.dim)
        self.blocks = nn.Sequential(*(ResBlock(cfg.dim, cfg.kernel) for _ in range(cfg.blocks)))
        self.out = nn.Conv1d(cfg.dim, cfg.vocab_size, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.cfg.dim, self.cfg.seq_len)
        return F.softmax(self.out(self.blocks(x)), dim=1)


class Critic(nn.Module):
    def __init__(self, cfg: NaiveConfig) -> None:
        super().__init__()
        self.inp = nn.Conv1d(cfg.vocab_size, cfg.dim, 1)
        self.blocks = nn.Sequential(*(ResBlock(cfg.dim, cfg.kernel) for _ in range(cfg.blocks)))
        self.fc = nn.Linear(cfg.seq_len * cfg.dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.inp(x)).flatten(1)).squeeze(1)


class NaiveStep:
    """Generator, critic, their optimizers and the two update steps."""

    def __init__(self, cfg: NaiveConfig, device: str = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg = cfg
        self.device = torch.device(device)
        self.G = Generator(cfg).to(self.device)
        self.D = Critic(cfg).to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def critic_step(self, real_ids: torch.Tensor) -> float:
        cfg = self.cfg
        real = F.one_hot(real_ids.long(), cfg.vocab_size).permute(0, 2, 1).float()
        z = torch.randn(real.shape[0], cfg.noise_dim, device=self.device)
        with torch.no_grad():
            fake = self.G(z)
        d_real = self.D(real).mean()
        d_fake = self.D(fake).mean()
        eps = torch.rand(real.shape[0], 1, 1, device=self.device)
        interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(interp).sum(), interp, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = d_fake - d_real + cfg.lam * penalty
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def generator_step(self) -> float:
        cfg = self.cfg
        self.D.requires_grad_(False)
        z = torch.randn(cfg.batch_size, cfg.noise_dim, device=self.device)
        loss = -self.D(self.G(z)).mean()
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.item()

    def iteration(self, real_batches: list[torch.Tensor]) -> float:
        """One generator iteration: ``critic_iters`` critic steps, then one generator step."""
        for ids in real_batches[: self.cfg.critic_iters]:
            self.critic_step(ids)
        return self.generator_step()
