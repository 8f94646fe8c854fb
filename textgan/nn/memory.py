"""Whether a run can fit in its device's memory, judged from its settings before anything is
allocated.

A run holds both networks' weights, gradients and two Adam moments, the generator's EMA copy,
one more copy of each network's size while a step updates it, one step's activations (4-byte
floats: the widest precision) and a fixed working memory. The activations are counted per
sequence of the batch in units of a ``(D, L)`` and a ``(V, L)`` tensor, with factors measured
on the peak resident memory of CPU training steps of the paper's networks
(``benchmarks/memory_peak.py``; ``tests/test_memory.py`` measures it again): the critic step's
two-batch forward and the input gradient's forward, times the allocator's slack. Where the
critic's width or depth differs from the generator's, the larger of each is counted (an upper
bound); parameters are counted exactly, for any registered network.

The memory a process may take is ``textgan.devices.memory_limit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from textgan.config import ModelConfig
from textgan.devices import device_memory
from textgan.errors import UserError
from textgan.nn.registry import parameter_counts

BYTES = 4  # fp32 weights, gradients, moments and (the widest case) activations
STATE_COPIES = 4  # weight, gradient, Adam's two moments
STEP_COPIES = 1  # a transient copy of a network's size while its step runs
# Activation units per sequence (measured: see the module docstring).
PER_BLOCK = 8  # (D, L) tensors per residual block
PER_NETWORK = 13  # (D, L) tensors besides the blocks
PER_SYMBOL = 7  # (V, L) tensors: one-hot, fake, interpolates, their join, gradients
# Freed blocks the allocator keeps: the resident peak was up to 1.48x the counted tensors (17
# sizes on one machine; the largest at batch 64), and 9-13 % higher on another machine.
ALLOCATOR_SLACK = 1.6
# The allocator's and the math libraries' own working memory: 150 MB above the networks'
# tensors at the small preset's sizes, where those are small.
WORKSPACE = 256 << 20


class Estimate(NamedTuple):
    """Bytes a run needs at its peak: parameter state and one step's activations."""

    params: int
    activations: int

    @property
    def total(self) -> int:
        return self.params + self.activations + WORKSPACE


def estimate(model: ModelConfig, batch_size: int, ema: bool) -> Estimate:
    """The bytes one training step needs at its peak (module docstring)."""
    g, d = parameter_counts(model)
    copies = STATE_COPIES + STEP_COPIES
    params = BYTES * (copies * (g + d) + (g if ema else 0))
    dim, blocks = max(model.dim, model.critic_width), max(model.blocks, model.critic_depth)
    units = dim * (PER_BLOCK * blocks + PER_NETWORK) + PER_SYMBOL * model.vocab_size
    return Estimate(params, int(ALLOCATOR_SLACK * BYTES * batch_size * model.seq_len * units))


def check_weights(model: ModelConfig, weights: Mapping[str, Any], source: str) -> None:
    """UserError unless ``weights`` hold as many values as the generator of ``model`` has:
    building it allocates what its config claims, so a config.json edited or crafted to claim
    any size is refused here, before the allocator is asked."""
    if not all(callable(getattr(w, "numel", None)) for w in weights.values()):
        raise UserError(f"{source}: the generator weights are not all tensors")
    have, want = sum(int(w.numel()) for w in weights.values()), parameter_counts(model)[0]
    if have != want:
        raise UserError(
            f"{source}: its config.json describes a generator of {want:,} parameters and its "
            f"weights hold {have:,}; the config does not belong to these weights: restore it"
        )


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_run(model: ModelConfig, batch_size: int, ema: bool, device: object) -> None:
    """UserError naming the settings to lower when a run of ``model`` at ``batch_size`` cannot
    fit in ``device``'s memory; the settings that drive the larger part are named first."""
    need = estimate(model, batch_size, ema)
    have = device_memory(device)
    if have is None or need.total <= have:
        return
    first = ("train.batch_size", "corpus.seq_len", "model.dim")
    if need.params > need.activations:
        first = ("model.dim", "model.blocks", "corpus.seq_len")
    settings = {
        "train.batch_size": batch_size,
        "corpus.seq_len": model.seq_len,
        "model.dim": model.dim,
        "model.blocks": model.blocks,
    }
    # The critic's own sizes, where set, are named beside the generator's.
    for key in ("critic_dim", "critic_blocks"):
        if getattr(model, key) is not None:
            settings[f"model.{key}"] = getattr(model, key)
    names = [*first, *(k for k in settings if k not in first)]
    lower = ", ".join(f"{k} (now {settings[k]:,})" for k in names)
    raise UserError(
        f"this run needs about {_size(need.total)} at its peak ({_size(need.params)} of weights, "
        f"gradients and Adam state, {_size(need.activations)} of activations) and "
        f"{getattr(device, 'type', device)} has {_size(have)}; lower {lower}"
    )
