"""The quality–diversity sweep: one or more sources (trained runs, the ``kn5`` baseline) sampled
at several settings of their diversity knob, every set scored by one scorer against one corpus.

A low temperature makes a source fluent and repetitive, a high one varied and noisy; one number
never shows both. So each set gets the LM score (bits/char of the samples under the corpus's
scoring 5-gram model: lower is more fluent, a quality) and the reverse LM score (bits/char of
real held-out lines under a 5-gram model fit on the samples: lower covers real text better, a
diversity), and the figure draws one against the other, a curve per source and knob, beside N
real held-out lines (the floor).

A baseline's knob is the temperature. A GAN's softmax is nearly one-hot, so temperature hardly
moves it; its own knob is the truncation of its noise (``textgan.generation.sampling.NoiseDraws``).
A run is sampled by argmax, the paper's decoding, from plain noise and from noise truncated at each
τ (one curve), and at each temperature from plain noise (another, from its argmax point).

Writes ``sweep.json`` (every metric of every set, the floor, samples per second of each source),
``sweep.md`` (a table) and ``sweep.png`` (the figure).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from textgan.errors import UserError
from textgan.files import atomic_write_text
from textgan.generation.baseline import BASELINES, baseline_sampler
from textgan.metrics.reference import PAPER_N_SAMPLES
from textgan.metrics.registry import METRICS
from textgan.metrics.scoring import Target, make_scorer, score_lines, target_corpus

ARGMAX = "argmax"
# (report key, table heading): the table's columns; sweep.json keeps every metric.
COLUMNS = (
    *((f"js{n}", f"JS-{n}") for n in range(1, 5)),
    ("lm_bits", "LM bits"),
    ("reverse_lm_bits", "reverse-LM bits"),
    ("self_bleu4", "Self-BLEU-4"),
    ("distinct4", "distinct-4"),
    ("word_known", "word_known"),
)
# (temperature or None for argmax, truncation or None, n, seed) -> batches of lines
Lines = Callable[[float | None, float | None, int, int], Iterator[list[str]]]


@dataclass(frozen=True)
class Source:
    """Something that writes lines: a run (``kind`` "run") or a baseline."""

    name: str
    kind: str
    lines: Lines


def parse_values(text: str, flag: str) -> list[float]:
    """Comma-separated numbers for ``flag``, each finite and > 0, sorted and without repeats."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UserError(
                f"{flag}: {part.strip()!r} is not a number > 0; "
                "give positive numbers separated by commas, e.g. 0.5,0.7,1.0"
            )
        values.append(value)
    return sorted(set(values))


def parse_temperatures(text: str) -> list[float]:
    """The temperatures of ``--temperatures``, ascending."""
    return parse_values(text, "--temperatures")


def parse_truncations(text: str) -> list[float]:
    """The truncations of ``--truncations``, loosest first (the curve leaves plain noise)."""
    return parse_values(text, "--truncations")[::-1]


def source_names(names: Sequence[str]) -> list[str]:
    """Each source once, in the order given; UserError for none, or for a path that is not
    there (a name that is not a baseline is a run directory or checkpoint)."""
    if not names:
        raise UserError(f"nothing to sweep: give a run directory or a baseline ({BASELINES[0]})")
    missing = [n for n in names if n not in BASELINES and not Path(n).exists()]
    if missing:
        raise UserError(
            f"no run or checkpoint at {missing[0]}; give a run directory, a checkpoint or a "
            f"baseline ({', '.join(BASELINES)})"
        )
    return list(dict.fromkeys(names))


def default_out(names: Sequence[str]) -> Path:
    """Where a sweep goes without ``--out``: RUN/sweep for one run alone, else ./sweep."""
    names = source_names(names)
    alone = len(names) == 1 and names[0] not in BASELINES
    return Path(names[0]) / "sweep" if alone else Path("sweep")


def open_sources(
    names: Sequence[str], target: Target, device: str, batch_size: int, progress: bool
) -> list[Source]:
    """A ``Source`` per name: a baseline (``kn5``), else a run directory or checkpoint."""
    return [
        _baseline(n, target, batch_size, progress)
        if n in BASELINES
        else _run(n, device, batch_size)
        for n in source_names(names)
    ]


def _baseline(name: str, target: Target, batch_size: int, progress: bool) -> Source:
    prepared = target_corpus(target, progress)
    sampler = baseline_sampler(name, prepared, progress)

    def lines(
        temperature: float | None, truncation: float | None, n: int, seed: int
    ) -> Iterator[list[str]]:
        t = 1.0 if temperature is None else temperature  # argmax would repeat one line
        return sampler.lines(prepared.vocab, n, t, seed, batch_size)

    return Source(name, "baseline", lines)


def _run(path: str, device: str, batch_size: int) -> Source:
    from textgan.generation import sampling  # torch: only when a run is swept

    generator, vocab, _ = sampling.load_generator(path, device)

    def lines(
        temperature: float | None, truncation: float | None, n: int, seed: int
    ) -> Iterator[list[str]]:
        return sampling.sample_text(
            generator,
            vocab,
            n,
            temperature=temperature,
            truncation=truncation,
            seed=seed,
            batch_size=batch_size,
        )

    return Source(path, "run", lines)


def sweep_n(n: int | None, heldout: int) -> int:
    """N: as asked, else the paper's 640 capped at half the held-out split; the reverse LM
    scores the held-out lines outside the N real ones, so some must stay outside."""
    if n is None:
        return max(1, min(PAPER_N_SAMPLES, heldout // 2))
    if n >= heldout:
        raise UserError(
            f"-n {n} leaves no held-out line for the reverse LM score (the corpus holds out "
            f"{heldout}); use -n {max(1, heldout // 2)}"
        )
    return n


def sweep_plan(
    source: Source, temperatures: Sequence[float], truncations: Sequence[float]
) -> list[tuple[float | None, float | None]]:
    """The (temperature, truncation) sets of ``source``, None meaning argmax or plain noise:
    a run by argmax from plain and truncated noise, then at each temperature; a baseline at
    each temperature (it has no noise, and its argmax would repeat one line)."""
    sampled = [(t, None) for t in temperatures]
    if source.kind == "baseline":
        return sampled
    return [(None, None), *((None, tau) for tau in truncations), *sampled]


def run_sweep(
    sources: Sequence[Source],
    temperatures: Sequence[float],
    target: Target,
    n: int | None = None,
    seed: int = 0,
    progress: bool = False,
    truncations: Sequence[float] = (),
) -> dict[str, Any]:
    """Sample and score every set of every source (``sweep_plan``) against one scorer."""
    scorer = make_scorer(target, n, 4, seed, None, progress)
    n = sweep_n(n, len(scorer.heldout))
    plan = [(s, *knobs) for s in sources for knobs in sweep_plan(s, temperatures, truncations)]
    metric_keys = {k for metric in METRICS.values() for k in metric.keys}
    rows = []
    for source, temperature, truncation in tqdm(
        plan, desc="sweep", unit="set", disable=not progress
    ):
        start = time.perf_counter()
        lines = [line for batch in source.lines(temperature, truncation, n, seed) for line in batch]
        seconds = time.perf_counter() - start
        report = score_lines(lines, target, n=n, seed=seed, scorer=scorer)
        values = {k: v for k, v in report.items() if k in metric_keys}
        rows.append(_row(source, (temperature, truncation), seconds, n, values))
    floor = score_lines(None, target, n=n, seed=seed, scorer=scorer)
    return {
        "reference": scorer.name,
        "seq_len": scorer.seq_len,
        "n_samples": n,
        "seed": seed,
        "temperatures": list(temperatures),
        "truncations": list(truncations),
        "rows": rows,
        "floor": {k.removeprefix("floor_"): v for k, v in floor.items() if k.startswith("floor_")},
        "samples_per_s": _speeds(rows, n),
    }


def _row(
    source: Source, knobs: tuple[float | None, float | None], seconds: float, n: int, values: dict
) -> dict:
    temperature, truncation = knobs
    return {
        "source": source.name,
        "kind": source.kind,
        "temperature": ARGMAX if temperature is None else temperature,
        "truncation": truncation,
        "seconds": seconds,
        "samples_per_s": n / seconds if seconds > 0 else None,
        **values,
    }


def _speeds(rows: list[dict], n: int) -> dict[str, float | None]:
    """Samples per second of each source over all its sets."""
    out = {}
    for name in dict.fromkeys(row["source"] for row in rows):
        mine = [row for row in rows if row["source"] == name]
        seconds = sum(row["seconds"] for row in mine)
        out[name] = n * len(mine) / seconds if seconds > 0 else None
    return out


def write_sweep(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``sweep.json``, ``sweep.md`` and ``sweep.png`` in ``out_dir``."""
    from textgan.plots.style import ensure_writable_dir, save

    out = ensure_writable_dir(out_dir, "the sweep")
    atomic_write_text(out / "sweep.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "sweep.md", format_markdown(result))
    return [out / "sweep.json", out / "sweep.md", save(sweep_figure(result), out / "sweep.png")]


def format_markdown(result: dict[str, Any]) -> str:
    """The sweep as a Markdown table, the real lines' floor as its last row."""
    n = result["n_samples"]
    head = ["source", "T", "truncation", *(title for _, title in COLUMNS), "samples/s"]
    rows = [
        [r["source"], _temperature(r), _truncation(r), *(_fmt(r[k]) for k, _ in COLUMNS), _speed(r)]
        for r in result["rows"]
    ]
    floor = result["floor"]
    real = f"real ({n:,} held-out lines)"
    rows.append([real, "", "", *(_fmt(floor[k]) for k, _ in COLUMNS), ""])
    speeds = ", ".join(f"{s}: {_fmt(v, 0)}" for s, v in result["samples_per_s"].items())
    lines = [
        f"# Quality–diversity sweep: {n:,} samples per set against {result['reference']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "LM bits: lower is more fluent. Reverse-LM bits: lower covers real text better. "
        "Truncation τ: noise components beyond ±τ redrawn inside (blank: plain noise).",
        f"Samples per second, all sets: {speeds} (a GAN writes all {result['seq_len']} "
        "positions in one pass, the n-gram model one position per step).",
    ]
    return "\n".join(lines) + "\n"


def _temperature(row: dict[str, Any]) -> str:
    t = row["temperature"]
    return t if t == ARGMAX else f"{t:g}"


def _truncation(row: dict[str, Any]) -> str:
    tau = row.get("truncation")
    return "" if tau is None else f"{tau:g}"


def _setting_name(row: dict[str, Any]) -> str:
    """A point's label: ``argmax``, ``τ=0.5`` (argmax of truncated noise) or ``T=0.7``."""
    if row.get("truncation") is not None:
        return f"τ={_truncation(row)}"
    t = _temperature(row)
    return t if t == ARGMAX else f"T={t}"


def _speed(row: dict[str, Any]) -> str:
    return _fmt(row["samples_per_s"], 0)


def _fmt(value: float | str | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:,.{digits}f}"


def sweep_figure(result: dict[str, Any]):
    """LM score against reverse LM score: a curve per source and knob (a run's truncation
    curve solid, its temperature curve dashed), each point labelled with its setting, and the
    real lines' point."""
    from textgan.plots.style import colors, figure

    fig, axes = figure(1, 1, 7, 5.5, margins=(0.9, 0.8, 0.5, 0.2))
    ax = axes[0, 0]
    sources = list(result["samples_per_s"])
    points = [(r["lm_bits"], r["reverse_lm_bits"]) for r in result["rows"]]
    span = [max(v) - min(v) or 1.0 for v in zip(*points, strict=True)]
    for name, color in zip(sources, colors(len(sources)), strict=True):
        rows = [r for r in result["rows"] if r["source"] == name]
        for knob, curve in _curves(rows):
            xs, ys = [r["lm_bits"] for r in curve], [r["reverse_lm_bits"] for r in curve]
            label = _legend_name(name) + (f": {knob}" if knob else "")
            style = "--" if knob == "temperature" else "-"
            ax.plot(xs, ys, style, color=color, marker="o", ms=4, lw=1.2, label=label)
            dy = -10 if knob == "temperature" else 4  # below: clear of the truncation labels
            for text, x, y, dx in _point_labels(curve, xs, ys, span):
                ha = "left" if dx > 0 else "right"
                ax.annotate(
                    text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize=7
                )
    floor = result["floor"]
    n = result["n_samples"]
    ax.plot(floor["lm_bits"], floor["reverse_lm_bits"], "k*", ms=12, label=f"real ({n:,} lines)")
    ax.set_xlabel("LM score (bits/char): lower is more fluent")
    ax.set_ylabel("reverse LM score (bits/char): lower covers real text better")
    ax.set_title(f"quality against diversity, {n:,} samples per point", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.margins(0.12)  # room for the labels of the outermost points
    ax.legend(fontsize="small")
    return fig


def _curves(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """A source's curves as (knob, rows): a baseline's one temperature curve (knob ""), a run's
    truncation curve (argmax from plain, then ever more truncated noise) and its temperature
    curve (from its argmax point); a run swept without truncations has the second only."""
    argmax = [r for r in rows if r["temperature"] == ARGMAX]
    sampled = argmax[:1] + [r for r in rows if r["temperature"] != ARGMAX]
    if len(argmax) < 2:  # a baseline, or a run swept without truncations: one curve
        return [("", sampled)]
    return [("truncation", argmax)] + ([("temperature", sampled)] if len(sampled) > 1 else [])


def _legend_name(source: str) -> str:
    """A checkpoint as ``run @ iter_…``, a run by its folder name, a baseline as given."""
    path = Path(source)
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name} @ {path.name}"
    return path.name or source


def _point_labels(rows: list[dict], xs: list[float], ys: list[float], span: list[float]):
    """Each point's setting as (text, x, y, dx); a run of points that coincide at the figure's
    scale gets one label ``first … last``, written to the left (a GAN's temperatures, whose
    softmax is nearly one-hot, or its loosest truncations: the labels would overprint)."""
    names = [_setting_name(r) for r in rows]
    groups: list[list[int]] = []
    for i in range(len(rows)):
        first = groups[-1][0] if groups else None
        if first is not None and all(
            abs(v[i] - v[first]) < 0.05 * s for v, s in zip((xs, ys), span, strict=True)
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    labels = []
    for group in groups:
        if len(group) == 1:
            labels.append((names[group[0]], xs[group[0]], ys[group[0]], 4))
            continue
        text = f"{names[group[0]]} … {names[group[-1]]}"
        labels.append((text, min(xs[i] for i in group), max(ys[i] for i in group), -4))
    return labels
