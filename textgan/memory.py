"""Whether a run can fit in its device's memory, judged from its settings before anything is
allocated.

A run holds both networks' weights, gradients and two Adam moments (4 × 4 bytes per
parameter), the generator's EMA copy, and one step's activations. The estimate counts the
parameters exactly and the activations as a floor: every block keeps at least two ``(B, D, L)``
tensors per batch (its convolutions' inputs), for the generator's batch and the critic's three
(real, fake, interpolates). Autograd keeps more than that, so a run refused here could never
have run; one accepted may still run out of memory, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from textgan.errors import UserError

if TYPE_CHECKING:  # config imports the corpus, whose reader checks memory here
    from textgan.config import ModelConfig

BYTES = 4  # fp32 weights, gradients and moments (bf16 autocast keeps fp32 master weights)
ACTIVATION_BYTES = 2  # bf16 under autocast: the floor of every precision
STATE_COPIES = 4  # weight, gradient, Adam's two moments
BATCHES = 4  # the generator's batch and the critic's real, fake and interpolates


class Estimate(NamedTuple):
    """Bytes a run needs: parameter state and one step's activations."""

    params: int
    activations: int

    @property
    def total(self) -> int:
        return self.params + self.activations


def parameter_counts(model: ModelConfig) -> tuple[int, int]:
    """Parameters of the generator and of the critic (``textgan.models``), without building
    them (normalization layers aside)."""
    dim, length, vocab = model.dim, model.seq_len, model.vocab_size
    body = model.blocks * 2 * (dim * dim * model.kernel + dim)
    generator = model.noise_dim * length * dim + length * dim + body + dim * vocab + vocab
    critic = vocab * dim + dim + body + length * dim + 1
    return generator, critic


def estimate(model: ModelConfig, batch_size: int, ema: bool) -> Estimate:
    """A floor of the bytes one training step needs (module docstring)."""
    g, d = parameter_counts(model)
    params = BYTES * (STATE_COPIES * (g + d) + (g if ema else 0))
    per_sample = model.seq_len * (model.dim * (2 * model.blocks + 1) + model.vocab_size)
    return Estimate(params, ACTIVATION_BYTES * BATCHES * batch_size * per_sample)


def memory_limit() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's when lower."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return limit
    return min(limit, int(cgroup)) if cgroup.isdigit() else limit


def device_memory(device: object) -> int | None:
    """Bytes of memory ``device`` has in all (CUDA: the GPU's; CPU and MPS: the machine's, or
    its cgroup's when lower), None where it cannot be known."""
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[1])
    try:
        return memory_limit()
    except (ValueError, OSError, AttributeError):  # a platform without these sysconf names
        return None


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
    names = [*first, *(k for k in settings if k not in first)]
    lower = ", ".join(f"{k} (now {settings[k]:,})" for k in names)
    raise UserError(
        f"this run needs at least {_size(need.total)} ({_size(need.params)} of weights, "
        f"gradients and Adam state, {_size(need.activations)} of activations per step) and "
        f"{getattr(device, 'type', device)} has {_size(have)}; lower {lower}"
    )
