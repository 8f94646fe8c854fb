"""``textgan tune``: an Optuna search over run settings, each trial an ordinary run folder.

The objective is the EMA JS-4 at a wall-clock budget. Every trial is a ``textgan train`` child
process (``textgan.studies.runs``) whose ``metrics.jsonl`` this process follows: each evaluation is
reported to Optuna at its index on the wall-clock evaluation grid, and a trial the pruner gives
up on is stopped there (its heartbeat going on while its run saves and exits). A run that
diverges is pruned; one that crashes or is killed is failed. The study lives in a storage (a
SQLite file in the study folder by default), so a rerun of the same command continues it, and
several ``tune`` processes, on one machine or many, share one study::

    OUT/optuna.db           the study (unless --storage names another)
    OUT/trial-<number>/     one ordinary run directory per trial of this machine
    OUT/logs/               each trial's config and stderr
    OUT/best.json           the best trial's recipe in the --config format

The JS-4 is against ``reference`` (``textgan.studies.report``); each evaluation also sets the
trial's user attributes ``js4``, ``heldout_js4``, ``copy_rate`` and ``unique_rate``.

``--trials N`` counts finished (complete or pruned) trials of the whole study. A running trial
writes a heartbeat every ``heartbeat`` seconds into its user attributes; one silent for three
times that is failed by any ``tune`` process sharing the study, so a killed process does not
block it (this works on every storage; Optuna's own heartbeat covers relational ones only).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgan.errors import UserError
from textgan.files import disk_error, write_json
from textgan.studies.recipes import Layers, clock_fields, merge, parse_recipe
from textgan.studies.report import (
    check_heldout_left,
    check_reference,
    quality_name,
)
from textgan.studies.runs import (
    Child,
    Echo,
    default_threads,
    forwarding_signals,
)
from textgan.studies.tune_space import check_space, load_space, parse_space, sample
from textgan.studies.tune_study import PRUNERS, make_sampler, open_storage, open_study, storage_url
from textgan.studies.tune_trial import POLL_S, TrialRun

MAX_FAILURES_IN_A_ROW = 3  # a setting every trial fails on must not loop forever
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
    reference: str = "train"  # what the objective's JS-4 is against (textgan.studies.report)

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
        check_reference(self.reference)

    def study_layer(self) -> Layers:
        """What every trial shares, over the recipe and the sampled settings."""
        train = {
            "seed": self.seed,
            **clock_fields(self.minutes, self.interval),
            "eval_samples": self.eval_samples,
        }
        return {"corpus": {"corpus": self.corpus, "data_dir": self.data_dir}, "train": train}

    def identity(self, space: Any) -> dict[str, Any]:
        """What a study was started with: a rerun or another process must agree on it."""
        keys = ("corpus", "recipe", "minutes", "eval_samples", "seed")
        # Studies started before the choice have no reference: they were against training lines.
        objective = {"reference": self.reference} if self.reference != "train" else {}
        return {
            **{k: getattr(self, k) for k in keys},
            "eval_minutes": self.interval,
            # Trials of a linear decay fit their iterations to the budget: not so before.
            "fit_iters": True,
            "space": space,
            **objective,
        }


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
        # self.stop is replaced in run(): the runner reads it through the lambda.
        self.trial_run = TrialRun(
            cfg, self.recipe, self.threads, out, echo, self.children, lambda: bool(self.stop)
        )

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
                self._finish(trial, *self.trial_run(trial, values))
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

    def _finish(self, trial: Any, end: str, value: float | None, why: str) -> None:
        """Tell the study how the trial ended, unless another process failed it meanwhile."""
        if end == "gone" or not self._tell(trial, end, value, why):
            self.echo(f"tune: trial {trial.number} failed by another process (no heartbeat)")
            return
        with self.lock:
            failed = end == "failed" and not self.stop
            self.failures_in_row = self.failures_in_row + 1 if failed else 0
            if self.failures_in_row >= MAX_FAILURES_IN_A_ROW:
                raise UserError(
                    f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, the last one with: {why}"
                )
        name = quality_name(True, self.cfg.reference)
        shown = f"{name} {value:.3f}" if value is not None else "no evaluation"
        self.echo(f"tune: trial {trial.number} {end}: {shown}{f' ({why})' if why else ''}")

    def _tell(self, trial: Any, end: str, value: float | None, why: str) -> bool:
        """Record the trial's end; False when another process had failed it already."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        state = TrialState.FAIL if end == "failed" else TrialState[end.upper()]
        try:
            if why:
                trial.set_user_attr("error" if end == "failed" else "pruned", why)
            done = value if end == "complete" else None
            told = self.study.tell(trial, done, state=state, skip_if_finished=True)
        except UpdateFinishedTrialError:  # failed between the check and the write
            return False
        return told.state == state


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
    from textgan.training.setup import resolve_run_config

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
    # Prepares the corpus once, here, so that trials starting together find its cache.
    config, prepared = resolve_run_config(merge(base, {"train": {"device": cfg.device}}), True)
    check_heldout_left(cfg.reference, config.train.eval_samples, len(prepared.heldout))
    study = open_study(storage, cfg.study_name, cfg.seed, cfg.pruner, cfg.identity(space))
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
