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

``lipschitz_study`` is one use of it: recipes that differ only in ``lipschitz.kind``, each run
named by its constraint, with a table of what the constraints do to the critic and the overlaid
figures of ``textgan plot``::

    OUT/<constraint>/   one ordinary run directory per constraint (resumable, plottable)
    OUT/study.json, OUT/study.md, OUT/plots/, OUT/summary.png

Runs train side by side, one ``textgan train`` process each (``textgan.studies.runs``); the
Lipschitz study on a single device trains them one after the other in this process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from textgan.config import LipschitzConfig
from textgan.errors import UserError
from textgan.files import atomic_write_text, disk_error, read_rows, write_json
from textgan.files.rundir import METRICS
from textgan.nn.lipschitz import CONSTRAINTS, check_loss
from textgan.studies.recipes import Recipe, merge
from textgan.studies.report import (
    check_targets,
    compare_markdown,
    compare_recipes,
    compare_run,
    evaluations,
    floors,
    lipschitz_markdown,
    seconds_per_iteration,
    summarize_run,
    time_figure,
)
from textgan.studies.runs import (
    Echo,
    PlannedRun,
    default_threads,
    machine,
    train_children,
    train_in_turn,
)

__all__ = [
    "DEFAULT_CONSTRAINTS",
    "CompareConfig",
    "StudyConfig",
    "compare_study",
    "lipschitz_study",
    "markdown_table",
    "parse_constraints",
    "parse_devices",
    "seconds_per_iteration",
    "summarize_run",
]

DEFAULT_CONSTRAINTS = ("gp", "gp-one-sided", "gp-fd", "clip", "sn", "none")
FIGURE = "time_to_quality.png"
markdown_table = lipschitz_markdown  # the Lipschitz study's table, under its historical name


def _check_minutes(minutes: float, flag: str = "--minutes") -> None:
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

    @property
    def interval(self) -> float:
        return self.eval_minutes if self.eval_minutes is not None else self.minutes / 10

    @property
    def threads_per_run(self) -> int:
        return self.threads if self.threads is not None else default_threads(self.parallel)

    def validate(self) -> None:
        _check_minutes(self.minutes)
        _check_minutes(self.interval, "--eval-minutes")
        if not self.recipes:
            raise UserError("no recipe given; name at least one with --recipe NAME=SPEC")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise UserError("two recipes share a name; give each --recipe its own NAME")
        if any(seed < 0 for seed in self.seeds):
            raise UserError(f"--seeds must be non-negative integers, got {self.seeds}")
        check_targets(self.targets)
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
    from textgan.training.loop import resolve_run_config

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
        "max_minutes": cfg.minutes,
        "eval_minutes": cfg.interval,
        "eval_samples": cfg.eval_samples,
        "run_dir": str(run_dir),
    }
    if cfg.iters is not None:
        train["iters"] = cfg.iters
    return recipe.layers(
        {"corpus": {"corpus": cfg.corpus, "data_dir": cfg.data_dir}, "train": train}
    )


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
    make_folder(out)
    threads = cfg.threads_per_run
    statuses, stopped_by = train_children(runs, [cfg.device] * cfg.parallel, threads, out, echo)
    rows = [
        compare_run(out / name, r.name, seed, statuses[name], cfg.targets)
        for (name, _), (r, seed) in zip(named, order, strict=True)
        if name in statuses
    ]
    started = [out / row["run"] for row in rows]
    result = {
        "study": "compare",
        "out": str(out),
        "settings": {
            "corpus": cfg.corpus,
            "recipes": {r.name: r.spec for r in cfg.recipes},
            "seeds": list(cfg.seeds),
            "minutes": cfg.minutes,
            "eval_minutes": cfg.interval,
            "targets": list(cfg.targets),
            "eval_samples": runs[0].config.train.eval_samples,
            "device": cfg.device,
            "iters": cfg.iters,
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


@dataclass(frozen=True)
class StudyConfig:
    """What the Lipschitz study trains: every run shares all of it but the constraint."""

    corpus: str
    preset: str = "small"
    minutes: float = 3.0
    constraints: tuple[str, ...] = DEFAULT_CONSTRAINTS
    seed: int = 0
    device: str = "auto"
    iters: int | None = None  # a cap on iterations besides the time budget (None: the preset's)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        _check_minutes(self.minutes)
        if not self.constraints:
            raise UserError("--constraints is empty; name at least one, e.g. gp,clip")
        unknown = [c for c in self.constraints if c not in CONSTRAINTS]
        if unknown:
            raise UserError(
                f"unknown constraint(s) {', '.join(unknown)} in --constraints; "
                f"choose from {', '.join(CONSTRAINTS)}"
            )
        if len(set(self.constraints)) != len(self.constraints):
            raise UserError("--constraints names a constraint twice; name each once")
        for kind in self.constraints:  # r1 with the wgan loss: refused before any run trains
            check_loss(LipschitzConfig(**{**self.overrides.get("lipschitz", {}), "kind": kind}))
        parse_devices(self.device)


def parse_devices(text: str) -> list[str]:
    """``"cuda:0, cuda:1"`` → ``["cuda:0", "cuda:1"]``, each an existing device; one entry
    (``auto`` too) trains the runs one after the other in this process."""
    from textgan.devices import pick_device

    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise UserError("--device is empty; give auto, a device, or a list such as cpu,cpu")
    if len(devices) > 1:
        for device in devices:
            if device == "auto":
                raise UserError("--device lists run one run per device: name each (no auto)")
            pick_device(device)
    return devices


def parse_constraints(text: str) -> tuple[str, ...]:
    """``"gp, clip"`` → ``("gp", "clip")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _constraint_recipe(cfg: StudyConfig, kind: str) -> Recipe:
    changes = merge(cfg.overrides, {"lipschitz": {"kind": kind}})
    return Recipe(kind, f"{cfg.preset}:lipschitz.kind={kind}", cfg.preset, None, changes)


def _lipschitz_layers(cfg: StudyConfig, kind: str, run_dir: Path) -> dict:
    train = {
        "seed": cfg.seed,
        "device": parse_devices(cfg.device)[0],  # a parallel run's own device is its flag
        "max_minutes": cfg.minutes,
        "run_dir": str(run_dir),
    }
    if cfg.iters is not None:
        train["iters"] = cfg.iters
    study = {"corpus": {"corpus": cfg.corpus}, "train": train}
    return _constraint_recipe(cfg, kind).layers(study)


def lipschitz_study(
    cfg: StudyConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    echo: Echo = print,
) -> dict[str, Any]:
    """Train one run per constraint for ``cfg.minutes`` each; write the table and figures.

    A run that diverges (the unconstrained critic may) is recorded as such, and the study goes
    on. Returns the ``study.json`` data.
    """
    from textgan.plots import plot_runs, plot_summary

    cfg.validate()
    out = Path(out) if out is not None else default_out("lipschitz")
    check_new_folder(out)
    named = [(kind, _lipschitz_layers(cfg, kind, out / kind)) for kind in cfg.constraints]
    runs = plan_runs(named, progress)
    make_folder(out)
    devices = parse_devices(cfg.device)
    if len(devices) > 1:
        # Runs sharing the CPU split its cores: more threads than cores spin and run slower.
        threads = default_threads(devices.count("cpu")) if "cpu" in devices else None
        statuses, stopped_by = train_children(runs, devices, threads, out, echo)
    else:
        statuses, stopped_by = train_in_turn(runs, progress, echo)
    done = [kind for kind in cfg.constraints if kind in statuses]
    result = {
        "study": "lipschitz",
        "out": str(out),
        "settings": {**asdict(cfg), "constraints": list(cfg.constraints)},
        "floors": floors([out / kind for kind in done]),
        "rows": [summarize_run(out / kind, statuses[kind]) for kind in done],
        "stopped_by": stopped_by,
    }
    write_json(out / "study.json", result)
    atomic_write_text(out / "study.md", lipschitz_markdown(result))
    logged = [out / kind for kind in done if read_rows(out / kind / METRICS)]
    if logged:
        plot_runs(logged, out / "plots")
        plot_summary(logged, out / "summary.png")
    return result
