"""Studies: many ordinary runs compared at equal wall-clock time.

``compare_study`` measures **time to quality**: several named recipes (``textgan.studies.recipes``),
each trained with one or more seeds for the same wall-clock budget on the same corpus, device and
thread count, evaluated at the same wall-clock moments on the same noise (one noise per seed).
It writes::

    OUT/<recipe>-s<seed>/   one ordinary run directory per recipe and seed
    OUT/logs/               each run's config and stderr
    OUT/study.json          minutes to each target per run and per recipe, final numbers with
                            floors, iterations/s, the settings and the machine
    OUT/study.md            the same as tables
    OUT/time_to_quality.png EMA JS-4 against wall-clock minutes, a line per recipe and seed

Runs train side by side, one ``textgan train`` process each (``textgan.studies.runs``). The
Lipschitz study (``textgan.studies.constraints``) plans and reports its runs with the same pieces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import atomic_write_text, disk_error, write_json
from textgan.studies.figure import time_figure
from textgan.studies.recipes import Recipe, clock_fields, fit_layer, merge
from textgan.studies.report import (
    check_heldout_left,
    check_reference,
    check_targets,
    compare_markdown,
    compare_recipes,
    compare_run,
    evaluations,
    floors,
)
from textgan.studies.runs import (
    Echo,
    PlannedRun,
    default_threads,
    machine,
    train_children,
)

FIGURE = "time_to_quality.png"


def check_minutes(minutes: float, flag: str = "--minutes") -> None:
    if not (math.isfinite(minutes) and minutes > 0):
        raise UserError(f"{flag} must be a positive number, got {minutes}")


@dataclass(frozen=True)
class CompareConfig:
    """A time-to-quality study: every run shares all of it but its recipe and seed."""

    corpus: str
    recipes: tuple[Recipe, ...]
    seeds: tuple[int, ...] = (0,)
    minutes: float = 5.0
    eval_minutes: float | None = None  # None: a tenth of the budget
    targets: tuple[float, ...] = ()
    parallel: int = 1
    threads: int | None = None  # None: the usable cores shared by the parallel runs
    device: str = "auto"
    eval_samples: int = 640
    data_dir: str = "data"
    iters: int | None = None  # a cap on iterations besides the budget (None: the recipe's)
    reference: str = "train"  # what quality's JS-4 is against (textgan.studies.report)

    @property
    def interval(self) -> float:
        return self.eval_minutes if self.eval_minutes is not None else self.minutes / 10

    @property
    def threads_per_run(self) -> int:
        return self.threads if self.threads is not None else default_threads(self.parallel)

    def validate(self) -> None:
        check_minutes(self.minutes)
        check_minutes(self.interval, "--eval-minutes")
        if not self.recipes:
            raise UserError("no recipe given; name at least one with --recipe NAME=SPEC")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise UserError("two recipes share a name; give each --recipe its own NAME")
        if any(seed < 0 for seed in self.seeds):
            raise UserError(f"--seeds must be non-negative integers, got {self.seeds}")
        check_targets(self.targets)
        check_reference(self.reference)
        for flag, value in (("--parallel", self.parallel), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")
        if "," in self.device:
            raise UserError("--device names one device; --parallel runs several on it")


def check_new_folder(out: Path, what: str = "study folder") -> None:
    """Refuse an ``out`` that exists and is not an empty folder (nothing of it is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{what} {out} already exists and is not empty; choose another --out")


def make_folder(out: Path, what: str = "study folder") -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(out, err, f"create {what}") from None


def plan_runs(named_layers: Sequence[tuple[str, dict]], progress: bool) -> list[PlannedRun]:
    """Resolve every run's config before any training time is spent (a bad option fails
    before the study folder exists); every run must train on the same prepared corpus."""
    from textgan.training.setup import resolve_run_config

    runs = []
    for name, layers in named_layers:
        config, prepared = resolve_run_config(layers, progress=progress)
        runs.append(PlannedRun(name, config, prepared))
    first = runs[0]
    for run in runs[1:]:
        if run.config.fingerprint != first.config.fingerprint:
            raise UserError(
                f"runs {first.name} and {run.name} would train on different corpora (their "
                "corpus settings differ); give corpus settings once, for the whole study"
            )
    return runs


def _compare_layers(cfg: CompareConfig, recipe: Recipe, seed: int, run_dir: Path) -> dict:
    train = {
        "seed": seed,
        "device": cfg.device,
        **clock_fields(cfg.minutes, cfg.interval),
        "eval_samples": cfg.eval_samples,
        "run_dir": str(run_dir),
    }
    if cfg.iters is not None:
        train["iters"] = cfg.iters
    study = {"corpus": {"corpus": cfg.corpus, "data_dir": cfg.data_dir}, "train": train}
    return recipe.layers(merge(study, fit_layer(recipe.layers(study), cfg.iters)))


def default_out(kind: str, now: datetime | None = None) -> Path:
    return Path("runs") / f"study-{kind}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def compare_study(
    cfg: CompareConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    echo: Echo = print,
) -> dict[str, Any]:
    """Train every recipe with every seed for ``cfg.minutes``; write tables and the figure.

    Runs are ordered seed by seed, so the runs side by side are different recipes. A run that
    stops early (it diverged) is recorded as such and the study goes on; Ctrl-C or SIGTERM stops
    the running ones with a checkpoint and tabulates what ran. Returns the ``study.json`` data.
    """
    cfg.validate()
    out = Path(out) if out is not None else default_out("compare")
    check_new_folder(out)
    order = [(r, seed) for seed in cfg.seeds for r in cfg.recipes]
    named = [
        (f"{r.name}-s{seed}", _compare_layers(cfg, r, seed, out / f"{r.name}-s{seed}"))
        for r, seed in order
    ]
    runs = plan_runs(named, progress)
    first = runs[0]
    check_heldout_left(cfg.reference, first.config.train.eval_samples, len(first.prepared.heldout))
    make_folder(out)
    threads = cfg.threads_per_run
    statuses, stopped_by = train_children(runs, [cfg.device] * cfg.parallel, threads, out, echo)
    rows = [
        compare_run(out / name, r.name, seed, statuses[name], cfg.targets, cfg.reference)
        for (name, _), (r, seed) in zip(named, order, strict=True)
        if name in statuses
    ]
    started = [out / row["run"] for row in rows]
    fits = {
        r.name: layers["train"]["fit_iters"]
        for (r, _), (_, layers) in zip(order, named, strict=True)
    }
    result = {
        "study": "compare",
        "out": str(out),
        "settings": {
            "corpus": cfg.corpus,
            "recipes": {r.name: r.spec for r in cfg.recipes},
            "seeds": list(cfg.seeds),
            "minutes": cfg.minutes,
            "eval_minutes": cfg.interval,
            "diag_minutes": runs[0].config.train.diag_minutes,
            "ckpt_minutes": runs[0].config.train.ckpt_minutes,
            "targets": list(cfg.targets),
            "eval_samples": runs[0].config.train.eval_samples,
            "device": cfg.device,
            "iters": cfg.iters,
            # The recipes whose runs fitted their iterations to the budget.
            "fit_iters": [name for name, fit in fits.items() if fit],
            "reference": cfg.reference,
        },
        "machine": machine(threads, cfg.parallel),
        "ema": all(r.config.train.ema_decay > 0 for r in runs),
        "floors": floors(started),
        "runs": rows,
        "recipes": compare_recipes(rows, [r.name for r in cfg.recipes]),
        "stopped_by": stopped_by,
    }
    write_report(out, result)
    return result


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``study.json``, ``study.md`` and the figure of a time-to-quality study."""
    from textgan.plots.style import save

    write_json(out / "study.json", result)
    atomic_write_text(out / "study.md", compare_markdown(result))
    if any(evaluations(out / run["run"]) for run in result["runs"]):
        save(time_figure(result, out), out / FIGURE)


# -- the Lipschitz study ---------------------------------------------------------------------
