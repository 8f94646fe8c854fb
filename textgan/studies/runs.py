"""Training runs of a study or a tuning job: each a ``textgan train`` child process.

Runs that share a machine share it fairly only when each gets a fixed number of threads, so every
child gets ``OMP_NUM_THREADS``; ``machine`` records what they ran on. ``train_children`` keeps at
most one run per slot (a device name; ``cpu,cpu`` is two runs on the CPU at a time) and passes
Ctrl-C / SIGTERM on to the running ones, which stop with a checkpoint. ``train_in_turn`` trains
runs one after the other in this process (the Lipschitz study on one device).

Each child's config and stderr are kept in ``OUT/logs/<run>.json`` and ``OUT/logs/<run>.log``.
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import write_json

Echo = Callable[[str], None]
LOGS = "logs"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its name (and folder under the study), its resolved config, and the
    prepared corpus for training it in this process."""

    name: str
    config: Any  # textgan.config.RunConfig
    prepared: Any = None  # textgan.corpus.PreparedCorpus


@dataclass
class Child:
    """A running ``textgan train`` process and the file its stderr goes to."""

    name: str
    proc: subprocess.Popen
    log: Path

    def status(self) -> str | None:
        """None while it runs, then ``ok``, ``interrupted before its budget`` or ``stopped: …``."""
        code = self.proc.poll()
        return None if code is None else exit_status(code, self.log)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity
        return os.cpu_count() or 1


def default_threads(parallel: int) -> int:
    """Threads per run when ``parallel`` runs share the usable cores."""
    return max(1, usable_cores() // max(1, parallel))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int, parallel: int) -> dict[str, Any]:
    """What a wall-clock comparison was measured on."""
    import torch

    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads_per_run": threads,
        "runs_at_once": parallel,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def start_child(
    name: str,
    config_sections: Mapping[str, Any],
    run_dir: Path,
    device: str,
    threads: int | None,
    logs: Path,
) -> Child:
    """Start ``textgan train --config logs/NAME.json --run-dir RUN_DIR --device DEVICE``."""
    logs.mkdir(parents=True, exist_ok=True)
    config_path, log = logs / f"{name}.json", logs / f"{name}.log"
    write_json(config_path, dict(config_sections))
    flags = ["--config", str(config_path), "--run-dir", str(run_dir), "--device", device]
    command = [sys.executable, "-m", "textgan", "train", *flags, "--no-progress"]
    # The package this process runs, also from a checkout that is not installed.
    package_root = str(Path(__file__).resolve().parents[1])
    path_list = [package_root, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path_list))}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with open(log, "w") as err:
        # A session of its own: a terminal's Ctrl-C reaches this process alone, which passes
        # it on once (a run that got it twice would abort without its checkpoint).
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True
        )
    return Child(name, proc, log)


def last_line(log: Path) -> str:
    """The last line a child wrote to its log ('' when none)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def exit_status(code: int, log: Path) -> str:
    """A child's end in words."""
    if code == 0:
        return "ok"
    if code < 0 or code > 128:  # stopped by a signal, with a checkpoint (or killed)
        return "interrupted before its budget"
    return f"stopped: {last_line(log) or f'exit status {code}'}"


@contextmanager
def forwarding_signals(children: Callable[[], Sequence[Child]]) -> Iterator[list[int]]:
    """While inside, SIGINT/SIGTERM go to the running children instead of this process; the
    list yielded collects the signals received (no further run should start once it has one)."""
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for child in children():
            if child.proc.poll() is None:
                child.proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_children(
    runs: Sequence[PlannedRun],
    slots: Sequence[str],
    threads: int | None,
    out: Path,
    echo: Echo,
) -> tuple[dict[str, str], int | None]:
    """Train each run in its own ``textgan train`` process, at most one per slot (a device) at
    a time. Returns each started run's status and the signal that stopped the study, if any."""
    statuses: dict[str, str] = {}
    pending = list(enumerate(runs, start=1))
    running: dict[int, Child] = {}  # slot → child
    with forwarding_signals(lambda: list(running.values())) as stop:
        while running or (pending and not stop):
            for slot, device in enumerate(slots):
                if slot not in running and pending and not stop:
                    n, run = pending.pop(0)
                    echo(f"study {n}/{len(runs)}: {run.name} on {device} → {out / run.name}")
                    sections = run.config.to_dict()
                    running[slot] = start_child(
                        run.name, sections, out / run.name, device, threads, out / LOGS
                    )
            time.sleep(0.2)
            for slot, child in list(running.items()):
                status = child.status()
                if status is not None:
                    del running[slot]
                    statuses[child.name] = status
                    echo(f"study: {child.name} {status}")
    return statuses, (stop[0] if stop else None)


def train_in_turn(
    runs: Sequence[PlannedRun], progress: bool, echo: Echo
) -> tuple[dict[str, str], int | None]:
    """Train the runs one after the other in this process."""
    from textgan.training import loop as training

    _warm_imports()
    statuses: dict[str, str] = {}
    for n, run in enumerate(runs, start=1):
        minutes = run.config.train.max_minutes
        budget = f", {minutes:g} min" if minutes is not None else ""
        echo(f"study {n}/{len(runs)}: {run.name}{budget} → {run.config.train.run_dir}")
        try:
            stopped_by = training.train(run.config, run.prepared, progress=progress).stopped_by
        except UserError as err:
            if not (Path(run.config.train.run_dir) / "config.json").is_file():
                raise  # it never started: a setup error, not a result
            statuses[run.name] = f"stopped: {err}"
            echo(f"study {n}/{len(runs)}: {run.name} {statuses[run.name]}")
            continue
        if stopped_by is not None:  # Ctrl-C / SIGTERM: tabulate what ran, train no more
            statuses[run.name] = "interrupted before its budget"
            echo(f"study {n}/{len(runs)}: {run.name} interrupted; no further runs")
            return statuses, stopped_by
        statuses[run.name] = "ok"
    return statuses, None


def _warm_imports() -> None:
    """Import what a run loads lazily (figures, diagnostics, sampling) before any clock starts,
    so the first run's budget is not spent on imports."""
    for name in (
        "matplotlib.figure",
        "textgan.training.diagnostics",
        "textgan.generation.sampling",
    ):
        importlib.import_module(name)
