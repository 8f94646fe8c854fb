"""The Lipschitz study: recipes that differ only in ``lipschitz.kind`` (a preset, with the
penalty on every critic step and a constant rate whatever the preset says), each run named by its
constraint, with a table of what the constraints do to the critic and the overlaid figures of
``textgan plot``::

    OUT/<constraint>/   one ordinary run directory per constraint (resumable, plottable)
    OUT/study.json, OUT/study.md, OUT/plots/, OUT/summary.png

On a single device the runs train one after the other in this process; with a list of devices,
side by side (``textgan.studies.runs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from textgan.config import LipschitzConfig
from textgan.errors import UserError
from textgan.files import atomic_write_text, read_rows, write_json
from textgan.files.rundir import METRICS
from textgan.nn.lipschitz import CONSTRAINTS, check_loss
from textgan.studies.compare import (
    check_minutes,
    check_new_folder,
    default_out,
    make_folder,
    plan_runs,
)
from textgan.studies.recipes import LIPSCHITZ_PRESET, Layers, Recipe, merge
from textgan.studies.report import floors, lipschitz_markdown, summarize_run
from textgan.studies.runs import Echo, PlannedRun, default_threads, train_children, train_in_turn

DEFAULT_CONSTRAINTS = ("gp", "gp-one-sided", "gp-fd", "clip", "sn", "none")
# What the Lipschitz study sets for every run, whatever its preset, so that the constraint is
# the one difference: the lazy penalty exists for the penalties only (and weighs λ·k where it
# acts), and a linear decay follows iterations, so within one wall-clock budget a faster
# constraint would end at a lower rate.
CONSTRAINT_ONLY: Layers = {"train": {"penalty_every": 1, "lr_decay": "constant"}}


@dataclass(frozen=True)
class StudyConfig:
    """What the Lipschitz study trains: every run shares all of it but the constraint."""

    corpus: str
    preset: str = LIPSCHITZ_PRESET
    minutes: float = 3.0
    constraints: tuple[str, ...] = DEFAULT_CONSTRAINTS
    seed: int = 0
    device: str = "auto"
    iters: int | None = None  # a cap on iterations besides the time budget (None: the preset's)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        check_minutes(self.minutes)
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
        study_fields = merge(CONSTRAINT_ONLY, {"lipschitz": {"kind": None}})
        fixed = [
            f"{section}.{name}"
            for section, names in study_fields.items()
            for name in names
            if name in self.overrides.get(section, {})
        ]
        if fixed:
            raise UserError(
                f"the Lipschitz study sets {', '.join(fixed)} for every run, so that only the "
                "constraint differs; remove it from the overrides"
            )
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
    """The preset, the study's fixed fields and the constraint: as a ``study compare`` recipe,
    ``PRESET:train.penalty_every=1,train.lr_decay=constant,lipschitz.kind=KIND``."""
    fixed = merge(CONSTRAINT_ONLY, {"lipschitz": {"kind": kind}})
    spec = ",".join(f"{s}.{k}={v}" for s, values in fixed.items() for k, v in values.items())
    return Recipe(kind, f"{cfg.preset}:{spec}", cfg.preset, None, merge(cfg.overrides, fixed))


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


def plan_constraints(cfg: StudyConfig, out: Path, progress: bool = True) -> list[PlannedRun]:
    """Every constraint's run resolved, before any training time is spent; UserError for bad
    settings or an ``out`` that is not new."""
    cfg.validate()
    check_new_folder(out)
    return plan_runs([(k, _lipschitz_layers(cfg, k, out / k)) for k in cfg.constraints], progress)


def shared_config(runs: Sequence[PlannedRun]) -> dict[str, Any]:
    """The resolved config every run of a Lipschitz study has: all but the constraint and the
    run's folder (``plan_constraints`` makes the rest equal)."""
    shared = runs[0].config.to_dict()
    del shared["lipschitz"]["kind"], shared["train"]["run_dir"]
    return shared


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

    out = Path(out) if out is not None else default_out("lipschitz")
    runs = plan_constraints(cfg, out, progress)
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
        "shared": shared_config(runs),
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
