"""The figures of ``textgan plot``: training curves, JS-n, critic weights and gradients.

Several runs are drawn into the same figures, each named by its Lipschitz constraint, which is
how one compares clipping with the gradient penalty.
"""

from __future__ import annotations

import numpy as np

from textgan.plots.logs import RunLog, is_number
from textgan.plots.style import colors, figure, legend, log_y, symlog_if_apart

# Training-row series drawn against iterations and wall-clock time, with their axis labels.
TRAIN_SERIES = (
    ("wasserstein", "W estimate\nmean D(real) − mean D(fake)"),
    ("critic_loss", "critic loss"),
    ("gen_loss", "generator loss"),
    ("grad_norm", "mean ‖∇x̂ D‖"),
)
INPUT_POINTS = ("real", "fake", "interp")


def training_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = figure(len(TRAIN_SERIES), 2, 10, 2.2 * len(TRAIN_SERIES) + 0.8, gaps=(0.6, 0.3))
    for run, label, color in zip(runs, labels, colors(len(runs)), strict=True):
        for row, (key, _) in enumerate(TRAIN_SERIES):
            for col, x in enumerate(("iter", "time")):
                xs, ys = run.series(run.train, key, x)
                if xs.size:
                    axes[row, col].plot(xs, ys, color=color, lw=1, label=label)
    for row, (key, ylabel) in enumerate(TRAIN_SERIES):
        axes[row, 0].set_ylabel(ylabel)
        for ax in axes[row]:
            symlog_if_apart(ax)
            ax.grid(alpha=0.3)
            if key == "wasserstein":
                ax.axhline(0, color="0.5", lw=0.6)
    axes[-1, 0].set_xlabel("generator iteration")
    axes[-1, 1].set_xlabel("wall-clock time (s)")
    axes[0, 0].set_title("against iterations")
    axes[0, 1].set_title("against wall-clock time")
    legend(fig, axes, labels)
    return fig


# (key prefix, legend suffix, line format): the raw generator and its weight average (EMA).
JS_CURVES = (("js", "", ".-"), ("ema_js", ", EMA", ".:"))


def js_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = figure(2, 2, 10, 7, margins=(0.6, 1.0, 0.4, 0.2))
    for run, label, color in zip(runs, labels, colors(len(runs)), strict=True):
        for n, ax in enumerate(axes.flat, start=1):
            for prefix, suffix, style in JS_CURVES:
                xs, ys = run.series(run.evals, f"{prefix}{n}")
                if xs.size:
                    ax.plot(xs, ys, style, color=color, lw=1.2, ms=3, label=label + suffix)
            _, floors = run.series(run.evals, f"floor_js{n}")
            if floors.size:
                ax.axhline(floors[-1], color=color, ls="--", lw=1)
    for n, ax in enumerate(axes.flat, start=1):
        ax.set_title(f"JS-{n} (bits); dashed: real-vs-real floor")
        ax.set_xlabel("generator iteration")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    legend(fig, axes, labels)
    return fig


def _latest(run: RunLog, key: str) -> dict | None:
    """The most recent diagnostics row that carries ``key``."""
    for row in reversed(run.diagnostics):
        if isinstance(row.get(key), dict):
            return row
    return None


def layer_norms(run: RunLog) -> tuple[dict, list[str], np.ndarray] | None:
    """The latest per-layer gradient norms: (row, layer names, norms with zeros as NaN, which a
    log axis cannot show), or None without diagnostics."""
    row = _latest(run, "layer_grad_norms")
    if row is None:
        return None
    layers = row["layer_grad_norms"]
    norms = np.asarray(layers["norms"], dtype=np.float64)
    return row, list(layers["names"]), np.where(norms > 0, norms, np.nan)


def weights_figure(runs: list[RunLog], labels: list[str]):
    # One panel per run: clipped weights live in ±0.01, penalized ones spread far wider.
    fig, axes = figure(len(runs), 1, 7, 2.4 * len(runs) + 0.4, margins=(0.9, 0.6, 0.4, 0.2))
    for ax, run, label, color in zip(axes[:, 0], runs, labels, colors(len(runs)), strict=True):
        row = _latest(run, "weight_hist")
        if row is None:
            ax.text(0.5, 0.5, "no diagnostics", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(label)
            continue
        hist = row["weight_hist"]
        counts = np.asarray(hist["counts"], dtype=np.float64)
        edges = np.linspace(-hist["max_abs"], hist["max_abs"], counts.size + 1)
        share = counts / max(counts.sum(), 1.0)
        ax.stairs(share, edges, fill=True, color=color, alpha=0.8)
        title = f"{label}: critic weights at iteration {row['iter']}"
        if is_number(row.get("clip_share")):
            title += f", {row['clip_share']:.0%} within 1 % of ±c"
        if hist.get("nonfinite"):
            title += f", {hist['nonfinite']:,} NaN/inf"
        ax.set_title(title)
        ax.set_ylabel("share of weights")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("weight value")
    return fig


def grad_norms_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = figure(1, 1, 8, 4.5, margins=(0.9, 1.4, 0.4, 0.2))
    ax = axes[0, 0]
    names: list[str] = []
    for run, label, color in zip(runs, labels, colors(len(runs)), strict=True):
        latest = layer_norms(run)
        if latest is None:
            continue
        row, layer_names, norms = latest
        names = max(names, layer_names, key=len)
        ax.plot(
            np.arange(norms.size),
            norms,
            color=color,
            marker="o",
            label=f"{label} (iteration {row['iter']})",
        )
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    log_y(ax)
    ax.set_xlabel("critic layer, input → output")
    ax.set_ylabel("‖∂ critic loss / ∂ layer parameters‖")
    ax.set_title("Critic loss gradient norm per layer")
    ax.grid(alpha=0.3, which="both")
    legend(fig, axes, labels)
    return fig


def input_grad_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = figure(1, len(INPUT_POINTS), 12, 4, margins=(0.8, 1.1, 0.4, 0.2), gaps=(0.8, 0))
    for run, label, color in zip(runs, labels, colors(len(runs)), strict=True):
        rows = [r for r in run.diagnostics if isinstance(r.get("input_grad"), dict)]
        for ax, point in zip(axes[0], INPUT_POINTS, strict=True):
            stats = [(r["iter"], r["input_grad"].get(point)) for r in rows]
            stats = [(i, s["mean"], s["std"]) for i, s in stats if isinstance(s, dict)]
            if not stats:
                continue
            it, mean, std = np.asarray(stats, dtype=np.float64).T
            ax.plot(it, mean, color=color, marker=".", label=label)
            ax.fill_between(it, np.maximum(mean - std, 0), mean + std, color=color, alpha=0.2)
    for ax, point in zip(axes[0], INPUT_POINTS, strict=True):
        ax.set_title(f"‖∇x D‖ at {point} inputs (mean ± std)")
        ax.set_xlabel("generator iteration")
        log_y(ax)
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    legend(fig, axes, labels)
    return fig
