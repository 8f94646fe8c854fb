"""Loading a trained generator and decoding its output to ids and strings: argmax (the
paper's) or temperature sampling.

Generation streams in batches, so a million samples never sit in memory at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textgan.checkpoint import EMA_KEY, Checkpoint, load_checkpoint
from textgan.config import ModelConfig, build
from textgan.devices import pick_device
from textgan.errors import UserError, first_line
from textgan.models import Generator
from textgan.vocab import Vocab, id_dtype

_NUL = "\0"  # never in decoded text (the corpus reader refuses NUL), so it can mark PAD


def _decode_batch(
    generator: nn.Module,
    b: int,
    temperature: float | None,
    rng: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """``(b, L)`` ids from one batch of noise."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            logits = generator.logits(generator.sample_noise(b, device, rng))
            if temperature is None:
                return logits.argmax(dim=1)
            # One categorical draw per position: rows are (sample, position), columns symbols.
            v, length = logits.shape[1], logits.shape[2]
            probs = torch.softmax(logits.float() / temperature, dim=1)
            flat = probs.transpose(1, 2).reshape(b * length, v)
            return torch.multinomial(flat, 1, generator=rng).view(b, length)
    finally:
        generator.train(was_training)


def generate_ids(
    generator: nn.Module,
    n: int,
    batch_size: int = 1024,
    temperature: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield ``(b, L)`` id batches, ``n`` rows in all, from ``generator`` (on ``device``).

    Each position is the argmax of the softmax (the paper's decoding) or, with ``temperature``
    T, a draw from ``softmax(logits / T)``. ``seed`` fixes the noise and the draws. Gradients are
    off and the generator is in eval mode only while a batch is computed, so the caller's modes
    are untouched between batches.
    """
    if n < 1:
        raise UserError(f"the number of samples must be at least 1, got {n}")
    if batch_size < 1:
        raise UserError(f"the batch size must be at least 1, got {batch_size}")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise UserError(f"the temperature must be a finite number > 0, got {temperature}")
    # Checked above, at the call; the batches come lazily from the inner generator.
    return _stream(generator, n, batch_size, temperature, seed, torch.device(device))


def _stream(
    generator: nn.Module,
    n: int,
    batch_size: int,
    temperature: float | None,
    seed: int,
    device: torch.device,
) -> Iterator[np.ndarray]:
    rng = torch.Generator(device=device).manual_seed(seed)
    dtype = id_dtype(generator.cfg.vocab_size)
    for start in range(0, n, batch_size):
        ids = _decode_batch(generator, min(batch_size, n - start), temperature, rng, device)
        yield ids.cpu().numpy().astype(dtype)


def samples_to_text(ids: np.ndarray, vocab: Vocab, pad: str = "") -> list[str]:
    """Strings of an ``(N, L)`` id array with trailing padding removed; a PAD inside a sample
    (generators can emit one) shows as ``pad``."""
    rows = vocab.decode(np.asarray(ids), pad=_NUL)
    return [row.rstrip(_NUL).replace(_NUL, pad) for row in rows]


def build_generator(model: object, weights: Mapping, vocab: Vocab, source: str) -> Generator:
    """A CPU generator of the model config ``model`` (a dict) holding ``weights``, checked
    against ``vocab``; ``source`` names where they came from in the one-line errors."""
    if not isinstance(model, dict):
        raise UserError(f"{source} has no model config in its config.json")
    model_cfg = build(ModelConfig, model, source)
    if model_cfg.vocab_size != len(vocab):
        raise UserError(
            f"{source}: the model has {model_cfg.vocab_size} ids, its vocabulary {len(vocab)}"
        )
    generator = Generator(model_cfg)
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
) -> tuple[Generator, Vocab, Checkpoint]:
    """The generator of a checkpoint (or of a run's newest one), ready on ``device``: its weight
    average (EMA) where the run kept one, the trained weights with ``raw``."""
    # The average lives in the training state; the trained weights alone need no state.
    ckpt = load_checkpoint(path, training_state=not raw)
    model = ckpt.config.get("model") if isinstance(ckpt.config, dict) else None
    weights, _ = chosen_weights(ckpt, raw)
    generator = build_generator(model, weights, ckpt.vocab, f"checkpoint {ckpt.path}")
    return generator.to(pick_device(device)).eval(), ckpt.vocab, ckpt


def sample_text(
    generator: Generator,
    vocab: Vocab,
    n: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    batch_size: int = 1024,
) -> Iterator[list[str]]:
    """``n`` samples as strings, one list per batch (trailing padding removed)."""
    device = next(generator.parameters()).device
    for ids in generate_ids(
        generator, n, batch_size=batch_size, temperature=temperature, seed=seed, device=device
    ):
        yield samples_to_text(ids, vocab)
