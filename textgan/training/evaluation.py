"""A run's evaluations: when they are due (every N iterations or on a wall-clock grid, as are
diagnostics and checkpoints), the
argmax samples they score (from noise seeded by the run) and the metrics of the raw and averaged
generator (``TRAINING_METRICS``: JS against the training and the held-out lines, unique and copy
rates)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from textgan.config import RunConfig, TrainConfig
from textgan.corpus import PreparedCorpus
from textgan.training import distributed
from textgan.training.trainer import Trainer


def make_evaluator(config: RunConfig, prepared: PreparedCorpus, progress: bool) -> Any:
    """The evaluator of ``TRAINING_METRICS`` (rank 0 evaluates; None on the other ranks)."""
    if not distributed.is_rank0():
        return None
    from textgan.metrics import JSEvaluator
    from textgan.metrics.evaluator import TRAINING_METRICS

    n = config.train.eval_samples
    return JSEvaluator(prepared, n_samples=n, progress=progress, metrics=TRAINING_METRICS)


def evaluate(trainer: Trainer, evaluator: Any, config: RunConfig) -> tuple[dict, np.ndarray]:
    """The metrics of ``eval_samples`` argmax samples drawn from a fixed noise seed with their
    floors, and with EMA on, ``ema_<key>`` of the EMA generator's from the same noise (the
    floors are the same). The ids returned are the EMA generator's when EMA is on."""
    ids = argmax_ids(trainer.generator, config, trainer.device)
    scores = evaluator(ids)
    if trainer.ema is not None:
        ids = argmax_ids(trainer.ema, config, trainer.device)
        ema = evaluator(ids)
        own = {k: v for k, v in ema.items() if k != "n_samples" and not k.startswith("floor_")}
        scores.update({f"ema_{k}": v for k, v in own.items()})
    return scores, ids


def argmax_ids(generator: torch.nn.Module, config: RunConfig, device: torch.device) -> np.ndarray:
    """The ``eval_samples`` argmax samples evaluations score, from noise seeded by the run."""
    from textgan.generation.sampling import generate_ids

    t = config.train
    batch = min(1024, t.eval_samples)
    return np.concatenate(
        list(generate_ids(generator, t.eval_samples, batch, seed=t.seed, device=device))
    )


class Schedule:
    """When a run's periodic work (``what``: ``eval``, ``diag`` or ``ckpt``) is due: every
    ``<what>_every`` iterations, or with ``<what>_minutes`` whenever the run's wall-clock time
    passes the next multiple of it (a resumed run keeps the grid)."""

    def __init__(self, t: TrainConfig, elapsed: float, what: str = "eval") -> None:
        self.every, minutes = getattr(t, f"{what}_every"), getattr(t, f"{what}_minutes")
        self.interval = None if minutes is None else 60.0 * minutes
        if self.interval is not None:
            self.next = (math.floor(elapsed / self.interval) + 1) * self.interval

    def __call__(self, iteration: int, elapsed: float) -> bool:
        if self.interval is None:
            return iteration % self.every == 0
        if elapsed < self.next:
            return False
        self.next = (math.floor(elapsed / self.interval) + 1) * self.interval
        return True
