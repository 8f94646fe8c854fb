"""Where a run's numbers go besides ``metrics.jsonl`` (always written): one small interface,
``Logger``, and a registry, so that W&B or MLflow is one class and one ``LOGGERS`` entry each.

``textgan train --logger tensorboard`` writes TensorBoard event files to ``RUN/tb/``: every
scalar of every row (training rows under ``train/``, JS-n beside its floor under ``js/``, the
rest of an evaluation under ``eval/``) and each evaluation's samples as text. A resumed run
purges what the killed one logged after its checkpoint, so the curves continue without a
duplicated step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from textgan.errors import UserError

TB_DIR = "tb"
JS_ORDERS = range(1, 5)


class Logger(Protocol):
    """One destination of the run's rows and texts; ``step`` is the generator iteration."""

    def log_rows(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def log_text(self, step: int, text: str) -> None: ...

    def close(self) -> None: ...


def scalar_tag(key: str, row: Mapping[str, Any]) -> str:
    """The tag of ``row[key]``: JS-n, its floor and its EMA value share the ``js/`` section."""
    if key.removeprefix("ema_").removeprefix("floor_").startswith("js"):
        return f"js/{key}"
    return f"eval/{key}" if "n_samples" in row else f"train/{key}"


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a row by tag (the iteration is the step, not a scalar)."""
    return {
        scalar_tag(k, row): float(v)
        for k, v in row.items()
        if k != "iter" and isinstance(v, int | float) and not isinstance(v, bool)
    }


class TensorBoardLogger:
    """TensorBoard event files in ``RUN/tb/`` through ``torch.utils.tensorboard``."""

    def __init__(self, run: Path, start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Steps after ``start`` were logged by a run killed past its last checkpoint: purged,
        # as the resumed run truncates metrics.jsonl (textgan.files.truncate_rows) to ``start``.
        purge = start + 1 if start > 0 else None
        self.writer = SummaryWriter(str(run / TB_DIR), purge_step=purge)
        if start == 0:
            self.writer.add_custom_scalars(js_layout())

    def log_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            for tag, value in scalars(row).items():
                self.writer.add_scalar(tag, value, int(row["iter"]))
        self.writer.flush()  # a live TensorBoard (or a killed run) sees every row at once

    def log_text(self, step: int, text: str) -> None:
        # Markdown: four spaces make a code block, which keeps the samples' spacing.
        block = "".join(f"    {line}\n" for line in text.splitlines())
        self.writer.add_text("samples", block, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def js_layout() -> dict:
    """One TensorBoard chart per n: JS-n of the generator and of its EMA beside the floor."""
    charts = {
        f"JS-{n}": ["Multiline", [f"js/js{n}", f"js/ema_js{n}", f"js/floor_js{n}"]]
        for n in JS_ORDERS
    }
    return {"JS (bits) against the real-vs-real floor": charts}


# name -> (the package it needs, the extra that installs it, the class)
LOGGERS: dict[str, tuple[str, str, Callable[[Path, int], Logger]]] = {
    "tensorboard": ("tensorboard", "tensorboard", TensorBoardLogger),
}


def check_loggers(names: Sequence[str]) -> None:
    """UserError, before a run starts, for an unknown logger or one whose package is missing."""
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"unknown logger {name!r}; choose from {', '.join(LOGGERS)}")
        package, extra, _ = LOGGERS[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(
                f"--logger {name} needs the {package} package: pip install 'textgan[{extra}]'"
            )


def open_loggers(names: Sequence[str], run: Path, start: int) -> list[Logger]:
    """The loggers ``names`` of the run in ``run``, continuing from iteration ``start``."""
    check_loggers(names)
    return [LOGGERS[name][2](run, start) for name in dict.fromkeys(names)]
