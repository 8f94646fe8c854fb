"""The Lipschitz-constraint study: one run per constraint, the same wall-clock budget each.

``lipschitz_study`` trains one run per constraint on the same corpus, preset and seed, each
stopped by the same time budget, then writes ``study.json`` and ``study.md`` (final JS-1..4 with
their floors, W estimate, seconds per iteration, ‖∇x̂ D‖, share of weights at ±c) and the
overlaid figures of ``textgan plot`` into the study folder::

    OUT/<constraint>/   one ordinary run directory per constraint (resumable, plottable)
    OUT/study.json      the table as data, with the command's settings
    OUT/study.md        the table as markdown
    OUT/plots/          all runs overlaid, named by constraint
    OUT/summary.png     JS-4 and ‖∇x̂ D‖ against time, per-layer gradient norms: one look

``device`` may list devices (``cuda:0,cuda:1`` or ``cpu,cpu``): the runs then train in parallel,
one ``textgan train`` process per run and at most one run per listed device at a time.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.lipschitz import CONSTRAINTS
from textgan.plots import plot_runs, plot_summary
from textgan.rundir import (
    DIAGNOSTICS,
    METRICS,
    atomic_write_text,
    disk_error,
    read_rows,
    write_json,
)

DEFAULT_CONSTRAINTS = ("gp", "gp-one-sided", "gp-fd", "clip", "sn", "none")


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains: every run shares all of it but the constraint."""

    corpus: str
    preset: str = "small"
    minutes: float = 3.0
    constraints: tuple[str, ...] = DEFAULT_CONSTRAINTS
    seed: int = 0
    device: str = "auto"
    iters: int | None = None  # a cap on iterations besides the time budget (None: the preset's)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise UserError(f"--minutes must be a positive number, got {self.minutes}")
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


def default_out(now: datetime | None = None) -> Path:
    return Path("runs") / f"study-lipschitz-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def _layers(cfg: StudyConfig, kind: str, run_dir: Path) -> dict[str, dict[str, Any]]:
    from textgan.config import layered_config

    train = {
        **cfg.overrides.get("train", {}),
        "seed": cfg.seed,
        "device": parse_devices(cfg.device)[0],  # a parallel run's own device is its flag
        "max_minutes": cfg.minutes,
        "run_dir": str(run_dir),
    }
    if cfg.iters is not None:
        train["iters"] = cfg.iters
    overrides = {
        **cfg.overrides,
        "corpus": {**cfg.overrides.get("corpus", {}), "corpus": cfg.corpus},
        "lipschitz": {**cfg.overrides.get("lipschitz", {}), "kind": kind},
        "train": train,
    }
    return layered_config(cfg.preset, overrides=overrides)


def lipschitz_study(
    cfg: StudyConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train one run per constraint for ``cfg.minutes`` each; write the table and figures.

    A run that diverges (the unconstrained critic may) is recorded as such, and the study goes
    on. Returns the ``study.json`` data.
    """
    from textgan.train import resolve_run_config

    cfg.validate()
    out = Path(out) if out is not None else default_out()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"study folder {out} already exists and is not empty; choose another --out")
    # Resolve every config first: a bad option fails before any training time is spent and
    # before the study folder exists.
    runs = []
    for kind in cfg.constraints:
        config, prepared = resolve_run_config(_layers(cfg, kind, out / kind), progress=progress)
        runs.append((kind, config, prepared))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(out, err, "create study folder") from None
    devices = parse_devices(cfg.device)
    if len(devices) > 1:
        statuses, stopped_by = _train_on_devices(runs, devices, out, echo)
    else:
        statuses, stopped_by = _train_in_turn(runs, cfg, out, progress, echo)
    done = [kind for kind in cfg.constraints if kind in statuses]
    result = {
        "study": "lipschitz",
        "out": str(out),
        "settings": {**asdict(cfg), "constraints": list(cfg.constraints)},
        "floors": _floors(out, done),
        "rows": [summarize_run(out / kind, statuses[kind]) for kind in done],
        "stopped_by": stopped_by,
    }
    write_json(out / "study.json", result)
    atomic_write_text(out / "study.md", markdown_table(result))
    logged = [out / kind for kind in done if read_rows(out / kind / METRICS)]
    if logged:
        plot_runs(logged, out / "plots")
        plot_summary(logged, out / "summary.png")
    return result


def _train_on_devices(
    runs: list[tuple[str, Any, Any]], devices: list[str], out: Path, echo: Callable[[str], None]
) -> tuple[dict[str, str], int | None]:
    """Train each run in its own ``textgan train`` process, at most one per device at a time.
    SIGINT/SIGTERM reach the running ones (they stop and save); no further run starts."""
    statuses: dict[str, str] = {}
    pending = list(enumerate(runs, start=1))
    running: dict[int, tuple[str, subprocess.Popen, Path]] = {}  # device slot → run
    stop: list[int] = []
    # Runs sharing the CPU split its cores: more threads than cores spin and run many times slower.
    threads = max(1, (os.cpu_count() or 1) // max(1, devices.count("cpu")))

    def forward(signum: int, frame: object) -> None:
        stop.append(signum)
        for _, proc, _ in running.values():
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            while running or (pending and not stop):
                for slot, device in enumerate(devices):
                    if slot not in running and pending and not stop:
                        n, (kind, config, _) = pending.pop(0)
                        echo(f"study {n}/{len(runs)}: {kind} on {device} → {out / kind}")
                        proc, log = _start_run(config, device, Path(tmp), kind, threads)
                        running[slot] = (kind, proc, log)
                time.sleep(0.2)
                for slot, (kind, proc, log) in list(running.items()):
                    if proc.poll() is not None:
                        del running[slot]
                        statuses[kind] = _run_status(proc.returncode, log)
                        echo(f"study: {kind} {statuses[kind]}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return statuses, (stop[0] if stop else None)


def _start_run(
    config: Any, device: str, tmp: Path, kind: str, threads: int
) -> tuple[subprocess.Popen, Path]:
    """``textgan train`` of a resolved config (its own JSON) on ``device``; stderr to a file."""
    path, log = tmp / f"{kind}.json", tmp / f"{kind}.log"
    write_json(path, config.to_dict())
    flags = ["--config", str(path), "--run-dir", config.train.run_dir, "--device", device]
    command = [sys.executable, "-m", "textgan", "train", *flags, "--no-progress"]
    # The package this process runs, also from a checkout that is not installed.
    package_root = str(Path(__file__).resolve().parents[1])
    path_list = [package_root, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path_list))}
    if device == "cpu":
        env.setdefault("OMP_NUM_THREADS", str(threads))
    with open(log, "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
    return proc, log


def _run_status(code: int, log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    if code == 0:
        return "ok"
    if code < 0 or code > 128:  # stopped by a signal, with a checkpoint (or killed)
        return "interrupted before its budget"
    return f"stopped: {lines[-1] if lines else f'exit status {code}'}"


def _train_in_turn(
    runs: list[tuple[str, Any, Any]],
    cfg: StudyConfig,
    out: Path,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[dict[str, str], int | None]:
    """Train the runs one after the other in this process."""
    from textgan.train import train

    _warm_imports()
    statuses: dict[str, str] = {}
    stopped_by = None
    for n, (kind, config, prepared) in enumerate(runs, start=1):
        echo(f"study {n}/{len(runs)}: {kind}, {cfg.minutes:g} min → {out / kind}")
        try:
            stopped_by = train(config, prepared, progress=progress).stopped_by
        except UserError as err:
            if not (out / kind / "config.json").is_file():
                raise  # it never started: a setup error, not a result
            statuses[kind] = f"stopped: {err}"
            echo(f"study {n}/{len(runs)}: {kind} {statuses[kind]}")
            continue
        if stopped_by is not None:  # Ctrl-C / SIGTERM: tabulate what ran, train no more
            statuses[kind] = "interrupted before its budget"
            echo(f"study {n}/{len(runs)}: {kind} interrupted; no further runs")
            break
        statuses[kind] = "ok"
    return statuses, stopped_by


def _warm_imports() -> None:
    """Import what a run loads lazily (figures, diagnostics, sampling) before any clock starts,
    so the first constraint's budget is not spent on imports."""
    for name in ("matplotlib.figure", "textgan.diagnostics", "textgan.sampling"):
        importlib.import_module(name)


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


def summarize_run(run_dir: Path, status: str = "ok") -> dict[str, Any]:
    """One table row: where a run got to within its budget."""
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


def _floors(out: Path, constraints: Sequence[str]) -> dict[str, float | None]:
    """The real-vs-real floors (the same corpus and sample count for every run)."""
    for kind in constraints:
        evals = [r for r in read_rows(out / kind / METRICS) if "floor_js1" in r]
        if evals:
            return {f"js{n}": evals[-1][f"floor_js{n}"] for n in range(1, 5)}
    return {f"js{n}": None for n in range(1, 5)}


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 1e4:  # a diverging critic: W in the billions
        return format(value, ".3g")
    return format(value, spec)


def markdown_table(result: dict[str, Any]) -> str:
    """The study as a markdown table, floors first."""
    s = result["settings"]
    head = (
        "| constraint | iterations | s / iter | W estimate | JS-1 | JS-2 | JS-3 | JS-4 "
        "| ‖∇x̂ D‖ | weights at ±c |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    floors = result["floors"]
    lines = [
        "| real vs real (floor) | | | | "
        + " | ".join(_fmt(floors[f"js{n}"]) for n in range(1, 5))
        + " | | |"
    ]
    for row in result["rows"]:
        name = row["constraint"] if row["status"] == "ok" else f"{row['constraint']} (stopped)"
        cells = [
            name,
            str(row["iterations"]),
            _fmt(row["seconds_per_iter"], ".2f"),
            _fmt(row["wasserstein"]),
            *(_fmt(row[f"js{n}"]) for n in range(1, 5)),
            _fmt(row["grad_norm_interp"], ".3g"),
            _fmt(row["clip_share"], ".1%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"Corpus `{s['corpus']}`, preset `{s['preset']}`, seed {s['seed']}, "
        f"{s['minutes']:g} min of training per constraint.",
    ]
    for row in result["rows"]:
        if row["status"] != "ok":
            notes.append(f"{row['constraint']}: {row['status']}")
    return head + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"
