"""The fast WGAN-GP step: the critic's input gradient without double backpropagation, mixed
precision and optional compilation. Every lever here is measured in ``benchmarks/``.

**Input gradient as a forward pass.** The gradient penalty needs ``∇x̂ D(x̂)`` as a function of
the critic's weights. Autograd gets it by double backpropagation, which (1) differentiates the
ReLU masks, whose derivative is zero, and so pushes zero tensors back through the whole forward
pass at full cost, and (2) cannot be compiled. For the reference critic (1×1 input convolution,
residual blocks ``h + s·conv₂(relu(conv₁(relu(h))))``, linear output) the gradient has a closed
form: run the forward pass once without autograd to record the ReLU masks, then apply the
transposed layers from the output weight down to the input, masked. That expression is exactly
the gradient autograd computes (same masks, same convention ``relu'(0) = 0``), it is an ordinary
first-order graph of the weights, and its backward costs two convolutions per layer instead of
four. It holds at any input, so it serves the penalties at interpolates and ``r1``'s at the real
rows, and any loss (the loss only maps the scores). Critics it does not cover (any other
registered critic, normalization layers, spectral-norm parametrizations, an even kernel) and
constraints other than the gradient penalties fall back to ``lipschitz.critic_loss``.
Both backends keep the critic's dtype (float64 stays float64) and build the loss and its
statistics with ``lipschitz.loss_and_stats``; ``critic_loss`` (any critic) and
``FastPath.critic_loss`` (one run's) are the entry points.

**Precision.** ``bf16`` runs the convolutions under autocast in bfloat16 with fp32 master
weights, fp32 losses and an fp32 optimizer (no gradient scaler: bfloat16 has fp32's range).
``tf32`` (CUDA) keeps fp32 storage with TensorFloat-32 matrix units. ``auto`` picks bf16 where
the hardware computes it natively (CUDA with bf16, x86 CPUs with AVX512-BF16 or AMX), else fp32.

**CUDA.** ``--compile`` captures the step in CUDA graphs (a paper-size step is a few hundred
kernels of microseconds each), and convolution weights and activations are stored
position-major, the layout of cuDNN's fast NHWC kernels, so no transposes surround every
convolution. Adam is fused on the CPU and on CUDA.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from textgan.config import PRECISIONS
from textgan.errors import UserError, first_line
from textgan.nn import lipschitz
from textgan.nn.networks import Critic, to_position_major

Tensor = torch.Tensor

# CPU instructions that compute bfloat16 products (torch.cpu.get_capabilities() names). oneDNN
# also runs bf16 on any AVX-512 CPU by converting to fp32 (Skylake, Cascade Lake), where
# torch.ops.mkldnn._is_mkldnn_bf16_supported() is true and a step measured 2.3× slower than fp32.
NATIVE_BF16_CPU = ("avx512_bf16", "amx_bf16")

# torch.compile options per device type (benchmarks/bench_train.py --compile-mode sets them).
# On CUDA the step is a few hundred small kernels: CUDA graphs remove their launch cost.
COMPILE_OPTIONS: dict[str, dict[str, Any]] = {"cpu": {}, "cuda": {"mode": "reduce-overhead"}}


# -- precision ---------------------------------------------------------------------------------


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (fast), not by emulation."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        native = any(capabilities.get(flag, False) for flag in NATIVE_BF16_CPU)
        return native and torch.backends.mkldnn.is_available()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → the fastest precision safe on ``device``; an explicit choice is checked."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "tf32" and device.type != "cuda":
        raise UserError("--precision tf32 needs a CUDA GPU; use fp32 or bf16 on this device")
    return name


def configure_device(device: torch.device, precision: str) -> None:
    """Global backend switches on CUDA: cuDNN picks the fastest convolution algorithm for our
    fixed shapes; TF32 is on for ``tf32``, off for ``fp32`` (bf16 leaves PyTorch's defaults)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if precision in ("fp32", "tf32"):
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            torch.backends.cudnn.allow_tf32 = precision == "tf32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast region of ``precision`` (a no-op for fp32 and tf32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def adam(
    params: Any, lr: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where PyTorch has one for ``device`` (CPU, CUDA):
    2.5× (idle CPU) to 10× (loaded) faster than the default multi-tensor update on the paper
    critic's 13M weights (``benchmarks/levers.py --adam``)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def match_optimizer_layout(*optimizers: torch.optim.Optimizer) -> None:
    """Give every per-weight state tensor its weight's memory layout. Fused Adam pairs elements
    by memory position, and a checkpoint written on another device (NCHW on the CPU,
    position-major on CUDA) would otherwise mix up the moments of different weights."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p, {})
                for key, value in state.items():
                    moved = torch.is_tensor(value) and value.shape == p.shape
                    if moved and value.stride() != p.stride():
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# -- the critic's input gradient ---------------------------------------------------------------


def explicit_grad_supported(critic: nn.Module) -> bool:
    """Whether ``critic_input_grad`` covers this critic (the reference architecture)."""
    if type(critic) is not Critic:
        return False
    cfg = critic.cfg
    plain = not any(nn.utils.parametrize.is_parametrized(m) for m in critic.modules())
    return cfg.critic_norm == "none" and cfg.kernel % 2 == 1 and plain


def critic_input_grad(critic: Critic, x: Tensor) -> Tensor:
    """``∇x Σ D(x)`` of shape ``x.shape``, as a first-order differentiable function of the
    critic's weights (``x`` itself is treated as a constant)."""
    cfg = critic.cfg
    pad = cfg.kernel // 2
    relu_inputs = []
    with torch.no_grad():
        h = critic.input(x)
        for block in critic.blocks:
            a = block.conv1(torch.relu(h))
            relu_inputs.append((h, a))
            h = h + block.res_scale * block.conv2(torch.relu(a))
    # ReLU's own backward, ``grad · (input > 0)`` in one pass; the inputs carry no graph, so
    # nothing flows back into the forward pass.
    relu_grad = torch.ops.aten.threshold_backward
    # d score / d h_last is the output weight for every sample: the first transposed
    # convolution is the same for the whole batch, so it runs once, at batch size 1.
    g = critic.output.weight.view(1, -1, cfg.seq_len)
    for block, (h, a) in zip(reversed(critic.blocks), reversed(relu_inputs), strict=True):
        t = relu_grad(F.conv_transpose1d(g, block.conv2.weight, padding=pad), a, 0)
        t = relu_grad(F.conv_transpose1d(t, block.conv1.weight, padding=pad), h, 0)
        g = g + block.res_scale * t
    g = g.expand(x.shape[0], -1, -1)
    return F.conv_transpose1d(g, critic.input.weight)


def fast_loss_supported(critic: nn.Module, cfg: lipschitz.LipschitzConfig) -> bool:
    """Whether ``critic_loss`` takes the fast path for this critic and constraint."""
    con = lipschitz.CONSTRAINTS[cfg.kind]
    return con.penalty is not None and con.slope == "gradient" and explicit_grad_supported(critic)


def penalized_loss(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    x_hat: Tensor | None,
    cfg: lipschitz.LipschitzConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The gradient-penalty loss and statistics at given interpolates ``x̂``, by the closed-form
    input gradient: free of random draws and first order, so it compiles. ``r1`` penalizes the
    slope at ``real`` and only measures it at ``x̂`` (None: not measured)."""
    b = real.shape[0]
    scores = critic(torch.cat([real, fake]))
    if lipschitz.CONSTRAINTS[cfg.kind].on_real:
        slopes = lipschitz.per_sample_norm(critic_input_grad(critic, real))
        norms = None
        if x_hat is not None:
            with torch.no_grad():
                norms = lipschitz.per_sample_norm(critic_input_grad(critic, x_hat))
    else:
        slopes = norms = lipschitz.per_sample_norm(critic_input_grad(critic, x_hat))
    return lipschitz.loss_and_stats(cfg, scores[:b], scores[b:], slopes=slopes, grad_norms=norms)


PenalizedLoss = Callable[..., tuple[Tensor, dict[str, Tensor]]]


def critic_loss(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    cfg: lipschitz.LipschitzConfig,
    rng: torch.Generator | None = None,
    monitor: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic loss of ``cfg``: ``lipschitz.critic_loss``'s value, statistics and random
    draws, computed without double backpropagation where ``fast_loss_supported``, by it
    elsewhere. ``monitor`` also measures ``grad_norm`` for constraints whose loss does not need
    it (one more forward and input backward: ask on logged steps only)."""
    fast = penalized_loss if fast_loss_supported(critic, cfg) else None
    return _critic_loss(critic, real, fake, cfg, rng, monitor, fast, position_major=False)


def _critic_loss(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    cfg: lipschitz.LipschitzConfig,
    rng: torch.Generator | None,
    monitor: bool,
    fast: PenalizedLoss | None,
    position_major: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    if fast is None:
        return lipschitz.critic_loss(critic, real, fake, cfg, rng=rng, monitor=monitor)
    # The same draws as the plain backend: r1 draws x̂ only to monitor the slope there.
    x_hat = None
    if monitor or not lipschitz.CONSTRAINTS[cfg.kind].on_real:
        x_hat = lipschitz.interpolate(real, fake, rng, shuffle=False)
    if position_major:
        real, fake = to_position_major(real), to_position_major(fake)
        x_hat = None if x_hat is None else to_position_major(x_hat)
    return fast(critic, real, fake, x_hat, cfg)


# -- one run's step ---------------------------------------------------------------------------


class FastPath:
    """The network calls of one run's training step, in its precision, compiled if asked.

    ``generate(z)`` gives the generator's probabilities (the softmax in fp32 or wider),
    ``critic_loss(real, fake, rng, monitor)`` is ``critic_loss`` above and
    ``generator_loss(fake)`` is ``lipschitz.generator_loss`` of the run's loss; each runs under
    the run's autocast. With ``compile`` the parts free of random draws and of double
    backpropagation go through ``torch.compile``.
    ``channels_last`` (default: on CUDA) stores convolution weights and activations
    position-major; FastPath converts the weights in place when it is built.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        cfg: lipschitz.LipschitzConfig,
        device: torch.device,
        precision: str = "auto",
        compile: bool = False,
        channels_last: bool | None = None,
    ) -> None:
        self.generator, self.critic, self.cfg, self.device = generator, critic, cfg, device
        self.precision = resolve_precision(precision, device)
        configure_device(device, self.precision)
        self.explicit = fast_loss_supported(critic, cfg)
        options = COMPILE_OPTIONS.get(device.type, {})
        wrap = (lambda fn: Compiled(fn, **options)) if compile else _identity
        self.cudagraphs = bool(compile) and options.get("mode") == "reduce-overhead"
        # cuDNN's fast bf16/TF32 convolutions are NHWC: with NCHW tensors every convolution is
        # wrapped in two layout transposes (half the GPU time at paper size). Position-major
        # weights and activations avoid them; checkpoints store contiguous copies.
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        if self.channels_last:
            for module in (generator, critic):
                for m in module.modules():
                    if isinstance(m, nn.Conv1d):
                        m.weight.data = to_position_major(m.weight.data)
        self._generate = wrap(self._generate_eager)
        self._penalized = wrap(penalized_loss) if self.explicit else None
        self._generator_loss = wrap(lipschitz.generator_loss)

    def _generate_eager(self, z: Tensor, length: int | None = None) -> Tensor:
        # Only a length-agnostic generator is asked for a length (registry contract).
        crop = {} if length is None else {"length": length}
        logits = self.generator.logits(z, position_major=self.channels_last, **crop)
        return torch.softmax(lipschitz.wide(logits), dim=1)

    def generate(self, z: Tensor, length: int | None = None) -> Tensor:
        """The generator's probabilities at ``z``: ``length`` positions (None: all of them)."""
        if self.cudagraphs:
            # Every step starts here: the previous step's graph outputs are consumed and may be
            # overwritten. The samples are cloned out of the graph pool, as they outlive the
            # next replay.
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(self.device, self.precision):
            out = self._generate(z, length)
        return out.clone() if self.cudagraphs else out

    def critic_loss(
        self,
        real: Tensor,
        fake: Tensor,
        rng: torch.Generator | None = None,
        monitor: bool = False,
        penalty_weight: float = 1.0,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``critic_loss`` above for this run's critic and constraint, in its precision.

        ``penalty_weight`` scales λ for lazy regularization: 0 skips the penalty, its random
        draws and its input gradient (the step scores real and fake rows only)."""
        with autocast(self.device, self.precision):
            if penalty_weight == 0:
                return self._unpenalized_loss(real, fake)
            cfg = self.cfg
            if penalty_weight != 1:
                cfg = replace(cfg, lam=cfg.lam * penalty_weight)
            return _critic_loss(
                self.critic, real, fake, cfg, rng, monitor, self._penalized, self.channels_last
            )

    def _unpenalized_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        both = torch.cat([real, fake])
        scores = self.critic(to_position_major(both) if self.channels_last else both)
        b = real.shape[0]
        return lipschitz.unpenalized_loss(scores[:b], scores[b:], self.cfg.loss)

    def generator_loss(self, fake: Tensor) -> Tensor:
        with autocast(self.device, self.precision):
            return self._generator_loss(self.critic, fake, self.cfg.loss)


def _identity(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


# -- compilation -------------------------------------------------------------------------------


class Compiled:
    """``torch.compile(fn)`` that falls back to ``fn`` itself, once and with a warning, when
    compilation is unavailable or fails (no compiler, unsupported backend or platform)."""

    def __init__(self, fn: Callable[..., Any], **options: Any) -> None:
        self.fn = fn
        self.error: str | None = None
        try:
            self.compiled: Callable[..., Any] | None = torch.compile(fn, **options)
        except Exception as err:  # e.g. torch.compile unsupported on this Python
            self._give_up(err)

    def _give_up(self, err: BaseException) -> None:
        self.compiled = None
        self.error = f"{type(err).__name__}: {first_line(err)}"
        warnings.warn(f"torch.compile unavailable, running eagerly ({self.error})", stacklevel=3)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:
                if not _is_compile_error(err):
                    raise
                self._give_up(err)
        return self.fn(*args, **kwargs)


def _is_compile_error(err: BaseException) -> bool:
    """Errors raised by the compiler stack, as opposed to errors of the function itself."""
    module = type(err).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor")) or isinstance(
        err, (ImportError, OSError)
    )
