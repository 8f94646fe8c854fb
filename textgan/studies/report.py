"""What a study found, read back from its runs' logs: rows, tables, the time-to-quality figure.

**Quality** is the JS-4 of the generator's weight average (``ema_js4``), or of the raw generator
(``js4``) in a run without the average, against the study's **reference**: the training lines
(``train``, the paper's protocol) or the held-out lines (``heldout``: ``heldout_js4``, where a
copied training line scores no better than real text). **Minutes to a target** is the ``time``
of the first evaluation whose quality is at or below the target (``None``: not reached within
the budget).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import read_rows
from textgan.files.rundir import DIAGNOSTICS, METRICS

# What quality's JS-4 can be measured against, as the table's note says it.
REFERENCE_TEXT = {
    "train": "the training lines (the paper's protocol)",
    "heldout": "the held-out lines outside the floor's real ones (where a copied training line "
    "scores no better than real text)",
}
REFERENCES = tuple(REFERENCE_TEXT)
# What the table shows of the quality generator's last evaluation, besides quality itself.
SAMPLE_RATES = ("copy_rate", "unique_rate")


def check_targets(targets: Sequence[float]) -> None:
    """Targets are JS-4 values: above 0 (the floor itself is above 0) and at most 1."""
    if not all(0 < t <= 1 for t in targets):
        raise UserError(f"--targets are JS-4 values in (0, 1], got {tuple(targets)}")


def check_reference(reference: str) -> None:
    if reference not in REFERENCES:
        raise UserError(f"--reference must be one of {', '.join(REFERENCES)}, got {reference!r}")


def check_heldout_left(reference: str, n: int, held: int) -> None:
    """JS against held-out lines compares with the ones outside the ``n`` real lines of the
    floor: refuse ``heldout`` when those are all ``held`` lines of the held-out split."""
    if reference == "heldout" and n >= held:
        raise UserError(
            f"--reference heldout compares the samples with the held-out lines outside the "
            f"{n} real ones of the floor, and the corpus holds out {held}: use --eval-samples "
            f"{held // 2} or fewer, or prepare the corpus with a larger --holdout"
        )


def js_key(reference: str = "train", n: int = 4) -> str:
    """The evaluation row's key of JS-n against ``reference``."""
    return f"js{n}" if reference == "train" else f"{reference}_js{n}"


def quality_name(ema: bool = True, reference: str = "train") -> str:
    """``EMA JS-4``, ``JS-4``, ``EMA held-out JS-4``…: what quality is, for tables and lines."""
    return "EMA " * ema + "held-out " * (reference == "heldout") + "JS-4"


def quality(row: dict[str, Any], reference: str = "train") -> float | None:
    """The EMA generator's JS-4 against ``reference`` of an evaluation row, the raw one's
    without EMA."""
    key = js_key(reference)
    value = row.get(f"ema_{key}", row.get(key))
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def generator_values(row: dict[str, Any]) -> dict[str, Any]:
    """JS-4 against both references and the sample rates of the generator quality scores
    (the EMA one when the run has it) in an evaluation row."""
    prefix = "ema_" if "ema_js4" in row else ""
    keys = [js_key(r) for r in REFERENCES] + list(SAMPLE_RATES)
    return {key: row.get(prefix + key) for key in keys}


def evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation rows of a run, in the order written."""
    return [r for r in read_rows(run_dir / METRICS) if "js1" in r]


def minutes_to(
    evals: Sequence[dict[str, Any]], target: float, reference: str = "train"
) -> float | None:
    """Wall-clock minutes until quality first reached ``target``; None if it never did."""
    for row in evals:
        value = quality(row, reference)
        if value is not None and value <= target:
            return row["time"] / 60.0
    return None


def seconds_per_iteration(train_rows: Sequence[dict]) -> float | None:
    """Median wall time per iteration between consecutive training rows.

    The median leaves out the intervals that also hold an evaluation or a checkpoint.
    """
    pairs = [(r["iter"], r["time"]) for r in train_rows if "iter" in r and "time" in r]
    rates = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in itertools.pairwise(pairs) if i1 > i0]
    if rates:
        return statistics.median(rates)
    if pairs and pairs[-1][0] > 0:  # one row only: a run stopped early by its budget
        return pairs[-1][1] / pairs[-1][0]
    return None


def floors(run_dirs: Sequence[Path]) -> dict[str, float | None]:
    """The real-vs-real floors of JS-1..4 against each reference and of the sample rates (the
    same corpus and sample count for every run; None for what a run did not log)."""
    keys = [js_key(r, n) for r in REFERENCES for n in range(1, 5)] + list(SAMPLE_RATES)
    for run_dir in run_dirs:
        evals = [r for r in read_rows(run_dir / METRICS) if "floor_js1" in r]
        if evals:
            return {key: evals[-1].get(f"floor_{key}") for key in keys}
    return dict.fromkeys(keys)


def summarize_run(run_dir: Path, status: str = "ok") -> dict[str, Any]:
    """One row of the Lipschitz table: where a run got to within its budget."""
    rows = read_rows(run_dir / METRICS)
    train_rows = [r for r in rows if "wasserstein" in r]
    evals = [r for r in rows if "js1" in r]
    diags = read_rows(run_dir / DIAGNOSTICS)
    last_train = train_rows[-1] if train_rows else {}
    last_eval = evals[-1] if evals else {}
    last_diag = diags[-1] if diags else {}
    interp = (last_diag.get("input_grad") or {}).get("interp") or {}
    return {
        "constraint": run_dir.name,
        "status": status,
        "iterations": max((r.get("iter", 0) for r in rows), default=0),
        "seconds": last_train.get("time"),
        "seconds_per_iter": seconds_per_iteration(train_rows),
        "wasserstein": last_train.get("wasserstein"),
        **{f"js{n}": last_eval.get(f"js{n}") for n in range(1, 5)},
        "grad_norm_interp": interp.get("mean"),
        "clip_share": last_diag.get("clip_share"),
    }


def compare_run(
    run_dir: Path,
    recipe: str,
    seed: int,
    status: str,
    targets: Sequence[float],
    reference: str = "train",
) -> dict[str, Any]:
    """One run of a time-to-quality study: final numbers, speed and minutes to each target."""
    rows = read_rows(run_dir / METRICS)
    train_rows = [r for r in rows if "wasserstein" in r]
    evals = [r for r in rows if "js1" in r]
    last = evals[-1] if evals else {}
    per_iter = seconds_per_iteration(train_rows)
    return {
        "run": run_dir.name,
        "recipe": recipe,
        "seed": seed,
        "status": status,
        "iterations": max((r.get("iter", 0) for r in rows), default=0),
        "seconds": train_rows[-1]["time"] if train_rows else None,
        "iters_per_second": 1.0 / per_iter if per_iter else None,
        "evaluations": len(evals),
        **{f"js{n}": last.get(f"js{n}") for n in range(1, 5)},
        **{f"ema_js{n}": last.get(f"ema_js{n}") for n in range(1, 5)},
        "heldout_js4": last.get("heldout_js4"),
        "ema_heldout_js4": last.get("ema_heldout_js4"),
        **{k: generator_values(last)[k] for k in SAMPLE_RATES},  # the quality generator's
        "quality": quality(last, reference) if last else None,
        "minutes_to_target": [minutes_to(evals, target, reference) for target in targets],
    }


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, least and greatest over seeds; the mean only when every seed has a value."""
    known = [v for v in values if v is not None]
    full = bool(known) and len(known) == len(values)
    return {
        "mean": statistics.fmean(known) if full else None,
        "min": min(known) if known else None,
        "max": max(known) if known else None,
        "reached": len(known),
        "of": len(values),
    }


def compare_recipes(runs: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per recipe, over its seeds: minutes to each target, final quality, iterations/s."""
    out = []
    for name in names:
        mine = [r for r in runs if r["recipe"] == name]
        if not mine:
            continue
        n_targets = len(mine[0]["minutes_to_target"])
        out.append(
            {
                "recipe": name,
                "seeds": [r["seed"] for r in mine],
                "minutes_to_target": [
                    spread([r["minutes_to_target"][i] for r in mine]) for i in range(n_targets)
                ],
                "quality": spread([r["quality"] for r in mine]),
                **{k: spread([r[k] for r in mine]) for k in SAMPLE_RATES},
                "iters_per_second": spread([r["iters_per_second"] for r in mine]),
            }
        )
    return out


def fmt(value: Any, spec: str = ".3f") -> str:
    """A table cell: ``—`` for a missing or non-finite value, ``.3g`` for huge ones."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 1e4:  # a diverging critic: W in the billions
        return format(value, ".3g")
    return format(value, spec)


def _cell(s: dict[str, Any], spec: str) -> str:
    """``mean (min–max)`` over seeds, or how many seeds reached it."""
    if s["mean"] is None:
        return f"not reached ({s['reached']}/{s['of']})" if s["reached"] else "not reached"
    low, high = fmt(s["min"], spec), fmt(s["max"], spec)
    return fmt(s["mean"], spec) if low == high else f"{fmt(s['mean'], spec)} ({low}–{high})"


def _row(cells: Sequence[str]) -> str:
    """A markdown table row; an empty cell is ``| |``."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _run_minutes(result: dict[str, Any]) -> str:
    """How long the runs trained, from their logs (``24–40``): a run may stop at its last
    iteration before the budget, or go on after it when resumed; the budget before any logged."""
    minutes = sorted(r["seconds"] / 60 for r in result["runs"] if r.get("seconds") is not None)
    if not minutes:
        return f"{result['settings']['minutes']:g}"
    low, high = (f"{round(m, 1):g}" if m >= 1 else f"{m:.2g}" for m in (minutes[0], minutes[-1]))
    return low if low == high else f"{low}–{high}"


def compare_markdown(result: dict[str, Any]) -> str:
    """The study as markdown: per recipe (mean and range over seeds), then per run."""
    s, m = result["settings"], result["machine"]
    targets, reference = s["targets"], s.get("reference", "train")
    key, floor = js_key(reference), result["floors"]
    heads = [f"min to ≤ {t:g}" for t in targets]
    rates = ["copies", "unique"]
    lines = [
        "# Time to quality",
        "",
        f"Corpus `{s['corpus']}`; {_run_minutes(result)} min of training per run, evaluated every "
        f"{s['eval_minutes']:g} min on {s['eval_samples']} samples; seeds "
        f"{', '.join(map(str, s['seeds']))}; {m['runs_at_once']} run(s) at a time with "
        f"{m['threads_per_run']} thread(s) each on {m['cpu']} ({m['usable_cores']} usable "
        f"cores), {m['platform']}, torch {m['torch']}.",
        "",
        _row(["recipe", *heads, f"final {quality_name(result['ema'], reference)}", *rates,
              "iterations / s"]),
        "|---|" + "---:|" * (len(targets) + 4),
        _row(["real vs real (floor)", *[""] * len(targets), fmt(floor.get(key)),
              *(fmt(floor.get(k), ".1%") for k in SAMPLE_RATES), ""]),
    ]  # fmt: skip
    for r in result["recipes"]:
        cells = [_cell(t, ".2f") for t in r["minutes_to_target"]]
        cells += [_cell(r["quality"], ".3f")]
        cells += [_cell(r[k], ".1%") if r[k]["reached"] else "—" for k in SAMPLE_RATES]
        lines.append(_row([r["recipe"], *cells, _cell(r["iters_per_second"], ".1f")]))
    lines += [
        "",
        _row(["run", "recipe", "seed", "status", "iterations", "iterations / s",
              quality_name(False, reference), quality_name(True, reference), *rates, *heads]),
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(targets),
    ]  # fmt: skip
    for r in result["runs"]:
        cells = [r["run"], r["recipe"], str(r["seed"]), r["status"], str(r["iterations"])]
        cells += [fmt(r["iters_per_second"], ".1f"), fmt(r[key]), fmt(r[f"ema_{key}"])]
        cells += [fmt(r[k], ".1%") for k in SAMPLE_RATES]
        cells += [fmt(v, ".2f") for v in r["minutes_to_target"]]
        lines.append(_row(cells))
    lines += ["", "Minutes: wall-clock time of the first evaluation at or below the target."]
    lines.append(f"JS-4 against {REFERENCE_TEXT[reference]}.")
    lines.append(
        "Copies, unique: share of the last evaluation's samples (the EMA generator's when it "
        "has one) equal to a training line, and distinct; the floor row, of as many real "
        "held-out lines."
    )
    if result.get("sources"):
        lines.append(f"Rebuilt from the runs of {', '.join(result['sources'])} as they are now.")
    return "\n".join(lines) + "\n"


def lipschitz_markdown(result: dict[str, Any]) -> str:
    """The Lipschitz study as a markdown table, floors first."""
    s = result["settings"]
    head = (
        "| constraint | iterations | s / iter | W estimate | JS-1 | JS-2 | JS-3 | JS-4 "
        "| ‖∇x̂ D‖ | weights at ±c |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    floor = result["floors"]
    lines = [
        "| real vs real (floor) | | | | "
        + " | ".join(fmt(floor[f"js{n}"]) for n in range(1, 5))
        + " | | |"
    ]
    for row in result["rows"]:
        name = row["constraint"] if row["status"] == "ok" else f"{row['constraint']} (stopped)"
        cells = [
            name,
            str(row["iterations"]),
            fmt(row["seconds_per_iter"], ".2f"),
            fmt(row["wasserstein"]),
            *(fmt(row[f"js{n}"]) for n in range(1, 5)),
            fmt(row["grad_norm_interp"], ".3g"),
            fmt(row["clip_share"], ".1%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"Corpus `{s['corpus']}`, preset `{s['preset']}`, seed {s['seed']}, "
        f"{s['minutes']:g} min of training per constraint.",
    ]
    if "shared" in result:  # studies from before it was recorded lack it
        notes.append(shared_line(result["shared"]))
    for row in result["rows"]:
        if row["status"] != "ok":
            notes.append(f"{row['constraint']}: {row['status']}")
    return head + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def shared_line(shared: dict[str, Any]) -> str:
    """What every run of a Lipschitz study trained with, in one sentence."""
    m, t, lip = shared["model"], shared["train"], shared["lipschitz"]
    rates = dict.fromkeys((t["lr_critic"] or t["lr"], t["lr_gen"] or t["lr"]))  # critic, G
    return (
        f"Every run: D = {m['dim']}, blocks {m['blocks']}, batch {t['batch_size']}, "
        f"{t['critic_iters']} critic steps, Adam lr {'/'.join(f'{r:g}' for r in rates)} "
        f"{t['lr_decay']}, β = ({t['beta1']:g}, {t['beta2']:g}), λ = {lip['lam']:g} "
        f"(penalty_every {t['penalty_every']}), c = {lip['clip']:g}, EMA {t['ema_decay']:g}"
        f"{', unigram output bias' if t['unigram_init'] else ''}; only the constraint differs."
    )
