"""One trial of ``textgan tune``: its run started as a ``textgan train`` child process,
followed through its ``metrics.jsonl`` (each evaluation reported to Optuna at its index on the
wall-clock grid and the pruner asked), stopped when pruned, and its end read from how the
process ended. ``textgan.studies.tune`` decides which trials run and records their ends."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from textgan.files import read_json
from textgan.files.rundir import CONFIG, METRICS
from textgan.studies.recipes import Layers, Recipe, fit_layer, merge
from textgan.studies.report import generator_values, quality
from textgan.studies.runs import LOGS, Child, Echo, cpu_model, last_line, start_child
from textgan.studies.tune_space import refusal

# The message of textgan.training.loop._diverged: a run stopped by non-finite losses or weights.
DIVERGED = "training diverged"
POLL_S = 0.5
STOP_WAIT_S = 60.0  # a pruned trial's run saves a checkpoint on SIGTERM; then it is killed


def step_of(seconds: float, interval_s: float, budget_s: float, last: bool = False) -> int:
    """The intermediate step of an evaluation at ``seconds``: its index on the wall-clock grid
    (k once k intervals had passed; for the last one, at the budget or at the run's last
    iteration, the budget's, rounded up), so that every trial reports at the same steps and the
    pruner compares like with like."""
    if last or seconds >= budget_s:
        return math.ceil(budget_s / interval_s - 1e-9)
    return math.floor(seconds / interval_s + 1e-9)


class TrialSettings(Protocol):
    """What a trial's run reads of the tune settings (``textgan.studies.tune.TuneConfig``)."""

    device: str
    minutes: float
    reference: str
    heartbeat: float

    @property
    def interval(self) -> float: ...

    def study_layer(self) -> Layers: ...


class TrialRun:
    """Trains trials of one tune process; ``children`` maps a running trial's number to its
    run, for the signals the process forwards."""

    def __init__(
        self,
        cfg: TrialSettings,
        recipe: Recipe,
        threads: int,
        out: Path,
        echo: Echo,
        children: dict[int, Child],
        stopped: Callable[[], bool],
    ) -> None:
        self.cfg, self.recipe, self.threads, self.out, self.echo = cfg, recipe, threads, out, echo
        self.children, self.stopped = children, stopped  # stopped: the process was signalled

    def __call__(self, trial: Any, values: Layers) -> tuple[str, float | None, str]:
        """Train one trial; its end (``complete``, ``pruned`` or ``failed``), value and why."""
        layers = self.recipe.layers(merge(values, self.cfg.study_layer()))
        refused = refusal(layers)
        if refused:  # values that pass alone, not together: outside the space, not a failure
            return "pruned", None, refused
        name = f"trial-{trial.number:04d}"
        run_dir = self.out / name
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("machine", {"cpu": cpu_model(), "threads": self.threads})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in trial.params.items())
        self.echo(f"tune: trial {trial.number} ({shown}) → {run_dir}")
        # A linear decay is fitted to the budget: the trial's schedule is its final run's.
        sections = merge(self.recipe.sections(), values, self.cfg.study_layer(), fit_layer(layers))
        child = start_child(name, sections, run_dir, self.cfg.device, self.threads, self.out / LOGS)
        self.children[trial.number] = child
        try:
            return self._follow(trial, child, run_dir / METRICS)
        finally:
            del self.children[trial.number]

    def _follow(self, trial: Any, child: Child, metrics: Path) -> tuple[str, float | None, str]:
        """Report each evaluation of a running trial; stop it when the pruner says so."""
        from optuna.exceptions import UpdateFinishedTrialError

        budget_s, interval_s = 60 * self.cfg.minutes, 60 * self.cfg.interval
        offset, last_step, value, beat = 0, -1, None, time.monotonic()
        iters = None
        try:
            while True:
                code = child.proc.poll()
                rows, offset = read_new_rows(metrics, offset)
                for row in rows:
                    value = quality(row, self.cfg.reference) if "js1" in row else value
                    evaluation = generator_values(row) if "js1" in row else {}
                    for key, attribute in evaluation.items():
                        trial.set_user_attr(key, attribute)
                    step = -1
                    if "js1" in row:
                        iters = iters or run_iters(metrics.parent)
                        step = step_of(row["time"], interval_s, budget_s, row["iter"] >= iters)
                    if value is not None and step > last_step:
                        trial.report(value, step)
                        last_step = step
                        if trial.should_prune():
                            # Its heartbeat goes on while the run saves and stops.
                            stop_child(child, lambda: self._beat(trial), self.cfg.heartbeat)
                            when = f"evaluation {step}, {row['time']:.0f} s"
                            return "pruned", value, f"pruned at {when}"
                if code is not None:
                    return self._ended(child, code, value)
                if time.monotonic() - beat >= self.cfg.heartbeat:
                    self._beat(trial)
                    beat = time.monotonic()
                time.sleep(POLL_S)
        except UpdateFinishedTrialError:  # failed by another process that saw no heartbeat
            stop_child(child)
            return "gone", None, "failed by another process (no heartbeat)"

    @staticmethod
    def _beat(trial: Any) -> None:
        trial.set_user_attr("heartbeat", time.time())

    def _ended(self, child: Child, code: int, value: float | None) -> tuple[str, float | None, str]:
        line = last_line(child.log)
        if code == 0:
            if value is None:
                return "failed", None, f"no evaluation in its metrics; see {child.log}"
            return "complete", value, ""
        if self.stopped():
            return "failed", value, "interrupted"
        if DIVERGED in line:
            return "pruned", value, line.removeprefix("textgan: error: ")
        if code < 0:
            return "failed", value, f"killed by signal {-code}"
        return "failed", value, f"{line or f'exit status {code}'} (see {child.log})"


def run_iters(run_dir: Path) -> int:
    """A trial run's last iteration: its config.json's (written before its first row, and with
    the fitted count when it fits it)."""
    return read_json(run_dir / CONFIG, "run config")["train"]["iters"]


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def read_new_rows(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines appended to ``path`` since byte ``offset``, and the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
    rows = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, offset + end


def stop_child(child: Child, beat: Callable[[], None] = lambda: None, every: float = 1.0) -> None:
    """Stop a trial's run: SIGTERM (it saves a checkpoint and exits), then SIGKILL if it hangs;
    ``beat`` is called every ``every`` seconds of the wait."""
    import subprocess

    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                child.proc.wait(timeout=min(every, left))
                return
            except subprocess.TimeoutExpired:
                beat()
        child.proc.kill()
        child.proc.wait()
