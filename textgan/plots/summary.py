"""One figure comparing runs at a glance (the study's README figure)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textgan.plots.figures import layer_norms
from textgan.plots.logs import RunLog, is_number, load_run, run_labels
from textgan.plots.style import colors, ensure_writable_dir, figure, legend, log_y, save


def plot_summary(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """JS-4 against wall-clock time with its floor, ‖∇x̂ D‖ at interpolates against wall-clock
    time, and the per-layer critic gradient norms at the last diagnostics step."""
    runs = [load_run(d) for d in run_dirs]
    path = Path(path)
    ensure_writable_dir(path.parent)
    return save(summary_figure(runs, run_labels(runs)), path)


def _at_time(run: RunLog, iters: np.ndarray) -> np.ndarray:
    """Wall-clock time of iterations, interpolated from the training rows."""
    it, t = run.series(run.train, "time")
    return np.interp(iters, it, t) if it.size else np.full(iters.shape, np.nan)


def summary_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = figure(1, 3, 13, 4.2, margins=(0.7, 1.1, 0.4, 0.2), gaps=(0.8, 0))
    js_ax, slope_ax, layer_ax = axes[0]
    names: list[str] = []
    for run, label, color in zip(runs, labels, colors(len(runs)), strict=True):
        t, js4 = run.series(run.evals, "js4", x="time")
        if t.size:
            js_ax.plot(t, js4, color=color, marker=".", ms=3, label=label)
        _, floors = run.series(run.evals, "floor_js4")
        if floors.size:
            js_ax.axhline(floors[-1], color=color, ls="--", lw=1)
        rows = [r for r in run.diagnostics if isinstance(r.get("input_grad"), dict)]
        stats = [(r["iter"], (r["input_grad"].get("interp") or {}).get("mean")) for r in rows]
        stats = np.asarray([s for s in stats if is_number(s[1])], dtype=np.float64)
        if stats.size:
            slope_ax.plot(_at_time(run, stats[:, 0]), stats[:, 1], color=color, marker=".")
        latest = layer_norms(run)
        if latest is not None:
            _, layer_names, norms = latest
            names = max(names, layer_names, key=len)
            layer_ax.plot(np.arange(norms.size), norms, "o-", c=color)
    js_ax.set_title("JS-4 of argmax samples (dashed: floor)")
    js_ax.set_ylim(bottom=0)
    slope_ax.set_title("‖∇x̂ D‖ at interpolates (mean)")
    log_y(slope_ax)
    slope_ax.axhline(1.0, color="0.4", ls=":", lw=1)
    for ax in (js_ax, slope_ax):
        ax.set_xlabel("wall-clock time (s)")
    layer_ax.set_title("critic loss gradient norm per layer")
    layer_ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    log_y(layer_ax)
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
    legend(fig, axes, labels)
    return fig
