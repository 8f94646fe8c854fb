"""The search space of ``textgan tune``: which settings a trial samples, and from where.

A space maps dotted config fields to a range or a list, the same in ``DEFAULT_SPACE`` and in a
``--space FILE.json``::

    {"train.lr_gen": {"low": 1e-4, "high": 3e-3, "log": true},
     "train.critic_iters": {"low": 1, "high": 10},
     "model.dim": {"choices": [64, 128, 256]}}

A range samples the field's own type (an int field gives ints; ``step`` and ``log`` as in
Optuna); ``choices`` samples one of the values. Every entry is checked before any trial runs:
the field exists, the values have its type, and each bound or choice is a value the run accepts
over the base recipe. Fields the study sets for every trial (seed, budget, evaluation, corpus)
cannot be searched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan import files
from textgan.config import SECTIONS, LipschitzConfig, ModelConfig, TrainConfig, build
from textgan.errors import UserError
from textgan.settings import SettingError, check_type, declared, field_type
from textgan.studies.recipes import STUDY_FIELDS, Layers, merge

# The levers worth searching first; adding one is one line.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "train.critic_iters": {"low": 1, "high": 10},
    "train.lr_critic": {"low": 1e-4, "high": 3e-3, "log": True},
    "train.lr_gen": {"low": 1e-4, "high": 3e-3, "log": True},
    "train.lr_decay": {"choices": ["constant", "linear"]},
    "train.beta1": {"low": 0.0, "high": 0.9},
    "train.beta2": {"low": 0.9, "high": 0.999},
    "train.batch_size": {"choices": [16, 32, 64, 128]},
    "model.dim": {"choices": [64, 128, 256]},
    "model.blocks": {"low": 1, "high": 5},
    "train.penalty_every": {"choices": [1, 2, 4, 8]},
}
_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Param:
    """One searched field: ``section.name`` and its range or choices."""

    section: str
    name: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple[Any, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial samples for this field."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if field_type(SECTIONS[self.section], self.name) is int:
            step = self.step if self.step is not None else 1
            return trial.suggest_int(self.key, self.low, self.high, step=step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def values_to_check(self) -> tuple[Any, ...]:
        return self.choices if self.choices is not None else (self.low, self.high)


def load_space(path: str | Path | None) -> tuple[dict[str, dict[str, Any]], str]:
    """The space as data and where it came from (``--space FILE`` or the default)."""
    if path is None:
        return DEFAULT_SPACE, "default space"
    data = files.read_json(Path(path), "space file")
    if not data:
        raise UserError(f"space file {path} is empty; name at least one field to search")
    return data, f"space file {path}"


def parse_space(data: Mapping[str, Any], source: str) -> list[Param]:
    """Check a space's shape and types; UserError naming the entry and the fix."""
    return [_param(key, entry, source) for key, entry in data.items()]


def _param(key: str, entry: Any, source: str) -> Param:
    section, _, name = key.partition(".")
    if section not in SECTIONS or section == "corpus":
        raise UserError(
            f"{source}: {key!r} is not a model, lipschitz or train field (SECTION.FIELD, "
            "e.g. train.lr_gen)"
        )
    found = {f.name: f for f in declared(SECTIONS[section])}
    if name not in found or not found[name].metadata["cli"]:
        known = ", ".join(n for n, f in found.items() if f.metadata["cli"])
        raise UserError(f"{source}: unknown field {key}; known {section} fields: {known}")
    if name in STUDY_FIELDS.get(section, ()):
        raise UserError(f"{source}: {key} is set by tune for every trial and cannot be searched")
    if not isinstance(entry, Mapping) or not entry or set(entry) - _KEYS:
        raise UserError(
            f'{source}: {key} must be {{"low": …, "high": …}} (with optional "log", '
            f'"step") or {{"choices": [...]}}, got {entry!r}'
        )
    where = f"{source}: {key}"
    if "choices" in entry:
        return _choices(section, name, entry, where)
    return _range(section, name, entry, where)


def _choices(section: str, name: str, entry: Mapping[str, Any], where: str) -> Param:
    choices = entry["choices"]
    if set(entry) != {"choices"} or not isinstance(choices, list) or not choices:
        raise UserError(f"{where}: choices must be a non-empty list and stand alone")
    for value in choices:
        _check_type(section, name, value, where)
    return Param(section, name, choices=tuple(choices))


def _range(section: str, name: str, entry: Mapping[str, Any], where: str) -> Param:
    kind = field_type(SECTIONS[section], name)
    if kind not in (int, float):
        raise UserError(f'{where} is not a number: give {{"choices": [...]}}')
    if "low" not in entry or "high" not in entry:
        raise UserError(f'{where} needs both "low" and "high"')
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    for value in (low, high, *(() if step is None else (step,))):
        _check_type(section, name, value, where)
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise UserError(f"{where}: low must be below high, got {low} and {high}")
    if log and (low <= 0 or step is not None):
        raise UserError(f"{where}: a log range needs low > 0 and no step")
    if step is not None and not step > 0:
        raise UserError(f"{where}: step must be positive, got {step}")
    return Param(section, name, low, high, log, step)


def _check_type(section: str, name: str, value: Any, where: str) -> None:
    try:
        check_type(SECTIONS[section], name, value, f"{section}.{name}")
    except SettingError as err:
        raise UserError(f"{where}: {err}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: {value} is not a finite number")


def check_space(params: list[Param], base: Layers, source: str) -> None:
    """Every bound and choice must be a value the run accepts over the base recipe's layers."""
    for param in params:
        for value in param.values_to_check():
            try:
                check_run_values(merge(base, {param.section: {param.name: value}}))
            except UserError as err:
                raise UserError(f"{source}: {param.key} = {value!r}: {err}") from None


def check_run_values(layers: Layers) -> None:
    """The checks a run makes of its settings before it reads its corpus."""
    from textgan.nn.lipschitz import check_choices
    from textgan.training import curriculum

    train = build(TrainConfig, layers["train"], "options")
    lipschitz = build(LipschitzConfig, layers["lipschitz"], "options")
    model = build(ModelConfig, {**layers["model"], "vocab_size": 2, "seq_len": 1}, "options")
    check_choices(layers["model"].get("critic_norm", "none"), train.penalty_every, lipschitz)
    seq_len = build(SECTIONS["corpus"], layers.get("corpus", {}), "options").seq_len
    curriculum.check(train.curriculum, model.generator, model.critic, seq_len)


def refusal(layers: Layers) -> str | None:
    """Why a run refuses these settings (one line), or None: a trial can sample values that
    each pass ``check_space`` but not together (``lipschitz.loss`` wgan with ``r1``)."""
    try:
        check_run_values(layers)
    except UserError as err:
        return str(err)
    return None


def sample(params: list[Param], trial: Any) -> Layers:
    """The settings one trial samples, as config sections."""
    out: Layers = {}
    for param in params:
        out.setdefault(param.section, {})[param.name] = param.suggest(trial)
    return out
