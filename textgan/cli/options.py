"""Click options generated from the config fields, and field names turned back into flags.

Every field declared with ``textgan.settings.setting`` and ``cli=True`` becomes one flag: its
name from ``settings.flag_of``, its help from the declaration, its type from the annotation,
``click.Choice`` from ``choices``, ``--x/--no-x`` for a bool. Adding a field to a config
dataclass thus gives the command its flag with no edit here.

Imports no torch: ``textgan --help`` builds these options at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from textgan.config import MAX_SEED
from textgan.errors import UserError
from textgan.settings import SettingError, declared, field_type, flag_of

Presets = Mapping[str, Mapping[str, Mapping[str, Any]]]
# The run config's bound: every --seed takes what `train --seed` takes, and nothing that
# overflows a random stream's 64-bit seed.
SEED = click.IntRange(0, MAX_SEED)


def seed_option(help: str) -> Callable[[Callable], Callable]:
    """``--seed`` as every hand-written command takes it: an integer in 0..MAX_SEED, default 0."""
    return click.option("--seed", type=SEED, default=0, show_default=True, help=help)


@dataclass(frozen=True)
class Flag:
    """One field of one config section as a command-line flag."""

    section: str
    kind: type
    field: dataclasses.Field
    flag: str

    @property
    def key(self) -> str:
        """The field as the library names it, e.g. ``train.critic_iters``."""
        return f"{self.section}.{self.field.name}"

    @property
    def param(self) -> str:
        """The click parameter name: unique across sections (``--seed`` of corpus and train)."""
        return f"{self.section}__{self.field.name}"


def command_flags(sections: Mapping[str, type]) -> list[Flag]:
    """The flags of the ``cli=True`` fields of ``sections``, in declaration order.

    Two sections may declare the same flag (corpus and train both have ``--seed``): the last
    section keeps it, since the sections run from the data to the run itself, and each earlier
    one gets its name as a prefix (``--corpus-seed``).
    """
    found = [
        Flag(section, kind, f, flag_of(f))
        for section, kind in sections.items()
        for f in declared(kind)
        if f.metadata["cli"]
    ]
    owner = {flag.flag: flag.section for flag in found}
    return [
        flag
        if owner[flag.flag] == flag.section
        else dataclasses.replace(flag, flag=f"--{flag.section}-{flag.flag[2:]}")
        for flag in found
    ]


def add_options(
    flags: list[Flag], presets: Presets, *, layered: bool
) -> Callable[[click.Command], click.Command]:
    """Decorate a command with ``flags``. ``layered``: every flag is unset (None) so that the
    preset and ``--config`` fill what the user did not give, and the help shows the default of
    each preset; otherwise each flag has the field's default."""

    def decorate(command: click.Command) -> click.Command:
        for flag in reversed(flags):
            command = _option(flag, presets, layered)(command)
        return command

    return decorate


def _option(flag: Flag, presets: Presets, layered: bool) -> Callable:
    meta, default = flag.field.metadata, flag.field.default
    want = field_type(flag.kind, flag.field.name)
    decls = [flag.flag]
    if want is bool:
        decls = [f"{flag.flag}/--no-{flag.flag[2:]}"]
        kind: Any = None
    elif meta["choices"]:
        kind = click.Choice(list(meta["choices"]))
    else:
        kind = want if want in (int, float) else str
    if layered:
        shown = shown_default(flag, presets)
        text = f"{meta['help']} [{shown}]" if shown else meta["help"]
        return click.option(*decls, flag.param, type=kind, default=None, help=text)
    given = default is not dataclasses.MISSING and default is not None
    return click.option(
        *decls,
        flag.param,
        type=kind,
        default=default if given else None,
        show_default=given,
        help=meta["help"],
    )


def shown_default(flag: Flag, presets: Presets) -> str:
    """The default for the help: ``paper: 512; small: 128; tiny: 32`` where presets differ."""
    default = flag.field.default
    by_preset = {
        name: layers.get(flag.section, {}).get(flag.field.name, default)
        for name, layers in presets.items()
    }
    if len(set(by_preset.values())) > 1:
        return "; ".join(f"{name}: {_show(flag, v)}" for name, v in by_preset.items())
    if default is dataclasses.MISSING or default is None:
        return ""
    return _show(flag, default)


def _show(flag: Flag, value: Any) -> str:
    if isinstance(value, bool):
        return flag.flag[2:] if value else f"no-{flag.flag[2:]}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def section_values(flags: list[Flag], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The flags the user gave, as ``{section: {field: value}}`` (unset ones left out)."""
    values: dict[str, dict[str, Any]] = {flag.section: {} for flag in flags}
    for flag in flags:
        if params[flag.param] is not None:
            values[flag.section][flag.field.name] = params[flag.param]
    return values


# A repr'd value inside a message ('../x', "it's"): left as the user typed it.
_QUOTED = re.compile(r"""('[^']*'|"[^"]*")""")
# A field named in a message: qualified (train.run_dir) or bare with an underscore (run_dir).
_QUALIFIED = re.compile(r"\b[a-z]\w*\.[a-z]\w*\b")
_BARE = re.compile(r"\b[a-z]\w*_\w+\b")


def _renamed(text: str, names: Mapping[str, str], section: str | None) -> str:
    """``text`` with the fields it names (outside quoted values) replaced by their flags;
    with ``section``, bare field names of that section too."""

    def flag(match: re.Match) -> str:
        word = match[0]
        return names.get(word) or names.get(f"{section}.{word}") or word

    pattern = _QUALIFIED if section is None else re.compile(f"{_QUALIFIED.pattern}|{_BARE.pattern}")
    parts = _QUOTED.split(text)
    return "".join(p if i % 2 else pattern.sub(flag, p) for i, p in enumerate(parts))


def in_flags(err: UserError, names: Mapping[str, str]) -> str:
    """The message of ``err`` with fields named by their flags: a ``SettingError``'s field and
    the fields of its section its problem mentions (``--critic-iters must be at least 1, got
    0``), elsewhere the qualified names (``train.batch_size``)."""
    if isinstance(err, SettingError):
        section = err.field.split(".")[0]
        return f"{names.get(err.field, err.field)} {_renamed(err.problem, names, section)}"
    return _renamed(str(err), names, None)


@contextmanager
def flag_errors(names: Mapping[str, str]) -> Iterator[None]:
    """Name flags instead of fields (``names``: field → flag) in the user errors raised inside."""
    try:
        yield
    except UserError as err:
        raise UserError(in_flags(err, names)) from None


def flag_names(flags: list[Flag]) -> dict[str, str]:
    """``{'train.critic_iters': '--critic-iters', ...}``."""
    return {flag.key: flag.flag for flag in flags}
