"""Named recipes for studies and tuning: a preset, a ``--config`` file, or either with changes.

A recipe is written ``NAME=SPEC`` on the command line, where SPEC is

- a preset: ``small``
- a JSON config file (the ``--config`` format, e.g. a run's ``config.json``): ``best.json``
- either, followed by dotted ``KEY=VALUE`` changes: ``small:train.critic_iters=2,model.dim=64``

Values are JSON scalars (``2``, ``3e-4``, ``true``, ``null``); a bare word is a string
(``lipschitz.kind=clip``). Fields and types are checked against the config declarations. The
study sets some fields for every run (its seeds, budget, evaluation schedule, device, folders):
a recipe that changes one of them explicitly is refused, and a config file's value is replaced.

This module imports no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgan.config import PRESETS, check_fields, layered_config, read_config_file
from textgan.errors import UserError

Layers = dict[str, dict[str, Any]]

# Fields a time-to-quality study sets for every run: what makes the runs comparable.
STUDY_FIELDS = {
    "corpus": ("corpus", "data_dir"),
    "train": (
        "seed",
        "max_minutes",
        "fit_iters",
        "eval_minutes",
        "diag_minutes",
        "ckpt_minutes",
        "eval_samples",
        "device",
        "run_dir",
        "name",
    ),
}
# The Lipschitz study's default preset: the recipe its comparison in docs/lipschitz.md ran with.
LIPSCHITZ_PRESET = "small-v1"
# Critic diagnostics and checkpoints (with their figures) every this many evaluation intervals:
# on a wall-clock grid, so that what they cost does not grow with a recipe's iteration rate, and
# seldom, since time to quality needs neither.
BOOKKEEPING_EVALS = 5


def clock_fields(minutes: float, eval_minutes: float) -> dict[str, float]:
    """The train fields that give a study's runs one wall-clock budget and schedule."""
    every = BOOKKEEPING_EVALS * eval_minutes
    return {
        "max_minutes": minutes,
        "eval_minutes": eval_minutes,
        "diag_minutes": every,
        "ckpt_minutes": every,
    }


def fit_layer(layers: Mapping[str, Mapping[str, Any]], iters: int | None = None) -> Layers:
    """The layer that fits a run's iterations to its study's budget when its rate decays
    linearly (``train.fit_iters``), so that its decay ends with the budget as it will in a run
    given that budget; unless ``iters`` (``--iters``) fixes every run's end."""
    linear = layers["train"].get("lr_decay") == "linear"
    return {"train": {"fit_iters": linear and iters is None}}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Recipe:
    """One named way to train: a preset or a config file, with changes on top."""

    name: str
    spec: str
    preset: str | None = None
    config_file: str | None = None
    changes: Layers = field(default_factory=dict)

    def layers(self, study: Mapping[str, Mapping[str, Any]] | None = None) -> Layers:
        """Field values per section: the recipe's, then the study's settings over them."""
        return layered_config(self.preset, self.config_file, merge(self.changes, study or {}))

    def sections(self) -> Layers:
        """The recipe alone in the ``--config`` format: its file, its changes, its preset."""
        own = read_config_file(self.config_file) if self.config_file else {}
        out = merge(own, self.changes)
        preset = self.preset or out.get("train", {}).get("preset") or "paper"
        out.setdefault("train", {})["preset"] = preset
        return out


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> Layers:
    """Section-wise union of layers, later ones winning field by field."""
    out: Layers = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def parse_named_recipe(text: str) -> Recipe:
    """``NAME=SPEC`` → a Recipe; UserError naming the problem."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise UserError(f"--recipe {text!r} is not NAME=SPEC; e.g. --recipe base=small")
    if not _NAME.match(name):
        raise UserError(
            f"recipe name {name!r} must be a plain folder name (letters, digits, '_', '-', '.')"
        )
    return parse_recipe(spec.strip(), name)


def parse_recipe(spec: str, name: str = "recipe") -> Recipe:
    """``preset``, ``file.json`` or either followed by ``:KEY=VALUE,…`` → a Recipe."""
    base, _, change_text = spec.partition(":")
    preset = config_file = None
    if base in PRESETS:
        preset = base
    elif Path(base).is_file():
        config_file = base
        read_config_file(base)  # a bad file fails here, naming itself
    else:
        raise UserError(
            f"recipe {name}: {base!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON "
            "config file; give one of them, optionally followed by :KEY=VALUE,…"
        )
    changes = parse_changes(change_text, name)
    return Recipe(name, spec, preset, config_file, changes)


def parse_changes(text: str, name: str) -> Layers:
    """``train.critic_iters=2,model.dim=64`` → ``{"train": {"critic_iters": 2}, …}``, checked."""
    changes: Layers = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        section, dot, fname = key.strip().partition(".")
        if not sep or not dot or not fname:
            raise UserError(
                f"recipe {name}: {item!r} is not SECTION.FIELD=VALUE; e.g. train.critic_iters=2"
            )
        if fname in STUDY_FIELDS.get(section, ()):
            raise UserError(
                f"recipe {name}: {section}.{fname} is set by the study for every run; "
                "remove it from the recipe and use the study's option"
            )
        changes.setdefault(section, {})[fname] = parse_value(raw.strip())
    check_fields(changes, f"recipe {name}")
    return changes


def parse_value(raw: str) -> Any:
    """A JSON scalar, or the text itself for a bare word (``clip``)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str | int | float | bool) or value is None else raw


def parse_numbers(text: str, kind: type, what: str) -> tuple[Any, ...]:
    """``"0, 1"`` → ``(0, 1)`` of ``kind``; UserError naming ``what`` (the option)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        values = tuple(kind(part) for part in parts)
    except ValueError:
        raise UserError(f"{what} {text!r} must be comma-separated {kind.__name__}s") from None
    if not values:
        raise UserError(f"{what} is empty; give at least one value")
    if len(set(values)) != len(values):
        raise UserError(f"{what} {text!r} names a value twice; name each once")
    if kind is float and not all(math.isfinite(v) for v in values):
        raise UserError(f"{what} {text!r} must be finite numbers")
    return values
