"""Figures from a run's logs: ``metrics.jsonl``, ``diagnostics.jsonl`` and ``config.json``.

``logs`` reads runs, ``figures`` draws the comparison figures, ``summary`` the one-look figure,
``style`` holds what they share. matplotlib is imported inside the functions that draw (Agg, no
display needed), so importing this package costs nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from textgan.errors import UserError
from textgan.files.rundir import METRICS
from textgan.plots.figures import (
    grad_norms_figure,
    input_grad_figure,
    js_figure,
    training_figure,
    weights_figure,
)
from textgan.plots.logs import RunLog, constraint_of, load_run, run_labels
from textgan.plots.style import ensure_writable_dir, save
from textgan.plots.summary import plot_summary

__all__ = [
    "RunLog",
    "constraint_of",
    "default_out_dir",
    "ensure_writable_dir",
    "load_run",
    "plot_runs",
    "plot_summary",
    "run_labels",
    "write_run_plots",
]


def default_out_dir(run_dirs: Sequence[str | Path]) -> Path:
    """One run: its own ``plots/``; several: ``plots/`` in the current directory."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / "plots"
    return Path("plots")


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """Write the comparison PNGs for one or more runs and return their paths.

    Always ``training.png`` (W estimate and losses against iterations and wall-clock time);
    ``js.png`` once a run has evaluation rows; ``weights.png``, ``grad_norms.png`` and
    ``input_grad.png`` once a run has diagnostics.
    """
    if not run_dirs:
        raise UserError("no run directory given; pass at least one RUN_DIR")
    runs = [load_run(d) for d in run_dirs]
    out_dir = ensure_writable_dir(out if out is not None else default_out_dir(run_dirs))
    labels = run_labels(runs)
    written = [save(training_figure(runs, labels), out_dir / "training.png")]
    if any(r.evals for r in runs):
        written.append(save(js_figure(runs, labels), out_dir / "js.png"))
    if any(r.diagnostics for r in runs):
        written.append(save(weights_figure(runs, labels), out_dir / "weights.png"))
        written.append(save(grad_norms_figure(runs, labels), out_dir / "grad_norms.png"))
        written.append(save(input_grad_figure(runs, labels), out_dir / "input_grad.png"))
    return written


def write_run_plots(run_dir: str | Path) -> list[Path]:
    """Refresh ``RUN/plots/`` during training; warns instead of raising, training goes on."""
    metrics = Path(run_dir) / METRICS
    if not metrics.is_file() or metrics.stat().st_size == 0:
        return []  # nothing logged yet (a checkpoint before the first row): nothing to draw
    try:
        return plot_runs([run_dir])
    except Exception as err:  # a figure must never stop a run
        warnings.warn(f"could not write plots for {run_dir}: {err}", stacklevel=2)
        return []
