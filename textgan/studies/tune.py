"""``textgan tune``: an Optuna search over run settings, each trial an ordinary run folder.

The objective is the EMA JS-4 at a wall-clock budget. Every trial is a ``textgan train`` child
process (``textgan.studies.runs``) whose ``metrics.jsonl`` this process follows: each evaluation is
reported to Optuna against the run's elapsed seconds, and a trial the pruner gives up on is
stopped there. A run that diverges is pruned; one that crashes or is killed is failed. The
study lives in a storage (a SQLite file in the study folder by default), so a rerun of the same
command continues it, and several ``tune`` processes, on one machine or many, share one study::

    OUT/optuna.db           the study (unless --storage names another)
    OUT/trial-<number>/     one ordinary run directory per trial of this machine
    OUT/logs/               each trial's config and stderr
    OUT/best.json           the best trial's recipe in the --config format

``--trials N`` counts finished (complete or pruned) trials of the whole study. A running trial
writes a heartbeat every ``heartbeat`` seconds into its user attributes; one silent for three
times that is failed by any ``tune`` process sharing the study, so a killed process does not
block it (this works on every storage; Optuna's own heartbeat covers relational ones only).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import disk_error, write_json
from textgan.files.rundir import METRICS
from textgan.studies.recipes import Layers, merge, parse_recipe
from textgan.studies.report import quality
from textgan.studies.runs import (
    LOGS,
    Child,
    Echo,
    cpu_model,
    default_threads,
    forwarding_signals,
    last_line,
    start_child,
)
from textgan.studies.tune_space import check_space, load_space, parse_space, refusal, sample
from textgan.studies.tune_study import PRUNERS, make_sampler, open_storage, open_study, storage_url

# The message of textgan.training.loop._diverged: a run stopped by non-finite losses or weights.
DIVERGED = "training diverged"
MAX_FAILURES_IN_A_ROW = 3  # a setting every trial fails on must not loop forever
POLL_S = 0.5
STOP_WAIT_S = 60.0  # a pruned trial's run saves a checkpoint on SIGTERM; then it is killed
BEST = "best.json"
_DONE = object()  # what _claim returns once the study has its trials


@dataclass(frozen=True)
class TuneConfig:
    """A tuning study: the base recipe, the space, the budget of every trial, where it lives."""

    corpus: str
    recipe: str = "small"
    space: str | None = None
    trials: int = 20
    minutes: float = 5.0
    eval_minutes: float | None = None  # None: a tenth of the budget
    jobs: int = 1
    threads: int | None = None
    device: str = "auto"
    seed: int = 0
    pruner: str = "median"
    storage: str | None = None  # None: sqlite:///OUT/optuna.db
    study_name: str = "tune"
    eval_samples: int = 640
    data_dir: str = "data"
    heartbeat: float = 10.0

    @property
    def interval(self) -> float:
        return self.eval_minutes if self.eval_minutes is not None else self.minutes / 10

    def validate(self) -> None:
        for flag, value in (
            ("--minutes", self.minutes),
            ("--eval-minutes", self.interval),
            ("--heartbeat", self.heartbeat),
        ):
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{flag} must be a positive number, got {value}")
        for flag, count in (("--trials", self.trials), ("--jobs", self.jobs)):
            if count < 1:
                raise UserError(f"{flag} must be at least 1, got {count}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")
        if self.pruner not in PRUNERS:
            raise UserError(f"--pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")

    def study_layer(self) -> Layers:
        """What every trial shares, over the recipe and the sampled settings."""
        train = {
            "seed": self.seed,
            "max_minutes": self.minutes,
            "eval_minutes": self.interval,
            "eval_samples": self.eval_samples,
        }
        return {"corpus": {"corpus": self.corpus, "data_dir": self.data_dir}, "train": train}

    def identity(self, space: Any) -> dict[str, Any]:
        """What a study was started with: a rerun or another process must agree on it."""
        keys = ("corpus", "recipe", "minutes", "eval_samples", "seed")
        return {
            **{k: getattr(self, k) for k in keys},
            "eval_minutes": self.interval,
            "space": space,
        }


def step_of(seconds: float, interval_s: float, budget_s: float) -> int:
    """The intermediate step of an evaluation at ``seconds``: the wall-clock moment it was due
    (a multiple of the interval, or the budget for the last one), so that every trial reports
    at the same steps and the pruner compares like with like."""
    if seconds >= budget_s:
        return round(budget_s)
    return round(math.floor(seconds / interval_s + 1e-9) * interval_s)


class Tuner:
    """Runs trials of one study until it has ``cfg.trials`` finished ones."""

    def __init__(self, cfg: TuneConfig, study: Any, params: list, out: Path, echo: Echo):
        self.cfg, self.study, self.params, self.out, self.echo = cfg, study, params, out, echo
        self.recipe = parse_recipe(cfg.recipe, "--recipe")
        self.threads = cfg.threads if cfg.threads is not None else default_threads(cfg.jobs)
        self.lock = threading.Lock()
        self.children: dict[int, Child] = {}  # trial number → its run
        self.stop: list[int] = []
        self.errors: list[BaseException] = []
        self.failures_in_row = 0

    def run(self) -> int | None:
        """Work with ``cfg.jobs`` trials at a time; the signal that stopped it, if any."""
        with forwarding_signals(lambda: list(self.children.values())) as self.stop:
            workers = [threading.Thread(target=self._work) for _ in range(self.cfg.jobs)]
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers):
                for worker in workers:
                    worker.join(timeout=POLL_S)
        if self.errors:
            raise self.errors[0]
        return self.stop[0] if self.stop else None

    def _work(self) -> None:
        try:
            while not (self.stop or self.errors):
                claimed = self._claim()
                if claimed is _DONE:
                    return
                if claimed is None:
                    time.sleep(POLL_S)  # the rest is running elsewhere: wait for it
                    continue
                trial, values = claimed
                self._finish(trial, *self._run(trial, values))
        except BaseException as err:  # a bug: the main thread raises it
            self.errors.append(err)

    def _claim(self) -> Any:
        """A new trial and its settings, None while the trials still needed are running
        elsewhere, or _DONE."""
        from optuna.trial import TrialState

        with self.lock:
            self._fail_stale()
            trials = self.study.get_trials(deepcopy=False)
            finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if finished >= self.cfg.trials:
                return _DONE
            if finished + running >= self.cfg.trials:
                return None
            trial = self.study.ask()
            trial.set_user_attr("heartbeat", time.time())
            # Seeded by the trial's number: reproducible in one process, and a rerun or
            # another process draws new settings rather than the first trial's again.
            self.study.sampler = make_sampler(self.cfg.seed, trial.number)
            values = sample(self.params, trial)
        # Another process may have asked at the same moment: the later trial gives way.
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        earlier = [t for t in self.study.get_trials(False, states=live) if t.number < trial.number]
        if len(earlier) >= self.cfg.trials:
            trial.set_user_attr("error", "not needed: the study had its trials")
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial, values

    def _fail_stale(self) -> None:
        """Fail running trials of other processes whose heartbeat stopped."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        grace, now = 3 * self.cfg.heartbeat, time.time()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.user_attrs.get("heartbeat") or t.datetime_start.timestamp()
            if t.number not in self.children and now - beat > grace:
                try:
                    self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                except UpdateFinishedTrialError:  # another process was first
                    continue
                self.echo(
                    f"tune: trial {t.number} failed: no heartbeat for {now - beat:.0f} s "
                    "(the process running it stopped)"
                )

    def _run(self, trial: Any, values: Layers) -> tuple[str, float | None, str]:
        """Train one trial; its end (``complete``, ``pruned`` or ``failed``), value and why."""
        refused = refusal(self.recipe.layers(merge(values, self.cfg.study_layer())))
        if refused:  # values that pass alone, not together: outside the space, not a failure
            return "pruned", None, refused
        name = f"trial-{trial.number:04d}"
        run_dir = self.out / name
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("machine", {"cpu": cpu_model(), "threads": self.threads})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in trial.params.items())
        self.echo(f"tune: trial {trial.number} ({shown}) → {run_dir}")
        sections = merge(self.recipe.sections(), values, self.cfg.study_layer())
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
        try:
            while True:
                code = child.proc.poll()
                rows, offset = read_new_rows(metrics, offset)
                for row in rows:
                    value = quality(row) if "js1" in row else value
                    step = step_of(row["time"], interval_s, budget_s) if "js1" in row else -1
                    if value is not None and step > last_step:
                        trial.report(value, step)
                        last_step = step
                        if trial.should_prune():
                            stop_child(child)
                            return "pruned", value, f"pruned at {step} s"
                if code is not None:
                    return self._ended(child, code, value)
                if time.monotonic() - beat >= self.cfg.heartbeat:
                    trial.set_user_attr("heartbeat", time.time())
                    beat = time.monotonic()
                time.sleep(POLL_S)
        except UpdateFinishedTrialError:  # failed by another process that saw no heartbeat
            stop_child(child)
            return "gone", None, "failed by another process (no heartbeat)"

    def _ended(self, child: Child, code: int, value: float | None) -> tuple[str, float | None, str]:
        line = last_line(child.log)
        if code == 0:
            if value is None:
                return "failed", None, f"no evaluation in its metrics; see {child.log}"
            return "complete", value, ""
        if self.stop:
            return "failed", value, "interrupted"
        if DIVERGED in line:
            return "pruned", value, line.removeprefix("textgan: error: ")
        if code < 0:
            return "failed", value, f"killed by signal {-code}"
        return "failed", value, f"{line or f'exit status {code}'} (see {child.log})"

    def _finish(self, trial: Any, end: str, value: float | None, why: str) -> None:
        """Tell the study how the trial ended."""
        from optuna.trial import TrialState

        if end == "gone":
            self.echo(f"tune: trial {trial.number} {why}")
            return
        if why:
            trial.set_user_attr("error" if end == "failed" else "pruned", why)
        if end == "complete":
            self.study.tell(trial, value)
        else:
            state = TrialState.PRUNED if end == "pruned" else TrialState.FAIL
            self.study.tell(trial, state=state)
        with self.lock:
            failed = end == "failed" and not self.stop
            self.failures_in_row = self.failures_in_row + 1 if failed else 0
            if self.failures_in_row >= MAX_FAILURES_IN_A_ROW:
                raise UserError(
                    f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, the last one with: {why}"
                )
        shown = f"EMA JS-4 {value:.3f}" if value is not None else "no evaluation"
        self.echo(f"tune: trial {trial.number} {end}: {shown}{f' ({why})' if why else ''}")


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


def stop_child(child: Child) -> None:
    """Stop a trial's run: SIGTERM (it saves a checkpoint and exits), then SIGKILL if it hangs."""
    import subprocess

    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def best_config(study: Any, tuner: Tuner) -> tuple[Any, Layers] | None:
    """The best complete trial and its recipe in the ``--config`` format (None before one)."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    values: Layers = {}
    for key, value in best.params.items():
        section, _, name = key.partition(".")
        values.setdefault(section, {})[name] = value
    corpus = {"corpus": {"corpus": tuner.cfg.corpus, "data_dir": tuner.cfg.data_dir}}
    return best, merge(tuner.recipe.sections(), values, corpus)


def run_tune(
    cfg: TuneConfig, out: str | Path | None = None, *, echo: Echo = print
) -> dict[str, Any]:
    """Run trials until the study has ``cfg.trials`` finished ones; write ``OUT/best.json``.

    Returns the study's name, storage, trial counts by state, the best trial and the signal that
    stopped this process early (None when it ran to the end).
    """
    from textgan.training.loop import resolve_run_config

    cfg.validate()
    out = Path(out) if out is not None else Path("runs") / cfg.study_name
    url = storage_url(cfg.storage, out)
    recipe = parse_recipe(cfg.recipe, "--recipe")
    space, source = load_space(cfg.space)
    params = parse_space(space, source)
    base = recipe.layers(cfg.study_layer())
    check_space(params, base, source)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(out, err, "create study folder") from None
    storage = open_storage(url)
    study = open_study(storage, cfg.study_name, cfg.seed, cfg.pruner, cfg.identity(space))
    # Prepares the corpus once, here, so that trials starting together find its cache.
    resolve_run_config(merge(base, {"train": {"device": cfg.device}}), progress=True)
    tuner = Tuner(cfg, study, params, out, echo)
    stopped_by = tuner.run()
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    result: dict[str, Any] = {"study": cfg.study_name, "out": str(out), "counts": counts}
    found = best_config(study, tuner)
    if found is not None:
        best, sections = found
        write_json(out / BEST, sections)
        result["best"] = {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            "run_dir": best.user_attrs.get("run_dir"),
            "config": str(out / BEST),
            "recipe": sections,
        }
    result["stopped_by"] = stopped_by
    return result
