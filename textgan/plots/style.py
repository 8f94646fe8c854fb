"""What every figure shares: a fixed-layout canvas, colours, axis scales, a legend, and
writing the PNG (matplotlib without pyplot: no global state, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textgan.errors import UserError
from textgan.files import atomic_open, probe_write


def ensure_writable_dir(out: str | Path, what: str = "plots") -> Path:
    """Create ``out`` if needed; UserError naming ``what`` if it cannot be written to."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_write(out)
    except OSError as err:
        raise UserError(
            f"cannot write {what} to {out} ({err.strerror or err}); choose another --out"
        ) from None
    return out


def save(fig, path: Path) -> Path:
    """Write a figure as a PNG atomically: a reader never sees half of one."""
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return path


def figure(
    nrows: int,
    ncols: int,
    width: float,
    height: float,
    margins: tuple[float, float, float, float] = (0.9, 1.0, 0.4, 0.2),
    gaps: tuple[float, float] = (0.6, 0.7),
):
    """A figure with a grid of axes; ``margins`` (left, bottom, top, right) and ``gaps``
    (between columns, between rows) in inches.

    A fixed layout draws in half the time of matplotlib's constrained layout, which matters
    because training redraws its figures at every checkpoint.
    """
    from matplotlib.figure import Figure

    left, bottom, top, right = margins
    col_gap, row_gap = gaps
    axes_w = (width - left - right - (ncols - 1) * col_gap) / ncols
    axes_h = (height - top - bottom - (nrows - 1) * row_gap) / nrows
    grid = {
        "left": left / width,
        "right": 1 - right / width,
        "bottom": bottom / height,
        "top": 1 - top / height,
        "wspace": col_gap / axes_w,
        "hspace": row_gap / axes_h,
    }
    fig = Figure(figsize=(width, height), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=grid)
    return fig, axes


def colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def log_y(ax) -> None:
    """Log y axis once the plotted lines span a decade (linear below that, where a log axis
    would carry no labels), labelled at 1, 2, 5 × 10ⁿ or, over many decades, at 10ⁿ. Call
    after plotting the lines."""
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    ys = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    ys = np.concatenate(ys) if ys else np.empty(0)
    ys = ys[np.isfinite(ys) & (ys > 0)]
    if ys.size == 0 or ys.max() / ys.min() < 10:
        return
    ax.set_yscale("log")
    ax.set_ylim(ys.min() / 2, ys.max() * 2)  # by the lines: a ± std band may reach zero
    subs = (1.0, 2.0, 5.0) if ys.max() / ys.min() < 1e3 else (1.0,)  # fewer labels when wide
    ax.yaxis.set_major_locator(LogLocator(subs=subs, numticks=8))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def symlog_if_apart(ax, ratio: float = 50.0) -> None:
    """Symmetric log y axis when one run's values dwarf another's (an unconstrained critic's W
    estimate runs to hundreds while a penalized one stays near 1), so both stay readable."""
    scales = [np.nanmax(np.abs(line.get_ydata()), initial=0.0) for line in ax.get_lines()]
    scales = [v for v in scales if np.isfinite(v) and v > 0]
    if len(scales) > 1 and max(scales) / min(scales) > ratio:
        if all(np.nanmin(line.get_ydata(), initial=np.inf) > 0 for line in ax.get_lines()):
            log_y(ax)  # positive series (norms): a plain log axis labels every decade
            return
        from matplotlib.ticker import StrMethodFormatter

        # The linear part around zero gets the width of two decades, so its ticks do not crowd.
        linthresh = 10.0 ** np.ceil(np.log10(min(scales)))  # a decade: ticks at ±10ⁿ and 0
        ax.set_yscale("symlog", linthresh=linthresh, linscale=2.0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))


def legend(fig, axes, labels: list[str]) -> None:
    """One legend for the whole figure when any axis has labelled lines."""
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(
            handles, names, loc="lower center", ncols=legend_columns(names), fontsize="small"
        )


def legend_columns(names: list[str]) -> int:
    """Four labels a row fit an 8-inch figure when short; long ones take two."""
    return min(len(names), 4 if max(map(len, names)) <= 24 else 2)
