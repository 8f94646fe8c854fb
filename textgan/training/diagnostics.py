"""What the critic is doing: the measurements behind the WGAN-GP argument about clipping.

Weight clipping drives critic weights to ±c and makes gradients vanish or explode from layer to
layer; a gradient penalty keeps weights spread and ‖∇x D‖ near its target. ``critic_diagnostics``
measures exactly that on one batch, without touching the run: it reads no global RNG, leaves no
``.grad`` behind and restores every buffer (spectral-norm power-iteration vectors, batch-norm
running statistics) that its forward passes update.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from textgan.files import append_rows
from textgan.files.rundir import DIAGNOSTICS
from textgan.nn.lipschitz import LipschitzConfig, critic_loss, interpolate, per_sample_norm
from textgan.nn.spectral import layer_operator_norms
from textgan.training.trainer import real_batch, stream_seed

HIST_BINS = 101  # odd, so one bin is centred on zero
CLIP_TOLERANCE = 0.01  # "at ±c" means |w| ≥ (1 − 1 %)·c


def _unwrap(critic: nn.Module) -> nn.Module:
    """The bare critic behind a DistributedDataParallel or compiled wrapper."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(critic, attr, None)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return critic


@contextmanager
def _buffers_restored(module: nn.Module) -> Iterator[None]:
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def effective_weights(critic: nn.Module) -> list[torch.Tensor]:
    """Every critic parameter as the forward pass uses it (spectral norm applied), detached."""
    tensors = []
    for module in critic.modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # its ``original`` is reached below through the parametrized attribute
        tensors.extend(p.detach() for p in module.parameters(recurse=False))
        if parametrize.is_parametrized(module):
            tensors.extend(getattr(module, name).detach() for name in module.parametrizations)
    return tensors


def weight_histogram(weights: list[torch.Tensor], bins: int = HIST_BINS) -> dict:
    """Counts of all finite weights in ``bins`` equal bins over [−max|w|, max|w|]; weights that
    are NaN or infinite (a diverging critic) are counted apart, in ``nonfinite``."""
    flat = torch.cat([w.flatten().float() for w in weights])
    finite = flat[flat.isfinite()]
    max_abs = float(finite.abs().max()) if finite.numel() else 0.0
    bound = max_abs if max_abs > 0 else 1.0
    counts = torch.histc(finite, bins=bins, min=-bound, max=bound)
    return {
        "max_abs": max_abs,
        "bins": bins,
        "counts": [int(c) for c in counts.tolist()],
        "nonfinite": int(flat.numel() - finite.numel()),
    }


def clip_share(critic: nn.Module, clip: float, tolerance: float = CLIP_TOLERANCE) -> float:
    """Share of critic parameters within ``tolerance`` (relative) of ±clip."""
    at_bound = total = 0
    for p in critic.parameters():
        at_bound += int((p.detach().abs() >= (1.0 - tolerance) * clip).sum())
        total += p.numel()
    return at_bound / max(total, 1)


def layer_groups(critic: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Parameters grouped by layer, input to output: ``input``, ``blocks.0``, …, ``output``.

    A top-level child is one layer, except a Sequential/ModuleList of blocks, whose items are
    one layer each. Registration order is the order of the forward pass in these models.
    """
    groups: dict[str, list[nn.Parameter]] = {}
    for name, p in critic.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
        groups.setdefault(key, []).append(p)
    return list(groups.items())


def _input_grad_norms(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖∇x D(x)‖₂ per sequence, over its whole V×L input."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return per_sample_norm(grad)


def _stream_seed(seed: int, iteration: int, stream: int) -> int:
    """Independent seeds per (run seed, iteration, use): ε, real rows, generator noise."""
    return stream_seed([seed, iteration, stream])


def _mean_std(values: torch.Tensor) -> dict:
    std = values.std() if values.numel() > 1 else torch.zeros(())
    return {"mean": float(values.mean()), "std": float(std)}


def critic_diagnostics(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lipschitz_cfg: LipschitzConfig,
    iteration: int,
    seed: int = 0,
    bins: int = HIST_BINS,
) -> dict:
    """One diagnostics record for a real (one-hot) and a fake (softmax) batch ``(B, V, L)``.

    Keys: ``iter``, ``lipschitz``; ``weight_hist`` (``max_abs``, ``bins``, ``counts``);
    ``layer_grad_norms`` (``names``, ``norms``: ‖∂ critic loss / ∂ layer parameters‖, input to
    output); ``input_grad`` (``real``/``fake``/``interp``: mean and std of ‖∇x D‖);
    ``clip_share`` (share of weights within 1 % of ±c; None unless clipping);
    ``layer_op_norms`` (``names``, ``norms``: each Conv1d's and Linear's operator norm on
    length-L inputs, measured by power iteration — what spectral normalization claims to bound).
    """
    critic = _unwrap(critic)
    real = real.detach().float()
    fake = fake.detach().float()
    device = real.device
    rng = torch.Generator(device=device).manual_seed(_stream_seed(seed, iteration, 0))
    with _buffers_restored(critic):
        # First, so that each layer is measured with the weight the next training step uses.
        op_norms = layer_operator_norms(critic, seq_len=real.shape[-1])
        groups = layer_groups(critic)
        loss, _ = critic_loss(critic, real, fake, lipschitz_cfg, rng=rng, monitor=False)
        params = [p for _, ps in groups for p in ps]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        sq = [float(g.pow(2).sum()) if g is not None else 0.0 for g in grads]
        norms, start = [], 0
        for _, ps in groups:
            norms.append(sum(sq[start : start + len(ps)]) ** 0.5)
            start += len(ps)

        interp = interpolate(real, fake, rng, shuffle=False)  # as the penalty draws x̂
        points = {"real": real, "fake": fake, "interp": interp}
        input_grad = {k: _mean_std(_input_grad_norms(critic, x)) for k, x in points.items()}
        hist = weight_histogram(effective_weights(critic), bins)
    share = clip_share(critic, lipschitz_cfg.clip) if lipschitz_cfg.kind == "clip" else None
    return {
        "iter": int(iteration),
        "lipschitz": lipschitz_cfg.kind,
        "weight_hist": hist,
        "layer_grad_norms": {"names": [name for name, _ in groups], "norms": norms},
        "input_grad": input_grad,
        "clip_share": share,
        "layer_op_norms": {"names": list(op_norms), "norms": list(op_norms.values())},
    }


def diagnose_trainer(trainer, iteration: int) -> dict:
    """``critic_diagnostics`` of a training run's critic on a fresh real and fake batch.

    The batches come from random streams of their own (seeded by the run's seed and the
    iteration), so a run with diagnostics trains exactly as one without. ``trainer`` is the
    training loop's ``Trainer`` (critic, generator, train_ids, config, device).
    """
    cfg, device = trainer.config, trainer.device
    seed, batch = cfg.train.seed, cfg.train.batch_size
    data_rng = np.random.default_rng(_stream_seed(seed, iteration, 1))
    real = real_batch(trainer.train_ids, data_rng, batch, cfg.model.vocab_size, device)
    noise = torch.Generator(device).manual_seed(_stream_seed(seed, iteration, 2))
    generator = _unwrap(trainer.generator)
    with torch.no_grad():
        fake = generator(generator.sample_noise(batch, device, generator=noise))
    return critic_diagnostics(trainer.critic, real, fake, cfg.lipschitz, iteration, seed=seed)


def append_diagnostics(run_dir: str | Path, record: dict) -> None:
    """Append one record as a JSON line to ``RUN/diagnostics.jsonl``, flushed to disk."""
    append_rows(Path(run_dir) / DIAGNOSTICS, [record], durable=True)
