"""A schedule fitted to a wall-clock budget (``train.fit_iters``).

A linear decay falls to 0 at ``train.iters``; with a budget (``train.max_minutes``) the run should
end when the budget does, so ``iters`` is fitted to it before iteration 0. A short timed trial
runs the step on a throwaway ``Trainer`` (the run's weights, optimizers and random streams are
untouched: the global torch generator is forked around it, the rest are the trial's own), after
``WARMUP_ITERS`` untimed iterations; then one evaluation, one diagnostics record and one
checkpoint with its figures are timed in a temporary run folder that the trial logs into, as the
run will. ``iters`` is the largest count whose steps, evaluations, diagnostics and checkpoints
(each counted on its own schedule, iterations or wall-clock grid, and once more at the end) fit
in the budget after the trial, less ``FIT_MARGIN`` of it for a rate that drifts.

The run's clock starts with the trial, so the budget covers it. The run's ``config.json``
records the fitted ``iters`` with ``fit_iters`` off: a resumed run keeps them, and the recorded
config trains the same iterations at the same rates again. ``fit.json`` beside it records the
measurements.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from textgan import files
from textgan.config import RunConfig, TrainConfig, with_train
from textgan.corpus import PreparedCorpus
from textgan.errors import UserError
from textgan.files.rundir import RunDir
from textgan.training import distributed
from textgan.training.evaluation import evaluate
from textgan.training.output import RunOutput
from textgan.training.state import trainer_state
from textgan.training.trainer import Trainer

FIT = "fit.json"
WARMUP_ITERS = 3  # untimed: the first steps allocate and pick kernels
MIN_TIMED = 5  # timed iterations, at least
TRIAL_SHARE, TRIAL_MAX_S = 0.02, 30.0  # the timed steps last this share of the budget, capped
# Of the budget left unplanned: a rate drifts. On the shared 2-core machine of docs/training.md
# a run went 8 % slower than its trial had measured, past what 5 % and the last 2 % of the
# decay absorb.
FIT_MARGIN = 0.10
# The periodic work a run does besides its steps, each on its own schedule.
PERIODIC = {"eval": "evaluations", "diag": "diagnostics", "ckpt": "checkpoints"}


@dataclass(frozen=True)
class Fit:
    """A fitted schedule: the config with it, the moment the run's clock started (the
    trial's start, ``time.perf_counter``) and what was measured."""

    config: RunConfig
    started: float
    record: dict[str, Any]

    def line(self) -> str:
        r, cost = self.record, self.record["seconds"]
        work = ", ".join(
            f"{cost[what]:.2f} s × {r['counts'][what]} {name}" for what, name in PERIODIC.items()
        )
        return (
            f"textgan train: --iters fitted to --max-minutes {r['max_minutes']:g}: "
            f"{r['iters']:,} iterations of {cost['step']:.4f} s (timed over {r['timed']} after "
            f"{WARMUP_ITERS} warm-up ones), {work}; the trial took {r['trial_s']:.1f} s, the "
            f"run should end at {r['planned_s']:.0f} s"
        )

    def save(self, output: RunOutput) -> None:
        if output.active:
            files.write_json(output.run.path / FIT, self.record)


def periodic_counts(t: TrainConfig, iters: int, end_s: float) -> dict[str, int]:
    """How many evaluations, diagnostics and checkpoints a run of ``iters`` iterations ending by
    ``end_s`` seconds does at most: one per ``<what>_every`` iterations or per passed
    ``<what>_minutes`` grid point, and one at the end."""
    counts = {}
    for what in PERIODIC:
        minutes = getattr(t, f"{what}_minutes")
        due = (
            end_s // (60 * minutes) if minutes is not None else iters // getattr(t, f"{what}_every")
        )
        counts[what] = int(due) + 1
    return counts


def planned_seconds(
    t: TrainConfig, iters: int, costs: dict[str, float], start_s: float, end_s: float
) -> float:
    """When a run of ``iters`` iterations that starts at ``start_s`` ends, by ``costs``
    (its periodic work counted as for a run ending by ``end_s``)."""
    counts = periodic_counts(t, iters, end_s)
    return start_s + iters * costs["step"] + sum(counts[w] * costs[w] for w in PERIODIC)


def fitted_iters(t: TrainConfig, costs: dict[str, float], start_s: float, end_s: float) -> int:
    """The most iterations whose run ends by ``end_s`` (0 when not even one does)."""
    low, high = 0, math.ceil(max(end_s - start_s, 0.0) / costs["step"]) + 1
    while low < high:  # the planned end grows with the iterations
        mid = (low + high + 1) // 2
        if planned_seconds(t, mid, costs, start_s, end_s) <= end_s:
            low = mid
        else:
            high = mid - 1
    return low


def fit_schedule(
    config: RunConfig,
    prepared: PreparedCorpus,
    evaluator: Any,
    device: torch.device,
    folder: Path,
    echo: Callable[[str], None],
) -> Fit | None:
    """Fit ``train.iters`` to ``train.max_minutes`` by a timed trial (the module docstring);
    ``folder`` holds the trial's temporary run folder (rank 0's), next to the run's. Without a
    budget there is nothing to fit (None; a preset may ask for a fit whenever one is given)."""
    t = config.train
    if t.max_minutes is None:
        echo(f"textgan train: no --max-minutes to fit --iters to; training {t.iters:,} iterations")
        return None
    started = time.perf_counter()
    end_s = (1 - FIT_MARGIN) * 60 * t.max_minutes
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices, device_type=device.type), _trial_folder(folder) as run:
        costs, timed = _trial(config, prepared, evaluator, device, run, started, end_s)
    # Every rank plans with the slowest rank's measurements: they agree on the iterations.
    keys = ("step", "warmup", *PERIODIC)
    trial_s, *values = distributed.agree_max(
        [time.perf_counter() - started, *(costs[k] for k in keys)]
    )
    costs = dict(zip(keys, values, strict=True))
    # The run's own first iterations repeat the warm-up's extra cost.
    start_s = trial_s + costs["warmup"]
    iters = fitted_iters(t, costs, start_s, end_s)
    if iters < 1:
        once = planned_seconds(t, 1, costs, start_s, end_s)
        _too_short(
            t,
            f"after its {trial_s:.1f} s trial, one iteration with the last evaluation "
            f"and checkpoint would end at {once:.1f} s",
        )
    record = {
        "iters": iters,
        "max_minutes": t.max_minutes,
        "margin": FIT_MARGIN,
        "timed": timed,
        "trial_s": trial_s,
        "seconds": costs,
        "counts": periodic_counts(t, iters, end_s),
        "planned_s": planned_seconds(t, iters, costs, start_s, end_s),
    }
    fit = Fit(with_train(config, iters=iters, fit_iters=False), started, record)
    echo(fit.line())
    return fit


def _too_short(t: TrainConfig, what: str) -> None:
    message = (
        f"train.max_minutes {t.max_minutes:g} is too short to fit train.iters: {what}, past "
        f"{1 - FIT_MARGIN:.0%} of the budget; give a longer train.max_minutes, or train.iters "
        "without train.fit_iters"
    )
    # Every rank stops here; rank 0 says why for the job.
    raise UserError(message) if distributed.is_rank0() else distributed.PeerRefused(message)


@contextlib.contextmanager
def _trial_folder(parent: Path) -> Iterator[RunDir]:
    """Rank 0's temporary run folder for the trial, removed after it (a placeholder that is
    never written on the other ranks)."""
    if not distributed.is_rank0():
        yield RunDir(parent)
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.TemporaryDirectory(prefix=f"{files.TMP_PREFIX}fit-", dir=parent)
    except OSError as err:
        raise files.disk_error(parent, err, "create the fit's trial folder in") from None
    with tmp as path:
        yield RunDir.create(Path(path) / "run")


def _trial(
    config: RunConfig,
    prepared: PreparedCorpus,
    evaluator: Any,
    device: torch.device,
    run: RunDir,
    started: float,
    end_s: float,
) -> tuple[dict[str, float], int]:
    """Seconds per iteration (its rows included), the warm-up's extra seconds, and seconds per
    evaluation, diagnostics record and checkpoint with figures, on a throwaway trainer that
    logs into ``run``; and the number of timed iterations."""
    from textgan.generation.sampling import samples_to_text

    t = config.train
    trainer = Trainer(config, prepared.train, device)
    output = RunOutput(run, progress=False)
    output.config(config, prepared.vocab)

    def iterate() -> float:
        """One iteration as the run's loop does it; the latest rank's clock after it."""
        trainer.step()
        if trainer.iteration % t.log_every == 0:
            row = {"iter": trainer.iteration, "time": time.perf_counter() - started}
            output.rows([{**row, **trainer.meter.means()}])
            trainer.meter.reset()
        (now,) = distributed.agree_max([time.perf_counter() - started])
        if now > end_s:
            _too_short(
                t, f"the fit's trial had taken {now:.1f} s by its iteration {trainer.iteration}"
            )
        return now

    begin = time.perf_counter() - started
    for _ in range(WARMUP_ITERS):
        first = iterate()
    trial_s, timed, now = min(TRIAL_SHARE * 60 * t.max_minutes, TRIAL_MAX_S), 0, first
    while timed < MIN_TIMED or now - first < trial_s:
        now = iterate()
        timed += 1
    step = max((now - first) / timed, 1e-9)
    costs = {"step": step, "warmup": max(first - begin - WARMUP_ITERS * step, 0.0)}

    def seconds(work: Callable[[], None]) -> float:
        begin = time.perf_counter()
        work()
        return time.perf_counter() - begin

    def evaluation() -> None:
        if evaluator is not None:
            scores, ids = evaluate(trainer, evaluator, config)
            output.rows([{"iter": trainer.iteration, **scores}])
            output.samples(trainer.iteration, samples_to_text(ids, prepared.vocab))

    def checkpoint() -> None:
        output.checkpoint(trainer, trainer_state(trainer), t.keep)
        output.plots()

    costs["eval"] = seconds(evaluation)
    costs["diag"] = seconds(lambda: output.diagnostics(trainer, trainer.iteration))
    costs["ckpt"] = seconds(checkpoint)
    return costs, timed
