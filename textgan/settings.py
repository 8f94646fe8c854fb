"""Declaring a setting once: its default, help text, allowed values and command-line flag.

A config dataclass declares each field with ``setting(...)``; everything else follows from that
one line: the CLI builds the flag (``textgan.cli``), the JSON layer checks the value's type
(``textgan.config``), and ``check_settings`` validates ranges and choices. Core code names fields
(``train.iters``); only the CLI turns a field into a flag in messages.

This module imports nothing heavy, so the CLI can build its options without loading torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from typing import Any

from textgan.errors import UserError


class SettingError(UserError):
    """A setting with a value it cannot take. ``field`` is ``section.name`` (e.g.
    ``train.iters``) and ``problem`` the rest of the sentence, so that the CLI can say
    ``--iters must be at least 1`` where the library says ``train.iters must be at least 1``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    flag: str | None = None,
    resumable: bool = False,
    cli: bool = True,
) -> Any:
    """A dataclass field with its metadata (``default=dataclasses.MISSING``: required).

    ``minimum``/``maximum`` bound the value (inclusive); ``positive`` asks for a finite number
    > 0. ``flag`` overrides the flag derived from the field name (``--batch-size`` for
    ``batch_size``). ``resumable``: ``--resume`` may change it (where and how a run continues,
    never what it trains). ``cli=False`` keeps a field out of the command line.
    """
    meta = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "positive": positive,
        "flag": flag,
        "resumable": resumable,
        "cli": cli,
    }
    return dataclasses.field(default=default, metadata=meta)


def declared(kind: type) -> Iterator[dataclasses.Field]:
    """The fields of a config dataclass declared with ``setting``."""
    return (f for f in dataclasses.fields(kind) if "help" in f.metadata)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def field_type(kind: type, name: str) -> Any:
    """The annotated type of a field, ``X | None`` reduced to ``X``."""
    hint = typing.get_type_hints(kind)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def optional(kind: type, name: str) -> bool:
    """Whether a field accepts None."""
    return type(None) in typing.get_args(typing.get_type_hints(kind)[name])


def check_type(kind: type, name: str, value: Any, where: str) -> None:
    """SettingError unless ``value`` has the field's declared type (JSON files are typed by
    hand: "5" for 5, 5 for a name)."""
    if value is None and optional(kind, name):
        return
    want = field_type(kind, name)
    if want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want in (bool, str):
        ok = isinstance(value, want)
    else:
        return
    if not ok:
        raise SettingError(where, f"must be a {want.__name__}, got {value!r}")


def check_settings(config: Any, section: str) -> None:
    """SettingError for the first field of ``config`` outside its declared choices or range."""
    for f in declared(type(config)):
        value = getattr(config, f.name)
        where = f"{section}.{f.name}"
        check_type(type(config), f.name, value, where)
        if value is None or isinstance(value, bool):
            continue
        meta = f.metadata
        if meta["choices"] is not None and value not in meta["choices"]:
            raise SettingError(where, f"must be one of {', '.join(meta['choices'])}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(where, f"must be a finite number, got {value}")
        if meta["positive"] and not value > 0:
            raise SettingError(where, f"must be a positive number, got {value}")
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise SettingError(where, f"must be at least {meta['minimum']}, got {value}")
        if meta["maximum"] is not None and value > meta["maximum"]:
            raise SettingError(where, f"must be at most {meta['maximum']}, got {value}")
