"""The time-to-quality figure of a compare study: quality against wall-clock time per run,
the floor and the targets, and any published curves asked for (``settings["anchors"]``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textgan.studies.anchors import ANCHORS
from textgan.studies.report import evaluations, js_key, quality, quality_name

# One line style per seed; dashes are kept for the floor.
SEED_STYLES = ("-", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
# Published curves are hours long: with them, or with runs past this, the axis is in hours;
# with them it is logarithmic too, so a run's first minutes and their 20th hour both show.
HOURS_PAST_MINUTES = 120
FLOOR_LABEL = "real vs real"


def _run_label(run: dict[str, Any]) -> str:
    return f"{run['recipe']}, seed {run['seed']}"


def _anchor_label(curve: str, anchor: str) -> str:
    return f"{curve} [{anchor}]"


def time_figure(result: dict[str, Any], out: Path):
    """Quality against wall-clock time: a colour per recipe, a line style per seed, the floor
    dashed, the targets dotted, published curves as open markers (on a log time axis)."""
    from textgan.plots.style import colors, figure, legend, legend_columns

    settings = result["settings"]
    anchors = settings.get("anchors", [])
    labels = [_run_label(run) for run in result["runs"]]
    labels += [_anchor_label(c, a) for a in anchors for c in ANCHORS[a].curves] + [FLOOR_LABEL]
    # The legend sits below the axes: the figure grows by its rows.
    bottom = 0.9 + 0.2 * math.ceil(len(labels) / legend_columns(labels))
    fig, axes = figure(1, 1, 8, 3.9 + bottom, margins=(0.8, bottom, 0.4, 0.2))
    ax = axes[0, 0]
    hours = bool(anchors) or settings["minutes"] > HOURS_PAST_MINUTES
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    names = [r["recipe"] for r in result["recipes"]]
    colour = dict(zip(names, colors(len(names)), strict=True))
    seeds, reference = settings["seeds"], settings.get("reference", "train")
    for run in result["runs"]:
        rows = evaluations(out / run["run"])
        points = [(row["time"] / scale, quality(row, reference)) for row in rows]
        points = [(t, q) for t, q in points if q is not None]
        if points:
            style = SEED_STYLES[seeds.index(run["seed"]) % len(SEED_STYLES)]
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, ls=style, marker=".", ms=4, color=colour[run["recipe"]],
                    label=_run_label(run))  # fmt: skip
    for name in anchors:
        for curve, marker in zip(ANCHORS[name].curves.items(), "os^v", strict=False):
            label, points = curve
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, ls=(0, (1, 2)), marker=marker, mfc="none", color="0.25",
                    label=_anchor_label(label, name))  # fmt: skip
    sources = [f"[{name}] {ANCHORS[name].source}" for name in anchors]
    if sources:
        ax.text(0.99, 0.98, "\n".join(sources), transform=ax.transAxes, ha="right", va="top",
                fontsize="small", color="0.25")  # fmt: skip
    floor = result["floors"].get(js_key(reference))
    if floor is not None:
        ax.axhline(floor, color="0.3", ls="--", lw=1, label=FLOOR_LABEL)
    for target in settings["targets"]:
        ax.axhline(target, color="0.6", ls=":", lw=0.8)
    what = quality_name(result["ema"], reference)
    ax.set_title(f"{what} of argmax samples (dashed: floor; dotted: targets)")
    ax.set_xlabel(f"wall-clock {unit}")
    ax.set_ylabel(what)
    if anchors:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)
    ax.grid(alpha=0.3, which="both" if anchors else "major")
    legend(fig, axes, names)
    return fig
