"""The operator norm of a 1-D convolution: the ``conv1d``/``conv_transpose1d`` pair of power
iteration (``ConvMap``), the ``sn-conv`` parametrization that divides a convolution by its norm
on length-L sequences (``ConvSpectralNorm``), and the norm of each layer of a critic
(``operator_norm``, ``layer_operator_norms``) that the diagnostics log."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor

SN_INIT_ITERATIONS = 15  # power iterations when a layer is normalized, as torch's spectral_norm


def _conv_pads(layer: nn.Conv1d) -> tuple[int, int]:
    """Zeros ``layer`` adds left and right of its input; ``"same"`` puts an even kernel's extra
    zero on the right, as PyTorch does."""
    if layer.padding == "valid":
        return 0, 0
    if layer.padding == "same":
        total = layer.dilation[0] * (layer.kernel_size[0] - 1)
        return total // 2, total - total // 2
    return layer.padding[0], layer.padding[0]


class ConvMap:
    """The linear map ``x ↦ conv1d(x, weight)`` of a Conv1d layer (its bias left out) on
    ``(1, C_in, L)`` inputs, and its adjoint: the conv1d/conv_transpose1d pair of power
    iteration."""

    def __init__(self, layer: nn.Conv1d) -> None:
        simple = layer.stride == (1,) and layer.groups == 1 and layer.padding_mode == "zeros"
        if not simple:
            raise ValueError("only stride 1, one group and zero padding are supported")
        self.pads, self.dilation = _conv_pads(layer), layer.dilation[0]

    def __call__(self, weight: Tensor, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, self.pads), weight, dilation=self.dilation)

    def adjoint(self, weight: Tensor, y: Tensor) -> Tensor:
        # The transposed convolution of the padded input, cropped: cropping is padding's adjoint.
        full = F.conv_transpose1d(y, weight, dilation=self.dilation)
        left, right = self.pads
        return full[..., left : full.shape[-1] - right]

    def iterate(self, weight: Tensor, u: Tensor, v: Tensor, steps: int) -> None:
        """``steps`` power iterations, in place on the unit output-side ``u`` and input-side
        ``v``: afterwards ``⟨u, A v⟩`` estimates ``‖A‖₂`` from below."""
        for _ in range(steps):
            v.copy_(F.normalize(self.adjoint(weight, u).flatten(), dim=0).view_as(v))
            u.copy_(F.normalize(self(weight, v).flatten(), dim=0).view_as(u))


def _exact(weight: Tensor) -> contextlib.AbstractContextManager:
    """Power iteration in the weights' own precision: outside autocast, where it rounds."""
    return torch.autocast(weight.device.type, enabled=False)


class ConvSpectralNorm(nn.Module):
    """Parametrization ``weight / ‖conv(·, weight)‖₂`` of a Conv1d, its operator norm on
    ``seq_len`` positions estimated by power iteration: persistent ``_u`` (output side) and
    ``_v`` (input side) buffers, one iteration per training forward, none in eval mode — the
    scheme of ``torch.nn.utils.parametrizations.spectral_norm``, on the convolution itself
    instead of its reshaped kernel."""

    def __init__(self, layer: nn.Conv1d, seq_len: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.map, self.eps = ConvMap(layer), eps
        weight = layer.weight.detach()
        with torch.no_grad(), _exact(weight):
            v = F.normalize(weight.new_empty(layer.in_channels * seq_len).normal_(), dim=0)
            v = v.view(1, layer.in_channels, seq_len)
            u = F.normalize(self.map(weight, v).flatten(), dim=0).view(1, layer.out_channels, -1)
            self.map.iterate(weight, u, v, SN_INIT_ITERATIONS)
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)

    def forward(self, weight: Tensor) -> Tensor:
        with _exact(weight):
            if self.training:
                with torch.no_grad():
                    self.map.iterate(weight, self._u, self._v, 1)
            # Clones: the buffers change in place at the next forward, after autograd saved them.
            u, v = self._u.clone(), self._v.clone()
            sigma = (u * self.map(weight, v)).sum()
        return weight / sigma.clamp_min(self.eps)

    def right_inverse(self, value: Tensor) -> Tensor:
        # Loading or assigning a weight stores it as the unnormalized original, as torch's does.
        return value


def operator_norm(layer: nn.Module, seq_len: int, steps: int = 50, block: int = 8) -> float:
    """``‖layer‖₂`` with the weight the forward pass uses (bias aside): a linear layer's matrix
    norm, exactly; a Conv1d's norm as a map of ``seq_len``-long sequences, by ``steps`` block
    power iterations on ``block`` vectors from a fixed start (a lower bound that converges,
    much faster than single-vector power iteration where top singular values crowd). Reading a
    parametrized weight in training mode advances its power iteration, as a forward pass does."""
    with torch.no_grad():
        weight = layer.weight.detach()
        with _exact(weight):
            if isinstance(layer, nn.Linear):
                return float(torch.linalg.matrix_norm(weight, ord=2))
            conv, shape = ConvMap(layer), (layer.in_channels, seq_len)
            n = layer.in_channels * seq_len
            start = torch.Generator(device=weight.device).manual_seed(0)
            q = torch.randn(n, min(block, n), generator=start, device=weight.device)
            q = torch.linalg.qr(q.to(weight.dtype)).Q  # orthonormal columns: inputs
            for _ in range(steps):
                v = q.T.reshape(-1, *shape)
                q = torch.linalg.qr(conv.adjoint(weight, conv(weight, v)).flatten(1).T).Q
            # ‖A Q‖₂ ≤ ‖A‖₂ for orthonormal Q: the top singular value of A on the subspace.
            out = conv(weight, q.T.reshape(-1, *shape))
            return float(torch.linalg.matrix_norm(out.flatten(1), ord=2))


def layer_operator_norms(critic: nn.Module, seq_len: int) -> dict[str, float]:
    """``operator_norm`` of every Conv1d and Linear layer of ``critic``, by module name."""
    return {
        name: operator_norm(m, seq_len)
        for name, m in critic.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Linear))
    }
