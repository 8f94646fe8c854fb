"""Loading a trained generator and decoding its output to ids and strings: argmax (the
paper's) or temperature sampling, from plain or truncated noise.

Every random number is a function of the seed and the sample's index alone (``IndexedDraws``):
sample i gets the same noise and the same uniforms whatever the batch size, the device or the
number of samples asked for, and so the same line wherever the generator computes the same
outputs from that noise. A GPU need not: its rounding differs from the CPU's, which changes a
symbol where two logits nearly tie (or, with a temperature, a cumulative probability nearly
equals the uniform). Generation streams in batches, so a million samples never sit in memory at
once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textgan.config import MAX_SEED, ModelConfig, build
from textgan.devices import pick_device
from textgan.errors import UserError, first_line
from textgan.files.checkpoint import EMA_KEY, Checkpoint, load_checkpoint
from textgan.nn.memory import check_weights
from textgan.nn.registry import make_generator
from textgan.vocab import Vocab, id_dtype

_NUL = "\0"  # never in decoded text (the corpus reader refuses NUL), so it can mark PAD
# Sample indices are drawn in blocks of this many, each block from its own seeded stream: a
# stream per index would cost a seeding per sample. Changing it changes every seeded sample.
DRAW_BLOCK = 256
# The independent streams of a seed: the noise, the redraws of truncated noise components, and
# the uniforms that pick each position's symbol (a generator's and the n-gram baseline's).
NOISE, REDRAW, DECODE = 0, 1, 2


class IndexedDraws:
    """``width`` random numbers per sample index (standard normal or uniform in [0, 1)), a
    function of (seed, stream, index) alone: any batching of the indices gets the same rows."""

    def __init__(self, seed: int, stream: int, width: int, normal: bool = False) -> None:
        check_seed(seed)
        self.seed, self.stream, self.width, self.normal = seed, stream, width, normal
        self._block: tuple[int, np.ndarray] | None = None  # the last block, for the next batch

    def rows(self, start: int, stop: int) -> np.ndarray:
        """``(stop - start, width)`` draws of sample indices ``start .. stop-1``."""
        first, last = start // DRAW_BLOCK, (stop - 1) // DRAW_BLOCK
        blocks = np.concatenate([self._draw(k) for k in range(first, last + 1)])
        offset = start - first * DRAW_BLOCK
        return blocks[offset : offset + stop - start]

    def _draw(self, block: int) -> np.ndarray:
        if self._block is None or self._block[0] != block:
            rng = np.random.default_rng([self.seed, self.stream, block])
            shape = (DRAW_BLOCK, self.width)
            values = rng.standard_normal(shape) if self.normal else rng.random(shape)
            self._block = block, values
        return self._block[1]


def check_seed(seed: int) -> None:
    """UserError unless ``seed`` is an integer in 0..MAX_SEED, the range every command takes."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, int | np.integer)
        or not 0 <= seed <= MAX_SEED
    ):
        raise UserError(f"the seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def _check_positive(value: float | None, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"the {what} must be a finite number > 0, got {value}")


class NoiseDraws:
    """The generator's input of each sample index: ``z ~ N(0, I)``, or with a ``truncation``
    τ the truncation trick of BigGAN (Brock et al. 2019): each component beyond ±τ is redrawn
    from the normal distribution restricted to [-τ, τ]. Components inside keep their value,
    so no truncation and a loose one give the same noise wherever nothing lay beyond τ."""

    def __init__(self, seed: int, dim: int, truncation: float | None = None) -> None:
        self.normal = IndexedDraws(seed, NOISE, dim, normal=True)
        self.redraw = IndexedDraws(seed, REDRAW, dim)
        self.truncation = truncation

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """``(stop - start, dim)`` float32 noise of sample indices ``start .. stop-1``."""
        z = torch.from_numpy(self.normal.rows(start, stop))
        if self.truncation is not None:
            outside = z.abs() > self.truncation
            if outside.any():
                u = torch.from_numpy(self.redraw.rows(start, stop))
                z = torch.where(outside, truncated_normal(u, self.truncation), z)
        return z.float()


def truncated_normal(u: torch.Tensor, tau: float) -> torch.Tensor:
    """The standard normal restricted to [-τ, τ] at uniforms ``u`` (its inverse CDF)."""
    low = torch.special.ndtr(torch.tensor(-tau, dtype=torch.float64))
    return torch.special.ndtri(low + u.double() * (1 - 2 * low)).clamp(-tau, tau)


def _decode_batch(
    generator: nn.Module, z: torch.Tensor, temperature: float | None, uniforms: torch.Tensor | None
) -> torch.Tensor:
    """``(b, L)`` ids of one batch of noise: argmax, or with a temperature the symbol whose
    cumulative probability first exceeds each position's uniform (inverse CDF)."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            logits = generator.logits(z)
            if temperature is None:
                return logits.argmax(dim=1)
            cdf = torch.softmax(logits.float() / temperature, dim=1).cumsum(dim=1)
            drawn = (cdf < uniforms[:, None, :] * cdf[:, -1:, :]).sum(dim=1)
            return drawn.clamp(max=logits.shape[1] - 1)  # rounding can leave u above the sum
    finally:
        generator.train(was_training)


def generate_ids(
    generator: nn.Module,
    n: int,
    batch_size: int = 1024,
    temperature: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    truncation: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``(b, L)`` id batches, ``n`` rows in all, from ``generator`` (on ``device``).

    Each position is the argmax of the softmax (the paper's decoding) or, with ``temperature``
    T, a draw from ``softmax(logits / T)``; ``truncation`` τ redraws noise components beyond ±τ
    (``NoiseDraws``). Row i depends on ``seed`` and i only, never on ``batch_size``. Gradients
    are off and the generator is in eval mode only while a batch is computed, so the caller's
    modes are untouched between batches.
    """
    if n < 1:
        raise UserError(f"the number of samples must be at least 1, got {n}")
    if batch_size < 1:
        raise UserError(f"the batch size must be at least 1, got {batch_size}")
    _check_positive(temperature, "temperature")
    _check_positive(truncation, "truncation")
    check_seed(seed)
    # Checked above, at the call; the batches come lazily from the inner generator.
    return _stream(generator, n, batch_size, temperature, truncation, seed, torch.device(device))


def _stream(
    generator: nn.Module,
    n: int,
    batch_size: int,
    temperature: float | None,
    truncation: float | None,
    seed: int,
    device: torch.device,
) -> Iterator[np.ndarray]:
    cfg = generator.cfg
    noise = NoiseDraws(seed, cfg.noise_dim, truncation)
    decode = IndexedDraws(seed, DECODE, cfg.seq_len)
    dtype = id_dtype(cfg.vocab_size)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        z = noise.rows(start, stop).to(device)
        u = None
        if temperature is not None:
            u = torch.from_numpy(decode.rows(start, stop)).float().to(device)
        yield _decode_batch(generator, z, temperature, u).cpu().numpy().astype(dtype)


def samples_to_text(ids: np.ndarray, vocab: Vocab, pad: str = "") -> list[str]:
    """Strings of an ``(N, L)`` id array with trailing padding removed; a PAD inside a sample
    (generators can emit one) shows as ``pad``."""
    rows = vocab.decode(np.asarray(ids), pad=_NUL)
    return [row.rstrip(_NUL).replace(_NUL, pad) for row in rows]


def build_generator(model: object, weights: Mapping, vocab: Vocab, source: str) -> nn.Module:
    """A CPU generator of the model config ``model`` (a dict) holding ``weights``, checked
    against ``vocab``; ``source`` names where they came from in the one-line errors."""
    if not isinstance(model, dict):
        raise UserError(f"{source} has no model config in its config.json")
    model_cfg = build(ModelConfig, model, source)
    if model_cfg.vocab_size != len(vocab):
        raise UserError(
            f"{source}: the model has {model_cfg.vocab_size} ids, its vocabulary {len(vocab)}"
        )
    check_weights(model_cfg, weights, source)  # before allocating what the config claims
    generator = make_generator(model_cfg)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        raise UserError(
            f"{source}: the generator weights do not fit its config ({first_line(err)})"
        ) from None
    return generator


def chosen_weights(ckpt: Checkpoint, raw: bool) -> tuple[Mapping[str, Any], str]:
    """A checkpoint's generator weights to sample from and their kind: the EMA average when the
    checkpoint holds one (it samples better), the trained weights with ``raw`` or without one."""
    ema = (ckpt.state or {}).get(EMA_KEY)
    if ema is not None and not raw:
        return ema, "ema"
    return ckpt.generator, "raw"


def load_generator(
    path: str | Path, device: str = "auto", *, raw: bool = False
) -> tuple[nn.Module, Vocab, Checkpoint]:
    """The generator of a checkpoint (or of a run's newest one), ready on ``device``: its weight
    average (EMA) where the run kept one, the trained weights with ``raw``."""
    # The average lives in the training state; the trained weights alone need no state.
    ckpt = load_checkpoint(path, training_state=not raw)
    model = ckpt.config.get("model") if isinstance(ckpt.config, dict) else None
    weights, _ = chosen_weights(ckpt, raw)
    generator = build_generator(model, weights, ckpt.vocab, f"checkpoint {ckpt.path}")
    return generator.to(pick_device(device)).eval(), ckpt.vocab, ckpt


def sample_text(
    generator: nn.Module,
    vocab: Vocab,
    n: int,
    *,
    temperature: float | None = None,
    truncation: float | None = None,
    seed: int = 0,
    batch_size: int = 1024,
) -> Iterator[list[str]]:
    """``n`` samples as strings, one list per batch (trailing padding removed); argmax unless
    ``temperature``, untruncated noise unless ``truncation`` (see ``generate_ids``)."""
    device = next(generator.parameters()).device
    for ids in generate_ids(
        generator,
        n,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        device=device,
        truncation=truncation,
    ):
        yield samples_to_text(ids, vocab)
