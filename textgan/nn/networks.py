"""The residual 1-D convolutional Generator and Critic of Gulrajani et al. 2017 (gan_language.py),
the ``paper`` entries of the network registries (``textgan.nn.registry``), and the pieces other
networks can build on (``GeneratorBase``, the ``Critic``'s parts, ``ResBlock``,
``init_reference_``).

Sequences travel as ``(batch, vocab, seq_len)`` tensors: one-hot rows for real text, softmax
probabilities for generated text, so the critic sees both on the same simplex.

Initialization follows the reference's ``tflib`` exactly:

* convolutions: "He" uniform, ``U(-a, a)`` with ``a = sqrt(3) * sqrt(4 / (fan_in + fan_out))``,
  ``fan_in = in_channels * kernel``, ``fan_out = out_channels * kernel`` (for the square D→D
  convolutions this is Kaiming-uniform; for the 1×1 input/output convolutions it averages the
  fans, as tflib does);
* linear layers: Glorot uniform, ``a = sqrt(6 / (fan_in + fan_out))``;
* every bias zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from textgan.config import ModelConfig


def _norm_layer(kind: str, dim: int) -> nn.Module:
    # "layer" normalizes each sample over all its channels and positions (GroupNorm with one
    # group, affine per channel): a sample's value never depends on the rest of the batch, so
    # the per-sample gradient penalty stays valid, and it works for any sequence length.
    if kind == "layer":
        return nn.GroupNorm(1, dim)
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    return nn.Identity()


class ResBlock(nn.Module):
    """``x + res_scale * conv(relu(conv(relu(x))))``; the skip carries ``x`` itself.

    With a normalization, it sits before each ReLU (pre-activation). The ReLUs are never
    in-place: an in-place ReLU would overwrite ``x`` and turn the skip into ``relu(x)``.
    """

    def __init__(self, dim: int, kernel: int, res_scale: float, norm: str = "none") -> None:
        super().__init__()
        self.res_scale = res_scale
        self.norm1 = _norm_layer(norm, dim)
        self.conv1 = nn.Conv1d(dim, dim, kernel, padding="same")
        self.norm2 = _norm_layer(norm, dim)
        self.conv2 = nn.Conv1d(dim, dim, kernel, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(self.norm1(x)))
        h = self.conv2(torch.relu(self.norm2(h)))
        return x + self.res_scale * h


def init_reference_(module: nn.Module) -> None:
    """Re-initialize every Conv1d and Linear in ``module`` as the reference does (see above)."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            k = m.kernel_size[0]
            bound = math.sqrt(3.0) * math.sqrt(4.0 / (m.in_channels * k + m.out_channels * k))
        elif isinstance(m, nn.Linear):
            bound = math.sqrt(6.0 / (m.in_features + m.out_features))
        else:
            continue
        nn.init.uniform_(m.weight, -bound, bound)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class GeneratorBase(nn.Module):
    """What every generator shares: its noise, its scores ``output(trunk(seed(z)))`` and their
    softmax. A subclass builds ``cfg``, ``output`` and ``seed`` (and ``blocks`` for ``trunk``)."""

    cfg: ModelConfig
    blocks: nn.Sequential
    output: nn.Conv1d
    # True where no layer is sized by cfg.seq_len: ``length`` may then ask for fewer positions
    # (train.curriculum).
    length_agnostic = False

    def sample_noise(
        self,
        n: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``(n, noise_dim)`` standard normal noise, drawn from ``generator`` when given."""
        # A torch.Generator only draws on its own device; draw there, then move.
        where = generator.device if generator is not None else device
        z = torch.randn(n, self.cfg.noise_dim, generator=generator, device=where)
        return z.to(device)

    def seed(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """The ``(B, D, length or L)`` features the residual blocks start from."""
        raise NotImplementedError

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        return self.blocks(h)

    def logits(
        self, z: torch.Tensor, position_major: bool = False, length: int | None = None
    ) -> torch.Tensor:
        """Unnormalized scores ``(B, V, L)``. ``position_major`` stores the activations (and so
        the scores) position-major, the layout of cuDNN's fast NHWC convolutions on CUDA: the
        same values, computed by the same layers. ``length`` asks a length-agnostic generator
        (``length_agnostic``) for the first ``length`` positions instead of ``cfg.seq_len``."""
        h = self.seed(z, length)
        if position_major:
            h = to_position_major(h)
        return self.output(self.trunk(h))

    def forward(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Probabilities ``(B, V, L)``: a softmax over the vocabulary at every position."""
        return torch.softmax(self.logits(z, length=length), dim=1)


class Generator(GeneratorBase):
    """z ~ N(0, I) → Linear → (D, L) → residual blocks → Conv1d(D, V, 1) → softmax over V."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input = nn.Linear(cfg.noise_dim, cfg.seq_len * cfg.dim)
        self.blocks = nn.Sequential(
            *(ResBlock(cfg.dim, cfg.kernel, cfg.res_scale) for _ in range(cfg.blocks))
        )
        self.output = nn.Conv1d(cfg.dim, cfg.vocab_size, 1)
        init_reference_(self)

    def seed(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        if length not in (None, self.cfg.seq_len):
            raise ValueError(f"this generator makes {self.cfg.seq_len} positions, not {length}")
        return self.input(z).view(z.shape[0], self.cfg.dim, self.cfg.seq_len)


class Critic(nn.Module):
    """Conv1d(V, D, 1) → residual blocks → flatten → Linear(L·D, 1); one score per sequence.
    D and the number of blocks are the critic's own (``critic_width``, ``critic_depth``).
    A subclass may change ``embed``, ``trunk``, ``head`` and the layer ``output_layer`` builds."""

    length_agnostic = False  # True where it scores rows of any length (train.curriculum)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.critic_width
        self.input = nn.Conv1d(cfg.vocab_size, dim, 1)
        self.blocks = nn.Sequential(
            *(
                ResBlock(dim, cfg.kernel, cfg.res_scale, cfg.critic_norm)
                for _ in range(cfg.critic_depth)
            )
        )
        self.output = self.output_layer(dim)
        init_reference_(self)

    def output_layer(self, dim: int) -> nn.Module:
        return nn.Linear(self.cfg.seq_len * dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.input(x)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        return self.blocks(h)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.output(h.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of one-hot or probability sequences ``(B, V, L)``."""
        return self.head(self.trunk(self.embed(x)))


def to_position_major(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, L) with the same values stored position-major (strides (L·C, 1, C)): the
    layout cuDNN's NHWC kernels read directly."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def one_hot(ids: torch.Tensor, vocab_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, L)`` integer ids → ``(B, V, L)`` one-hot, built on the ids' device by one scatter."""
    ids = ids.long()
    out = torch.zeros(ids.shape[0], vocab_size, ids.shape[1], dtype=dtype, device=ids.device)
    return out.scatter_(1, ids.unsqueeze(1), 1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
