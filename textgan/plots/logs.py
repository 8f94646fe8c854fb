"""Reading a run's logs for the figures: ``metrics.jsonl``, ``diagnostics.jsonl``, ``config.json``.

Reads only what training wrote to disk, so it works on finished, running and copied runs alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textgan.errors import UserError
from textgan.files import read_json, scan_rows
from textgan.files.rundir import CONFIG, DIAGNOSTICS, METRICS


@dataclass
class RunLog:
    """Everything the figures need from one run directory."""

    path: Path
    name: str
    constraint: str | None
    train: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def series(self, rows: list[dict], key: str, x: str = "iter") -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the rows that carry both keys with finite numbers."""
        pairs = [(r[x], r[key]) for r in rows if is_number(r.get(x)) and is_number(r.get(key))]
        if not pairs:
            return np.empty(0), np.empty(0)
        arr = np.asarray(pairs, dtype=np.float64)
        return arr[:, 0], arr[:, 1]


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def read_log(path: Path) -> list[dict]:
    """The rows of a JSON-lines log, with a warning when unreadable lines were skipped."""
    rows, bad = scan_rows(path)
    if bad:
        warnings.warn(f"{path}: skipped {bad} unreadable line(s)", stacklevel=3)
    return rows


def _last_per_iter(rows: list[dict]) -> list[dict]:
    """Sorted by iteration, keeping the latest row for an iteration logged twice (resume)."""
    by_iter = {}
    for row in rows:
        if is_number(row.get("iter")):
            by_iter[row["iter"]] = row
    return [by_iter[k] for k in sorted(by_iter)]


def constraint_of(config: dict) -> str | None:
    """The Lipschitz constraint recorded in a run's config, or None."""
    section = config.get("lipschitz")
    if isinstance(section, dict) and isinstance(section.get("kind"), str):
        return section["kind"]
    return None


def _config(path: Path) -> dict:
    """A run's config, or {} (the run is then named by its folder) when missing or damaged."""
    if not (path / CONFIG).is_file():
        return {}
    try:
        return read_json(path / CONFIG, "run config")
    except UserError as err:
        warnings.warn(f"{err}; naming the run by its folder", stacklevel=3)
        return {}


def load_run(run_dir: str | Path) -> RunLog:
    """Read a run's logs; UserError if the directory holds no metrics to plot."""
    path = Path(run_dir)
    metrics = path / METRICS
    if not metrics.is_file():
        raise UserError(f"{path} has no {METRICS}; pass a run directory written by 'textgan train'")
    rows = read_log(metrics)
    train = _last_per_iter([r for r in rows if "wasserstein" in r or "critic_loss" in r])
    evals = _last_per_iter([r for r in rows if "js1" in r])
    if not train and not evals:
        raise UserError(
            f"{metrics} holds no training or evaluation rows yet; "
            "plot again after the run has logged"
        )
    config = _config(path)
    diags = _last_per_iter(read_log(path / DIAGNOSTICS))
    return RunLog(path, path.resolve().name, constraint_of(config), train, evals, diags, config)


def run_labels(runs: Sequence[RunLog]) -> list[str]:
    """Legend names: the constraint, with the run name added where two runs share one."""
    kinds = [r.constraint or r.name for r in runs]
    return [
        kind if kinds.count(kind) == 1 or kind == run.name else f"{kind} ({run.name})"
        for kind, run in zip(kinds, runs, strict=True)
    ]
