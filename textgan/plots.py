"""Figures from a run's logs: ``metrics.jsonl``, ``diagnostics.jsonl`` and ``config.json``.

Reads only what training wrote to disk, so it works on finished, running and copied runs alike.
Several runs are drawn into the same figures, each named by its Lipschitz constraint, which is
how one compares clipping with the gradient penalty. matplotlib is imported inside the
functions that draw (Agg, no display needed), so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textgan.errors import UserError
from textgan.rundir import CONFIG, DIAGNOSTICS, METRICS

# Training-row series drawn against iterations and wall-clock time, with their axis labels.
TRAIN_SERIES = (
    ("wasserstein", "W estimate\nmean D(real) − mean D(fake)"),
    ("critic_loss", "critic loss"),
    ("gen_loss", "generator loss"),
    ("grad_norm", "mean ‖∇x̂ D‖"),
)
INPUT_POINTS = ("real", "fake", "interp")


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
        pairs = [(r[x], r[key]) for r in rows if _is_number(r.get(x)) and _is_number(r.get(key))]
        if not pairs:
            return np.empty(0), np.empty(0)
        arr = np.asarray(pairs, dtype=np.float64)
        return arr[:, 0], arr[:, 1]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a file, one per line; a torn line (killed writer) is skipped."""
    rows, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    if bad:
        warnings.warn(f"{path}: skipped {bad} unreadable line(s)", stacklevel=2)
    return rows


def _last_per_iter(rows: list[dict]) -> list[dict]:
    """Sorted by iteration, keeping the latest row for an iteration logged twice (resume)."""
    by_iter = {}
    for row in rows:
        if _is_number(row.get("iter")):
            by_iter[row["iter"]] = row
    return [by_iter[k] for k in sorted(by_iter)]


def constraint_of(config: dict) -> str | None:
    """The Lipschitz constraint recorded in a run's config, or None."""
    section = config.get("lipschitz")
    if isinstance(section, dict) and isinstance(section.get("kind"), str):
        return section["kind"]
    return None


def load_run(run_dir: str | Path) -> RunLog:
    """Read a run's logs; UserError if the directory holds no metrics to plot."""
    path = Path(run_dir)
    metrics = path / METRICS
    if not metrics.is_file():
        raise UserError(f"{path} has no {METRICS}; pass a run directory written by 'textgan train'")
    rows = read_jsonl(metrics)
    train = _last_per_iter([r for r in rows if "wasserstein" in r or "critic_loss" in r])
    evals = _last_per_iter([r for r in rows if "js1" in r])
    if not train and not evals:
        raise UserError(
            f"{metrics} holds no training or evaluation rows yet; "
            "plot again after the run has logged"
        )
    config = {}
    if (path / CONFIG).is_file():
        try:
            config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            warnings.warn(
                f"{path / CONFIG} is not valid JSON; naming the run by its folder",
                stacklevel=2,
            )
    diags = []
    if (path / DIAGNOSTICS).is_file():
        diags = _last_per_iter(read_jsonl(path / DIAGNOSTICS))
    name = path.resolve().name
    return RunLog(path, name, constraint_of(config), train, evals, diags, config)


def run_labels(runs: Sequence[RunLog]) -> list[str]:
    """Legend names: the constraint, with the run name added where two runs share one."""
    kinds = [r.constraint or r.name for r in runs]
    return [
        kind if kinds.count(kind) == 1 or kind == run.name else f"{kind} ({run.name})"
        for kind, run in zip(kinds, runs, strict=True)
    ]


def default_out_dir(run_dirs: Sequence[str | Path]) -> Path:
    """One run: its own ``plots/``; several: ``plots/`` in the current directory."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / "plots"
    return Path("plots")


def ensure_writable_dir(out: str | Path) -> Path:
    """Create ``out`` if needed; UserError if it cannot be written to."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(
            f"cannot write plots to {out} ({err.strerror or err}); choose another --out"
        ) from None
    return out


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
    written = [_save(_training_figure(runs, labels), out_dir / "training.png")]
    if any(r.evals for r in runs):
        written.append(_save(_js_figure(runs, labels), out_dir / "js.png"))
    if any(r.diagnostics for r in runs):
        written.append(_save(_weights_figure(runs, labels), out_dir / "weights.png"))
        written.append(_save(_grad_norms_figure(runs, labels), out_dir / "grad_norms.png"))
        written.append(_save(_input_grad_figure(runs, labels), out_dir / "input_grad.png"))
    return written


def plot_summary(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """One figure comparing runs at a glance (the study's README figure): JS-4 against
    wall-clock time with its floor, ‖∇x̂ D‖ at interpolates against wall-clock time, and the
    per-layer critic gradient norms at the last diagnostics step."""
    runs = [load_run(d) for d in run_dirs]
    path = Path(path)
    ensure_writable_dir(path.parent)
    return _save(_summary_figure(runs, run_labels(runs)), path)


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


# --- drawing ---------------------------------------------------------------------------------


def _figure(
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
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

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


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _save(fig, path: Path) -> Path:
    """Write a figure under a temporary name and rename it, so a PNG is never half-written."""
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.png.tmp")
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _log_y(ax) -> None:
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


def _symlog_if_apart(ax, ratio: float = 50.0) -> None:
    """Symmetric log y axis when one run's values dwarf another's (an unconstrained critic's W
    estimate runs to hundreds while a penalized one stays near 1), so both stay readable."""
    scales = [np.nanmax(np.abs(line.get_ydata()), initial=0.0) for line in ax.get_lines()]
    scales = [v for v in scales if np.isfinite(v) and v > 0]
    if len(scales) > 1 and max(scales) / min(scales) > ratio:
        if all(np.nanmin(line.get_ydata(), initial=np.inf) > 0 for line in ax.get_lines()):
            _log_y(ax)  # positive series (norms): a plain log axis labels every decade
            return
        from matplotlib.ticker import StrMethodFormatter

        # The linear part around zero gets the width of two decades, so its ticks do not crowd.
        linthresh = 10.0 ** np.ceil(np.log10(min(scales)))  # a decade: ticks at ±10ⁿ and 0
        ax.set_yscale("symlog", linthresh=linthresh, linscale=2.0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))


def _legend(fig, axes, labels: list[str]) -> None:
    """One legend for the whole figure when any axis has labelled lines."""
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(handles, names, loc="lower center", ncols=min(len(names), 4), fontsize="small")


def _training_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = _figure(len(TRAIN_SERIES), 2, 10, 2.2 * len(TRAIN_SERIES) + 0.8, gaps=(0.6, 0.3))
    for run, label, color in zip(runs, labels, _colors(len(runs)), strict=True):
        for row, (key, _) in enumerate(TRAIN_SERIES):
            for col, x in enumerate(("iter", "time")):
                xs, ys = run.series(run.train, key, x)
                if xs.size:
                    axes[row, col].plot(xs, ys, color=color, lw=1, label=label)
    for row, (key, ylabel) in enumerate(TRAIN_SERIES):
        axes[row, 0].set_ylabel(ylabel)
        for ax in axes[row]:
            _symlog_if_apart(ax)
            ax.grid(alpha=0.3)
            if key == "wasserstein":
                ax.axhline(0, color="0.5", lw=0.6)
    axes[-1, 0].set_xlabel("generator iteration")
    axes[-1, 1].set_xlabel("wall-clock time (s)")
    axes[0, 0].set_title("against iterations")
    axes[0, 1].set_title("against wall-clock time")
    _legend(fig, axes, labels)
    return fig


def _js_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = _figure(2, 2, 10, 7, margins=(0.6, 1.0, 0.4, 0.2))
    for run, label, color in zip(runs, labels, _colors(len(runs)), strict=True):
        for n, ax in enumerate(axes.flat, start=1):
            xs, ys = run.series(run.evals, f"js{n}")
            if xs.size:
                ax.plot(xs, ys, color=color, lw=1.2, marker=".", ms=3, label=label)
            _, floors = run.series(run.evals, f"floor_js{n}")
            if floors.size:
                ax.axhline(floors[-1], color=color, ls="--", lw=1)
    for n, ax in enumerate(axes.flat, start=1):
        ax.set_title(f"JS-{n} (bits); dashed: real-vs-real floor")
        ax.set_xlabel("generator iteration")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    _legend(fig, axes, labels)
    return fig


def _latest(run: RunLog, key: str) -> dict | None:
    """The most recent diagnostics row that carries ``key``."""
    for row in reversed(run.diagnostics):
        if isinstance(row.get(key), dict):
            return row
    return None


def _layer_norms(run: RunLog) -> tuple[dict, list[str], np.ndarray] | None:
    """The latest per-layer gradient norms: (row, layer names, norms with zeros as NaN, which a
    log axis cannot show), or None without diagnostics."""
    row = _latest(run, "layer_grad_norms")
    if row is None:
        return None
    layers = row["layer_grad_norms"]
    norms = np.asarray(layers["norms"], dtype=np.float64)
    return row, list(layers["names"]), np.where(norms > 0, norms, np.nan)


def _weights_figure(runs: list[RunLog], labels: list[str]):
    # One panel per run: clipped weights live in ±0.01, penalized ones spread far wider.
    fig, axes = _figure(len(runs), 1, 7, 2.4 * len(runs) + 0.4, margins=(0.9, 0.6, 0.4, 0.2))
    for ax, run, label, color in zip(axes[:, 0], runs, labels, _colors(len(runs)), strict=True):
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
        if _is_number(row.get("clip_share")):
            title += f", {row['clip_share']:.0%} within 1 % of ±c"
        if hist.get("nonfinite"):
            title += f", {hist['nonfinite']:,} NaN/inf"
        ax.set_title(title)
        ax.set_ylabel("share of weights")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("weight value")
    return fig


def _grad_norms_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = _figure(1, 1, 8, 4.5, margins=(0.9, 1.4, 0.4, 0.2))
    ax = axes[0, 0]
    names: list[str] = []
    for run, label, color in zip(runs, labels, _colors(len(runs)), strict=True):
        latest = _layer_norms(run)
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
    _log_y(ax)
    ax.set_xlabel("critic layer, input → output")
    ax.set_ylabel("‖∂ critic loss / ∂ layer parameters‖")
    ax.set_title("Critic loss gradient norm per layer")
    ax.grid(alpha=0.3, which="both")
    _legend(fig, axes, labels)
    return fig


def _input_grad_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = _figure(1, len(INPUT_POINTS), 12, 4, margins=(0.8, 1.1, 0.4, 0.2), gaps=(0.8, 0))
    for run, label, color in zip(runs, labels, _colors(len(runs)), strict=True):
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
        _log_y(ax)
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    _legend(fig, axes, labels)
    return fig


def _at_time(run: RunLog, iters: np.ndarray) -> np.ndarray:
    """Wall-clock time of iterations, interpolated from the training rows."""
    it, t = run.series(run.train, "time")
    return np.interp(iters, it, t) if it.size else np.full(iters.shape, np.nan)


def _summary_figure(runs: list[RunLog], labels: list[str]):
    fig, axes = _figure(1, 3, 13, 4.2, margins=(0.7, 1.1, 0.4, 0.2), gaps=(0.8, 0))
    js_ax, slope_ax, layer_ax = axes[0]
    names: list[str] = []
    for run, label, color in zip(runs, labels, _colors(len(runs)), strict=True):
        t, js4 = run.series(run.evals, "js4", x="time")
        if t.size:
            js_ax.plot(t, js4, color=color, marker=".", ms=3, label=label)
        _, floors = run.series(run.evals, "floor_js4")
        if floors.size:
            js_ax.axhline(floors[-1], color=color, ls="--", lw=1)
        rows = [r for r in run.diagnostics if isinstance(r.get("input_grad"), dict)]
        stats = [(r["iter"], (r["input_grad"].get("interp") or {}).get("mean")) for r in rows]
        stats = np.asarray([s for s in stats if _is_number(s[1])], dtype=np.float64)
        if stats.size:
            slope_ax.plot(_at_time(run, stats[:, 0]), stats[:, 1], color=color, marker=".")
        latest = _layer_norms(run)
        if latest is not None:
            _, layer_names, norms = latest
            names = max(names, layer_names, key=len)
            layer_ax.plot(np.arange(norms.size), norms, "o-", c=color)
    js_ax.set_title("JS-4 of argmax samples (dashed: floor)")
    js_ax.set_ylim(bottom=0)
    slope_ax.set_title("‖∇x̂ D‖ at interpolates (mean)")
    _log_y(slope_ax)
    slope_ax.axhline(1.0, color="0.4", ls=":", lw=1)
    for ax in (js_ax, slope_ax):
        ax.set_xlabel("wall-clock time (s)")
    layer_ax.set_title("critic loss gradient norm per layer")
    layer_ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    _log_y(layer_ax)
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
    _legend(fig, axes, labels)
    return fig
