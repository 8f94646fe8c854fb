"""The presets: named starting points of a run's settings (``--preset``)."""

from __future__ import annotations

from typing import Any

# Values that differ from the dataclass defaults, per config section.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Gulrajani et al. 2017: D = 512, 5 blocks, batch 64, 10 critic steps, 200,000 iterations.
    "paper": {"model": {"dim": 512, "blocks": 5}, "train": {}},
    # The CPU model, found by textgan tune and confirmed by textgan study compare against
    # small-v1 on the Billion Word shards (docs/quality.md, "Time to quality"): half the width,
    # half the batch and the lazy penalty make an iteration about 7x cheaper than small-v1's;
    # a 5x larger lr, decaying linearly, makes up for what an iteration learns less. Its first
    # unigram output bias lost an ablation on fresh seeds (docs/quality.md).
    "small": {
        "model": {"dim": 64, "blocks": 2},
        "train": {
            "iters": 18_000,
            "batch_size": 32,
            "critic_iters": 4,
            "penalty_every": 4,
            "lr": 1.5e-3,
            "lr_decay": "linear",
        },
    },
    # The CPU recipe for a wall-clock budget: give --max-minutes and its linear decay is fitted
    # to it (train.fit_iters; without a budget it trains `iters`, about an hour on a 2-core CPU).
    # Its shape follows the budget (BUDGET_SHAPES): above half an hour, small's schedule at
    # twice the width and 2/3 the rate, the `wide` of docs/quality.md and its best hour
    # measured (0.497/0.498); up to half an hour, small's own width and rate, which led at 10
    # minutes on fresh seeds. The hinge loss led at 10 and 20 minutes but ended the hour
    # higher (docs/quality.md, "Quality by design"), so the loss stays the paper's.
    "cpu": {
        "model": {"dim": 128, "blocks": 2},
        "train": {
            "iters": 17_000,
            "batch_size": 32,
            "critic_iters": 4,
            "penalty_every": 4,
            "lr": 1e-3,
            "lr_decay": "linear",
            "fit_iters": True,
        },
    },
    # The `small` before the time-to-quality study, kept to rerun it: 5.7 h on the 2-core CPU.
    "small-v1": {
        "model": {"dim": 128, "blocks": 2},
        "train": {"iters": 15_000, "critic_iters": 5, "lr": 3e-4},
    },
    # Seconds: smoke tests and the README's quick start.
    "tiny": {
        "model": {"dim": 32, "blocks": 1},
        "train": {
            "iters": 400,
            "batch_size": 32,
            "critic_iters": 5,
            "lr": 1e-3,
            "log_every": 10,
            "eval_every": 100,
            "ckpt_every": 200,
        },
    },
}

# Presets whose shape follows the wall-clock budget (train.max_minutes): the first shape whose
# bound in minutes is at least the budget is layered over the preset (a file or flag beats it).
BUDGET_SHAPES: dict[str, tuple[tuple[float, dict[str, dict[str, Any]]], ...]] = {
    "cpu": ((30.0, {"model": {"dim": 64}, "train": {"lr": 1.5e-3}}),),
}


def preset_layers(name: str, max_minutes: float | None) -> list[dict[str, dict[str, Any]]]:
    """The preset ``name`` and, for a budget of ``max_minutes``, its shape for that budget."""
    fitting = [
        shape
        for bound, shape in BUDGET_SHAPES.get(name, ())
        if max_minutes is not None and max_minutes <= bound
    ]
    return [PRESETS[name], *fitting[:1]]
